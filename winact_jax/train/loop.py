"""The training loop: `run(config)` trains, evaluates and writes a run directory.

    from winact_jax.train import TrainConfig, run
    summary = run(TrainConfig(act="nelu"))      # digits, ResNet-38, 10 epochs
    summary.status, summary.test_accuracy

A run is a sequence of epochs over one jitted, data-parallel step (`steps.py`).
After each epoch it evaluates on the validation split, appends a line to
metrics.jsonl and saves a checkpoint; at the end it evaluates on the test split
and writes summary.json. Its random state is a function of (seed, epoch, step)
alone, so a run stopped anywhere (a signal, `max_steps`) and resumed from its
checkpoint ends exactly where the uninterrupted run would have.

A run whose training loss is not finite, or exceeds a bound (`max_loss`, or
`divergence_factor` times the first epoch's mean loss), stops with status
"diverged": the seed studies dropped such runs silently, we count them.

Before anything is written the run checks its workdir (`run_dir.check_workdir`)
and takes the workdir's lock; a checkpoint that does not restore is moved aside
and the next older one used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import tqdm

import winact_jax
import winact_jax.data
from winact_jax.data import epoch_batches, eval_batches, gather_batch, put_on_device
from winact_jax.models.activation import resolve
from winact_jax.models.statistics import flatten_statistics, make_statistics_step
from winact_jax.sharding import DATA_AXIS, make_mesh, replicate, replicated, to_host
from winact_jax.train import steps
from winact_jax.train.checkpoints import Checkpoints
from winact_jax.train.config import TrainConfig, format_number
from winact_jax.train.interrupts import StopRequests
from winact_jax.train.optim import make_optimizer, make_schedule
from winact_jax.train.outcomes import ConfigError, RunError, Status
from winact_jax.train.run_dir import RunDirectory, Summary, check_workdir, has_checkpoint, summary_line
from winact_jax.train.state import ModelDef, TrainState, create_model, create_train_state


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
    as an uninterrupted one). `first_epoch_loss` is the divergence bound's
    reference.
    """

    epoch: int = 0
    step_in_epoch: int = 0
    seed: int = 0
    best_val_accuracy: float | None = None
    best_val_epoch: int | None = None
    val_accuracy: float | None = None
    train_time_s: float = 0.0
    first_epoch_loss: float | None = None
    partial: EpochSums = dataclasses.field(default_factory=EpochSums)

    def to_meta(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Position:
        """Raises `TypeError`/`KeyError` for a meta that is not a position."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in meta.items() if k in known}
        return cls(**{**values, "partial": EpochSums(**meta["partial"])})


def divergence_reason(
    loss: float, *, first_epoch_loss: float | None, divergence_factor: float, max_loss: float
) -> str | None:
    """Why a training loss counts as diverged, or None if it does not.

    >>> divergence_reason(float("nan"), first_epoch_loss=None, divergence_factor=100, max_loss=1e6)
    'non-finite loss'
    >>> divergence_reason(2e6, first_epoch_loss=None, divergence_factor=100, max_loss=1e6)
    'loss 2e6 above max_loss 1e6'
    >>> divergence_reason(250.0, first_epoch_loss=2.0, divergence_factor=100, max_loss=1e6)
    "loss 250 above divergence_factor 100 x the first epoch's mean loss 2"
    >>> divergence_reason(150.0, first_epoch_loss=2.0, divergence_factor=100, max_loss=1e6) is None
    True
    """
    if not math.isfinite(loss):
        return "non-finite loss"
    if loss > max_loss:
        return f"loss {_three_digits(loss)} above max_loss {format_number(max_loss)}"
    if first_epoch_loss is not None and loss > divergence_factor * first_epoch_loss:
        return (
            f"loss {_three_digits(loss)} above divergence_factor {format_number(divergence_factor)} "
            f"x the first epoch's mean loss {_three_digits(first_epoch_loss)}"
        )
    return None


def _three_digits(value: float) -> str:
    return format_number(float(f"{value:.3g}"))


@dataclasses.dataclass
class RunResult:
    """What `train_and_evaluate` returns: the summary and the final model."""

    summary: Summary
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
    activation_statistics: Any  # (state arrays, split, index table) -> per-layer statistics


@contextlib.contextmanager
def _user_input():
    """Turns the `ValueError`/`TypeError` a check of the user's settings raises
    into a `ConfigError`; wraps only calls that validate settings."""
    try:
        yield
    except (ValueError, TypeError) as error:
        raise ConfigError(str(error)) from error


def _training_split(config: TrainConfig, dataset: winact_jax.data.Dataset) -> winact_jax.data.Split:
    """The training split as this run sees it: with label noise, then limited."""
    train_split = dataset.train
    if config.label_noise:
        try:
            from winact_jax.data.transforms import with_label_noise
        except ImportError:
            raise ConfigError(
                "label_noise needs winact_jax.data.transforms.with_label_noise, which this winact_jax lacks"
            ) from None
        train_split = with_label_noise(train_split, config.label_noise, dataset.num_classes, config.seed)
    if config.limit_train is not None:
        train_split = train_split.take(np.arange(min(config.limit_train, len(train_split))))
    return train_split


def _setup(config: TrainConfig) -> _Setup:
    """Loads the data, builds the mesh, the model, the optimizer and the steps.

    Raises:
      ConfigError: an unknown activation, model or dataset, a bad option, or a
        batch the devices cannot share.
      DataUnavailableError: the dataset is not on disk and cannot be downloaded.
    """
    with _user_input():
        resolve(config.act, config.act_params)  # bad parameters, before any work
        dataset = winact_jax.data.load(config.dataset, data_dir=config.data_dir)
    devices = jax.devices()
    if config.num_devices is not None:
        if config.num_devices > len(devices):
            raise ConfigError(f"num_devices={config.num_devices}, but there are only {len(devices)} devices")
        devices = devices[: config.num_devices]
    mesh = make_mesh(devices)
    with _user_input():
        # The evaluation tables, once; `eval_batches` also checks that the batch
        # divides evenly over the devices.
        tables = {
            name: eval_batches(len(getattr(dataset, name)), config.batch_size, mesh=mesh)
            for name in ("validation", "test")
        }
    train_split = _training_split(config, dataset)
    steps_per_epoch = len(train_split) // config.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"batch size {config.batch_size} is larger than the {len(train_split)} training examples")
    schedule = make_schedule(config, steps_per_epoch * config.epochs, steps_per_epoch)
    tx = make_optimizer(config, schedule)
    with _user_input():
        model = create_model(config, dataset.num_classes, dataset.image_shape[:2])

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
        train_step=steps.make_train_step(model_def, tx, dataset, mesh, seed=config.seed, augment_images=config.augment),
        evaluate=steps.make_evaluate(model_def, dataset, mesh),
        stop_flags={stop: steps.stop_flags_for(mesh, stop) for stop in (False, True)},
        eval_tables=tables,
        activation_statistics=make_statistics_step(
            model_def.eval,
            # The first batch of the index table, gathered and normalized in the program.
            lambda split, table: dataset.normalize(gather_batch(split, table[0], mesh)[0]),
            out_shardings=replicated(mesh),
        ),
    )


@dataclasses.dataclass
class _Run:
    """One run in progress: what it built, where it writes, where it stands."""

    setup: _Setup
    run_dir: RunDirectory
    checkpoints: Checkpoints
    stop_requests: StopRequests
    say: Callable[[str], None]
    state: TrainState
    position: Position
    global_step: int = 0

    @property
    def config(self) -> TrainConfig:
        return self.setup.config

    def save_checkpoint(self) -> None:
        self.checkpoints.save(self.global_step, self.state, self.position.to_meta())


def _evaluate(setup: _Setup, state: TrainState, split_name: str) -> tuple[float, float]:
    """(mean loss, accuracy) over a whole split: "validation" or "test"."""
    split = getattr(setup, split_name)
    sums = to_host(setup.evaluate(state, split, *setup.eval_tables[split_name]))
    return float(sums.loss / sums.count), float(sums.correct / sums.count)


def _timed_test(setup: _Setup, state: TrainState) -> dict[str, float]:
    """test_loss, test_accuracy and test_time_s: the seconds of one pass over the
    test split, compiled ahead of time so that the time is inference, not XLA."""
    arguments = (state, setup.test, *setup.eval_tables["test"])
    compiled = setup.evaluate.lower(*arguments).compile()
    started = time.perf_counter()
    sums = to_host(compiled(*arguments))
    seconds = time.perf_counter() - started
    return {
        "test_loss": float(sums.loss / sums.count),
        "test_accuracy": float(sums.correct / sums.count),
        "test_time_s": round(seconds, 4),
    }


@dataclasses.dataclass
class _EpochOutcome:
    steps_done: int  # steps of this epoch done, counting those before a resume
    stop: bool = False  # some process asked to stop, or max_steps was reached
    diverged_step: int | None = None
    diverged_reason: str | None = None


def _train_epoch(run: _Run, epoch: int) -> _EpochOutcome:
    """Runs epoch `epoch` (0-based) from `run.position.step_in_epoch`, adding to
    `run.position.partial` and advancing `run.state`. Stops early at a diverged
    loss, a stop request or `max_steps`.

    The loss of step k is read after step k+1 is dispatched, so the host never
    leaves the device idle; every process reads the same replicated metrics, so
    all of them decide to stop after the same step.
    """
    config, setup, position = run.config, run.setup, run.position
    sums = position.partial
    batches = epoch_batches(config.seed, epoch, setup.train.num_examples, config.batch_size, mesh=setup.mesh)
    bar = tqdm.tqdm(
        total=setup.steps_per_epoch,
        initial=position.step_in_epoch,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        unit="step",
        leave=False,
        disable=not (config.progress and run.run_dir.writer),
    )
    outcome = _EpochOutcome(position.step_in_epoch)

    def consume(metrics: steps.StepMetrics, step_number: int) -> None:
        loss, accuracy, stop = to_host(metrics)
        reason = divergence_reason(
            float(loss),
            first_epoch_loss=position.first_epoch_loss,
            divergence_factor=config.divergence_factor,
            max_loss=config.max_loss,
        )
        if reason is not None:
            outcome.diverged_step, outcome.diverged_reason = step_number, reason
            return
        sums.add(float(loss), float(accuracy), config.batch_size)
        outcome.stop |= bool(stop)
        bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.3f}", refresh=False)
        bar.update(1)

    started = time.perf_counter()
    pending = None
    for step_in_epoch in range(position.step_in_epoch, setup.steps_per_epoch):
        flags = setup.stop_flags[run.stop_requests.requested]
        run.state, metrics = setup.train_step(run.state, setup.train, batches, epoch, step_in_epoch, flags)
        outcome.steps_done = step_in_epoch + 1
        run.global_step += 1
        if pending is not None:
            consume(*pending)
        pending = (metrics, run.global_step)
        if config.max_steps is not None and run.global_step >= config.max_steps:
            outcome.stop = True
        if outcome.stop or outcome.diverged_step is not None:
            break
    if pending is not None and outcome.diverged_step is None:
        consume(*pending)
    bar.close()
    sums.seconds += time.perf_counter() - started
    return outcome


def _summary(run: _Run, status: Status, **fields: Any) -> Summary:
    config, position = run.config, run.position
    return Summary(
        status=status,
        activation=winact_jax.canonical_name(config.act),
        dataset=config.dataset,
        model=config.model,
        seed=config.seed,
        workdir=str(config.workdir),
        epochs=config.epochs,
        epochs_completed=position.epoch,
        step_in_epoch=position.step_in_epoch,
        global_step=run.global_step,
        best_val_accuracy=position.best_val_accuracy,
        best_val_epoch=position.best_val_epoch,
        final_val_accuracy=position.val_accuracy,
        # Finished epochs, plus the steps done of an unfinished one.
        train_time_s=round(position.train_time_s + position.partial.seconds, 3),
        num_devices=run.setup.mesh.size,
        num_processes=jax.process_count(),
        num_classes=run.setup.dataset.num_classes,
        **fields,
    )


def _train(run: _Run) -> Summary:
    """The epochs from `run.position` on; returns the summary."""
    config, position = run.config, run.position
    status, outcome_fields = Status.COMPLETED, {}
    if position.epoch >= config.epochs:
        run.say(f"{config.workdir} already completed {position.epoch} epochs; evaluating it again")
    for epoch in range(position.epoch, config.epochs):
        if config.max_steps is not None and run.global_step >= config.max_steps:
            status = Status.INTERRUPTED
            break
        outcome = _train_epoch(run, epoch)
        if outcome.diverged_step is not None:
            status = Status.DIVERGED
            outcome_fields = {
                "diverged_epoch": epoch + 1,
                "diverged_step": outcome.diverged_step,
                "diverged_reason": outcome.diverged_reason,
            }
            break
        if outcome.steps_done < run.setup.steps_per_epoch:  # stopped mid-epoch
            position.step_in_epoch = outcome.steps_done
            run.save_checkpoint()
            status = Status.INTERRUPTED
            break
        _end_epoch(run, epoch)
        if outcome.stop and epoch + 1 < config.epochs:
            status = Status.INTERRUPTED
            break
    if status == Status.COMPLETED:
        outcome_fields.update(_timed_test(run.setup, run.state))
    return _summary(run, status, **outcome_fields)


def _end_epoch(run: _Run, epoch: int) -> None:
    """Validation, metrics.jsonl and TensorBoard, then the epoch's checkpoint."""
    config, setup, position = run.config, run.setup, run.position
    sums = position.partial
    record = {
        "epoch": epoch + 1,
        "step": run.global_step,
        "train_loss": sums.loss / sums.examples,
        "train_accuracy": sums.correct / sums.examples,
        "val_loss": None,
        "val_accuracy": None,
        "learning_rate": float(setup.schedule(run.global_step - 1)),
        "epoch_seconds": None,
        "images_per_second": sums.examples / sums.seconds,
    }
    started = time.perf_counter()
    if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
        record["val_loss"], record["val_accuracy"] = _evaluate(setup, run.state, "validation")
        position.val_accuracy = record["val_accuracy"]
        if position.best_val_accuracy is None or record["val_accuracy"] > position.best_val_accuracy:
            position.best_val_accuracy, position.best_val_epoch = record["val_accuracy"], epoch + 1
    record["epoch_seconds"] = sums.seconds + time.perf_counter() - started
    # Zero outputs and dead channels per activation layer (and learned influences),
    # on one fixed validation batch.
    record.update(
        flatten_statistics(
            *setup.activation_statistics(
                (run.state.params, run.state.model_state), setup.validation, setup.eval_tables["validation"][0]
            )
        )
    )
    run.say(
        f"epoch {epoch + 1}/{config.epochs}: train loss {record['train_loss']:.4f} "
        f"acc {100 * record['train_accuracy']:.1f}%"
        + (
            f", val loss {record['val_loss']:.4f} acc {100 * record['val_accuracy']:.1f}%"
            if record["val_accuracy"] is not None
            else ""
        )
        + f", {record['epoch_seconds']:.1f} s, {record['images_per_second']:.0f} img/s"
    )
    if position.first_epoch_loss is None:
        position.first_epoch_loss = record["train_loss"]
    position.epoch, position.step_in_epoch = epoch + 1, 0
    position.train_time_s += record["epoch_seconds"]
    position.partial = EpochSums()
    # The line before the checkpoint: a run killed between the two redoes the
    # epoch, and its resumption drops the line (keep_metrics_through).
    run.run_dir.log_epoch(record)
    run.save_checkpoint()


# --------------------------------------------------------------------------- processes


def _everywhere(is_writer: bool, action: Callable[[], None]) -> None:
    """Runs `action` on process 0 only, and makes every process raise the
    `RunError` it raised (so no process waits for the others in a collective)."""
    error = None
    if is_writer:
        try:
            action()
        except RunError as raised:
            error = raised
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        code = int(multihost_utils.broadcast_one_to_all(np.int32(error.exit_code if error else 0)))
        if error is None and code:
            error = RunError(f"process 0 stopped the run (exit code {code}); see its output")
            error.exit_code = code
    if error is not None:
        raise error


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


# --------------------------------------------------------------------------- runs


def _check_resumable(config: TrainConfig, run_dir: RunDirectory, overwrite: bool) -> None:
    """Refuses to resume a run of other settings (before anything is written)."""
    if overwrite or not has_checkpoint(run_dir.path):
        return
    earlier = run_dir.read_config()
    differences = config.differences(earlier) if earlier else {}
    if differences:
        listed = "; ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in differences.items())
        raise ConfigError(
            f"{config.workdir} holds a run with other settings ({listed}); "
            "use another --workdir, the same settings, or --overwrite"
        )


def _restore(run: _Run) -> None:
    """Resumes from the newest checkpoint that restores; those that do not are
    reported in one line each and moved aside."""
    run_dir = run.run_dir

    def moved_aside(step, path, error):
        # The first sentence: TensorStore appends pages of details after it.
        cause = (str(error).strip().splitlines() or [""])[0].split(". See ")[0][:160]
        where = run_dir.move_aside(path) if run_dir.writer else path
        _sync(f"checkpoint {step} moved aside")
        run.say(
            f"checkpoint {step} of {run.config.workdir} does not restore "
            f"({type(error).__name__}: {cause}); moved to {where}, trying an older one"
        )

    step, run.state, run.position = run.checkpoints.restore_newest(
        run.setup.initial_state,
        accept=lambda state, meta: Position.from_meta(meta),
        on_failure=moved_aside,
    )
    run.global_step = int(to_host(run.state.step))
    run.say(
        f"resuming {run.config.workdir} from its checkpoint after epoch {run.position.epoch}"
        + (f", step {run.position.step_in_epoch}" if run.position.step_in_epoch else "")
    )


def train_and_evaluate(config: TrainConfig, *, resume_command: str | None = None, overwrite: bool = False) -> RunResult:
    """Trains `config`'s model, resuming from the workdir's newest checkpoint that
    restores, and returns the summary (also written to summary.json) with the
    final train state.

    Args:
      config: the run.
      resume_command: how to resume, for an interrupted run's summary (the CLI
        passes its own command line).
      overwrite: start over in a workdir that holds a run, removing its files
        (a directory that holds something else is still refused).

    Raises:
      ConfigError: a setting that cannot run, or a workdir that must not be used
        (a file, unwritable, not a run, a run of other settings, a run with
        results and no checkpoint), found before anything is written.
      WorkdirBusyError: another live run holds the workdir.
      CannotResumeError: the workdir has checkpoints and none restores.
      DataUnavailableError: the dataset must be downloaded or placed first.
    """
    is_writer = jax.process_index() == 0
    say = tqdm.tqdm.write if is_writer else (lambda *_: None)
    run_dir = RunDirectory(config.workdir, writer=is_writer)

    def check():
        check_workdir(config.workdir, overwrite=overwrite)
        _check_resumable(config, run_dir, overwrite)

    # Cheap checks first, so a busy or wrong workdir is refused at once; on
    # process 0 only, which alone takes the lock (another process could see it
    # taken, by process 0, and stop).
    _everywhere(is_writer, check)
    setup = _setup(config)
    _everywhere(is_writer, lambda: run_dir.open(say))
    checkpoints = None
    try:
        if overwrite:
            run_dir.clear()
            _sync("cleared")
        # After the lock: Orbax's manager tidies the directory when it opens.
        checkpoints = Checkpoints(run_dir.checkpoints, keep=config.keep_checkpoints)
        run = _Run(setup, run_dir, checkpoints, StopRequests(), say, setup.initial_state, Position(seed=config.seed))
        if checkpoints.latest_step() is not None:
            _restore(run)
        run_dir.write_config(
            config,
            num_devices=setup.mesh.size,
            mesh={DATA_AXIS: setup.mesh.size},
            steps_per_epoch=setup.steps_per_epoch,
            command=resume_command,
        )
        run_dir.keep_metrics_through(run.position.epoch)
        run_dir.write_summary(_summary(run, Status.RUNNING))
        try:
            with run.stop_requests:
                summary = _train(run)
        except Exception as error:
            run_dir.write_summary(_summary(run, Status.FAILED, error=f"{type(error).__name__}: {error}"))
            raise
        if summary.status == Status.INTERRUPTED:
            summary.stop_reason = run.stop_requests.name or ("max_steps" if config.max_steps else "signal")
            summary.resume = resume_command or "run the same config again (same workdir)"
        run_dir.write_summary(summary)
        say(summary_line(summary))
        return RunResult(summary, run.state, setup.model_def)
    finally:
        if checkpoints is not None:
            checkpoints.close()
        run_dir.close()


def run(config: TrainConfig, *, resume_command: str | None = None, overwrite: bool = False) -> Summary:
    """Trains and evaluates `config`; returns the summary (see `train_and_evaluate`)."""
    return train_and_evaluate(config, resume_command=resume_command, overwrite=overwrite).summary
