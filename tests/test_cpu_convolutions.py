"""The XLA flag that gives CPU convolutions to Eigen: when it is set, and that XLA accepts it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from winact_jax import backends
from winact_jax.backends import EIGEN_CONVOLUTIONS_FLAG, prefer_eigen_convolutions


@pytest.fixture
def measured_jaxlib(monkeypatch):
    monkeypatch.setattr(backends, "jaxlib_release", lambda: (0, 10))


def test_flag_is_appended_to_the_users_flags(measured_jaxlib):
    environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    assert prefer_eigen_convolutions(environ) is True
    assert environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=4 {EIGEN_CONVOLUTIONS_FLAG}"


def test_flag_is_set_when_there_are_no_flags(measured_jaxlib):
    environ = {}
    assert prefer_eigen_convolutions(environ) is True
    assert environ == {"XLA_FLAGS": EIGEN_CONVOLUTIONS_FLAG}


def test_the_users_own_ynn_choice_is_kept(measured_jaxlib):
    environ = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=+individual_convolution"}
    assert prefer_eigen_convolutions(environ) is False
    assert environ == {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=+individual_convolution"}


def test_setting_it_twice_adds_it_once(measured_jaxlib):
    environ = {}
    prefer_eigen_convolutions(environ)
    assert prefer_eigen_convolutions(environ) is False
    assert environ["XLA_FLAGS"].count(EIGEN_CONVOLUTIONS_FLAG) == 1


@pytest.mark.parametrize("release", [(0, 9), (0, 11), (1, 0), None])
def test_unmeasured_jaxlib_gets_no_flag(monkeypatch, release):
    # XLA aborts on flags it does not know, so only the measured releases get it.
    monkeypatch.setattr(backends, "jaxlib_release", lambda: release)
    environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    assert prefer_eigen_convolutions(environ) is False
    assert environ == {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}


def test_installed_jaxlib_release_is_read():
    release = backends.jaxlib_release()
    assert release is not None and all(isinstance(part, int) for part in release)


@pytest.mark.skipif(
    backends.jaxlib_release() not in backends.MEASURED_JAXLIB,
    reason="the flag is only set for the measured jaxlib releases",
)
def test_xla_accepts_the_flag_and_convolutions_stay_exact(tmp_path):
    # A fresh process, since XLA reads its flags once. Unknown flags abort it.
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, numpy as np
        x = jax.random.normal(jax.random.key(0), (2, 9, 9, 5))
        k = jax.random.normal(jax.random.key(1), (3, 3, 5, 4))
        def loss(k):
            y = jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return jnp.sum(jnp.sin(y))
        value, grad = jax.jit(jax.value_and_grad(loss))(k)
        np.save("out.npy", np.concatenate([np.ravel(value), np.ravel(grad)]))
        """
    )
    results = {}
    for name, flags in [("eigen", EIGEN_CONVOLUTIONS_FLAG), ("default", "")]:
        workdir = tmp_path / name
        workdir.mkdir()
        env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
        completed = subprocess.run(
            [sys.executable, "-c", script], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
        )
        assert completed.returncode == 0, completed.stderr[-2000:]
        results[name] = np.load(workdir / "out.npy")
    np.testing.assert_allclose(results["eigen"], results["default"], rtol=1e-4, atol=1e-4)


def test_backends_docstring_examples():
    import doctest

    failed, attempted = doctest.testmod(backends, verbose=False)
    assert attempted >= 1 and failed == 0
