"""Prepares a dataset ahead of training, and says what to do when it cannot.

    python -m winact_jax.data prepare tiny_imagenet --data-dir ~/tensorflow_datasets

Downloads (or reads the archive placed in `<data-dir>/downloads/manual/`),
converts with TFDS, loads the splits once and prints their sizes. Exit status 1,
with the instructions, when the data is unavailable.
"""

from __future__ import annotations

import argparse
import sys

from winact_jax.data import NAMES, DataUnavailableError, load, splits
from winact_jax.extras import MissingExtraError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m winact_jax.data", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="download and prepare a dataset")
    prepare.add_argument("name", choices=NAMES)
    prepare.add_argument(
        "--data-dir",
        default=None,
        help="TFDS data directory (default: $TFDS_DATA_DIR, else ~/tensorflow_datasets)",
    )
    prepare.add_argument("--seed", type=int, default=splits.SPLIT_SEED, help="split seed")
    args = parser.parse_args(argv)

    try:
        dataset = load(args.name, data_dir=args.data_dir, seed=args.seed)
    except (DataUnavailableError, MissingExtraError) as error:
        print(error, file=sys.stderr)
        return 1
    print(dataset.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
