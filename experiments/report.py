"""Tables and plots from a directory of training runs.

    python -m experiments.report RUNS_DIR [--out DIR]

Every run directory under RUNS_DIR (one with a `config.json`, as
`python -m experiments.train` writes) is read. For each dataset the report has:

* `<dataset>.md` and `<dataset>.csv`: test accuracy per activation as mean +- std
  over seeds (sample std; a single run has none), the number of completed runs, the
  number of diverged ("null": a non-finite loss or a loss explosion) runs, those
  that have not finished (or are running), and the seed
  paper's number beside ours where it reported one. The mean is over completed
  runs: a diverged run is counted, not averaged, so the table says how often an
  activation fails instead of hiding it (the seed studies dropped such runs
  silently) or letting one blow-up swamp the mean.
* `<dataset>_val_accuracy.png`, `<dataset>_train_loss.png`: per-epoch curves, the
  mean over seeds per activation.
* `<dataset>_test_accuracy.png`: a bar chart of the table, error bars one std.

Runs that differ in more than activation and seed (a window sweep, learning rates)
get one row per setting, labelled with what differs, e.g. `nelu (window=8)`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from winact_jax import extras
from winact_jax.train.outcomes import Status
from winact_jax.train.run_dir import RunRecord, find_runs

REFERENCE_DIR = Path(__file__).parent / "reference"

# Settings that may vary inside one dataset's table; rows are split by those that do.
ROW_SETTINGS = ("model", "window", "influence", "threshold", "window_mode", "window_over", "learn_influence",
                "placement", "learning_rate", "batch_size", "optimizer", "schedule", "augment", "precision",
                "normalization", "width", "epochs", "label_noise")

# One run directory, read once (`winact_jax.train.run_dir` owns the layout).
Run = RunRecord


def reference_accuracy() -> dict[tuple[str, str], float]:
    """The seed paper's Table 1: (activation, dataset) -> test accuracy in %."""
    table = {}
    with open(REFERENCE_DIR / "seed_table1.csv") as f:
        for row in csv.DictReader(f):
            for dataset, value in row.items():
                if dataset != "activation":
                    table[(row["activation"], dataset)] = float(value)
    return table


@dataclasses.dataclass
class Row:
    """One line of a dataset's table."""

    label: str
    activation: str
    accuracies: list[float]
    diverged: int
    unfinished: int
    paper: float | None
    runs: list[Run]

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.accuracies)) if self.accuracies else None

    @property
    def std(self) -> float | None:
        return float(np.std(self.accuracies, ddof=1)) if len(self.accuracies) > 1 else None


def _setting_label(run: Run, varying: Sequence[str]) -> str:
    # Only the settings that apply to this run (a window for nelu, none for relu).
    parts = [f"{key}={run.config[key]}" for key in varying if run.config.get(key) is not None]
    return f"{run.activation} ({', '.join(parts)})" if parts else run.activation


def table_rows(runs: Iterable[Run]) -> list[Row]:
    """Groups one dataset's runs into rows: one per activation and varying setting
    (a setting varies when the runs it applies to take more than one value)."""
    runs = list(runs)
    varying = [
        k for k in ROW_SETTINGS
        if len({json.dumps(r.config[k]) for r in runs if r.config.get(k) is not None}) > 1
    ]
    reference = reference_accuracy()
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[_setting_label(run, varying)].append(run)
    rows = []
    for label, members in groups.items():
        completed = [r.test_accuracy for r in members if r.test_accuracy is not None]
        activation = members[0].activation
        rows.append(
            Row(
                label=label,
                activation=activation,
                accuracies=completed,
                diverged=sum(r.status == Status.DIVERGED for r in members),
                unfinished=sum(not r.finished for r in members),
                paper=reference.get((activation, members[0].dataset)),
                runs=members,
            )
        )
    rows.sort(key=lambda r: (-(r.mean if r.mean is not None else -1.0), r.label))
    return rows


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _mean_std(row: Row) -> str:
    if row.mean is None:
        return "n/a"
    return f"{100 * row.mean:.2f}" + (f" ± {100 * row.std:.2f}" if row.std is not None else "")


def markdown_table(dataset: str, rows: Sequence[Row]) -> str:
    header = ["activation", "test accuracy (%)", "runs", "diverged", "unfinished", "seed paper (%)"]
    lines = [
        f"### {dataset}",
        "",
        "| " + " | ".join(header) + " |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        paper = f"{r.paper:.2f}" if r.paper is not None else "–"
        lines.append(f"| {r.label} | {_mean_std(r)} | {len(r.accuracies)} | {r.diverged} | {r.unfinished} | {paper} |")
    lines += ["", "Mean ± sample std over the completed runs (seeds); diverged runs are counted, not averaged."]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: Sequence[Row]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["activation", "setting", "mean_test_accuracy", "std_test_accuracy", "completed_runs",
                         "diverged_runs", "unfinished_runs", "seed_paper_accuracy", "accuracies"])
        for r in rows:
            writer.writerow([
                r.activation, r.label, _percent(r.mean), _percent(r.std), len(r.accuracies), r.diverged,
                r.unfinished, "" if r.paper is None else f"{r.paper:.2f}",
                " ".join(_percent(a) for a in r.accuracies),
            ])


def _mean_curve(runs: Sequence[Run], key: str) -> tuple[np.ndarray, np.ndarray] | None:
    per_epoch: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        for row in run.metrics:
            value = row.get(key)
            if value is not None and math.isfinite(value):
                per_epoch[int(row["epoch"])].append(float(value))
    if not per_epoch:
        return None
    epochs = np.array(sorted(per_epoch))
    return epochs, np.array([np.mean(per_epoch[e]) for e in epochs])


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend; None, after one notice, when
    matplotlib (the "report" extra) is not installed: the tables are written anyway."""
    matplotlib = extras.optional("matplotlib", "report", "report figures")
    if matplotlib is None:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(path: Path, dataset: str, rows: Sequence[Row], key: str, ylabel: str) -> bool:
    plt = _pyplot()
    if plt is None:
        return False
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.get_cmap("tab20").colors  # up to 20 activations, each its own colour
    drawn = False
    for i, r in enumerate(sorted(rows, key=lambda r: r.label)):
        curve = _mean_curve(r.runs, key)
        if curve is not None:
            ax.plot(*curve, marker="o", markersize=3, label=r.label, color=colors[i % len(colors)])
            drawn = True
    if drawn:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="epoch", ylabel=ylabel, title=f"{dataset}: {ylabel} (mean over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn


def plot_test_accuracy(path: Path, dataset: str, rows: Sequence[Row]) -> bool:
    rows = [r for r in rows if r.mean is not None]
    plt = _pyplot() if rows else None
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(rows) + 2), 4.5))
    positions = np.arange(len(rows))
    means = [100 * r.mean for r in rows]
    errors = [100 * r.std if r.std is not None else 0.0 for r in rows]
    ax.bar(positions, means, yerr=errors, capsize=3, color="tab:blue", alpha=0.8, label="ours (mean ± std)")
    papers = [(i, r.paper) for i, r in enumerate(rows) if r.paper is not None]
    if papers:
        ax.scatter([i for i, _ in papers], [p for _, p in papers], color="tab:red", marker="D", zorder=3,
                   label="seed paper")
    ax.set_xticks(positions, [r.label for r in rows], rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="test accuracy (%)", title=f"{dataset}: test accuracy")
    low = min(m - e for m, e in zip(means, errors))
    ax.set_ylim(max(0.0, low - 5), min(100.0, max(m + e for m, e in zip(means, errors)) + 3))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_report(runs: Sequence[Run], out_dir: str | os.PathLike) -> list[Path]:
    """Writes every dataset's table and plots of `runs` (`find_runs(RUNS_DIR)`) to
    `out_dir`; returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_dataset: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_dataset[run.dataset].append(run)
    written = []
    for dataset, members in sorted(by_dataset.items()):
        rows = table_rows(members)
        (out / f"{dataset}.md").write_text(markdown_table(dataset, rows))
        write_csv(out / f"{dataset}.csv", rows)
        written += [out / f"{dataset}.md", out / f"{dataset}.csv"]
        for name, drawn in [
            (f"{dataset}_val_accuracy.png", plot_curves(out / f"{dataset}_val_accuracy.png", dataset, rows,
                                                         "val_accuracy", "validation accuracy")),
            (f"{dataset}_train_loss.png", plot_curves(out / f"{dataset}_train_loss.png", dataset, rows,
                                                       "train_loss", "training loss")),
            (f"{dataset}_test_accuracy.png", plot_test_accuracy(out / f"{dataset}_test_accuracy.png", dataset, rows)),
        ]:
            if drawn:
                written.append(out / name)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs_dir", metavar="RUNS_DIR", help="directory holding run directories (searched recursively)")
    parser.add_argument("--out", metavar="DIR", help="where to write the report (default: RUNS_DIR/report)")
    args = parser.parse_args(argv)
    if not Path(args.runs_dir).is_dir():
        parser.error(f"RUNS_DIR {args.runs_dir!r} is not a directory")
    out_dir = args.out or os.path.join(args.runs_dir, "report")
    runs = find_runs(args.runs_dir)
    written = write_report(runs, out_dir)
    for path in written:
        if path.suffix == ".md":
            print(path.read_text())
    datasets = sorted({r.dataset for r in runs})
    print(f"report: {len(runs)} runs over {len(datasets)} dataset(s) ({', '.join(datasets) or 'none'}); "
          f"{len(written)} files in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
