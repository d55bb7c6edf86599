"""Train and evaluate one model: `python -m experiments.train --act=nelu`.

Every default is the window-activation paper's protocol (Adam, learning rate 1e-4,
batch 64, constant schedule, no augmentation, window 4, influence 0.1, threshold
0.25), except the data: the default is scikit-learn's embedded digits, trained 10
epochs, so the first run needs no download and finishes in minutes on a laptop.
See `winact_jax/train/` for what a run does and writes.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Sequence

import winact_jax
import winact_jax.data
import winact_jax.models
from winact_jax.models.activation import PLACEMENTS
from winact_jax.models.layers import NORMALIZATIONS
from winact_jax.train.config import (
    ADAMW_WEIGHT_DECAY,
    DIGITS_EPOCHS,
    OPTIMIZERS,
    PAPER_EPOCHS,
    PRECISIONS,
    SCHEDULES,
    TrainConfig,
)

EXIT_USAGE = 2  # argparse's status for a bad command line
EXIT_DIVERGED = 1

EPILOG = """\
outputs (in --workdir): config.json (every setting, library versions, devices),
metrics.jsonl (one line per epoch), tensorboard/ (event files), checkpoints/ (Orbax,
one per epoch, the last 3 kept) and, at the end, summary.json (status "completed",
"diverged" or "interrupted", test_accuracy as a fraction, best_val_accuracy, ...).

resuming: run the same command with the same --workdir; it continues from the
latest checkpoint (model, optimizer, epoch, position in the epoch). Raising
--epochs extends a finished run. Ctrl-C or SIGTERM finishes the current step,
saves a checkpoint and writes summary.json with status "interrupted".

exit status: 0 completed (or stopped by --max-steps), 1 diverged (a non-finite
loss; the run is recorded, not dropped), 2 bad flags, 130 / 143 interrupted by
SIGINT / SIGTERM.

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
positive_float = _argument_type(float, lambda v: v > 0 and v != float("inf"), "a positive number")
non_negative_float = _argument_type(float, lambda v: v >= 0 and v != float("inf"), "a number >= 0")


def activation_name(text: str) -> str:
    try:
        winact_jax.canonical_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.train",
        description="Train and evaluate one model with one activation, and write a run directory.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    act = parser.add_argument_group("activation")
    act.add_argument("--act", required=True, type=activation_name, help=f"the activation (required): {', '.join(winact_jax.names())}")
    act.add_argument("--window", type=positive_int, default=4, help="window size of the window activations (default: 4)")
    act.add_argument("--influence", type=float, default=0.1, help="influence of the neighbourhood (default: 0.1)")
    act.add_argument("--threshold", type=float, default=0.25, help="softmax_threshold's threshold (default: 0.25)")
    act.add_argument("--placement", choices=PLACEMENTS, default="all", help="'all': the activation at every nonlinearity; 'stem': after the first layer only, ReLU elsewhere (default: all)")

    model = parser.add_argument_group("model and data")
    model.add_argument("--model", choices=winact_jax.models.names(), default="resnet38", help="the model (default: resnet38)")
    model.add_argument("--width", type=positive_float, default=None, help="width multiplier of the model's channels (default: the model's, 1)")
    model.add_argument("--normalization", choices=NORMALIZATIONS, default=None, help="the model's normalization (default: the model's own: batch for resnets, none for seed_backbone)")
    model.add_argument("--dataset", choices=winact_jax.data.NAMES, default="digits", help="the data (default: digits, embedded, no download)")
    model.add_argument("--data-dir", default=None, help="where TFDS keeps datasets (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")

    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=positive_int, default=None, help=f"epochs to train (default: {PAPER_EPOCHS}, the paper's; {DIGITS_EPOCHS} on digits, so the first run finishes in minutes)")
    training.add_argument("--batch-size", type=positive_int, default=64, help="global batch size, split evenly over all devices; must be a multiple of the device count (default: 64)")
    training.add_argument("--lr", type=positive_float, default=1e-4, help="(peak) learning rate (default: 1e-4)")
    training.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="the optimizer (default: adam)")
    training.add_argument("--momentum", type=non_negative_float, default=0.9, help="SGD momentum, 0 for plain SGD (default: 0.9)")
    training.add_argument("--nesterov", action="store_true", help="Nesterov momentum for SGD")
    training.add_argument("--weight-decay", type=non_negative_float, default=None, help=f"L2 penalty added to the gradient for adam and sgd; decoupled decay for adamw (default: 0; {ADAMW_WEIGHT_DECAY:g} for adamw)")
    training.add_argument("--schedule", choices=SCHEDULES, default="constant", help="learning-rate schedule over the run: constant, cosine decay to 0, or one-cycle (default: constant)")
    training.add_argument("--augment", action="store_true", help="random 4-pixel-padded crops and horizontal flips (default: off, as in the paper)")
    training.add_argument("--precision", choices=PRECISIONS, default="float32", help="compute dtype; parameters and optimizer state stay float32 (default: float32)")
    training.add_argument("--seed", type=non_negative_int, default=0, help="seed of initialisation, epoch order and augmentation (default: 0)")

    output = parser.add_argument_group("output")
    output.add_argument("--workdir", default=None, help="the run directory (default: runs/<dataset>-<model>-<act>-s<seed>)")
    output.add_argument("--eval-every", type=positive_int, default=1, help="validate every this many epochs, and after the last (default: 1)")
    output.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")

    hosts = parser.add_argument_group("multi-host")
    hosts.add_argument("--coordinator", default=None, metavar="HOST:PORT", help="address of process 0 (default: $JAX_COORDINATOR_ADDRESS; none: one process)")
    hosts.add_argument("--num-processes", type=positive_int, default=None, help="processes of the run (default: $JAX_NUM_PROCESSES)")
    hosts.add_argument("--process-id", type=non_negative_int, default=None, help="this process's index, 0..N-1 (default: $JAX_PROCESS_ID)")

    debug = parser.add_argument_group("testing and debugging")
    debug.add_argument("--max-steps", type=positive_int, default=None, help="stop, as an interrupt would (checkpoint, status 'interrupted', exit 0), once this many training steps are done in total")
    debug.add_argument("--limit-train", type=positive_int, default=None, help="train on the first N training examples only")
    debug.add_argument("--devices", dest="num_devices", type=positive_int, default=None, help="use only the first N devices (default: all)")
    debug.add_argument("--dump-params", default=None, metavar="FILE", help="write the final parameters to FILE.<process index>.npz from every process")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        act=args.act, window=args.window, influence=args.influence, threshold=args.threshold,
        placement=args.placement, model=args.model, width=args.width,
        normalization=args.normalization, dataset=args.dataset, data_dir=args.data_dir,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
        optimizer=args.optimizer, momentum=args.momentum, nesterov=args.nesterov,
        weight_decay=args.weight_decay, schedule=args.schedule, augment=args.augment,
        precision=args.precision, seed=args.seed, workdir=args.workdir,
        eval_every=args.eval_every, progress=args.progress, num_devices=args.num_devices,
        max_steps=args.max_steps, limit_train=args.limit_train,
    )


def dump_params(path: str, result) -> None:
    """Every process writes its own copy of the final parameters (to compare them)."""
    import jax
    import numpy as np

    from winact_jax.train.state import to_host

    leaves = jax.tree_util.tree_leaves_with_path(to_host(result.state.params))
    arrays = {jax.tree_util.keystr(path): leaf for path, leaf in leaves}
    np.savez(f"{path}.{jax.process_index()}.npz", **arrays)


def exit_status(summary: dict) -> int:
    if summary["status"] == "diverged":
        return EXIT_DIVERGED
    if summary["status"] == "interrupted":
        return {"SIGINT": 130, "SIGTERM": 143, "max_steps": 0}.get(summary.get("stop_reason"), 143)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as error:
        parser.error(str(error))

    # Imported here, after parsing: `--help` and bad flags need no JAX backend.
    from winact_jax.train import ConfigError, distributed, train_and_evaluate
    from winact_jax.backends import prefer_eigen_convolutions

    prefer_eigen_convolutions()  # before JAX first uses a device
    try:
        distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    except ValueError as error:
        parser.error(str(error))
    command = shlex.join([os.path.basename(sys.executable), "-m", "experiments.train", *argv])
    try:
        result = train_and_evaluate(config, resume_command=command)
    except ConfigError as error:
        parser.error(str(error))
    except winact_jax.data.DataUnavailableError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.dump_params:
        dump_params(args.dump_params, result)
    return exit_status(result.summary)


if __name__ == "__main__":
    sys.exit(main())
