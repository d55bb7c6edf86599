"""The run directory: what a run writes for people and for the next run.

    <workdir>/config.json      every setting, the library versions, the devices
    <workdir>/metrics.jsonl    one JSON line per finished epoch
    <workdir>/tensorboard/     TensorBoard event files (tensorboardX)
    <workdir>/checkpoints/     Orbax checkpoints (see checkpoints.py)
    <workdir>/summary.json     the outcome, written when the run stops

In a multi-process run only process 0 writes (`writer=False` elsewhere makes the
writing methods no-ops); every process may read, since the checkpoints already
need a directory all hosts share.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
from typing import Any

import flax
import jax
import optax
import orbax.checkpoint as ocp

import winact_jax
from winact_jax.train.config import TrainConfig

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"


def environment() -> dict[str, Any]:
    """The versions and devices a run used, for config.json."""
    return {
        "versions": {
            "python": sys.version.split()[0],
            "jax": jax.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
            "orbax_checkpoint": getattr(ocp, "__version__", "unknown"),
            "winact_jax": winact_jax.__version__,
        },
        "devices": [str(device) for device in jax.devices()],
        "num_processes": jax.process_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def _write_json(path: pathlib.Path, payload: dict[str, Any]) -> None:
    """Writes through a temporary file, so a killed run never leaves half a file."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    os.replace(temporary, path)


def _tensorboard_tag(name: str) -> str:
    """"train_loss" -> "train/loss", so TensorBoard groups train and val curves."""
    for prefix in ("train_", "val_"):
        if name.startswith(prefix):
            return prefix[:-1] + "/" + name[len(prefix):]
    return name


def summary_line(summary: dict[str, Any]) -> str:
    """The one line a run ends with, e.g. `digits resnet38 nelu seed 0: completed
    10 epochs in 183 s, test accuracy 95.2% (best val 96.3%), run dir runs/...`."""
    run = f"{summary['dataset']} {summary['model']} {summary['activation']} seed {summary['seed']}"
    status = summary["status"]
    if status == "completed":
        best = summary["best_val_accuracy"]
        outcome = (
            f"completed {summary['epochs_completed']} epochs in {summary['train_time_s']:.0f} s, "
            f"test accuracy {100 * summary['test_accuracy']:.1f}%"
            + (f" (best val {100 * best:.1f}%)" if best is not None else "")
        )
    elif status == "diverged":
        outcome = (
            f"diverged (non-finite loss) in epoch {summary['diverged_epoch']}, "
            f"step {summary['diverged_step']}, after {summary['train_time_s']:.0f} s"
        )
    else:
        outcome = (
            f"interrupted after {summary['epochs_completed']} epochs and "
            f"{summary['step_in_epoch']} steps (checkpoint saved); resume with: {summary['resume']}"
        )
    return f"{run}: {outcome}, run dir {summary['workdir']}"


class RunDirectory:
    """The files of one run in `workdir`; writes only when `writer` is True."""

    def __init__(self, workdir: str | os.PathLike, *, writer: bool):
        self.path = pathlib.Path(workdir)
        self.writer = writer
        self._tensorboard = None
        if writer:
            self.path.mkdir(parents=True, exist_ok=True)

    @property
    def checkpoints(self) -> pathlib.Path:
        return self.path / CHECKPOINTS

    def read_config(self) -> dict[str, Any] | None:
        """The config.json of an earlier run in this directory, if any."""
        file = self.path / CONFIG
        return json.loads(file.read_text()) if file.exists() else None

    def write_config(self, config: TrainConfig, **extra: Any) -> None:
        if self.writer:
            _write_json(self.path / CONFIG, {"config": config.to_dict(), **environment(), **extra})

    def metrics(self) -> list[dict[str, Any]]:
        file = self.path / METRICS
        if not file.exists():
            return []
        return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]

    def keep_metrics_through(self, epoch: int) -> None:
        """Drops the lines of epochs after `epoch`: those a resumed run redoes
        (they were written after the checkpoint it resumes from)."""
        if self.writer and (self.path / METRICS).exists():
            kept = [record for record in self.metrics() if record["epoch"] <= epoch]
            temporary = self.path / (METRICS + ".tmp")
            temporary.write_text("".join(json.dumps(record) + "\n" for record in kept))
            os.replace(temporary, self.path / METRICS)

    def log_epoch(self, record: dict[str, Any]) -> None:
        """Appends one epoch to metrics.jsonl and its numbers to TensorBoard."""
        if not self.writer:
            return
        with open(self.path / METRICS, "a") as file:
            file.write(json.dumps(record) + "\n")
        writer = self.tensorboard(record["epoch"])
        for name, value in record.items():
            if name not in ("epoch", "step") and isinstance(value, (int, float)):
                writer.add_scalar(_tensorboard_tag(name), value, record["epoch"])
        writer.flush()

    def tensorboard(self, first_epoch: int):
        """The TensorBoard writer, opened on first use. `purge_step` tells
        TensorBoard to drop the events an earlier, interrupted run logged from
        `first_epoch` on, so a resumed run leaves no duplicate points."""
        if self._tensorboard is None:
            from tensorboardX import SummaryWriter

            self._tensorboard = SummaryWriter(str(self.path / TENSORBOARD), purge_step=first_epoch)
        return self._tensorboard

    def read_summary(self) -> dict[str, Any] | None:
        file = self.path / SUMMARY
        return json.loads(file.read_text()) if file.exists() else None

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.writer:
            _write_json(self.path / SUMMARY, summary)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None
