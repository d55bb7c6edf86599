"""Timing compiled JAX functions fairly against each other in one process.

Benchmarks compare a window activation with ReLU on the same shapes, so what matters
is the ratio, and a ratio is only meaningful when both sides saw the same machine
state. `interleaved_medians` therefore runs the candidates in rounds, each round every
candidate once in a freshly shuffled order (so none always runs right after the
same neighbour), after compiling and warming every one of them, and reports each
one's median over the rounds: a burst of background load hits all candidates alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import jax
import numpy as np
from tqdm.auto import tqdm


def device_description() -> str:
    """The default device in words, e.g. 'cpu: 2 cores' or 'gpu: NVIDIA H100 80GB HBM3'."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        import os

        return f"cpu: {os.cpu_count()} cores ({jax.device_count()} JAX devices)"
    return f"{device.platform}: {device.device_kind} (x{jax.device_count()})"


def interleaved_medians(
    candidates: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    warmup: int = 2,
    desc: str = "timing",
) -> dict[str, float]:
    """Median wall time in seconds of each zero-argument callable, run in rounds.

    Each callable must return JAX arrays (or a pytree of them); completion is awaited
    with `jax.block_until_ready`, so asynchronous dispatch is inside the measurement
    and compilation (done during warm-up) is not.
    """
    for fn in tqdm(candidates.values(), desc=f"{desc}: compile", leave=False):
        for _ in range(warmup):
            jax.block_until_ready(fn())
    times: dict[str, list[float]] = {name: [] for name in candidates}
    order = np.random.default_rng(0)
    names = list(candidates)
    for _ in tqdm(range(rounds), desc=f"{desc}: rounds", leave=False):
        for index in order.permutation(len(names)):
            name = names[index]
            start = time.perf_counter()
            jax.block_until_ready(candidates[name]())
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}
