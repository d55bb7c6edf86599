"""Tables and plots from a directory of training runs.

    python -m experiments.report RUNS_DIR [--out DIR]

Every run directory under RUNS_DIR (one with a `config.json`, as
`python -m experiments.train` writes) is read. For each dataset the report has:

* `<dataset>.md` and `<dataset>.csv`: test accuracy per activation as mean +- std
  over the non-null runs (sample std; a single run has none), how many runs that
  is, the number of null runs, those that have not finished (or are running), the
  mean training and inference time per run, and the seed paper's number beside
  ours where it reported one.

  A run is *null* when it diverged (a non-finite loss or a loss explosion) or when
  it completed but learned nothing: its test accuracy is at most
  `CHANCE_FACTOR / num_classes` (1.5x chance: 15% with 10 classes; chance itself
  is 1 / num_classes). Null runs are counted, not averaged, so the table says how
  often an activation fails instead of hiding it (the seed studies dropped such
  runs silently) or letting one failure swamp the mean. `num_classes` comes from
  the run's summary; runs written before the summary held it fall back to
  `KNOWN_NUM_CLASSES`, and a run of an unknown dataset is never counted as at
  chance.

  Times: `train time (s)` is the summary's `train_time_s` (training epochs,
  validation included, compilation of the first steps included), `test time (s)`
  its `test_time_s` (one pass over the test split, compiled beforehand); each the
  mean over the completed runs, "-" where no run recorded it (runs older than
  the field).
* `<dataset>_statistics.md` and `.csv`, when runs logged activation statistics
  (`act/...` keys of metrics.jsonl, see `winact_jax.models.statistics`): the
  final epoch's mean zero fraction and mean dead fraction over the activation
  layers, and the mean learned influence, each the mean over the completed runs
  (null ones included: dead units may be why a run is at chance) of a row.
  Runs that logged none are left out.
* `<dataset>_dead_fraction.png` (and `<dataset>_influence.png` with learned
  influences): the final epoch's dead-channel fraction per activation layer, one
  line per row, ReLU drawn in black. Layers are in model order (`layer_order`):
  the stem first, then by name with numbers compared as numbers, which is the
  forward order of every model of `winact_jax.models` (the logged order is
  alphabetical: `stem_act` after `blocks.*`).
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
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from winact_jax import extras
from winact_jax.models.statistics import ACTIVATION_PREFIX, INFLUENCE_PREFIX
from winact_jax.train.outcomes import Status
from winact_jax.train.run_dir import RunRecord, find_runs

REFERENCE_DIR = Path(__file__).parent / "reference"

# Settings that may vary inside one dataset's table; rows are split by those that do.
ROW_SETTINGS = (
    "model",
    "window",
    "influence",
    "threshold",
    "window_mode",
    "window_over",
    "learn_influence",
    "placement",
    "learning_rate",
    "batch_size",
    "optimizer",
    "schedule",
    "augment",
    "precision",
    "normalization",
    "width",
    "epochs",
    "label_noise",
)

# One run directory, read once (`winact_jax.train.run_dir` owns the layout).
Run = RunRecord

# A completed run whose test accuracy is at most CHANCE_FACTOR / num_classes is null.
CHANCE_FACTOR = 1.5

# Classes per dataset (winact_jax.data's loaders), for summaries written before
# they recorded `num_classes`; loading a dataset to count them would be slow.
KNOWN_NUM_CLASSES = {
    "digits": 10,
    "mnist5k": 10,
    "cifar10": 10,
    "cifar100": 100,
    "stl10": 10,
    "caltech101": 101,
    "tiny_imagenet": 200,
}

MEAN_ZERO_FRACTION = f"{ACTIVATION_PREFIX}/mean_zero_fraction"
MEAN_DEAD_FRACTION = f"{ACTIVATION_PREFIX}/mean_dead_fraction"


def reference_accuracy() -> dict[tuple[str, str], float]:
    """The seed paper's Table 1: (activation, dataset) -> test accuracy in %."""
    table = {}
    with open(REFERENCE_DIR / "seed_table1.csv") as f:
        for row in csv.DictReader(f):
            for dataset, value in row.items():
                if dataset != "activation":
                    table[(row["activation"], dataset)] = float(value)
    return table


def num_classes(run: Run) -> int | None:
    """The run's number of classes: its summary's, else its dataset's known count."""
    if run.summary is not None and run.summary.num_classes is not None:
        return int(run.summary.num_classes)
    return KNOWN_NUM_CLASSES.get(run.dataset)


def at_chance(run: Run) -> bool:
    """Whether `run` completed with a test accuracy <= CHANCE_FACTOR / num_classes."""
    classes = num_classes(run)
    return run.test_accuracy is not None and classes is not None and run.test_accuracy <= CHANCE_FACTOR / classes


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


@dataclasses.dataclass
class Row:
    """One line of a dataset's table."""

    label: str
    activation: str
    accuracies: list[float]  # the non-null completed runs'
    diverged: int
    unfinished: int
    paper: float | None
    runs: list[Run]
    at_chance: int = 0  # completed runs at chance (null, like diverged ones)
    train_times: list[float] = dataclasses.field(default_factory=list)  # completed runs'
    test_times: list[float] = dataclasses.field(default_factory=list)  # completed runs' that recorded one

    @property
    def null(self) -> int:
        return self.diverged + self.at_chance

    @property
    def mean(self) -> float | None:
        return _mean(self.accuracies)

    @property
    def std(self) -> float | None:
        return float(np.std(self.accuracies, ddof=1)) if len(self.accuracies) > 1 else None

    @property
    def train_time(self) -> float | None:
        return _mean(self.train_times)

    @property
    def test_time(self) -> float | None:
        return _mean(self.test_times)


def _setting_label(run: Run, varying: Sequence[str]) -> str:
    # Only the settings that apply to this run (a window for nelu, none for relu).
    parts = [f"{key}={run.config[key]}" for key in varying if run.config.get(key) is not None]
    return f"{run.activation} ({', '.join(parts)})" if parts else run.activation


def table_rows(runs: Iterable[Run]) -> list[Row]:
    """Groups one dataset's runs into rows: one per activation and varying setting
    (a setting varies when the runs it applies to take more than one value)."""
    runs = list(runs)
    varying = [
        k for k in ROW_SETTINGS if len({json.dumps(r.config[k]) for r in runs if r.config.get(k) is not None}) > 1
    ]
    reference = reference_accuracy()
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[_setting_label(run, varying)].append(run)
    rows = []
    for label, members in groups.items():
        completed = [r for r in members if r.test_accuracy is not None]
        activation = members[0].activation
        rows.append(
            Row(
                label=label,
                activation=activation,
                accuracies=[r.test_accuracy for r in completed if not at_chance(r)],
                diverged=sum(r.status == Status.DIVERGED for r in members),
                unfinished=sum(not r.finished for r in members),
                paper=reference.get((activation, members[0].dataset)),
                runs=members,
                at_chance=sum(at_chance(r) for r in completed),
                train_times=[float(r.summary.train_time_s) for r in completed],
                test_times=[float(r.summary.test_time_s) for r in completed if r.summary.test_time_s is not None],
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


def _seconds(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _null_runs(row: Row) -> str:
    if not row.null:
        return "0"
    parts = [f"{row.diverged} diverged"] if row.diverged else []
    parts += [f"{row.at_chance} at chance"] if row.at_chance else []
    return f"{row.null} ({', '.join(parts)})"


def _table_head(title: str, header: Sequence[str]) -> list[str]:
    """A Markdown heading and table header: the first column left-aligned (the
    row's label), every other one right-aligned (numbers)."""
    return [title, "", "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]


def markdown_table(dataset: str, rows: Sequence[Row]) -> str:
    lines = _table_head(
        f"### {dataset}",
        [
            "activation",
            "test accuracy (%, non-null runs)",
            "runs",
            "null runs",
            "unfinished",
            "train time (s)",
            "test time (s)",
            "seed paper (%)",
        ],
    )
    for r in rows:
        paper = f"{r.paper:.2f}" if r.paper is not None else "–"
        lines.append(
            f"| {r.label} | {_mean_std(r)} | {len(r.accuracies)} | {_null_runs(r)} | {r.unfinished} | "
            f"{_seconds(r.train_time, 1)} | {_seconds(r.test_time, 3)} | {paper} |"
        )
    lines += [
        "",
        f"Mean ± sample std over the non-null completed runs (seeds), `runs` of them. Null runs are "
        f"counted, not averaged: diverged ones, and completed ones at chance (test accuracy <= "
        f"{CHANCE_FACTOR:g} / number of classes). Times: mean per completed run; training time "
        f"includes validation and compilation, test time is one compiled pass over the test split.",
    ]
    return "\n".join(lines) + "\n"


def _csv_number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def write_csv(path: Path, rows: Sequence[Row]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "activation",
                "setting",
                "mean_test_accuracy",
                "std_test_accuracy",
                "completed_runs",
                "null_runs",
                "diverged_runs",
                "at_chance_runs",
                "unfinished_runs",
                "mean_train_time_s",
                "mean_test_time_s",
                "seed_paper_accuracy",
                "accuracies",
            ]
        )
        for r in rows:
            writer.writerow(
                [
                    r.activation,
                    r.label,
                    _percent(r.mean),
                    _percent(r.std),
                    len(r.accuracies),
                    r.null,
                    r.diverged,
                    r.at_chance,
                    r.unfinished,
                    _csv_number(r.train_time, 3),
                    _csv_number(r.test_time, 4),
                    _csv_number(r.paper, 2),
                    " ".join(_percent(a) for a in r.accuracies),
                ]
            )


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
        ax.scatter(
            [i for i, _ in papers], [p for _, p in papers], color="tab:red", marker="D", zorder=3, label="seed paper"
        )
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


# --------------------------------------------------------------------------- activation statistics


@dataclasses.dataclass
class StatisticsRow:
    """A table row's activation statistics at the final epoch, means over its runs."""

    label: str
    activation: str
    runs: int  # completed runs that logged statistics
    zero_fraction: float | None  # mean over the layers (act/mean_zero_fraction)
    dead_fraction: float | None  # mean over the layers (act/mean_dead_fraction)
    dead_per_layer: dict[str, float]  # layer -> dead fraction, layers in model order
    influence_per_layer: dict[str, float]  # layer -> mean learned influence

    @property
    def influence(self) -> float | None:
        """The mean learned influence over the layers; None without learned influence."""
        return _mean(list(self.influence_per_layer.values()))


def final_statistics(run: Run) -> dict[str, float]:
    """The finite `act/...` and `influence/...` values of the last metrics record
    that has any (the final epoch's); {} if the run logged none."""
    prefixes = (f"{ACTIVATION_PREFIX}/", f"{INFLUENCE_PREFIX}/")
    for record in reversed(run.metrics):
        values = {
            key: float(value)
            for key, value in record.items()
            if key.startswith(prefixes) and isinstance(value, (int, float)) and math.isfinite(value)
        }
        if values:
            return values
    return {}


def layer_order(layer: str) -> tuple:
    """Sort key putting a model's activation layer names in forward order: the
    stem first, then by name with digit runs compared as numbers
    (`blocks.2.act1` before `blocks.10.act1`, `conv2_act` before `fc1_act`)."""
    pieces = re.split(r"(\d+)", layer)  # text, number, text, ...: numbers at odd places
    return (not layer.startswith("stem"), tuple(int(p) if i % 2 else p for i, p in enumerate(pieces)))


def _per_layer(statistics: Sequence[dict[str, float]], prefix: str, name: str) -> dict[str, float]:
    """`{layer: mean over runs}` of the keys `<prefix>/<layer>/<name>`, layers in
    model order (`layer_order`)."""
    values: dict[str, list[float]] = defaultdict(list)
    for run_statistics in statistics:
        for key, value in run_statistics.items():
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == prefix and parts[2] == name:
                values[parts[1]].append(value)
    return {layer: float(np.mean(values[layer])) for layer in sorted(values, key=layer_order)}


def statistics_rows(rows: Sequence[Row]) -> list[StatisticsRow]:
    """The activation statistics of `rows` (from `table_rows`), over each row's
    completed runs (null ones included) that logged them; rows without are left out."""
    result = []
    for row in rows:
        statistics = [s for s in (final_statistics(r) for r in row.runs if r.test_accuracy is not None) if s]
        if not statistics:
            continue
        result.append(
            StatisticsRow(
                label=row.label,
                activation=row.activation,
                runs=len(statistics),
                zero_fraction=_mean([s[MEAN_ZERO_FRACTION] for s in statistics if MEAN_ZERO_FRACTION in s]),
                dead_fraction=_mean([s[MEAN_DEAD_FRACTION] for s in statistics if MEAN_DEAD_FRACTION in s]),
                dead_per_layer=_per_layer(statistics, ACTIVATION_PREFIX, "dead_fraction"),
                influence_per_layer=_per_layer(statistics, INFLUENCE_PREFIX, "mean"),
            )
        )
    return result


def _fraction(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def statistics_markdown(dataset: str, rows: Sequence[StatisticsRow]) -> str:
    lines = _table_head(
        f"### {dataset}: activation statistics (final epoch)",
        ["activation", "runs", "mean zero fraction", "mean dead fraction", "learned influence (mean)"],
    )
    for r in rows:
        lines.append(
            f"| {r.label} | {r.runs} | {_fraction(r.zero_fraction)} | {_fraction(r.dead_fraction)} | "
            f"{_fraction(r.influence, 4)} |"
        )
    lines += [
        "",
        "Fractions of outputs exactly zero and of channels zero for the whole measured batch, "
        "unweighted means over the activation layers, then means over the completed runs (null ones "
        "included) that logged them.",
    ]
    return "\n".join(lines) + "\n"


def write_statistics_csv(path: Path, rows: Sequence[StatisticsRow]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "activation",
                "setting",
                "runs",
                "mean_zero_fraction",
                "mean_dead_fraction",
                "mean_learned_influence",
                "dead_fraction_per_layer",
                "influence_per_layer",
            ]
        )
        for r in rows:
            writer.writerow(
                [
                    r.activation,
                    r.label,
                    r.runs,
                    _csv_number(r.zero_fraction, 6),
                    _csv_number(r.dead_fraction, 6),
                    _csv_number(r.influence, 6),
                    " ".join(f"{layer}={value:.6f}" for layer, value in r.dead_per_layer.items()),
                    " ".join(f"{layer}={value:.6f}" for layer, value in r.influence_per_layer.items()),
                ]
            )


def plot_per_layer(path: Path, dataset: str, rows: Sequence[StatisticsRow], attribute: str, ylabel: str) -> bool:
    """One line per row of `getattr(row, attribute)` (`{layer: value}`) over the
    layers in logged order; ReLU in black, the others in colour. False if nothing to draw."""
    curves = [(r, getattr(r, attribute)) for r in rows if getattr(r, attribute)]
    plt = _pyplot() if curves else None
    if plt is None:
        return False
    layers = sorted({layer for _, values in curves for layer in values}, key=layer_order)
    position = {layer: i for i, layer in enumerate(layers)}
    fig, ax = plt.subplots(figsize=(max(8, 0.35 * len(layers) + 3), 5))
    colors = plt.get_cmap("tab10").colors  # strong colours; dashed lines after the first ten
    others = 0
    for r, values in sorted(curves, key=lambda c: c[0].label):
        if r.activation == "relu":
            style = {"color": "black", "linewidth": 2.5, "zorder": 3}
        else:
            style = {
                "color": colors[others % len(colors)],
                "linewidth": 1.2,
                "linestyle": "-" if others < len(colors) else "--",
            }
            others += 1
        ax.plot(
            [position[layer] for layer in values],
            list(values.values()),
            marker="o",
            markersize=3,
            label=r.label,
            **style,
        )
    ax.set_xticks(range(len(layers)), layers, rotation=60, ha="right", fontsize=7)
    ax.set(
        xlabel="activation layer (model order)",
        ylabel=ylabel,
        title=f"{dataset}: {ylabel} per layer, final epoch (mean over seeds)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- the report


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
            (
                f"{dataset}_val_accuracy.png",
                plot_curves(out / f"{dataset}_val_accuracy.png", dataset, rows, "val_accuracy", "validation accuracy"),
            ),
            (
                f"{dataset}_train_loss.png",
                plot_curves(out / f"{dataset}_train_loss.png", dataset, rows, "train_loss", "training loss"),
            ),
            (f"{dataset}_test_accuracy.png", plot_test_accuracy(out / f"{dataset}_test_accuracy.png", dataset, rows)),
        ]:
            if drawn:
                written.append(out / name)
        statistics = statistics_rows(rows)
        if statistics:
            (out / f"{dataset}_statistics.md").write_text(statistics_markdown(dataset, statistics))
            write_statistics_csv(out / f"{dataset}_statistics.csv", statistics)
            written += [out / f"{dataset}_statistics.md", out / f"{dataset}_statistics.csv"]
            for name, attribute, ylabel in [
                (f"{dataset}_dead_fraction.png", "dead_per_layer", "dead channel fraction"),
                (f"{dataset}_influence.png", "influence_per_layer", "learned influence (mean)"),
            ]:
                if plot_per_layer(out / name, dataset, statistics, attribute, ylabel):
                    written.append(out / name)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    print(
        f"report: {len(runs)} runs over {len(datasets)} dataset(s) ({', '.join(datasets) or 'none'}); "
        f"{len(written)} files in {out_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
