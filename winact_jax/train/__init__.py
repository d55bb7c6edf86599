"""Training: data-parallel, resumable runs that write a run directory.

    from winact_jax.train import TrainConfig, run
    summary = run(TrainConfig(act="nelu"))       # the CLI: python -m experiments.train

One idea per module, after Flax's ImageNet example:

* `config.py`: `TrainConfig`, every setting with the paper's default.
* `optim.py`: the optimizer and learning-rate schedule (optax).
* `state.py`: the explicit `TrainState` pytree and the model's static `ModelDef`.
* `steps.py`: the jitted train and evaluation steps over a ("data",) mesh.
* `checkpoints.py`: Orbax checkpoints of the state and the run's position.
* `interrupts.py`: SIGINT/SIGTERM as a request to stop after the current step.
* `distributed.py`: joining the processes of a multi-host run.
* `run_dir.py`: config.json, metrics.jsonl, TensorBoard, summary.json.
* `loop.py`: `run` / `train_and_evaluate`, the epochs.
"""

from winact_jax.train.config import TrainConfig, default_epochs, default_workdir
from winact_jax.train.loop import COMPLETED, DIVERGED, INTERRUPTED, ConfigError, RunResult, run, train_and_evaluate
from winact_jax.train.state import ModelDef, TrainState

__all__ = [
    "COMPLETED",
    "DIVERGED",
    "INTERRUPTED",
    "ConfigError",
    "ModelDef",
    "RunResult",
    "TrainConfig",
    "TrainState",
    "default_epochs",
    "default_workdir",
    "run",
    "train_and_evaluate",
]
