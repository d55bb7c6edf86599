"""What the experiment command lines share: argument types and the paper's lists.

parser.add_argument("--acts", type=activation_list)         # "relu,nelu" or "all"
parser.add_argument("--seeds", type=comma_list(int, "integers"))
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import winact_jax as wa

# The ten activations of the seed paper's Table 1 and of its runtime table, in its order.
PAPER_TABLE1_ACTS = (
    "relu",
    "leaky_relu",
    "gelu",
    "max",
    "max_relu",
    "softmax_threshold",
    "nelu",
    "pnelu",
    "inhibitor",
    "excitator",
)


def activation_name(text: str) -> str:
    """One registered activation name (or alias), as given."""
    try:
        wa.canonical_name(text.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text.strip()


def comma_list(convert: Callable, what: str) -> Callable[[str], tuple]:
    """An argparse `type=` for "a,b,c": a non-empty tuple of `convert`ed parts."""

    def parse(text: str) -> tuple:
        try:
            values = tuple(convert(part.strip()) for part in text.split(",") if part.strip())
        except (ValueError, argparse.ArgumentTypeError) as error:
            detail = f": {error}" if isinstance(error, argparse.ArgumentTypeError) else ""
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}{detail}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}")
        return values

    return parse


def activation_list(text: str) -> tuple[str, ...]:
    """Comma-separated activation names, or "all" for every registered one."""
    if text.strip() == "all":
        return wa.names()
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated activation names, got {text!r}")
    return tuple(activation_name(name) for name in names)
