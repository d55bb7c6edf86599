"""Orbax checkpoints of the train state and of where the run stands.

    checkpoints = Checkpoints(workdir / "checkpoints", keep=3)
    checkpoints.save(step, state, {"epoch": 3, "step_in_epoch": 0, ...})
    step, state, meta = checkpoints.restore_newest(abstract_state, on_failure=...)

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
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import orbax.checkpoint as ocp

from winact_jax.train.outcomes import CannotResumeError
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

    def restore(self, step: int, target: TrainState) -> tuple[TrainState, dict[str, Any]]:
        """Checkpoint `step`, laid out like `target` (arrays or
        `jax.ShapeDtypeStruct`s: their shardings say where the arrays go)."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
        )
        return restored.state, restored.meta

    def restore_newest(
        self,
        target: TrainState,
        *,
        accept: Callable[[TrainState, dict[str, Any]], Any] = lambda state, meta: meta,
        on_failure: Callable[[int, pathlib.Path, BaseException], None],
    ) -> tuple[int, TrainState, Any]:
        """The newest checkpoint that restores: tries them newest first.

        Args:
          target: the state's layout (see `restore`).
          accept: turns a restored (state, meta) into what the caller needs, raising
            if it cannot (e.g. meta of the wrong form); its result is returned.
          on_failure: called with (step, its directory, the error) for each
            checkpoint that fails; it should move the directory aside (the
            manager forgets it afterwards).

        Returns:
          (step, state, accept's result).

        Raises:
          CannotResumeError: there are checkpoints and none restores.
        """
        failed = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                state, meta = self.restore(step, target)
                return step, state, accept(state, meta)
            except Exception as error:  # noqa: BLE001 - any failure to read: try the next
                failed.append(step)
                on_failure(step, self.step_path(step), error)
                self.manager.reload()
        raise CannotResumeError(
            f"no checkpoint of {self.directory.parent} restores (tried steps "
            f"{', '.join(map(str, failed))}; moved aside, not deleted); "
            "start over with --overwrite, or use another --workdir"
        )

    @property
    def directory(self) -> pathlib.Path:
        return pathlib.Path(self.manager.directory)

    def step_path(self, step: int) -> pathlib.Path:
        return self.directory / str(step)

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self.manager.wait_until_finished()
        self.manager.close()
