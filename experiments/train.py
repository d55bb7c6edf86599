"""Train and evaluate one model: `python -m experiments.train --act=nelu`.

Every default is the window-activation paper's protocol (Adam, learning rate 1e-4,
batch 64, constant schedule, no augmentation, window 4, influence 0.1, threshold
0.25), except the data: the default is scikit-learn's embedded digits, trained 10
epochs, so the first run needs no download and finishes in minutes on a laptop.
The defaults are `TrainConfig`'s (winact_jax/train/config.py): the flags have
none of their own, so a flag given is told from one left out, and one that does
not apply to the run (--threshold with nelu) is an error, not ignored.
See `winact_jax/train/` for what a run does and writes.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from collections.abc import Sequence

import winact_jax
import winact_jax.data
import winact_jax.extras
import winact_jax.models
from experiments.cli import activation_name
from winact_jax.models.activation import PLACEMENTS
from winact_jax.models.layers import NORMALIZATIONS
from winact_jax.train.config import (
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    WINDOW_MODES,
    WINDOW_OVERS,
    TrainConfig,
    describe_default,
)
from winact_jax.train.outcomes import (
    ConfigError,
    ExitCode,
    NotApplicableError,
    RunError,
    Status,
    exit_codes_text,
)

EPILOG = f"""\
outputs (in --workdir): config.json (every setting that applies, library versions,
devices), metrics.jsonl (one line per epoch), tensorboard/ (event files),
checkpoints/ (Orbax, one per epoch, the last 3 kept), run.lock (while it runs) and
summary.json (status {Status.RUNNING.value!r} while it runs, then one of
{", ".join(repr(s.value) for s in Status if s != Status.RUNNING)}; test_accuracy
as a fraction, best_val_accuracy, ...).

resuming: run the same command with the same --workdir; it continues from the
newest checkpoint that restores (a damaged one is reported, moved to
checkpoints_corrupt/ and the next older one used). Raising --epochs extends a
finished run. Ctrl-C or SIGTERM finishes the current step, saves a checkpoint and
writes summary.json with status {Status.INTERRUPTED.value!r}. Only one run at a time may use a
--workdir; a directory holding something other than a run is refused, and one
holding a run's results without a checkpoint is replaced only with --overwrite.

divergence: a non-finite training loss, one above --max-loss, or one above
--divergence-factor times the first epoch's mean training loss stops the run
with status {Status.DIVERGED.value!r} (the report counts it as a null run).

exit status:
{exit_codes_text()}

multi-host: start one process per host with --coordinator HOST:PORT (process 0's
address) --num-processes N --process-id I (or JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES, JAX_PROCESS_ID; SLURM and Open MPI jobs are detected). The
workdir must be on a file system every host shares; only process 0 writes files.

examples:
  python -m experiments.train --act=nelu
  python -m experiments.train --act=nelu --dataset=cifar100 --model=seed_backbone
"""


def _argument_type(convert, check, requirement: str):
    """An argparse `type=` that converts, then checks, so a bad value is one line."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {requirement}, got {text!r}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"expected {requirement}, got {text!r}")
        return value

    parse.__name__ = requirement  # argparse names the type in some messages
    return parse


positive_int = _argument_type(int, lambda v: v >= 1, "an integer >= 1")
non_negative_int = _argument_type(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _argument_type(float, lambda v: v > 0 and math.isfinite(v), "a positive number")
non_negative_float = _argument_type(float, lambda v: v >= 0 and math.isfinite(v), "a number >= 0")
fraction = _argument_type(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
bound = _argument_type(float, lambda v: v > 0 and not math.isnan(v), "a positive number or inf")
factor = _argument_type(float, lambda v: v > 1 and not math.isnan(v), "a number above 1, or inf")


CONFIG_FIELDS = {name for name in TrainConfig.__dataclass_fields__}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.train",
        usage="%(prog)s --act=NAME [options]   (--help lists them)",
        description="Train and evaluate one model with one activation, and write a run directory.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def setting(group, flag: str, help: str, *, dest: str | None = None, **options):
        """A flag for the TrainConfig field `dest`: no default of its own (None, so
        a flag left out is told from one given), the config's in its help."""
        dest = dest or flag[2:].replace("-", "_")
        assert dest in CONFIG_FIELDS, dest
        group.add_argument(flag, dest=dest, default=None, help=f"{help} (default: {describe_default(dest)})", **options)

    act = parser.add_argument_group("activation (its parameters only for the activations that take them)")
    act.add_argument(
        "--act", required=True, type=activation_name, help=f"the activation (required): {', '.join(winact_jax.names())}"
    )
    setting(act, "--window", "window size of the window activations", type=positive_int)
    setting(act, "--influence", "influence of the neighbourhood", type=float)
    setting(act, "--threshold", "softmax_threshold's threshold", type=float)
    setting(
        act,
        "--window-mode",
        "tiled: non-overlapping windows; centered: one window around each position",
        choices=WINDOW_MODES,
    )
    setting(act, "--window-over", "what a window spans: spatial (height x width) or channels", choices=WINDOW_OVERS)
    setting(
        act, "--learn-influence", "train the influence, one per channel, starting from --influence", action="store_true"
    )
    setting(
        act,
        "--placement",
        "all: the activation at every nonlinearity; stem: after the first layer only, ReLU elsewhere",
        choices=PLACEMENTS,
    )

    model = parser.add_argument_group("model and data")
    setting(model, "--model", "the model", choices=winact_jax.models.names())
    setting(model, "--width", "width multiplier of the model's channels", type=positive_float)
    setting(model, "--normalization", "the model's normalization", choices=NORMALIZATIONS)
    setting(
        model, "--dataset", "the data; digits is embedded, the others come through TFDS", choices=winact_jax.data.NAMES
    )
    setting(model, "--data-dir", "where TFDS keeps datasets")
    setting(model, "--label-noise", "fraction of training labels replaced by uniformly random ones", type=fraction)

    training = parser.add_argument_group("training")
    setting(training, "--epochs", "epochs to train", type=positive_int)
    setting(
        training,
        "--batch-size",
        "global batch size, split evenly over all devices; a multiple of the device count",
        type=positive_int,
    )
    setting(training, "--lr", "(peak) learning rate", dest="learning_rate", type=positive_float)
    setting(training, "--optimizer", "the optimizer", choices=OPTIMIZERS)
    setting(training, "--momentum", "SGD's momentum, 0 for plain SGD", type=non_negative_float)
    setting(training, "--nesterov", "Nesterov momentum for SGD", action="store_true")
    setting(
        training,
        "--weight-decay",
        "L2 penalty added to the gradient for adam and sgd; decoupled decay for adamw",
        type=non_negative_float,
    )
    setting(
        training,
        "--schedule",
        "learning-rate schedule: constant, cosine decay to 0, one-cycle, or triangular (cyclical between lr/10 and lr)",
        choices=SCHEDULES,
    )
    setting(training, "--cycle-epochs", "the triangular schedule's period, in epochs", type=positive_int)
    setting(training, "--augment", "random 4-pixel-padded crops and horizontal flips", action="store_true")
    setting(training, "--precision", "compute dtype; parameters and optimizer state stay float32", choices=PRECISIONS)
    setting(
        training, "--seed", "seed of initialisation, epoch order, augmentation and label noise", type=non_negative_int
    )
    setting(
        training,
        "--divergence-factor",
        "stop as diverged at a training loss above this many times the first epoch's mean (inf: never)",
        type=factor,
    )
    setting(training, "--max-loss", "stop as diverged at a training loss above this (inf: never)", type=bound)

    output = parser.add_argument_group("output")
    setting(output, "--workdir", "the run directory")
    output.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a --workdir that holds a run, removing its files (never those of a directory that holds no run)",
    )
    setting(output, "--eval-every", "validate every this many epochs, and after the last", type=positive_int)
    setting(output, "--keep-checkpoints", "how many epoch checkpoints to keep", type=positive_int)
    setting(output, "--no-progress", "no progress bar", dest="progress", action="store_false")

    hosts = parser.add_argument_group("multi-host")
    hosts.add_argument(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help="address of process 0 (default: $JAX_COORDINATOR_ADDRESS; none: one process)",
    )
    hosts.add_argument(
        "--num-processes", type=positive_int, default=None, help="processes of the run (default: $JAX_NUM_PROCESSES)"
    )
    hosts.add_argument(
        "--process-id",
        type=non_negative_int,
        default=None,
        help="this process's index, 0..N-1 (default: $JAX_PROCESS_ID)",
    )

    debug = parser.add_argument_group("testing and debugging")
    setting(
        debug,
        "--max-steps",
        "stop, as an interrupt would (checkpoint, status 'interrupted', exit 0), once this many training steps are done in total",
        type=positive_int,
    )
    setting(debug, "--limit-train", "train on the first N training examples only", type=positive_int)
    setting(debug, "--devices", "use only the first N devices", dest="num_devices", type=positive_int)
    debug.add_argument(
        "--dump-params",
        default=None,
        metavar="FILE",
        help="write the final parameters to FILE.<process index>.npz from every process",
    )
    return parser


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """{TrainConfig field: its flag}, e.g. {"learning_rate": "--lr"}."""
    return {action.dest: action.option_strings[0] for action in parser._actions if action.option_strings}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config of the flags given; those left out (None) take TrainConfig's defaults.

    Raises:
      ConfigError: a bad value, or `NotApplicableError` for a flag the run does not use.
    """
    given = {name: value for name, value in vars(args).items() if name in CONFIG_FIELDS and value is not None}
    return TrainConfig(**given)


def dump_params(path: str, result) -> None:
    """Every process writes its own copy of the final parameters (to compare them)."""
    import jax
    import numpy as np

    from winact_jax.sharding import to_host

    leaves = jax.tree_util.tree_leaves_with_path(to_host(result.state.params))
    arrays = {jax.tree_util.keystr(path): leaf for path, leaf in leaves}
    np.savez(f"{path}.{jax.process_index()}.npz", **arrays)


def exit_status(summary) -> int:
    if summary.status == Status.DIVERGED:
        return ExitCode.DIVERGED
    if summary.status == Status.INTERRUPTED:
        return {"SIGINT": ExitCode.INTERRUPTED, "max_steps": ExitCode.COMPLETED}.get(
            summary.stop_reason, ExitCode.TERMINATED
        )
    return ExitCode.COMPLETED


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)

    def fail(error_message: str, code: int = ExitCode.BAD_CONFIG):
        """One line on stderr, and the exit status."""
        parser.exit(int(code), f"{parser.prog}: error: {error_message}\n")

    try:
        config = config_from_args(args)
    except NotApplicableError as error:
        fail(f"{flag_names(parser).get(error.field, error.field)} does not apply: {error.reason}")
    except ConfigError as error:
        fail(str(error))

    # Imported here, after parsing: `--help` and bad flags need no JAX backend.
    from winact_jax.backends import prefer_eigen_convolutions
    from winact_jax.train import distributed, train_and_evaluate

    prefer_eigen_convolutions()  # before JAX first uses a device
    try:
        distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    except ValueError as error:
        fail(str(error))
    command = shlex.join([os.path.basename(sys.executable), "-m", "experiments.train", *argv])
    try:
        result = train_and_evaluate(config, resume_command=command, overwrite=args.overwrite)
    except RunError as error:
        fail(str(error), error.exit_code)
    except (winact_jax.data.DataUnavailableError, winact_jax.extras.MissingExtraError) as error:
        fail(str(error))
    if args.dump_params:
        dump_params(args.dump_params, result)
    return int(exit_status(result.summary))


if __name__ == "__main__":
    sys.exit(main())
