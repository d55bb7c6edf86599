"""`python -m experiments.report` on run directories fabricated with known numbers."""

from __future__ import annotations

import csv
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from experiments import report
from winact_jax.models.statistics import flatten_statistics
from winact_jax.train.run_dir import RunDirectory, Status, Summary

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fabricate_run(
    root: Path,
    dataset: str,
    act: str,
    seed: int,
    status: str | None,
    test_accuracy,
    *,
    window: int = 4,
    curve=(0.5, 0.7, 0.8),
    train_time_s: float = 0.0,
    test_time_s=None,
    num_classes=None,
    statistics=None,
    **config,
) -> Path:
    """A run directory written by the training loop's own writer (`RunDirectory`):
    config, per-epoch metrics (with `statistics`, a metrics dict, in the last
    epoch's record), summary (none while `status` is None)."""
    directory = root / f"{dataset}-seed_backbone-{act}-w{window}-s{seed}"
    settings = {
        "act": act,
        "dataset": dataset,
        "model": "seed_backbone",
        "seed": seed,
        "window": window,
        "influence": 0.1,
        "threshold": 0.25,
        "learning_rate": 1e-4,
        "batch_size": 64,
        **config,
    }
    run_dir = RunDirectory(directory, writer=True)
    run_dir.path.mkdir(parents=True)  # no lock: the report must see a finished run
    (directory / "config.json").write_text(json.dumps({"config": settings, "versions": {"jax": "x"}}))
    for epoch, accuracy in enumerate(curve, start=1):
        record = {
            "epoch": epoch,
            "train_loss": 2.0 / epoch,
            "train_accuracy": accuracy,
            "val_loss": 2.5 / epoch,
            "val_accuracy": accuracy - 0.05,
        }
        if statistics is not None and epoch == len(curve):
            record.update(statistics)
        run_dir.log_epoch(record)
    run_dir.close()
    if status is not None:
        run_dir.write_summary(
            Summary(
                status=Status(status),
                test_accuracy=test_accuracy,
                best_val_accuracy=0.75,
                epochs_completed=len(curve),
                activation=act,
                dataset=dataset,
                model="seed_backbone",
                seed=seed,
                train_time_s=train_time_s,
                test_time_s=test_time_s,
                num_classes=num_classes,
            )
        )
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
    assert lines[0] == (
        "| activation | test accuracy (%, non-null runs) | runs | null runs | unfinished | "
        "train time (s) | test time (s) | seed paper (%) |"
    )
    # sorted by mean accuracy, best first; no run recorded a test time
    assert lines[1] == "| excitator | 48.00 ± 2.83 | 2 | 1 (1 diverged) | 0 | 0.0 | - | 47.37 |"
    assert lines[2] == "| relu | 42.00 ± 2.00 | 3 | 0 | 0 | 0.0 | - | 40.30 |"
    assert lines[3] == "| nelu | 41.00 | 1 | 0 | 2 | 0.0 | - | 40.03 |"
    assert "| mish | 90.00 | 1 | 0 | 0 | 0.0 | - | – |" in (out / "digits.md").read_text()

    with open(out / "cifar100.csv") as f:
        table = {row["activation"]: row for row in csv.DictReader(f)}
    assert table["relu"]["mean_test_accuracy"] == "42.00"
    assert table["relu"]["std_test_accuracy"] == "2.00"
    assert table["relu"]["accuracies"] == "40.00 42.00 44.00"
    assert table["excitator"]["diverged_runs"] == "1"
    assert table["excitator"]["null_runs"] == "1"
    assert table["excitator"]["at_chance_runs"] == "0"
    assert table["relu"]["mean_test_time_s"] == ""
    assert table["nelu"]["unfinished_runs"] == "2"
    assert table["nelu"]["std_test_accuracy"] == ""


def test_plots_are_png_files(runs, tmp_path):
    # no run logged activation statistics: no statistics table nor per-layer plots
    written = {p.name for p in report.write_report(report.find_runs(runs), tmp_path / "report")}
    assert not any("statistics" in name or "dead_fraction" in name for name in written)
    out = tmp_path / "report"
    report.write_report(report.find_runs(runs), out)
    for name in [
        "cifar100_val_accuracy.png",
        "cifar100_train_loss.png",
        "cifar100_test_accuracy.png",
        "digits_test_accuracy.png",
    ]:
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
    assert "| excitator | 48.00 ± 2.83 | 2 | 1 (1 diverged) | 0 | 0.0 | - | 47.37 |" in printed
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
    (directory / "run.lock").write_text(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now"})
    )
    (run,) = report.find_runs(tmp_path)
    assert run.status == "running"
    (row,) = report.table_rows([run])
    assert (row.accuracies, row.diverged, row.unfinished) == ([], 0, 1)


def test_a_completed_run_at_chance_is_null_and_left_out_of_the_mean(tmp_path):
    root = tmp_path / "runs"
    # digits has 10 classes (known without a num_classes in the summary): at chance <= 1.5 / 10
    fabricate_run(root, "digits", "relu", 0, "completed", 0.90, train_time_s=10.0, test_time_s=0.5)
    fabricate_run(root, "digits", "relu", 1, "completed", 0.80, train_time_s=20.0)
    fabricate_run(root, "digits", "relu", 2, "completed", 0.15, train_time_s=30.0, test_time_s=0.25)  # at chance
    fabricate_run(root, "digits", "nelu", 0, "completed", 0.16, train_time_s=4.0)  # above chance
    fabricate_run(root, "digits", "nelu", 1, "diverged", None, curve=(0.5, float("nan")), train_time_s=2.0)
    fabricate_run(root, "digits", "nelu", 2, "completed", 0.10, train_time_s=6.0, test_time_s=1.0)  # at chance
    rows = {r.label: r for r in report.table_rows(report.find_runs(root))}
    relu, nelu = rows["relu"], rows["nelu"]
    assert relu.accuracies == pytest.approx([0.90, 0.80])
    assert relu.mean == pytest.approx(0.85) and relu.std == pytest.approx(0.0707107, rel=1e-5)
    assert (relu.diverged, relu.at_chance, relu.null, relu.unfinished) == (0, 1, 1, 0)
    assert nelu.accuracies == pytest.approx([0.16])
    assert (nelu.diverged, nelu.at_chance, nelu.null) == (1, 1, 2)
    # times: means over the completed runs (at chance ones too: they trained in full), diverged left out
    assert relu.train_time == pytest.approx(20.0) and relu.test_time == pytest.approx(0.375)
    assert nelu.train_time == pytest.approx(5.0) and nelu.test_time == pytest.approx(1.0)

    out = tmp_path / "report"
    report.write_report(report.find_runs(root), out)
    lines = [line for line in (out / "digits.md").read_text().splitlines() if line.startswith("| ")]
    assert lines[1] == "| relu | 85.00 ± 7.07 | 2 | 1 (1 at chance) | 0 | 20.0 | 0.375 | – |"
    assert lines[2] == "| nelu | 16.00 | 1 | 2 (1 diverged, 1 at chance) | 0 | 5.0 | 1.000 | – |"
    with open(out / "digits.csv") as f:
        table = {row["activation"]: row for row in csv.DictReader(f)}
    nelu_counts = (table["nelu"]["null_runs"], table["nelu"]["diverged_runs"], table["nelu"]["at_chance_runs"])
    assert nelu_counts == ("2", "1", "1")
    assert table["relu"]["mean_train_time_s"] == "20.000" and table["relu"]["mean_test_time_s"] == "0.3750"
    assert table["relu"]["accuracies"] == "90.00 80.00"


def test_chance_uses_the_summarys_num_classes_and_never_guesses_an_unknown_dataset(tmp_path):
    root = tmp_path / "runs"
    fabricate_run(root, "toy", "relu", 0, "completed", 0.375, num_classes=4)  # 1.5 / 4: at chance
    fabricate_run(root, "toy", "relu", 1, "completed", 0.38, num_classes=4)
    fabricate_run(root, "mystery", "relu", 0, "completed", 0.01)  # classes unknown: not at chance
    runs = {(r.dataset, r.config["seed"]): r for r in report.find_runs(root)}
    assert report.num_classes(runs["toy", 0]) == 4 and report.at_chance(runs["toy", 0])
    assert not report.at_chance(runs["toy", 1])
    assert report.num_classes(runs["mystery", 0]) is None and not report.at_chance(runs["mystery", 0])
    # cifar100's 100 classes from the fallback: 1.5% is chance there, 2% is not
    fabricate_run(root, "cifar100", "relu", 0, "completed", 0.015)
    fabricate_run(root, "cifar100", "relu", 1, "completed", 0.02)
    (row,) = report.table_rows(r for r in report.find_runs(root) if r.dataset == "cifar100")
    assert (row.accuracies, row.at_chance) == ([0.02], 1)


def _layer_statistics(zero: dict[str, float], dead: dict[str, float], influences=None) -> dict[str, float]:
    """A metrics record's statistics keys, made by the training loop's own `flatten_statistics`."""
    return flatten_statistics(
        {
            layer: {"zero_fraction": zero[layer], "dead_fraction": dead[layer], "mean": 0.5, "max": 2.0}
            for layer in zero
        },
        influences,
    )


def test_activation_statistics_table_and_per_layer_plots(tmp_path):
    root = tmp_path / "runs"
    layers = ["conv1_act", "conv2_act", "fc1_act"]
    relu_runs = [
        _layer_statistics(dict(zip(layers, [0.5, 0.6, 0.7])), dict(zip(layers, [0.0, 0.25, 0.5]))),
        _layer_statistics(dict(zip(layers, [0.3, 0.4, 0.5])), dict(zip(layers, [0.0, 0.5, 0.5]))),
    ]
    for seed, statistics in enumerate(relu_runs):
        fabricate_run(root, "digits", "relu", seed, "completed", 0.9, statistics=statistics)
    nelu = _layer_statistics(
        dict(zip(layers, [0.1, 0.2, 0.3])),
        dict(zip(layers, [0.0, 0.0, 0.0])),
        {"conv1_act": np.array([0.1, 0.3]), "fc1_act": np.array([0.5])},
    )
    fabricate_run(root, "digits", "nelu", 0, "completed", 0.95, statistics=nelu)
    # a diverged run's statistics, and a run without any, are left out
    fabricate_run(
        root,
        "digits",
        "nelu",
        1,
        "diverged",
        None,
        statistics=_layer_statistics(dict(zip(layers, [1.0] * 3)), dict(zip(layers, [1.0] * 3))),
    )
    fabricate_run(root, "digits", "mish", 0, "completed", 0.8)

    rows = report.table_rows(report.find_runs(root))
    statistics = {r.label: r for r in report.statistics_rows(rows)}
    assert set(statistics) == {"relu", "nelu"}
    relu_stats, nelu_stats = statistics["relu"], statistics["nelu"]
    assert relu_stats.runs == 2 and nelu_stats.runs == 1
    # per run: mean over layers (0.6, 0.4 zero; 0.25, 1/3 dead); then mean over seeds
    assert relu_stats.zero_fraction == pytest.approx(0.5)
    assert relu_stats.dead_fraction == pytest.approx((0.25 + 1 / 3) / 2)
    assert list(relu_stats.dead_per_layer) == layers
    assert relu_stats.dead_per_layer == pytest.approx({"conv1_act": 0.0, "conv2_act": 0.375, "fc1_act": 0.5})
    assert relu_stats.influence is None and relu_stats.influence_per_layer == {}
    assert nelu_stats.zero_fraction == pytest.approx(0.2) and nelu_stats.dead_fraction == 0.0
    assert nelu_stats.influence_per_layer == pytest.approx({"conv1_act": 0.2, "fc1_act": 0.5})
    assert nelu_stats.influence == pytest.approx(0.35)

    out = tmp_path / "report"
    written = {p.name for p in report.write_report(report.find_runs(root), out)}
    assert {
        "digits_statistics.md",
        "digits_statistics.csv",
        "digits_dead_fraction.png",
        "digits_influence.png",
    } <= written
    lines = [line for line in (out / "digits_statistics.md").read_text().splitlines() if line.startswith("| ")]
    assert lines[0] == ("| activation | runs | mean zero fraction | mean dead fraction | learned influence (mean) |")
    assert lines[1:] == ["| nelu | 1 | 0.200 | 0.000 | 0.3500 |", "| relu | 2 | 0.500 | 0.292 | - |"]
    with open(out / "digits_statistics.csv") as f:
        table = {row["activation"]: row for row in csv.DictReader(f)}
    assert table["relu"]["dead_fraction_per_layer"] == "conv1_act=0.000000 conv2_act=0.375000 fc1_act=0.500000"
    assert table["relu"]["mean_learned_influence"] == ""
    assert table["nelu"]["mean_learned_influence"] == "0.350000"
    for name in ["digits_dead_fraction.png", "digits_influence.png"]:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 5000, name


def test_layers_are_in_model_order_not_the_logged_alphabetical_one(tmp_path):
    logged = ["blocks.0.act1", "blocks.10.act1", "blocks.2.act1", "stem_act"]  # as nnx state lists them
    forward = ["stem_act", "blocks.0.act1", "blocks.2.act1", "blocks.10.act1"]
    assert sorted(logged, key=report.layer_order) == forward
    assert sorted(["fc2_act", "fc1_act", "conv2_act", "conv1_act"], key=report.layer_order) == [
        "conv1_act",
        "conv2_act",
        "fc1_act",
        "fc2_act",
    ]
    dead = dict(zip(logged, [0.1, 0.2, 0.3, 0.4]))
    fabricate_run(
        tmp_path, "digits", "relu", 0, "completed", 0.9, statistics=_layer_statistics(dict.fromkeys(logged, 0.5), dead)
    )
    (row,) = report.statistics_rows(report.table_rows(report.find_runs(tmp_path)))
    assert list(row.dead_per_layer.items()) == [
        ("stem_act", 0.4),
        ("blocks.0.act1", 0.1),
        ("blocks.2.act1", 0.3),
        ("blocks.10.act1", 0.2),
    ]
