"""Orbax checkpoints of the train state and of where the run stands.

    checkpoints = Checkpoints(workdir / "checkpoints", keep=3)
    checkpoints.save(step, state, {"epoch": 3, "step_in_epoch": 0, ...})
    state, meta = checkpoints.restore_latest(abstract_state)

A checkpoint is numbered by the global training step and holds two items: `state`
(the `TrainState` pytree: parameters, batch statistics, optimizer state) and `meta`
(JSON: the epoch, the position inside it, the best validation accuracy so far,
the seed, the partial epoch's running sums). Together they are everything a
resumed run needs: the random state is a function of (seed, epoch, step) alone.

Every process must call `save` and `restore` (Orbax coordinates them, and writes
each replicated array once); in a multi-host run the directory must be on a file
system all hosts share.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from winact_jax.train.state import TrainState


class Checkpoints:
    """An `ocp.CheckpointManager` keeping the last `keep` checkpoints."""

    def __init__(self, directory: str | os.PathLike, *, keep: int):
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self.manager = ocp.CheckpointManager(os.path.abspath(os.fspath(directory)), options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: TrainState, meta: dict[str, Any]) -> None:
        """Saves (asynchronously) as checkpoint `step`; a no-op if it exists."""
        if step in self.manager.all_steps():
            return
        self.manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
        )

    def restore_latest(self, target: TrainState) -> tuple[TrainState, dict[str, Any]]:
        """The latest checkpoint, laid out like `target` (arrays or
        `jax.ShapeDtypeStruct`s: their shardings say where the arrays go)."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        restored = self.manager.restore(
            self.latest_step(),
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
        )
        return restored.state, restored.meta

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self.manager.wait_until_finished()
        self.manager.close()
