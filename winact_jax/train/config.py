"""Every setting of a training run, with the window-activation paper's defaults.

`TrainConfig` is the one source of the training defaults: the CLI
(`experiments/train.py`) takes its flags' defaults and their help text from it,
the sweep (`experiments/sweep.py`) fills what a grid leaves open from it, the
README's table is `defaults_table()`, and the run directory's `config.json`
records one. What the paper fixes is the default (Adam, learning rate 1e-4, batch
64, a constant schedule, no augmentation, window 4, influence 0.1, threshold
0.25); what it leaves open (the activation) has none.

A setting that does not apply to the run (a window for `relu`, a threshold for
`nelu`, momentum for Adam) is `None` in the config and absent from what resuming
compares; giving one explicitly is an error (`NotApplicableError`), not silently
ignored.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import winact_jax
from winact_jax.train.outcomes import ConfigError, NotApplicableError

try:  # the window geometry's choices (docs/spec.md, "Round 2")
    from winact_jax.windows import MODES as WINDOW_MODES
    from winact_jax.windows import OVERS as WINDOW_OVERS
except ImportError:  # a winact_jax without window modes: the options are refused below
    WINDOW_MODES, WINDOW_OVERS = ("tiled",), ("spatial",)

# The paper trains for 50 epochs. The embedded digits set (1257 training images)
# gets 10, so the first run on a laptop finishes in minutes.
PAPER_EPOCHS = 50
DIGITS_EPOCHS = 10

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "onecycle", "triangular")
PRECISIONS = ("float32", "bfloat16")

# AdamW's decoupled weight decay when none is given (optax's and PyTorch's default
# is 1e-4 and 1e-2 respectively; we keep the smaller, which is harmless on the short
# runs here). Adam and SGD default to none, as the paper ran.
ADAMW_WEIGHT_DECAY = 1e-4
SGD_MOMENTUM = 0.9
# The triangular schedule's period: up from learning_rate/10 to learning_rate and
# back down in this many epochs (Smith's cyclical learning rates).
TRIANGULAR_CYCLE_EPOCHS = 4

# Fields that are a window activation's parameters, and the parameter's name there.
ACT_PARAMETERS = {
    "window": "window",
    "influence": "influence",
    "threshold": "threshold",
    "window_mode": "mode",
    "window_over": "over",
}


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
      window, influence, threshold: the window activations' parameters; None is
        the activation's own default (window 4, influence 0.1, threshold 0.25),
        and stays None for an activation that does not take the parameter.
      window_mode: "tiled" (non-overlapping windows) or "centered" (one window
        around each position), for the activations that take `mode`.
      window_over: "spatial" (windows over height and width) or "channels", for
        the activations that take `over`.
      learn_influence: train the influence as a parameter (one per channel),
        starting from `influence`; for the activations that take an influence.
      placement: "all" (the activation at every nonlinearity) or "stem" (only at
        the first one, ReLU elsewhere).
      model: a name of `winact_jax.models.names()`.
      width: the model's width multiplier; None keeps the model's own default.
      normalization: "batch" or "none"; None keeps the model's own default.
      dataset: a name of `winact_jax.data.NAMES`.
      data_dir: where TFDS keeps its data (None: TFDS's default).
      label_noise: the fraction of training labels replaced by uniformly random
        ones (validation and test stay clean), in [0, 1).
      epochs: passes over the training split; None is 10 on digits, 50 otherwise.
      batch_size: the global batch, split evenly over all devices.
      learning_rate: the peak learning rate of the schedule.
      optimizer: "adam", "adamw" or "sgd".
      momentum: SGD's momentum (0 for plain SGD); None is 0.9 for SGD.
      nesterov: Nesterov momentum for SGD.
      weight_decay: L2 penalty added to the gradient for adam and sgd, decoupled
        decay for adamw; None is 0 for adam and sgd, 1e-4 for adamw.
      schedule: "constant", "cosine" (decay to 0 over the run), "onecycle" or
        "triangular" (cyclical, between learning_rate/10 and learning_rate).
      cycle_epochs: the triangular schedule's period in epochs; None is 4.
      augment: random crops (4 px padding) and horizontal flips.
      precision: "float32" or "bfloat16" (the model's compute dtype; parameters
        and optimizer state stay float32).
      seed: initialisation, epoch order, augmentation and label noise all derive
        from it.
      workdir: the run directory; None is `runs/<dataset>-<model>-<act>-s<seed>`.
      eval_every: evaluate on the validation split every this many epochs (and
        always after the last).
      keep_checkpoints: how many epoch checkpoints to keep.
      divergence_factor: a training loss above this many times the first epoch's
        mean training loss stops the run as diverged (inf: never).
      max_loss: a training loss above this stops the run as diverged (inf: never);
        a non-finite loss always does.
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
    window: int | None = None
    influence: float | None = None
    threshold: float | None = None
    window_mode: str | None = None
    window_over: str | None = None
    learn_influence: bool | None = None
    placement: str = "all"
    model: str = "resnet38"
    width: float | None = None
    normalization: str | None = None
    dataset: str = "digits"
    data_dir: str | None = None
    label_noise: float = 0.0
    epochs: int | None = None
    batch_size: int = 64
    learning_rate: float = 1e-4
    optimizer: str = "adam"
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    schedule: str = "constant"
    cycle_epochs: int | None = None
    augment: bool = False
    precision: str = "float32"
    seed: int = 0
    workdir: str | None = None
    eval_every: int = 1
    keep_checkpoints: int = 3
    divergence_factor: float = 100.0
    max_loss: float = 1e6
    progress: bool = True
    num_devices: int | None = None
    max_steps: int | None = None
    limit_train: int | None = None

    def __post_init__(self):
        # Fill the defaults that depend on other fields, so a config says exactly
        # what ran (frozen dataclass: hence object.__setattr__).
        try:
            act = winact_jax.canonical_name(self.act)
        except (TypeError, ValueError) as error:
            raise ConfigError(str(error)) from None
        for name, default in self._applicable_defaults(act).items():
            value = getattr(self, name)
            if default is _NOT_APPLICABLE:
                # `False` for a switch is the same as not giving it.
                if value is not None and value is not False:
                    raise NotApplicableError(name, value, self._why_not(name, act))
                object.__setattr__(self, name, None)
            elif value is None:
                object.__setattr__(self, name, default)
        if self.epochs is None:
            object.__setattr__(self, "epochs", default_epochs(self.dataset))
        if self.weight_decay is None:
            decay = ADAMW_WEIGHT_DECAY if self.optimizer == "adamw" else 0.0
            object.__setattr__(self, "weight_decay", decay)
        if self.workdir is None:
            workdir = default_workdir(self.dataset, self.model, self.act, self.seed)
            object.__setattr__(self, "workdir", workdir)
        self.validate()

    def _applicable_defaults(self, act: str) -> dict[str, Any]:
        """{field: its default, or _NOT_APPLICABLE} for the fields that only some
        activations, optimizers or schedules use."""
        accepted = winact_jax.parameters(act)
        defaults = {name: accepted.get(parameter, _NOT_APPLICABLE) for name, parameter in ACT_PARAMETERS.items()}
        defaults["learn_influence"] = False if "influence" in accepted else _NOT_APPLICABLE
        defaults["momentum"] = SGD_MOMENTUM if self.optimizer == "sgd" else _NOT_APPLICABLE
        defaults["nesterov"] = False if self.optimizer == "sgd" else _NOT_APPLICABLE
        defaults["cycle_epochs"] = TRIANGULAR_CYCLE_EPOCHS if self.schedule == "triangular" else _NOT_APPLICABLE
        return defaults

    def not_applicable(self) -> tuple[str, ...]:
        """The settings this run does not use (None in it), e.g. ("threshold",
        "momentum", "nesterov", "cycle_epochs") for nelu with Adam."""
        defaults = self._applicable_defaults(winact_jax.canonical_name(self.act))
        return tuple(name for name, default in defaults.items() if default is _NOT_APPLICABLE)

    def _why_not(self, name: str, act: str) -> str:
        if name in ("momentum", "nesterov"):
            return f"it is SGD's, and the optimizer is {self.optimizer!r}"
        if name == "cycle_epochs":
            return f"it is the triangular schedule's, and the schedule is {self.schedule!r}"
        accepted = [field for field, parameter in ACT_PARAMETERS.items() if parameter in winact_jax.parameters(act)]
        if name == "learn_influence":
            return f"activation {act!r} has no influence"
        takes = f"it takes {', '.join(accepted)}" if accepted else "it takes none of the window parameters"
        if ACT_PARAMETERS[name] not in _known_parameters():
            takes += f"; no activation of this winact_jax takes {ACT_PARAMETERS[name]!r}"
        return f"activation {act!r} does not take {ACT_PARAMETERS[name]!r} ({takes})"

    def validate(self) -> None:
        """Raises `ConfigError` (a `ValueError`) for a setting out of range (names
        are checked where they are used: `winact_jax.get`, `models.create`, `data.load`)."""

        def finite_positive(value) -> bool:
            return value > 0 and not math.isnan(value)

        checks = [
            (self.epochs >= 1, f"epochs must be at least 1; got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be at least 1; got {self.batch_size}"),
            (self.learning_rate > 0, f"learning rate must be positive; got {self.learning_rate}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}"),
            (self.momentum is None or 0 <= self.momentum < 1, f"momentum must be in [0, 1); got {self.momentum}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0; got {self.weight_decay}"),
            (0 <= self.label_noise < 1, f"label_noise must be in [0, 1); got {self.label_noise}"),
            (
                self.cycle_epochs is None or self.cycle_epochs >= 1,
                f"cycle_epochs must be at least 1; got {self.cycle_epochs}",
            ),
            (
                self.window_mode is None or self.window_mode in WINDOW_MODES,
                f"window_mode must be one of {', '.join(WINDOW_MODES)}; got {self.window_mode!r}",
            ),
            (
                self.window_over is None or self.window_over in WINDOW_OVERS,
                f"window_over must be one of {', '.join(WINDOW_OVERS)}; got {self.window_over!r}",
            ),
            (self.eval_every >= 1, f"eval_every must be at least 1; got {self.eval_every}"),
            (self.keep_checkpoints >= 1, f"keep_checkpoints must be at least 1; got {self.keep_checkpoints}"),
            (
                finite_positive(self.divergence_factor) and self.divergence_factor > 1,
                f"divergence_factor must be above 1 (inf: never); got {self.divergence_factor}",
            ),
            (finite_positive(self.max_loss), f"max_loss must be positive (inf: never); got {self.max_loss}"),
            (
                self.num_devices is None or self.num_devices >= 1,
                f"num_devices must be at least 1; got {self.num_devices}",
            ),
            (self.max_steps is None or self.max_steps >= 1, f"max_steps must be at least 1; got {self.max_steps}"),
            (
                self.limit_train is None or self.limit_train >= 1,
                f"limit_train must be at least 1; got {self.limit_train}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def act_params(self) -> dict[str, Any]:
        """The activation's parameters, for `winact_jax.models.create(..., act_params=)`:
        those it takes, under their names there (`window_mode` is `mode`)."""
        return {
            parameter: getattr(self, name)
            for name, parameter in ACT_PARAMETERS.items()
            if getattr(self, name) is not None
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # Settings that may change between a run and its resumption: how long to
    # train, how often to evaluate, how to report, when to stop. Every other
    # setting changes what is trained, so resuming with another value is refused.
    RESUMABLE_CHANGES = (
        "epochs",
        "eval_every",
        "keep_checkpoints",
        "progress",
        "max_steps",
        "workdir",
        "data_dir",
        "num_devices",
        "divergence_factor",
        "max_loss",
    )

    def differences(self, other: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Settings that differ from `other` (a `to_dict()` of an earlier run),
        ignoring `RESUMABLE_CHANGES` and the settings that do not apply to this run
        (None here): {name: (theirs, ours)}. A setting `other` lacks (written
        before the setting existed) counts as its default."""
        defaults = dataclasses.replace(self, **_field_defaults(exclude=("act", "workdir")))
        not_applicable = self.not_applicable()
        differing = {}
        for name, value in self.to_dict().items():
            if name in self.RESUMABLE_CHANGES or name in not_applicable:
                continue
            theirs = other.get(name, getattr(defaults, name))
            if theirs != value:
                differing[name] = (theirs, value)
        return differing


_NOT_APPLICABLE = object()


def _known_parameters() -> set[str]:
    return {p for name in winact_jax.names() for p in winact_jax.parameters(name)}


def _field_defaults(exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        f.name: f.default
        for f in dataclasses.fields(TrainConfig)
        if f.default is not dataclasses.MISSING and f.name not in exclude
    }


def format_number(value: float) -> str:
    """1e-4 as "1e-4", 1e6 as "1e6", 0.1 as "0.1", 100.0 as "100"."""
    if value != 0 and math.isfinite(value) and not 1e-3 <= abs(value) < 1e4:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    return f"{value:g}"


def defaults_table() -> str:
    """The README's table of training defaults (Markdown), one row per setting."""
    lines = ["| setting | default |", "|---|---|"]
    for field in dataclasses.fields(TrainConfig):
        if field.name != "act":
            lines.append(f"| `{field.name}` | {describe_default(field.name)} |")
    return "\n".join(lines) + "\n"


# How the defaults that depend on other settings read, for --help and the README.
_DEPENDENT_DEFAULTS = {
    "learn_influence": "off",
    "width": "the model's: 1",
    "normalization": "the model's: batch for the resnets, none for seed_backbone",
    "data_dir": "$TFDS_DATA_DIR or ~/tensorflow_datasets",
    "epochs": f"{PAPER_EPOCHS}, the paper's; {DIGITS_EPOCHS} on digits",
    "momentum": f"{SGD_MOMENTUM} (SGD only)",
    "nesterov": "off (SGD only)",
    "weight_decay": f"0; {format_number(ADAMW_WEIGHT_DECAY)} for adamw",
    "cycle_epochs": f"{TRIANGULAR_CYCLE_EPOCHS} (triangular schedule only)",
    "workdir": "runs/<dataset>-<model>-<act>-s<seed>",
    "num_devices": "all",
    "max_steps": "none",
    "limit_train": "all",
}


def describe_default(name: str) -> str:
    """The default of `TrainConfig.<name>` as --help and the README state it."""
    if name in ACT_PARAMETERS:  # the registered functions' own defaults
        parameter = ACT_PARAMETERS[name]
        values = {
            winact_jax.parameters(act)[parameter]
            for act in winact_jax.names()
            if parameter in winact_jax.parameters(act)
        }
        shown = ", ".join(sorted(format_number(v) if isinstance(v, float) else str(v) for v in values))
        return f"the activation's: {shown or 'none takes it'}"
    if name in _DEPENDENT_DEFAULTS:
        return _DEPENDENT_DEFAULTS[name]
    value = _field_defaults()[name]
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return format_number(value)
    return str(value)
