"""The run directory: what a run writes for people and for the next run.

    <workdir>/config.json           every setting, the library versions, the devices
    <workdir>/metrics.jsonl         one JSON line per finished epoch
    <workdir>/tensorboard/          TensorBoard event files (tensorboardX)
    <workdir>/checkpoints/          Orbax checkpoints (see checkpoints.py)
    <workdir>/checkpoints_corrupt/  checkpoints that failed to restore, moved aside
    <workdir>/summary.json          the outcome (`Summary`); "running" while it runs
    <workdir>/run.lock              who is running it now (pid, host, start time)

This module alone knows that layout. `RunDirectory` writes it; `read_run` and
`find_runs` read it, for the training loop, the sweep and the report alike.

In a multi-process run only process 0 writes (`writer=False` elsewhere makes the
writing methods no-ops); every process may read, since the checkpoints already
need a directory all hosts share.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import pathlib
import shutil
import socket
import sys
from typing import Any

from winact_jax import extras
from winact_jax.train.outcomes import FINISHED, ConfigError, Status, WorkdirBusyError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
CORRUPT_CHECKPOINTS = "checkpoints_corrupt"
LOCK = "run.lock"

# What makes a directory a run directory (the lock alone does not).
RUN_ENTRIES = (CONFIG, METRICS, SUMMARY, TENSORBOARD, CHECKPOINTS, CORRUPT_CHECKPOINTS)

__all__ = [
    "FINISHED",
    "RunDirectory",
    "RunRecord",
    "Status",
    "Summary",
    "WorkdirLock",
    "check_workdir",
    "find_runs",
    "read_run",
    "run_status",
    "summary_line",
]


def environment() -> dict[str, Any]:
    """The versions and devices a run used, for config.json."""
    import flax
    import jax
    import optax
    import orbax.checkpoint as ocp

    import winact_jax

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


# --------------------------------------------------------------------------- summary


@dataclasses.dataclass
class Summary:
    """summary.json: how a run ended (or that it is running).

    Accuracies and losses are fractions and means over the split; None where the
    run did not get that far (a diverged run has no test accuracy).
    """

    status: Status
    activation: str | None = None
    dataset: str | None = None
    model: str | None = None
    seed: int | None = None
    workdir: str | None = None
    epochs: int | None = None
    epochs_completed: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    test_accuracy: float | None = None
    test_loss: float | None = None
    best_val_accuracy: float | None = None
    best_val_epoch: int | None = None
    final_val_accuracy: float | None = None
    train_time_s: float = 0.0
    # One timed pass over the test split, compiled beforehand (inference, not XLA).
    test_time_s: float | None = None
    num_classes: int | None = None
    num_devices: int | None = None
    num_processes: int | None = None
    diverged_epoch: int | None = None
    diverged_step: int | None = None
    diverged_reason: str | None = None
    stop_reason: str | None = None
    resume: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "status": self.status.value}

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> Summary:
        """A summary from its JSON; keys it does not know are dropped, and an
        unknown status raises `ValueError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in payload.items() if k in known}
        values["status"] = Status(payload.get("status"))
        return cls(**values)


def summary_line(summary: Summary) -> str:
    """The one line a run ends with, e.g. `digits resnet38 nelu seed 0: completed
    10 epochs in 183 s, test accuracy 95.2% (best val 96.3%), run dir runs/...`."""
    run = f"{summary.dataset} {summary.model} {summary.activation} seed {summary.seed}"
    if summary.status == Status.COMPLETED:
        best = summary.best_val_accuracy
        outcome = (
            f"completed {summary.epochs_completed} epochs in {summary.train_time_s:.0f} s, "
            f"test accuracy {100 * summary.test_accuracy:.1f}%"
            + (f" (best val {100 * best:.1f}%)" if best is not None else "")
        )
    elif summary.status == Status.DIVERGED:
        outcome = (
            f"diverged ({summary.diverged_reason}) in epoch {summary.diverged_epoch}, "
            f"step {summary.diverged_step}, after {summary.train_time_s:.0f} s"
        )
    elif summary.status == Status.INTERRUPTED:
        outcome = (
            f"interrupted after {summary.epochs_completed} epochs and "
            f"{summary.step_in_epoch} steps (checkpoint saved); resume with: {summary.resume}"
        )
    else:
        outcome = f"{summary.status.value}" + (f": {summary.error}" if summary.error else "")
    return f"{run}: {outcome}, run dir {summary.workdir}"


# --------------------------------------------------------------------------- reading


def _read_json(path: pathlib.Path) -> dict[str, Any] | None:
    """The JSON object in `path`; None if it is missing or unreadable (a file cut
    short by a crash reads as missing)."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def read_metrics(path: pathlib.Path) -> list[dict[str, Any]]:
    """metrics.jsonl's records, one per epoch in order: a line cut short by a crash
    is skipped, and of an epoch recorded twice (by a run older than the truncation
    on resume) the last record counts."""
    by_epoch: dict[int, dict[str, Any]] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("epoch"), int):
            by_epoch[record["epoch"]] = record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


@dataclasses.dataclass
class RunRecord:
    """What a run directory holds, read once: its settings, summary and metrics."""

    path: pathlib.Path
    config: dict[str, Any]  # the TrainConfig fields ({} if config.json is unreadable)
    summary: Summary | None
    metrics: list[dict[str, Any]]
    lock_holder: dict[str, Any] | None = None  # a live run's lock, if any

    @property
    def status(self) -> Status:
        """The summary's status, corrected by the lock: a run with no summary, or a
        "running" one whose process is gone (killed), is INTERRUPTED; one whose
        lock is held by a live process is RUNNING."""
        if self.lock_holder is not None:
            return Status.RUNNING
        if self.summary is None or self.summary.status == Status.RUNNING:
            return Status.INTERRUPTED
        return self.summary.status

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def dataset(self) -> str:
        return self.config.get("dataset", "?")

    @property
    def activation(self) -> str:
        return self.config.get("act", "?")

    @property
    def test_accuracy(self) -> float | None:
        """The test accuracy of a completed run (None otherwise, or if not finite)."""
        if self.status != Status.COMPLETED or self.summary.test_accuracy is None:
            return None
        value = float(self.summary.test_accuracy)
        return value if math.isfinite(value) else None


def is_run_directory(path: str | os.PathLike) -> bool:
    path = pathlib.Path(path)
    return any((path / entry).exists() for entry in RUN_ENTRIES)


def read_run(path: str | os.PathLike) -> RunRecord | None:
    """The run in directory `path`, or None if it holds no run."""
    path = pathlib.Path(path)
    if not path.is_dir() or not is_run_directory(path):
        return None
    config = _read_json(path / CONFIG) or {}
    summary_json = _read_json(path / SUMMARY)
    try:
        summary = Summary.from_json(summary_json) if summary_json is not None else None
    except (TypeError, ValueError):
        summary = None  # an unknown status or malformed fields: as if missing
    return RunRecord(
        path=path,
        config=config.get("config", {}),
        summary=summary,
        metrics=read_metrics(path / METRICS),
        lock_holder=WorkdirLock(path).live_holder(),
    )


def find_runs(root: str | os.PathLike) -> list[RunRecord]:
    """Every run below `root` (directories holding a config.json), sorted by path."""
    runs = (read_run(config.parent) for config in sorted(pathlib.Path(root).rglob(CONFIG)))
    return [run for run in runs if run is not None]


def run_status(path: str | os.PathLike) -> Status | None:
    """The status of the run in `path`, or None if there is none (a new run)."""
    run = read_run(path)
    return None if run is None else run.status


# --------------------------------------------------------------------------- lock


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class WorkdirLock:
    """`run.lock` in a workdir: one run at a time.

    The lock is a file created exclusively (`O_CREAT | O_EXCL`), holding the
    holder's pid, host and start time as JSON; `release` removes it. A lock left by
    a dead process on this host (a run killed with SIGKILL) is taken over, with a
    message; one held from another host cannot be checked and is respected.
    """

    def __init__(self, workdir: str | os.PathLike):
        self.path = pathlib.Path(workdir) / LOCK
        self.held = False

    def holder(self) -> dict[str, Any] | None:
        """The lock file's contents, or None if there is no lock."""
        if not self.path.exists():
            return None
        return _read_json(self.path) or {"pid": None, "host": "?", "started": "?"}

    def live_holder(self) -> dict[str, Any] | None:
        """The holder, unless there is none or it is a dead process on this host."""
        holder = self.holder()
        if holder is None or self._is_stale(holder):
            return None
        return holder

    @staticmethod
    def _is_stale(holder: dict[str, Any]) -> bool:
        pid = holder.get("pid")
        return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _process_alive(pid)

    @staticmethod
    def describe(holder: dict[str, Any]) -> str:
        return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"

    def busy_error(self, holder: dict[str, Any]) -> WorkdirBusyError:
        return WorkdirBusyError(
            f"{self.path.parent} is in use by another run ({self.describe(holder)}); "
            f"wait for it, or use another --workdir (if that process is gone, remove {self.path})"
        )

    def acquire(self, say=print) -> None:
        """Takes the lock, or raises `WorkdirBusyError` naming the holder."""
        payload = json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            }
        )
        for _ in range(3):  # a stale lock taken over, then a race lost: give up
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is None:  # released in between
                    continue
                if not self._is_stale(holder):
                    raise self.busy_error(holder) from None
                say(f"taking over the lock of {self.path.parent} from a run that is gone ({self.describe(holder)})")
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(descriptor, "w") as file:
                file.write(payload + "\n")
            self.held = True
            return
        raise self.busy_error(self.holder() or {})

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


# --------------------------------------------------------------------------- checks


def check_workdir(workdir: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Refuses a `workdir` a run must not use, in one line, before anything is written.

    Raises:
      ConfigError: `workdir` is a file, cannot be created or written, is a
        non-empty directory that holds no run, or holds a run that has no
        checkpoint but has results (config, metrics or a summary of a finished
        run) and `overwrite` is False.
      WorkdirBusyError: a live run holds its lock.
    """
    path = pathlib.Path(workdir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--workdir {workdir} is a file, not a directory; give a directory for the run")
    if not path.exists():
        parent = next((p for p in path.absolute().parents if p.exists()), None)
        if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"--workdir {workdir} cannot be created: {parent} is not a writable directory")
        return
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"--workdir {workdir} is not writable")
    lock = WorkdirLock(path)
    holder = lock.live_holder()
    if holder is not None:
        raise lock.busy_error(holder)
    contents = [entry.name for entry in path.iterdir() if entry.name != LOCK]
    if not contents:
        return
    if not is_run_directory(path):
        shown = ", ".join(sorted(contents)[:3]) + (", ..." if len(contents) > 3 else "")
        raise ConfigError(
            f"--workdir {workdir} is a non-empty directory that holds no run ({shown}); give a new or empty directory"
        )
    if not overwrite and not has_checkpoint(path) and holds_results(path):
        raise ConfigError(
            f"--workdir {workdir} holds a run with results but no checkpoint to resume from; "
            "add --overwrite to replace it, or use another --workdir"
        )


def has_checkpoint(path: pathlib.Path) -> bool:
    checkpoints = path / CHECKPOINTS
    return checkpoints.is_dir() and any(entry.name.isdigit() for entry in checkpoints.iterdir())


def holds_results(path: pathlib.Path) -> bool:
    """Whether starting over in `path` would lose something: epochs in
    metrics.jsonl, or the summary of a run that got somewhere."""
    if read_metrics(path / METRICS):
        return True
    summary = _read_json(path / SUMMARY)
    return summary is not None and summary.get("status") != Status.RUNNING.value


# --------------------------------------------------------------------------- writing


def _write_json(path: pathlib.Path, payload: dict[str, Any]) -> None:
    """Writes through a temporary file, so a killed run never leaves half a file."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    os.replace(temporary, path)


def _tensorboard_tag(name: str) -> str:
    """ "train_loss" -> "train/loss", so TensorBoard groups train and val curves."""
    for prefix in ("train_", "val_"):
        if name.startswith(prefix):
            return prefix[:-1] + "/" + name[len(prefix) :]
    return name


class RunDirectory:
    """The files of one run in `workdir`; writes only when `writer` is True.

    `open()` makes the directory and takes its lock (after `check_workdir`);
    `close()` releases it.
    """

    def __init__(self, workdir: str | os.PathLike, *, writer: bool):
        self.path = pathlib.Path(workdir)
        self.writer = writer
        self.lock = WorkdirLock(self.path)
        self._tensorboard = None

    def open(self, say=print) -> None:
        """Creates the directory and takes its lock (process 0 only).

        Raises `WorkdirBusyError` if another run took it since `check_workdir`,
        `ConfigError` if it cannot be created.
        """
        if not self.writer:
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"--workdir {self.path} cannot be created: {error.strerror or error}") from None
        self.lock.acquire(say)

    @property
    def checkpoints(self) -> pathlib.Path:
        return self.path / CHECKPOINTS

    @property
    def corrupt_checkpoints(self) -> pathlib.Path:
        return self.path / CORRUPT_CHECKPOINTS

    def read_config(self) -> dict[str, Any] | None:
        """The settings (TrainConfig fields) of an earlier run in this directory, if any."""
        payload = _read_json(self.path / CONFIG)
        return None if payload is None else payload.get("config")

    def write_config(self, config, **extra: Any) -> None:
        if self.writer:
            _write_json(self.path / CONFIG, {"config": config.to_dict(), **environment(), **extra})

    def clear(self) -> None:
        """Removes an earlier run's files (for --overwrite); nothing else."""
        if not self.writer:
            return
        for entry in RUN_ENTRIES:
            target = self.path / entry
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.path / METRICS)

    def keep_metrics_through(self, epoch: int) -> None:
        """Leaves one line per epoch up to `epoch`: drops those of later epochs
        (written after the checkpoint a resumed run starts from: it redoes them)
        and duplicates."""
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
        if writer is None:  # tensorboardX not installed: metrics.jsonl only
            return
        for name, value in record.items():
            if name not in ("epoch", "step") and isinstance(value, (int, float)):
                writer.add_scalar(_tensorboard_tag(name), value, record["epoch"])
        writer.flush()

    def tensorboard(self, first_epoch: int):
        """The TensorBoard writer, opened on first use. `purge_step` tells
        TensorBoard to drop the events an earlier, interrupted run logged from
        `first_epoch` on, so a resumed run leaves no duplicate points. None when
        tensorboardX (the "report" extra) is not installed."""
        if self._tensorboard is None:
            tensorboardx = extras.optional("tensorboardX", "report", "TensorBoard logging")
            if tensorboardx is None:
                return None
            self._tensorboard = tensorboardx.SummaryWriter(str(self.path / TENSORBOARD), purge_step=first_epoch)
        return self._tensorboard

    def read_summary(self) -> Summary | None:
        payload = _read_json(self.path / SUMMARY)
        return None if payload is None else Summary.from_json(payload)

    def write_summary(self, summary: Summary) -> None:
        if self.writer:
            _write_json(self.path / SUMMARY, summary.to_json())

    def move_aside(self, checkpoint: pathlib.Path) -> pathlib.Path:
        """Moves a checkpoint directory into checkpoints_corrupt/ (never deletes it);
        returns where it went."""
        target_dir = self.corrupt_checkpoints
        target_dir.mkdir(exist_ok=True)
        target = target_dir / checkpoint.name
        suffix = 1
        while target.exists():
            target = target_dir / f"{checkpoint.name}.{suffix}"
            suffix += 1
        os.replace(checkpoint, target)
        return target

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None
        self.lock.release()
