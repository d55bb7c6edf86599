"""`python -m winact_jax.models [--act NAME]`: every model's parameter count and output shape.

`--act` (default `relu`) counts the parameters an activation layer adds, e.g.
`prelu` (a slope per channel at every site) or `frelu` (a depthwise kernel and a
batch norm). Shapes are traced abstractly (`nnx.eval_shape`, `jax.eval_shape`): nothing is
initialised or run, so the table prints in seconds on any machine.
"""

from __future__ import annotations

import argparse
import math

import jax
import jax.numpy as jnp
from flax import nnx

from winact_jax import models

NUM_CLASSES = 10
IMAGE_SIZES = (32, 64)


def describe(name: str, image_size: int, act: str = "relu") -> tuple[int, tuple[int, ...]]:
    """Parameter count and output shape of `name` with `act` on one `image_size` RGB image."""
    abstract = nnx.eval_shape(lambda: models.create(name, NUM_CLASSES, act, image_size=image_size, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    params = nnx.state(abstract, nnx.Param)
    count = sum(math.prod(p.shape) for p in jax.tree.leaves(params))
    image = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    logits = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, image)
    return count, logits.shape


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m winact_jax.models", description=__doc__.splitlines()[0])
    parser.add_argument("--act", default="relu", help="the activation at every nonlinearity (default: relu)")
    act = parser.parse_args(argv).act
    try:
        models.activations(act)  # an unknown name is one line, not a traceback per model
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    header = ["model"]
    for size in IMAGE_SIZES:
        header += [f"parameters ({size}x{size})", f"output ({size}x{size})"]
    rows = [header]
    for name in models.names():
        row = [name]
        for size in IMAGE_SIZES:
            count, shape = describe(name, size, act)
            row += [f"{count:,}", str(shape)]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        # Names left-aligned, numbers and shapes right-aligned.
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
        print("  ".join(cells))
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
