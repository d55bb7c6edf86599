"""Grids of training runs: activations x datasets x seeds (x windows, influences, ...).

    python -m experiments.sweep --preset digits-table
    python -m experiments.sweep --preset paper-table1 --shard 0/4      # one of 4 GPUs
    python -m experiments.sweep --acts relu,nelu --datasets digits --seeds 0,1,2 --windows 2,4
    python -m experiments.sweep --preset paper-window-sweep --dry-run  # list the runs

Every run trains in its own directory under --runs-dir through the same code as
`python -m experiments.train`. Finished runs (status "completed" or "diverged") are
skipped; interrupted or never-finished ones resume from their last checkpoint, so
re-running a sweep after a crash or Ctrl-C picks up where it stopped. `--shard i/n`
takes runs i, i+n, i+2n, ... (0 <= i < n) of the grid, so n processes, GPUs or
machines split one sweep without talking to each other. Tables and plots:
`python -m experiments.report RUNS_DIR`.

Parameters only vary for the activations that take them: relu in a window sweep
is one run per seed, not one per window.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import winact_jax as wa

FINISHED = ("completed", "diverged")

# The ten activations of the seed paper's Table 1, in its order.
PAPER_TABLE1_ACTS = (
    "relu", "leaky_relu", "gelu", "max", "max_relu", "softmax_threshold", "nelu", "pnelu", "inhibitor", "excitator",
)
PAPER_DATASETS = ("tiny_imagenet", "caltech101", "cifar100")
SEEDS = (0, 1, 2)


@dataclasses.dataclass(frozen=True)
class Grid:
    """A product of settings; `settings` holds the fixed `TrainConfig` fields."""

    acts: tuple[str, ...]
    datasets: tuple[str, ...]
    seeds: tuple[int, ...] = SEEDS
    windows: tuple[int, ...] = (4,)
    influences: tuple[float, ...] = (0.1,)
    thresholds: tuple[float, ...] = (0.25,)
    learning_rates: tuple[float, ...] = (1e-4,)
    batch_sizes: tuple[int, ...] = (64,)
    settings: tuple[tuple[str, Any], ...] = ()

    @property
    def named_axes(self) -> tuple[str, ...]:
        """The swept settings that go into run directory names."""
        axes = []
        for field, short in (("windows", "w"), ("influences", "i"), ("thresholds", "t"),
                             ("learning_rates", "lr"), ("batch_sizes", "b")):
            if len(getattr(self, field)) > 1:
                axes.append(short)
        return tuple(axes)


PRESETS: dict[str, tuple[Grid, ...]] = {
    # The paper's Table 1: SeedBackbone (no normalization), its ten activations and
    # three datasets, Adam 1e-4, batch 64, 50 epochs, window 4, influence 0.1,
    # threshold 0.25, no augmentation; three seeds where the paper ran one.
    "paper-table1": (
        Grid(acts=PAPER_TABLE1_ACTS, datasets=PAPER_DATASETS, settings=(("model", "seed_backbone"),)),
    ),
    # The paper's sensitivity study on CIFAR-100: windows 2/4/8/32 at influence 0.1,
    # then influences 0.001 to 1 at window 4, for every window activation.
    "paper-window-sweep": (
        Grid(acts=wa.names("window"), datasets=("cifar100",), windows=(2, 4, 8, 32),
             settings=(("model", "seed_backbone"),)),
        Grid(acts=tuple(n for n in wa.names("window") if "influence" in wa.parameters(n)), datasets=("cifar100",),
             influences=(0.001, 0.01, 0.1, 0.5, 1.0), settings=(("model", "seed_backbone"),)),
    ),
    # Every activation on the embedded digits, three seeds, sized for a 2-core CPU
    # (about 35 s a run there): SeedBackbone at a quarter width (32 channels), 6
    # epochs of batch 32 at learning rate 1e-3. The paper's 1e-4 and batch 64 need
    # its 50 epochs: after 6 they leave this model near 35% on digits.
    "digits-table": (
        Grid(acts=wa.names(), datasets=("digits",), learning_rates=(1e-3,), batch_sizes=(32,),
             settings=(("model", "seed_backbone"), ("width", 0.25), ("epochs", 6), ("progress", False))),
    ),
}


def _run_name(config, grid: Grid) -> str:
    parts = [config.dataset, config.model, config.act]
    values = {"w": config.window, "i": config.influence, "t": config.threshold, "lr": config.learning_rate,
              "b": config.batch_size}
    accepted = wa.parameters(config.act)
    for axis in grid.named_axes:
        parameter = {"w": "window", "i": "influence", "t": "threshold"}.get(axis)
        if parameter is None or parameter in accepted:
            parts.append(f"{axis}{values[axis]:g}")
    parts.append(f"s{config.seed}")
    return "-".join(parts)


def expand(grids: Sequence[Grid], runs_dir: str | Path) -> list:
    """The `TrainConfig` of every run in `grids`, without duplicates, in a fixed order."""
    from winact_jax.train import TrainConfig

    configs, seen = [], set()
    for grid in grids:
        settings = dict(grid.settings)
        for dataset in grid.datasets:
            for act in grid.acts:
                accepted = wa.parameters(act)
                # A parameter the activation does not take keeps one (default) value.
                windows = grid.windows if "window" in accepted else grid.windows[:1]
                influences = grid.influences if "influence" in accepted else grid.influences[:1]
                thresholds = grid.thresholds if "threshold" in accepted else grid.thresholds[:1]
                for window in windows:
                    for influence in influences:
                        for threshold in thresholds:
                            for lr in grid.learning_rates:
                                for batch_size in grid.batch_sizes:
                                    for seed in grid.seeds:
                                        config = TrainConfig(
                                            act=wa.canonical_name(act), dataset=dataset, seed=seed, window=window,
                                            influence=influence, threshold=threshold, learning_rate=lr,
                                            batch_size=batch_size, workdir="", **settings,
                                        )
                                        config = dataclasses.replace(
                                            config, workdir=str(Path(runs_dir) / _run_name(config, grid))
                                        )
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


def run_status(workdir: str | Path) -> str:
    """"completed", "diverged", "interrupted", "unfinished" (started, no summary) or "new"."""
    summary_path = Path(workdir) / "summary.json"
    if summary_path.exists():
        try:
            return json.loads(summary_path.read_text()).get("status", "unfinished")
        except json.JSONDecodeError:
            return "unfinished"
    return "unfinished" if (Path(workdir) / "config.json").exists() else "new"


def execute(configs: Sequence, *, resume_command: str | None = None) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Trains `configs` in order, in this process; returns the count of each final
    status and the (workdir, error) of runs that failed to run at all.

    Stops at the first interrupted run (Ctrl-C, SIGTERM): its checkpoint is saved,
    and running the sweep again resumes it. A run that raises (a missing dataset,
    a broken setting) is recorded and the sweep goes on with the next.
    """
    import jax
    from tqdm.auto import tqdm

    from winact_jax.train import run

    outcomes: dict[str, int] = {}
    failures = []
    for config in tqdm(configs, desc="sweep", unit="run"):
        try:
            status = run(config, resume_command=resume_command).get("status", "unknown")
        except Exception as error:  # noqa: BLE001 - one broken run must not stop the rest of the grid
            status = "failed"
            failures.append((config.workdir, f"{type(error).__name__}: {error}"))
        outcomes[status] = outcomes.get(status, 0) + 1
        if status == "interrupted":
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


def _list_of(convert, what: str):
    def parse(text: str):
        try:
            values = tuple(convert(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}")
        return values

    return parse


def _activations(text: str) -> tuple[str, ...]:
    if text.strip() == "all":
        return wa.names()
    names = _list_of(str, "activation names")(text)
    for name in names:
        try:
            wa.canonical_name(name.strip())
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return tuple(name.strip() for name in names)


def _datasets(text: str) -> tuple[str, ...]:
    from winact_jax.data import NAMES

    names = _list_of(str, "dataset names")(text)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown dataset {unknown[0]!r}; known: {', '.join(NAMES)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a predefined grid (the grid flags below "
                        "then do not apply)")
    parser.add_argument("--acts", type=_activations, help="comma-separated activations (or 'all')")
    parser.add_argument("--datasets", type=_datasets, default=("digits",),
                        help="comma-separated datasets (default: digits)")
    parser.add_argument("--seeds", type=_list_of(int, "integers"), default=SEEDS, help="default: 0,1,2")
    parser.add_argument("--windows", type=_list_of(int, "integers"), default=(4,), help="default: 4")
    parser.add_argument("--influences", type=_list_of(float, "numbers"), default=(0.1,), help="default: 0.1")
    parser.add_argument("--thresholds", type=_list_of(float, "numbers"), default=(0.25,), help="default: 0.25")
    parser.add_argument("--lrs", type=_list_of(float, "numbers"), default=(1e-4,), help="learning rates (default: 1e-4)")
    parser.add_argument("--batch-sizes", type=_list_of(int, "integers"), default=(64,), help="default: 64")
    parser.add_argument("--model", default="seed_backbone", help="model of every run (default: seed_backbone)")
    parser.add_argument("--epochs", type=int, help="epochs of every run (default: the training default)")
    parser.add_argument("--runs-dir", help="parent of the run directories (default: runs/<preset> or runs/sweep)")
    parser.add_argument("--shard", type=_parse_shard, help="i/n: run only runs i, i+n, ... (0 <= i < n)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their status, train nothing")
    return parser


def grids_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[Grid, ...]:
    if args.preset:
        return PRESETS[args.preset]
    if not args.acts:
        parser.error("give --preset or --acts")
    settings = [("model", args.model)] + ([("epochs", args.epochs)] if args.epochs else [])
    return (Grid(acts=args.acts, datasets=args.datasets, seeds=args.seeds, windows=args.windows,
                 influences=args.influences, thresholds=args.thresholds, learning_rates=args.lrs,
                 batch_sizes=args.batch_sizes, settings=tuple(settings)),)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    grids = grids_from_args(args, parser)
    runs_dir = Path(args.runs_dir or Path("runs") / (args.preset or "sweep"))
    try:
        configs = take_shard(expand(grids, runs_dir), args.shard)
    except (ValueError, TypeError) as error:
        parser.error(str(error))

    statuses = {c.workdir: run_status(c.workdir) for c in configs}
    todo = [c for c in configs if statuses[c.workdir] not in FINISHED]
    shard = f" (shard {args.shard[0]}/{args.shard[1]})" if args.shard else ""
    print(f"{len(configs)} runs{shard} in {runs_dir}: {len(configs) - len(todo)} finished, {len(todo)} to run")
    if args.dry_run:
        for c in configs:
            print(f"  {statuses[c.workdir]:<11} {c.workdir}")
        return 0

    from winact_jax.backends import prefer_eigen_convolutions

    prefer_eigen_convolutions()  # before JAX first uses a device
    command = " ".join(["python -m experiments.sweep", *(sys.argv[1:] if argv is None else argv)])
    outcomes, failures = execute(todo, resume_command=command)
    if outcomes.get("interrupted"):
        print("sweep interrupted; run the same command again to resume")
        return 130
    for workdir, message in failures:
        print(f"failed: {workdir}: {message}")
    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcomes.items())) or "nothing to do"
    print(f"sweep{shard}: {len(todo)} runs trained ({counts}), {len(configs) - len(todo)} already finished; "
          f"tables and plots: python -m experiments.report {runs_dir}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
