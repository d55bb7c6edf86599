"""Grids of training runs: activations x datasets x seeds (x windows, influences, ...).

    python -m experiments.sweep --preset digits-table
    python -m experiments.sweep --preset paper-table1 --shard 0/4      # one of 4 GPUs
    python -m experiments.sweep --acts relu,nelu --datasets digits --seeds 0,1,2 --windows 2,4
    python -m experiments.sweep --preset paper-window-sweep --dry-run  # list the runs

Every run trains in its own directory under --runs-dir through the same code as
`python -m experiments.train`, with the same defaults (`TrainConfig`'s) for what
the grid leaves open. Finished runs (completed or diverged) are skipped;
interrupted, failed or never-finished ones resume from their last checkpoint, so
re-running a sweep after a crash or Ctrl-C picks up where it stopped. `--shard
i/n` takes runs i, i+n, i+2n, ... (0 <= i < n) of the grid, so n processes, GPUs
or machines split one sweep without talking to each other. Tables and plots:
`python -m experiments.report RUNS_DIR`.

Parameters only vary for the activations that take them: relu in a window sweep
is one run per seed, not one per window.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import winact_jax as wa
from experiments.cli import PAPER_TABLE1_ACTS, activation_list, comma_list
from winact_jax.train.outcomes import ExitCode, Status
from winact_jax.train.run_dir import FINISHED, run_status

PAPER_DATASETS = ("tiny_imagenet", "caltech101", "cifar100")
SEEDS = (0, 1, 2)

# The swept settings besides dataset, activation and seed: (Grid field, TrainConfig
# field, its short name in run directory names).
AXES = (
    ("windows", "window", "w"),
    ("influences", "influence", "i"),
    ("thresholds", "threshold", "t"),
    ("window_modes", "window_mode", "m"),
    ("window_overs", "window_over", "o"),
    ("learn_influences", "learn_influence", "li"),
    ("learning_rates", "learning_rate", "lr"),
    ("batch_sizes", "batch_size", "b"),
    ("label_noises", "label_noise", "n"),
    ("normalizations", "normalization", "norm"),
    ("schedules", "schedule", "sched"),
)


@dataclasses.dataclass(frozen=True)
class Grid:
    """A product of settings. An empty axis is `TrainConfig`'s default; `settings`
    holds the fixed `TrainConfig` fields."""

    acts: tuple[str, ...]
    datasets: tuple[str, ...]
    seeds: tuple[int, ...] = SEEDS
    windows: tuple[int, ...] = ()
    influences: tuple[float, ...] = ()
    thresholds: tuple[float, ...] = ()
    window_modes: tuple[str, ...] = ()
    window_overs: tuple[str, ...] = ()
    learn_influences: tuple[bool, ...] = ()
    learning_rates: tuple[float, ...] = ()
    batch_sizes: tuple[int, ...] = ()
    label_noises: tuple[float, ...] = ()
    normalizations: tuple[str, ...] = ()
    schedules: tuple[str, ...] = ()
    settings: tuple[tuple[str, Any], ...] = ()
    tag: str = ""
    """Appended to every run directory name: keeps apart two grids of one preset
    that differ only in fixed `settings` or single-valued axes."""

    @property
    def named_axes(self) -> tuple[str, ...]:
        """The TrainConfig fields this grid varies, which go into run directory names."""
        return tuple(field for axis, field, _ in AXES if len(getattr(self, axis)) > 1)


PRESETS: dict[str, tuple[Grid, ...]] = {
    # The paper's Table 1: SeedBackbone (no normalization), its ten activations and
    # three datasets, Adam 1e-4, batch 64, 50 epochs, window 4, influence 0.1,
    # threshold 0.25, no augmentation (TrainConfig's defaults); three seeds where
    # the paper ran one.
    "paper-table1": (Grid(acts=PAPER_TABLE1_ACTS, datasets=PAPER_DATASETS, settings=(("model", "seed_backbone"),)),),
    # The paper's sensitivity study on CIFAR-100: windows 2/4/8/32 at influence 0.1,
    # then influences 0.001 to 1 at window 4, for every window activation.
    "paper-window-sweep": (
        Grid(
            acts=wa.names("window"),
            datasets=("cifar100",),
            windows=(2, 4, 8, 32),
            settings=(("model", "seed_backbone"),),
        ),
        Grid(
            acts=tuple(n for n in wa.names("window") if "influence" in wa.parameters(n)),
            datasets=("cifar100",),
            influences=(0.001, 0.01, 0.1, 0.5, 1.0),
            settings=(("model", "seed_backbone"),),
        ),
    ),
    # Every activation on the embedded digits, three seeds, sized for a 2-core CPU
    # (about 35 s a run there): SeedBackbone at a quarter width (32 channels), 6
    # epochs of batch 32 at learning rate 1e-3. The paper's 1e-4 and batch 64 need
    # its 50 epochs: after 6 they leave this model near 35% on digits.
    "digits-table": (
        Grid(
            acts=wa.names(),
            datasets=("digits",),
            learning_rates=(1e-3,),
            batch_sizes=(32,),
            settings=(("model", "seed_backbone"), ("width", 0.25), ("epochs", 6), ("progress", False)),
        ),
    ),
}


def _add_seed_presets() -> None:
    """The other seed studies' presets (experiments/presets_seed.py), where present."""
    try:
        from experiments import presets_seed
    except ImportError:
        return
    PRESETS.update(presets_seed.presets())


_add_seed_presets()


def _short(value) -> str:
    if isinstance(value, bool):
        return str(int(value))
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _run_name(config, grid: Grid) -> str:
    parts = [config.dataset, config.model, config.act]
    for _grid_field, field, short in AXES:
        if field in grid.named_axes and getattr(config, field) is not None:
            parts.append(f"{short}{_short(getattr(config, field))}")
    if grid.tag:
        parts.append(grid.tag)
    parts.append(f"s{config.seed}")
    return "-".join(parts)


def expand(grids: Sequence[Grid], runs_dir: str | Path) -> list:
    """The `TrainConfig` of every run in `grids`, without duplicates, in a fixed order.

    Raises `ValueError` (`ConfigError`) for a setting no run can use.
    """
    from winact_jax.train import TrainConfig

    configs, seen = [], set()
    for grid in grids:
        settings = dict(grid.settings)
        for dataset, act in itertools.product(grid.datasets, grid.acts):
            act = wa.canonical_name(act)
            unused = TrainConfig(act=act, dataset=dataset, workdir="", **settings).not_applicable()
            # An axis the activation does not take (or an empty one) keeps the default.
            axes = [
                (field, getattr(grid, axis) if field not in unused and getattr(grid, axis) else (None,))
                for axis, field, _ in AXES
            ]
            fields = [field for field, _ in axes]
            for *values, seed in itertools.product(*(values for _, values in axes), grid.seeds):
                swept = {field: value for field, value in zip(fields, values) if value is not None}
                config = TrainConfig(act=act, dataset=dataset, seed=seed, workdir="", **swept, **settings)
                config = dataclasses.replace(config, workdir=str(Path(runs_dir) / _run_name(config, grid)))
                if config.workdir not in seen:
                    seen.add(config.workdir)
                    configs.append(config)
    return configs


def take_shard(configs: Sequence, shard: tuple[int, int] | None) -> list:
    """Runs i, i+n, i+2n, ... of `configs` for `shard=(i, n)`; all of them for None."""
    if shard is None:
        return list(configs)
    index, count = shard
    return list(configs[index::count])


def execute(configs: Sequence, *, resume_command: str | None = None) -> tuple[dict[Status, int], list[tuple[str, str]]]:
    """Trains `configs` in order, in this process; returns the count of each final
    status and the (workdir, error) of runs that failed to run at all.

    Stops at the first interrupted run (Ctrl-C, SIGTERM): its checkpoint is saved,
    and running the sweep again resumes it. A run that raises (a missing dataset,
    a busy workdir, a broken setting) is counted as failed and the sweep goes on
    with the next.
    """
    import jax
    from tqdm.auto import tqdm

    from winact_jax.train import run

    outcomes: dict[Status, int] = {}
    failures = []
    for config in tqdm(configs, desc="sweep", unit="run"):
        try:
            status = run(config, resume_command=resume_command).status
        except Exception as error:  # noqa: BLE001 - one broken run must not stop the rest of the grid
            status = Status.FAILED
            failures.append((config.workdir, f"{type(error).__name__}: {error}"))
        outcomes[status] = outcomes.get(status, 0) + 1
        if status == Status.INTERRUPTED:
            break
        jax.clear_caches()  # each run compiles its own model; keep memory flat over the grid
    return outcomes, failures


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n with integers 0 <= i < n, got {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"expected i/n with 0 <= i < n, got {text!r}")
    return index, count


def _dataset(text: str) -> str:
    from winact_jax.data import NAMES

    if text not in NAMES:
        raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; known: {', '.join(NAMES)}")
    return text


def _boolean(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError(text)
    return text.lower() in ("true", "1")


def build_parser() -> argparse.ArgumentParser:
    from winact_jax.train.config import describe_default

    parser = argparse.ArgumentParser(
        prog="python -m experiments.sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), help="a predefined grid (the grid flags below then do not apply)"
    )
    parser.add_argument("--acts", type=activation_list, help="comma-separated activations (or 'all')")
    parser.add_argument(
        "--datasets",
        type=comma_list(_dataset, "dataset names"),
        default=("digits",),
        help="comma-separated datasets (default: digits)",
    )
    parser.add_argument(
        "--seeds", type=comma_list(int, "integers"), default=SEEDS, help=f"default: {','.join(map(str, SEEDS))}"
    )

    flags = {"learning_rates": "--lrs"}
    kinds = {
        "windows": (int, "integers"),
        "influences": (float, "numbers"),
        "thresholds": (float, "numbers"),
        "window_modes": (str, "window modes"),
        "window_overs": (str, "window axes"),
        "learn_influences": (_boolean, "true/false values"),
        "learning_rates": (float, "learning rates"),
        "batch_sizes": (int, "integers"),
        "label_noises": (float, "fractions"),
        "normalizations": (str, "normalizations"),
        "schedules": (str, "schedules"),
    }
    for axis, field, _ in AXES:
        convert, what = kinds[axis]
        parser.add_argument(
            flags.get(axis, "--" + axis.replace("_", "-")),
            dest=axis,
            type=comma_list(convert, what),
            default=(),
            help=f"comma-separated {what} (default: the training default, {describe_default(field)})",
        )
    parser.add_argument(
        "--model", help=f"model of every run (default: the training default, {describe_default('model')})"
    )
    parser.add_argument(
        "--epochs", type=int, help=f"epochs of every run (default: the training default, {describe_default('epochs')})"
    )
    parser.add_argument("--runs-dir", help="parent of the run directories (default: runs/<preset> or runs/sweep)")
    parser.add_argument("--shard", type=_parse_shard, help="i/n: run only runs i, i+n, ... (0 <= i < n)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their status, train nothing")
    return parser


def grids_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[Grid, ...]:
    if args.preset:
        return PRESETS[args.preset]
    if not args.acts:
        parser.error("give --preset or --acts")
    settings = {"model": args.model, "epochs": args.epochs}
    return (
        Grid(
            acts=args.acts,
            datasets=args.datasets,
            seeds=args.seeds,
            settings=tuple((k, v) for k, v in settings.items() if v is not None),
            **{axis: getattr(args, axis) for axis, _, _ in AXES},
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    grids = grids_from_args(args, parser)
    runs_dir = Path(args.runs_dir or Path("runs") / (args.preset or "sweep"))
    try:
        configs = take_shard(expand(grids, runs_dir), args.shard)
    except ValueError as error:  # TrainConfig's checks (ConfigError)
        parser.error(str(error))

    statuses = {c.workdir: run_status(c.workdir) for c in configs}
    # A run another process is training now (its workdir locked) is left to it.
    running = [c for c in configs if statuses[c.workdir] == Status.RUNNING]
    todo = [c for c in configs if statuses[c.workdir] not in (*FINISHED, Status.RUNNING)]
    shard = f" (shard {args.shard[0]}/{args.shard[1]})" if args.shard else ""
    print(
        f"{len(configs)} runs{shard} in {runs_dir}: {len(configs) - len(todo) - len(running)} finished, "
        + (f"{len(running)} running elsewhere, " if running else "")
        + f"{len(todo)} to run"
    )
    if args.dry_run:
        for c in configs:
            status = statuses[c.workdir]
            print(f"  {status.value if status else 'new':<11} {c.workdir}")
        return 0

    from winact_jax.backends import prefer_eigen_convolutions

    prefer_eigen_convolutions()  # before JAX first uses a device
    command = " ".join(["python -m experiments.sweep", *(sys.argv[1:] if argv is None else argv)])
    outcomes, failures = execute(todo, resume_command=command)
    if outcomes.get(Status.INTERRUPTED):
        print("sweep interrupted; run the same command again to resume")
        return ExitCode.INTERRUPTED
    for workdir, message in failures:
        print(f"failed: {workdir}: {message}")
    counts = ", ".join(f"{n} {status.value}" for status, n in sorted(outcomes.items())) or "nothing to do"
    print(
        f"sweep{shard}: {len(todo)} runs trained ({counts}), {len(configs) - len(todo) - len(running)} already "
        "finished" + (f", {len(running)} running elsewhere" if running else "") + "; "
        f"tables and plots: python -m experiments.report {runs_dir}"
    )
    return ExitCode.FAILED if failures else ExitCode.COMPLETED


if __name__ == "__main__":
    sys.exit(main())
