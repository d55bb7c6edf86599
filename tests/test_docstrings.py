"""The examples in the docstrings run and print what they claim."""

from __future__ import annotations

import doctest

import pytest

from winact_jax import elementwise, registry, window_activations

MODULES = {
    "window_activations": window_activations,
    "elementwise": elementwise,
    "registry": registry,
}


@pytest.mark.parametrize("name", list(MODULES))
def test_doctests_pass(name):
    failed, attempted = doctest.testmod(MODULES[name], verbose=False)
    assert failed == 0, f"{failed} of {attempted} doctest examples of winact_jax.{name} failed (output above)"


def test_doctests_exist():
    attempted = {name: doctest.testmod(module, verbose=False).attempted for name, module in MODULES.items()}
    assert sum(attempted.values()) > 0, attempted
    # every activation and the registry show a runnable example
    assert attempted["window_activations"] >= 9, attempted
    assert attempted["registry"] > 0, attempted
    assert attempted["elementwise"] >= 11, attempted
