"""The training loop: `run(config)` trains, evaluates and writes a run directory.

    from winact_jax.train import TrainConfig, run
    summary = run(TrainConfig(act="nelu"))      # digits, ResNet-38, 10 epochs
    summary["status"], summary["test_accuracy"]

A run is a sequence of epochs over one jitted, data-parallel step (`steps.py`).
After each epoch it evaluates on the validation split, appends a line to
metrics.jsonl and saves a checkpoint; at the end it evaluates on the test split
and writes summary.json. Its random state is a function of (seed, epoch, step)
alone, so a run stopped anywhere (a signal, `max_steps`) and resumed from its
checkpoint ends exactly where the uninterrupted run would have. A non-finite loss
stops the run with status "diverged": the seed studies dropped such runs
silently, we count them.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import numpy as np
import tqdm

import winact_jax
import winact_jax.data
from winact_jax.data import epoch_batches, eval_batches, put_on_device
from winact_jax.data.serving import DATA_AXIS
from winact_jax.models.activation import resolve
from winact_jax.train import steps
from winact_jax.train.checkpoints import Checkpoints
from winact_jax.train.config import TrainConfig
from winact_jax.train.interrupts import StopRequests
from winact_jax.train.optim import make_optimizer, make_schedule
from winact_jax.train.run_dir import RunDirectory, summary_line
from winact_jax.train.state import ModelDef, TrainState, create_model, create_train_state, replicate, to_host

COMPLETED, DIVERGED, INTERRUPTED = "completed", "diverged", "interrupted"


class ConfigError(ValueError):
    """A setting this run cannot use; the message is one line meant for the user."""


@dataclasses.dataclass
class EpochSums:
    """Running sums of one epoch's training steps (host floats, JSON-able)."""

    loss: float = 0.0
    correct: float = 0.0
    examples: int = 0
    seconds: float = 0.0

    def add(self, loss: float, accuracy: float, batch_size: int) -> None:
        self.loss += loss * batch_size
        self.correct += accuracy * batch_size
        self.examples += batch_size


@dataclasses.dataclass
class Position:
    """Where a run stands; a checkpoint's `meta`.

    `epoch` epochs are complete and `step_in_epoch` steps of the next one are done,
    with `partial` their running sums (so a resumed epoch reports the same numbers
    as an uninterrupted one).
    """

    epoch: int = 0
    step_in_epoch: int = 0
    seed: int = 0
    best_val_accuracy: float | None = None
    best_val_epoch: int | None = None
    val_accuracy: float | None = None
    train_time_s: float = 0.0
    partial: EpochSums = dataclasses.field(default_factory=EpochSums)

    def to_meta(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "Position":
        return cls(**{**meta, "partial": EpochSums(**meta["partial"])})


@dataclasses.dataclass
class RunResult:
    """What `train_and_evaluate` returns: the summary and the final model."""

    summary: dict[str, Any]
    state: TrainState
    model_def: ModelDef


@dataclasses.dataclass
class _Setup:
    """Everything a run builds once from its config, before training."""

    config: TrainConfig
    dataset: winact_jax.data.Dataset
    mesh: jax.sharding.Mesh
    train: winact_jax.data.DeviceSplit
    validation: winact_jax.data.DeviceSplit
    test: winact_jax.data.DeviceSplit
    steps_per_epoch: int
    model_def: ModelDef
    initial_state: TrainState
    schedule: Any
    train_step: Any
    evaluate: Any
    stop_flags: dict[bool, jax.Array]
    eval_tables: dict[str, tuple[jax.Array, jax.Array]]


def _setup(config: TrainConfig) -> _Setup:
    """Loads the data, builds the mesh, the model, the optimizer and the steps.

    Raises:
      ConfigError: an unknown activation, model or dataset, a bad option, or a
        batch the devices cannot share.
      DataUnavailableError: the dataset is not on disk and cannot be downloaded.
    """
    try:
        resolve(config.act, config.act_params)  # unknown names and bad parameters, before any work
        dataset = winact_jax.data.load(config.dataset, data_dir=config.data_dir)
        devices = jax.devices()
        if config.num_devices is not None:
            if config.num_devices > len(devices):
                raise ValueError(f"num_devices={config.num_devices}, but there are only {len(devices)} devices")
            devices = devices[: config.num_devices]
        mesh = steps.make_mesh(devices)
        # The evaluation tables, once; `eval_batches` also checks that the batch
        # divides evenly over the devices.
        tables = {
            name: eval_batches(len(getattr(dataset, name)), config.batch_size, mesh=mesh)
            for name in ("validation", "test")
        }
        train_split = dataset.train
        if config.limit_train is not None:
            train_split = train_split.take(np.arange(min(config.limit_train, len(train_split))))
        steps_per_epoch = len(train_split) // config.batch_size
        if steps_per_epoch == 0:
            raise ValueError(
                f"batch size {config.batch_size} is larger than the {len(train_split)} training examples"
            )
        schedule = make_schedule(config, steps_per_epoch * config.epochs)
        tx = make_optimizer(config, steps_per_epoch * config.epochs)
        model = create_model(config, dataset.num_classes, dataset.image_shape[:2])
    except (ValueError, TypeError) as error:
        raise ConfigError(str(error)) from error

    model_def, state = create_train_state(model, tx)
    return _Setup(
        config=config,
        dataset=dataset,
        mesh=mesh,
        train=put_on_device(train_split, mesh),
        validation=put_on_device(dataset.validation, mesh),
        test=put_on_device(dataset.test, mesh),
        steps_per_epoch=steps_per_epoch,
        model_def=model_def,
        initial_state=replicate(state, mesh),
        schedule=schedule,
        train_step=steps.make_train_step(
            model_def, tx, dataset, mesh, seed=config.seed, augment_images=config.augment
        ),
        evaluate=steps.make_evaluate(model_def, dataset, mesh),
        stop_flags={stop: steps.stop_flags_for(mesh, stop) for stop in (False, True)},
        eval_tables=tables,
    )


def _evaluate(setup: _Setup, state: TrainState, split_name: str) -> tuple[float, float]:
    """(mean loss, accuracy) over a whole split: "validation" or "test"."""
    split = getattr(setup, split_name)
    sums = to_host(setup.evaluate(state, split, *setup.eval_tables[split_name]))
    return float(sums.loss / sums.count), float(sums.correct / sums.count)


@dataclasses.dataclass
class _EpochOutcome:
    state: TrainState
    steps_done: int  # steps of this epoch done, counting those before a resume
    global_step: int
    stop: bool = False  # some process asked to stop, or max_steps was reached
    diverged_step: int | None = None


def _train_epoch(
    setup: _Setup,
    state: TrainState,
    epoch: int,
    position: Position,
    global_step: int,
    stop_requests: StopRequests,
    is_writer: bool,
) -> _EpochOutcome:
    """Runs epoch `epoch` (0-based) from `position.step_in_epoch`, adding to
    `position.partial`. Stops early at a non-finite loss, a stop request or
    `max_steps`.

    The loss of step k is read after step k+1 is dispatched, so the host never
    leaves the device idle; every process reads the same replicated metrics, so
    all of them decide to stop after the same step.
    """
    config = setup.config
    sums = position.partial
    batches = epoch_batches(config.seed, epoch, setup.train.num_examples, config.batch_size, mesh=setup.mesh)
    bar = tqdm.tqdm(
        total=setup.steps_per_epoch,
        initial=position.step_in_epoch,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        unit="step",
        leave=False,
        disable=not (config.progress and is_writer),
    )
    outcome = _EpochOutcome(state, position.step_in_epoch, global_step)

    def consume(metrics: steps.StepMetrics, step_number: int) -> None:
        loss, accuracy, stop = to_host(metrics)
        if not np.isfinite(loss):
            outcome.diverged_step = step_number
            return
        sums.add(float(loss), float(accuracy), config.batch_size)
        outcome.stop |= bool(stop)
        bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.3f}", refresh=False)
        bar.update(1)

    started = time.perf_counter()
    pending = None
    for step_in_epoch in range(position.step_in_epoch, setup.steps_per_epoch):
        flags = setup.stop_flags[stop_requests.requested]
        outcome.state, metrics = setup.train_step(
            outcome.state, setup.train, batches, epoch, step_in_epoch, flags
        )
        outcome.steps_done = step_in_epoch + 1
        outcome.global_step += 1
        if pending is not None:
            consume(*pending)
        pending = (metrics, outcome.global_step)
        if config.max_steps is not None and outcome.global_step >= config.max_steps:
            outcome.stop = True
        if outcome.stop or outcome.diverged_step is not None:
            break
    if pending is not None and outcome.diverged_step is None:
        consume(*pending)
    bar.close()
    sums.seconds += time.perf_counter() - started
    return outcome


def train_and_evaluate(config: TrainConfig, *, resume_command: str | None = None) -> RunResult:
    """Trains `config`'s model, resuming from the workdir's latest checkpoint if
    there is one, and returns the summary (also written to summary.json) with the
    final train state.

    Args:
      config: the run.
      resume_command: how to resume, for an interrupted run's summary (the CLI
        passes its own command line).

    Raises:
      ConfigError: a setting that cannot run, found before anything is written.
      DataUnavailableError: the dataset must be downloaded or placed first.
    """
    setup = _setup(config)
    is_writer = jax.process_index() == 0
    say = tqdm.tqdm.write if is_writer else (lambda *_: None)
    run_dir = RunDirectory(config.workdir, writer=is_writer)
    checkpoints = Checkpoints(run_dir.checkpoints, keep=config.keep_checkpoints)
    try:
        state, position = setup.initial_state, Position(seed=config.seed)
        if checkpoints.latest_step() is not None:
            earlier = (run_dir.read_config() or {}).get("config", {})
            differences = config.differences(earlier) if earlier else {}
            if differences:
                listed = "; ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in differences.items())
                raise ConfigError(
                    f"{config.workdir} holds a run with other settings ({listed}); "
                    "use another --workdir or the same settings"
                )
            state, meta = checkpoints.restore_latest(setup.initial_state)
            position = Position.from_meta(meta)
            say(
                f"resuming {config.workdir} from its checkpoint after epoch {position.epoch}"
                + (f", step {position.step_in_epoch}" if position.step_in_epoch else "")
            )
        run_dir.write_config(
            config, num_devices=setup.mesh.size, mesh={DATA_AXIS: setup.mesh.size},
            steps_per_epoch=setup.steps_per_epoch, command=resume_command,
        )
        run_dir.keep_metrics_through(position.epoch)
        with StopRequests() as stop_requests:
            state, summary = _train(setup, state, position, checkpoints, run_dir, stop_requests, say)
        if summary["status"] == INTERRUPTED:
            summary["stop_reason"] = stop_requests.name or ("max_steps" if config.max_steps else "signal")
            summary["resume"] = resume_command or "run the same config again (same workdir)"
        run_dir.write_summary(summary)
        say(summary_line(summary))
        return RunResult(summary, state, setup.model_def)
    finally:
        checkpoints.close()
        run_dir.close()


def _train(setup, state, position, checkpoints, run_dir, stop_requests, say):
    """The epochs from `position` on; returns the final state and the summary."""
    config = setup.config
    global_step = int(to_host(state.step))
    status, diverged = COMPLETED, {}
    if position.epoch >= config.epochs:
        say(f"{config.workdir} already completed {position.epoch} epochs; evaluating it again")
    for epoch in range(position.epoch, config.epochs):
        if config.max_steps is not None and global_step >= config.max_steps:
            status = INTERRUPTED
            break
        outcome = _train_epoch(setup, state, epoch, position, global_step, stop_requests, run_dir.writer)
        state, global_step = outcome.state, outcome.global_step
        if outcome.diverged_step is not None:
            status = DIVERGED
            diverged = {"diverged_epoch": epoch + 1, "diverged_step": outcome.diverged_step}
            break
        if outcome.steps_done < setup.steps_per_epoch:  # stopped mid-epoch
            position.step_in_epoch = outcome.steps_done
            checkpoints.save(global_step, state, position.to_meta())
            status = INTERRUPTED
            break
        _end_epoch(setup, state, epoch, position, global_step, checkpoints, run_dir, say)
        if outcome.stop and epoch + 1 < config.epochs:
            status = INTERRUPTED
            break

    summary = {
        "status": status,
        "test_accuracy": None,
        "test_loss": None,
        "best_val_accuracy": position.best_val_accuracy,
        "best_val_epoch": position.best_val_epoch,
        "final_val_accuracy": position.val_accuracy,
        "epochs_completed": position.epoch,
        "epochs": config.epochs,
        "step_in_epoch": position.step_in_epoch,
        "global_step": global_step,
        # Finished epochs, plus the steps done of an unfinished one.
        "train_time_s": round(position.train_time_s + position.partial.seconds, 3),
        "num_devices": setup.mesh.size,
        "num_processes": jax.process_count(),
        "activation": winact_jax.canonical_name(config.act),
        "dataset": config.dataset,
        "model": config.model,
        "seed": config.seed,
        "workdir": str(config.workdir),
        **diverged,
    }
    if status == COMPLETED:
        summary["test_loss"], summary["test_accuracy"] = _evaluate(setup, state, "test")
    return state, summary


def _end_epoch(setup, state, epoch, position, global_step, checkpoints, run_dir, say):
    """Validation, metrics.jsonl and TensorBoard, then the epoch's checkpoint."""
    config = setup.config
    sums = position.partial
    record = {
        "epoch": epoch + 1,
        "step": global_step,
        "train_loss": sums.loss / sums.examples,
        "train_accuracy": sums.correct / sums.examples,
        "val_loss": None,
        "val_accuracy": None,
        "learning_rate": float(setup.schedule(global_step - 1)),
        "epoch_seconds": None,
        "images_per_second": sums.examples / sums.seconds,
    }
    started = time.perf_counter()
    if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
        record["val_loss"], record["val_accuracy"] = _evaluate(setup, state, "validation")
        position.val_accuracy = record["val_accuracy"]
        if position.best_val_accuracy is None or record["val_accuracy"] > position.best_val_accuracy:
            position.best_val_accuracy, position.best_val_epoch = record["val_accuracy"], epoch + 1
    record["epoch_seconds"] = sums.seconds + time.perf_counter() - started
    say(
        f"epoch {epoch + 1}/{config.epochs}: train loss {record['train_loss']:.4f} "
        f"acc {100 * record['train_accuracy']:.1f}%"
        + (
            f", val loss {record['val_loss']:.4f} acc {100 * record['val_accuracy']:.1f}%"
            if record["val_accuracy"] is not None else ""
        )
        + f", {record['epoch_seconds']:.1f} s, {record['images_per_second']:.0f} img/s"
    )
    position.epoch, position.step_in_epoch = epoch + 1, 0
    position.train_time_s += record["epoch_seconds"]
    position.partial = EpochSums()
    # The line before the checkpoint: a run killed between the two redoes the
    # epoch, and its resumption drops the line (keep_metrics_through).
    run_dir.log_epoch(record)
    checkpoints.save(global_step, state, position.to_meta())


def run(config: TrainConfig, *, resume_command: str | None = None) -> dict[str, Any]:
    """Trains and evaluates `config`; returns the summary (see `train_and_evaluate`)."""
    return train_and_evaluate(config, resume_command=resume_command).summary
