"""Training: data-parallel, resumable runs that write a run directory.

    from winact_jax.train import TrainConfig, run
    summary = run(TrainConfig(act="nelu"))       # the CLI: python -m experiments.train
    summary.status                               # Status.COMPLETED == "completed"

One idea per module, after Flax's ImageNet example:

* `config.py`: `TrainConfig`, every setting and its default (the one source).
* `optim.py`: the optimizer and learning-rate schedule (optax).
* `state.py`: the explicit `TrainState` pytree and the model's static `ModelDef`.
* `steps.py`: the jitted train and evaluation steps over a ("data",) mesh.
* `checkpoints.py`: Orbax checkpoints of the state and the run's position.
* `interrupts.py`: SIGINT/SIGTERM as a request to stop after the current step.
* `distributed.py`: joining the processes of a multi-host run.
* `outcomes.py`: `Status`, the CLI's exit codes, the errors that stop a run.
* `run_dir.py`: the run directory's layout, its lock, `Summary`, and the reader
  (`read_run`, `find_runs`) that the sweep and the report use.
* `loop.py`: `run` / `train_and_evaluate`, the epochs.
"""

from winact_jax.train.config import TrainConfig, default_epochs, default_workdir
from winact_jax.train.loop import RunResult, run, train_and_evaluate
from winact_jax.train.outcomes import (
    CannotResumeError,
    ConfigError,
    ExitCode,
    NotApplicableError,
    RunError,
    Status,
    WorkdirBusyError,
)
from winact_jax.train.run_dir import RunRecord, Summary, find_runs, read_run
from winact_jax.train.state import ModelDef, TrainState

__all__ = [
    "CannotResumeError",
    "ConfigError",
    "ExitCode",
    "ModelDef",
    "NotApplicableError",
    "RunError",
    "RunRecord",
    "RunResult",
    "Status",
    "Summary",
    "TrainConfig",
    "TrainState",
    "WorkdirBusyError",
    "default_epochs",
    "default_workdir",
    "find_runs",
    "read_run",
    "run",
    "train_and_evaluate",
]
