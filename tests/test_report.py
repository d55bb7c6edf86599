"""`python -m experiments.report` on run directories fabricated with known numbers."""

from __future__ import annotations

import csv
import os
import socket
import json
from pathlib import Path

import pytest

from experiments import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fabricate_run(root: Path, dataset: str, act: str, seed: int, status: str, test_accuracy, *,
                  window: int = 4, curve=(0.5, 0.7, 0.8), **config) -> Path:
    """A run directory as `experiments.train` leaves it: config, per-epoch metrics, summary."""
    directory = root / f"{dataset}-seed_backbone-{act}-w{window}-s{seed}"
    directory.mkdir(parents=True)
    settings = {"act": act, "dataset": dataset, "model": "seed_backbone", "seed": seed, "window": window,
                "influence": 0.1, "threshold": 0.25, "learning_rate": 1e-4, "batch_size": 64, **config}
    (directory / "config.json").write_text(json.dumps({"config": settings, "versions": {"jax": "x"}}))
    with open(directory / "metrics.jsonl", "w") as f:
        for epoch, accuracy in enumerate(curve, start=1):
            f.write(json.dumps({"epoch": epoch, "train_loss": 2.0 / epoch, "train_accuracy": accuracy,
                                "val_loss": 2.5 / epoch, "val_accuracy": accuracy - 0.05}) + "\n")
    if status is not None:
        (directory / "summary.json").write_text(json.dumps(
            {"status": status, "test_accuracy": test_accuracy, "best_val_accuracy": 0.75,
             "epochs_completed": len(curve), "activation": act, "dataset": dataset, "model": "seed_backbone"}))
    return directory


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    # relu: three seeds, 0.40 / 0.42 / 0.44 -> mean 42.00, sample std 2.00
    for seed, accuracy in enumerate([0.40, 0.42, 0.44]):
        fabricate_run(root, "cifar100", "relu", seed, "completed", accuracy)
    # excitator: two completed (0.50, 0.46 -> 48.00 +- 2.83) and one null run
    fabricate_run(root, "cifar100", "excitator", 0, "completed", 0.50)
    fabricate_run(root, "cifar100", "excitator", 1, "completed", 0.46)
    fabricate_run(root, "cifar100", "excitator", 2, "diverged", 0.01, curve=(0.3, float("nan")))
    # nelu: one completed, one still running (no summary yet), one interrupted
    fabricate_run(root, "cifar100", "nelu", 0, "completed", 0.41)
    fabricate_run(root, "cifar100", "nelu", 1, None, None)
    fabricate_run(root, "cifar100", "nelu", 2, "interrupted", None)
    # a second dataset, with an activation the paper did not report
    fabricate_run(root, "digits", "mish", 0, "completed", 0.9)
    return root


def test_rows_have_mean_std_counts_and_the_paper_number(runs):
    rows = {r.label: r for r in report.table_rows(r for r in report.find_runs(runs) if r.dataset == "cifar100")}
    assert set(rows) == {"relu", "excitator", "nelu"}
    relu, excitator, nelu = rows["relu"], rows["excitator"], rows["nelu"]
    assert relu.mean == pytest.approx(0.42) and relu.std == pytest.approx(0.02)
    assert (len(relu.accuracies), relu.diverged, relu.unfinished) == (3, 0, 0)
    assert relu.paper == 40.30
    assert excitator.mean == pytest.approx(0.48) and excitator.std == pytest.approx(0.0282843, rel=1e-5)
    assert (len(excitator.accuracies), excitator.diverged, excitator.unfinished) == (2, 1, 0)
    assert excitator.paper == 47.37
    assert nelu.mean == pytest.approx(0.41) and nelu.std is None
    assert (len(nelu.accuracies), nelu.diverged, nelu.unfinished) == (1, 0, 2)


def test_markdown_and_csv_files(runs, tmp_path):
    out = tmp_path / "report"
    written = report.write_report(report.find_runs(runs), out)
    names = {p.name for p in written}
    assert {"cifar100.md", "cifar100.csv", "digits.md", "digits.csv"} <= names

    markdown = (out / "cifar100.md").read_text()
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert lines[0] == "| activation | test accuracy (%) | runs | diverged | unfinished | seed paper (%) |"
    # sorted by mean accuracy, best first
    assert lines[1] == "| excitator | 48.00 ± 2.83 | 2 | 1 | 0 | 47.37 |"
    assert lines[2] == "| relu | 42.00 ± 2.00 | 3 | 0 | 0 | 40.30 |"
    assert lines[3] == "| nelu | 41.00 | 1 | 0 | 2 | 40.03 |"
    assert "| mish | 90.00 | 1 | 0 | 0 | – |" in (out / "digits.md").read_text()

    with open(out / "cifar100.csv") as f:
        table = {row["activation"]: row for row in csv.DictReader(f)}
    assert table["relu"]["mean_test_accuracy"] == "42.00"
    assert table["relu"]["std_test_accuracy"] == "2.00"
    assert table["relu"]["accuracies"] == "40.00 42.00 44.00"
    assert table["excitator"]["diverged_runs"] == "1"
    assert table["nelu"]["unfinished_runs"] == "2"
    assert table["nelu"]["std_test_accuracy"] == ""


def test_plots_are_png_files(runs, tmp_path):
    out = tmp_path / "report"
    report.write_report(report.find_runs(runs), out)
    for name in ["cifar100_val_accuracy.png", "cifar100_train_loss.png", "cifar100_test_accuracy.png",
                 "digits_test_accuracy.png"]:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 5000, name  # a drawn figure, not an empty canvas


def test_curves_average_seeds_and_skip_non_finite(runs):
    runs_by_act = [r for r in report.find_runs(runs) if r.activation == "excitator"]
    epochs, values = report._mean_curve(runs_by_act, "val_accuracy")
    assert list(epochs) == [1, 2, 3]
    # epoch 1: (0.45 + 0.45 + 0.25) / 3; epoch 2: the diverged seed's NaN is left out
    assert values == pytest.approx([(0.45 + 0.45 + 0.25) / 3, 0.65, 0.75])


def test_settings_that_vary_split_rows(tmp_path):
    root = tmp_path / "runs"
    for window in (2, 8):
        for seed in (0, 1):
            fabricate_run(root, "cifar100", "nelu", seed, "completed", 0.3 + window / 100, window=window)
    labels = sorted(r.label for r in report.table_rows(report.find_runs(root)))
    assert labels == ["nelu (window=2)", "nelu (window=8)"]


def test_resumed_run_keeps_the_last_record_of_each_epoch(tmp_path):
    directory = fabricate_run(tmp_path, "digits", "relu", 0, "completed", 0.9, curve=(0.5, 0.6))
    with open(directory / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 2, "val_accuracy": 0.99}) + "\n")
        f.write('{"epoch": 3, "val_acc')  # cut short by a crash
    (run,) = report.find_runs(tmp_path)
    assert [m["epoch"] for m in run.metrics] == [1, 2]
    assert run.metrics[1]["val_accuracy"] == 0.99


def test_command_line(runs, tmp_path, capsys):
    assert report.main([str(runs), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "| excitator | 48.00 ± 2.83 | 2 | 1 | 0 | 47.37 |" in printed
    assert printed.strip().splitlines()[-1].startswith("report: 10 runs over 2 dataset(s) (cifar100, digits)")
    with pytest.raises(SystemExit):
        report.main([str(tmp_path / "missing")])


def test_a_loss_explosion_is_a_null_run_and_settings_that_do_not_apply_split_no_rows(tmp_path):
    root = tmp_path / "runs"
    fabricate_run(root, "digits", "nelu", 0, "completed", 0.9)
    fabricate_run(root, "digits", "nelu", 1, "diverged", None, curve=(0.5, 1e27))
    relu = fabricate_run(root, "digits", "relu", 0, "completed", 0.8)
    # relu's config has no window parameters at all (None: they do not apply).
    settings = json.loads((relu / "config.json").read_text())
    settings["config"].update(window=None, influence=None, threshold=None)
    (relu / "config.json").write_text(json.dumps(settings))
    rows = {r.label: r for r in report.table_rows(report.find_runs(root))}
    assert set(rows) == {"nelu", "relu"}
    assert (len(rows["nelu"].accuracies), rows["nelu"].diverged, rows["nelu"].unfinished) == (1, 1, 0)


def test_a_run_killed_while_running_is_unfinished(tmp_path):
    directory = fabricate_run(tmp_path, "digits", "relu", 0, "running", None)
    (run,) = report.find_runs(tmp_path)
    assert run.status == "interrupted" and not run.finished  # no live process holds its lock
    (directory / "run.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                    "started": "now"}))
    (run,) = report.find_runs(tmp_path)
    assert run.status == "running"
    (row,) = report.table_rows([run])
    assert (row.accuracies, row.diverged, row.unfinished) == ([], 0, 1)
