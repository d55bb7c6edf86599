"""How a model gets its activations: what `act` means, and where it goes.

Every model in this package takes `act` (a callable, or a name registered in
`winact_jax`) and `placement`, and asks `activations` for the two functions it
applies: one after its stem, one at every other nonlinearity.

    >>> stem, body = activations("nelu", "stem", {"window": 2, "influence": 0.5})
    >>> stem, body.__name__
    (Activation('nelu', influence=0.5, window=2), 'relu')
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Union

import jax

import winact_jax

ActivationLike = Union[str, Callable[[jax.Array], jax.Array]]

PLACEMENTS = ("all", "stem")

# Parameters a caller may pass for any activation (the training CLI passes the same
# flags whatever the activation): each activation takes the ones it accepts and
# ignores the rest, so `relu` with `window=4` is plain ReLU. Any other parameter goes
# to `winact_jax.get`, which rejects it when the activation does not take it, so a
# typo fails loudly instead of being dropped.
SHARED_PARAMS = ("window", "influence", "threshold")


def resolve(act: ActivationLike, act_params: Mapping[str, Any] | None = None) -> Callable:
    """The activation `act` as a callable `x -> y`.

    Args:
      act: a callable, used as is, or a name (or alias) registered in `winact_jax`.
      act_params: parameters for a named activation, e.g. `{"window": 4,
        "influence": 0.1}`; those of `SHARED_PARAMS` it does not accept are ignored.

    Raises:
      ValueError: `act` is an unknown name (the message lists every name).
      TypeError: `act` is neither, a parameter is unknown to the activation, or
        `act_params` is given with a callable (whose parameters are its own).
    """
    act_params = dict(act_params or {})
    if isinstance(act, str):
        accepted = winact_jax.parameters(act)
        params = {
            k: v for k, v in act_params.items() if k in accepted or k not in SHARED_PARAMS
        }
        return winact_jax.get(act, **params)
    if callable(act):
        if act_params:
            raise TypeError(
                f"act_params={act_params!r} applies to an activation given by name; "
                f"act={act!r} is a callable: bind its parameters yourself, e.g. "
                "functools.partial(winact_jax.nelu, window=2)"
            )
        return act
    raise TypeError(
        f"act must be a callable or an activation name (one of: "
        f"{', '.join(winact_jax.names())}); got {act!r} ({type(act).__name__})"
    )


class Activations(NamedTuple):
    """The activation after the stem, and the one at every other nonlinearity."""

    stem: Callable
    body: Callable


def activations(
    act: ActivationLike,
    placement: str = "all",
    act_params: Mapping[str, Any] | None = None,
) -> Activations:
    """Resolves `act` and places it.

    Args:
      act: see `resolve`.
      placement: `"all"`: `act` at every nonlinearity. `"stem"`: `act` only at the
        first one (after the stem) and ReLU everywhere else, the fine-tuning
        protocol of the window-activation paper.
      act_params: see `resolve`.
    """
    if placement not in PLACEMENTS:
        raise ValueError(
            f"placement must be one of {', '.join(map(repr, PLACEMENTS))}; got {placement!r}"
        )
    chosen = resolve(act, act_params)
    return Activations(stem=chosen, body=chosen if placement == "all" else winact_jax.relu)
