"""Every setting of a training run, with the window-activation paper's defaults.

`TrainConfig` is the single source of truth: the CLI (`experiments/train.py`) builds
one from its flags, `loop.run` takes one, and the run directory's `config.json`
records one. What the paper fixes is the default (Adam, learning rate 1e-4, batch
64, a constant schedule, no augmentation, window 4, influence 0.1, threshold 0.25);
what it leaves open (the activation) has none.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

# The paper trains for 50 epochs. The embedded digits set (1257 training images)
# gets 10, so the first run on a laptop finishes in minutes.
PAPER_EPOCHS = 50
DIGITS_EPOCHS = 10

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "onecycle")
PRECISIONS = ("float32", "bfloat16")

# AdamW's decoupled weight decay when none is given (optax's and PyTorch's default
# is 1e-4 and 1e-2 respectively; we keep the smaller, which is harmless on the short
# runs here). Adam and SGD default to none, as the paper ran.
ADAMW_WEIGHT_DECAY = 1e-4


def default_epochs(dataset: str) -> int:
    """The paper's 50 epochs, or 10 on the embedded digits."""
    return DIGITS_EPOCHS if dataset == "digits" else PAPER_EPOCHS


def default_workdir(dataset: str, model: str, act: str, seed: int) -> str:
    """`runs/<dataset>-<model>-<act>-s<seed>`, relative to the current directory."""
    return os.path.join("runs", f"{dataset}-{model}-{act}-s{seed}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. `None` fields take a default that depends on others.

    Attributes:
      act: the activation, a name registered in `winact_jax`.
      window, influence, threshold: the window activations' parameters (each
        activation takes the ones it accepts; element-wise ones take none).
      placement: "all" (the activation at every nonlinearity) or "stem" (only at
        the first one, ReLU elsewhere).
      model: a name of `winact_jax.models.names()`.
      width: the model's width multiplier; None keeps the model's own default.
      normalization: "batch" or "none"; None keeps the model's own default.
      dataset: a name of `winact_jax.data.NAMES`.
      data_dir: where TFDS keeps its data (None: TFDS's default).
      epochs: passes over the training split; None is 10 on digits, 50 otherwise.
      batch_size: the global batch, split evenly over all devices.
      learning_rate: the peak learning rate of the schedule.
      optimizer: "adam", "adamw" or "sgd".
      momentum: SGD's momentum (0 for plain SGD).
      nesterov: Nesterov momentum for SGD.
      weight_decay: L2 penalty added to the gradient for adam and sgd, decoupled
        decay for adamw; None is 0 for adam and sgd, 1e-4 for adamw.
      schedule: "constant", "cosine" (decay to 0 over the run) or "onecycle".
      augment: random crops (4 px padding) and horizontal flips.
      precision: "float32" or "bfloat16" (the model's compute dtype; parameters
        and optimizer state stay float32).
      seed: initialisation, epoch order and augmentation all derive from it.
      workdir: the run directory; None is `runs/<dataset>-<model>-<act>-s<seed>`.
      eval_every: evaluate on the validation split every this many epochs (and
        always after the last).
      keep_checkpoints: how many epoch checkpoints to keep.
      progress: show a progress bar per epoch.
      num_devices: use only the first this many devices (None: all of them);
        for testing on one host.
      max_steps: stop, as an interruption would, once this many training steps
        are done in total (counting earlier runs in the same workdir); for
        testing and debugging.
      limit_train: train on the first this many training examples only; for
        testing and debugging.
    """

    act: str
    window: int = 4
    influence: float = 0.1
    threshold: float = 0.25
    placement: str = "all"
    model: str = "resnet38"
    width: float | None = None
    normalization: str | None = None
    dataset: str = "digits"
    data_dir: str | None = None
    epochs: int | None = None
    batch_size: int = 64
    learning_rate: float = 1e-4
    optimizer: str = "adam"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float | None = None
    schedule: str = "constant"
    augment: bool = False
    precision: str = "float32"
    seed: int = 0
    workdir: str | None = None
    eval_every: int = 1
    keep_checkpoints: int = 3
    progress: bool = True
    num_devices: int | None = None
    max_steps: int | None = None
    limit_train: int | None = None

    def __post_init__(self):
        # Fill the defaults that depend on other fields, so a config says exactly
        # what ran (frozen dataclass: hence object.__setattr__).
        if self.epochs is None:
            object.__setattr__(self, "epochs", default_epochs(self.dataset))
        if self.weight_decay is None:
            decay = ADAMW_WEIGHT_DECAY if self.optimizer == "adamw" else 0.0
            object.__setattr__(self, "weight_decay", decay)
        if self.workdir is None:
            workdir = default_workdir(self.dataset, self.model, self.act, self.seed)
            object.__setattr__(self, "workdir", workdir)
        self.validate()

    def validate(self) -> None:
        """Raises `ValueError` for a setting out of range (names and types are
        checked where they are used: `winact_jax.get`, `models.create`, `data.load`)."""
        checks = [
            (self.epochs >= 1, f"epochs must be at least 1; got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be at least 1; got {self.batch_size}"),
            (self.learning_rate > 0, f"learning rate must be positive; got {self.learning_rate}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1); got {self.momentum}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0; got {self.weight_decay}"),
            (self.eval_every >= 1, f"eval_every must be at least 1; got {self.eval_every}"),
            (self.keep_checkpoints >= 1, f"keep_checkpoints must be at least 1; got {self.keep_checkpoints}"),
            (self.num_devices is None or self.num_devices >= 1, f"num_devices must be at least 1; got {self.num_devices}"),
            (self.max_steps is None or self.max_steps >= 1, f"max_steps must be at least 1; got {self.max_steps}"),
            (self.limit_train is None or self.limit_train >= 1, f"limit_train must be at least 1; got {self.limit_train}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def act_params(self) -> dict[str, Any]:
        """The window parameters, for `winact_jax.models.create(..., act_params=)`."""
        return {"window": self.window, "influence": self.influence, "threshold": self.threshold}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # Settings that may change between a run and its resumption: how long to
    # train, how often to evaluate, how to report, when to stop. Every other
    # setting changes what is trained, so resuming with another value is refused.
    RESUMABLE_CHANGES = (
        "epochs", "eval_every", "keep_checkpoints", "progress", "max_steps", "workdir",
        "data_dir", "num_devices",
    )

    def differences(self, other: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Settings that differ from `other` (a `to_dict()` of an earlier run),
        ignoring `RESUMABLE_CHANGES`: {name: (theirs, ours)}."""
        ours = self.to_dict()
        return {
            name: (other.get(name), value)
            for name, value in ours.items()
            if name not in self.RESUMABLE_CHANGES and other.get(name) != value
        }
