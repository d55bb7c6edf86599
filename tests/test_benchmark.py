"""The benchmarks' command lines and JSON on tiny shapes (schemas, not speed: timing
is never a pass/fail test here, the machines are too noisy)."""

from __future__ import annotations

import json
import math
import os

import pytest

from experiments import benchmark


def _read(path):
    with open(path) as f:
        return json.load(f)


def _check_ratios(rows, time_key, ratio_key):
    assert rows[0]["activation"] == "relu"
    assert rows[0][ratio_key] == 1.0
    for row in rows:
        assert row[time_key] > 0 and math.isfinite(row[time_key])
        expected = row[time_key] / rows[0][time_key]
        assert row[ratio_key] == pytest.approx(expected, rel=0.02, abs=0.002)


def test_activations_json(tmp_path, capsys):
    path = tmp_path / "acts.json"
    assert (
        benchmark.main(
            ["activations", "--shape", "2,8,8,4", "--acts", "nelu,max,gelu", "--rounds", "2", "--json", str(path)]
        )
        == 0
    )
    payload = _read(path)
    assert payload["benchmark"] == "activations"
    assert payload["shape"] == [2, 8, 8, 4] and payload["window"] == 4
    assert isinstance(payload["device"], str) and payload["device"]
    rows = payload["rows"]
    assert [r["activation"] for r in rows] == ["relu", "nelu", "max", "gelu"]
    assert [r["kind"] for r in rows] == ["elementwise", "window", "window", "elementwise"]
    _check_ratios(rows, "forward_ms", "forward_ratio_to_relu")
    _check_ratios(rows, "forward_backward_ms", "forward_backward_ratio_to_relu")
    printed = capsys.readouterr().out
    assert "| nelu | window |" in printed and "slowest window activation:" in printed


def test_train_step_json(tmp_path):
    path = tmp_path / "step.json"
    assert (
        benchmark.main(
            [
                "train-step",
                "--model",
                "lenet",
                "--image-size",
                "16",
                "--batch-size",
                "4",
                "--num-classes",
                "5",
                "--acts",
                "relu,excitator",
                "--steps",
                "2",
                "--variants",
                "tiled,centered,channels",
                "--json",
                str(path),
            ]
        )
        == 0
    )
    payload = _read(path)
    assert set(payload) >= {"device", "rows"}
    assert [set(r) for r in payload["rows"]] == [{"activation", "variant", "step_ms", "ratio_to_relu"}] * 4
    assert [(r["activation"], r["variant"]) for r in payload["rows"]] == [
        ("relu", ""),
        ("excitator", "tiled 4"),
        ("excitator", "centered 3"),
        ("excitator", "channels 4"),
    ]
    _check_ratios(payload["rows"], "step_ms", "ratio_to_relu")
    # Which convolution kernels ran is part of the result.
    assert payload["xla_flags"] == os.environ.get("XLA_FLAGS", "")


def test_cpu_convolutions_option_sets_the_xla_flag_only_when_asked(monkeypatch):
    added = []
    monkeypatch.setattr(benchmark, "prefer_eigen_convolutions", lambda: added.append(True))
    monkeypatch.setattr(benchmark, "run_activations", lambda args: 0)
    assert benchmark.main(["--cpu-convolutions", "ynnpack", "activations"]) == 0
    assert added == []
    assert benchmark.main(["activations"]) == 0
    assert added == [True]


def test_epoch_json(tmp_path, capsys):
    path = tmp_path / "epoch.json"
    assert (
        benchmark.main(
            [
                "epoch",
                "--acts",
                "nelu",
                "--image-size",
                "16",
                "--batch-size",
                "4",
                "--batches",
                "2",
                "--rounds",
                "1",
                "--json",
                str(path),
            ]
        )
        == 0
    )
    payload = _read(path)
    assert payload["batches"] == 2 and payload["model"] == "seed_backbone"
    rows = payload["rows"]
    assert [r["activation"] for r in rows] == ["relu", "nelu"]
    for row in rows:
        assert {"activation", "epoch_s", "forward_it_per_s"} <= set(row)
        assert row["epoch_s"] > 0 and row["forward_it_per_s"] > 0
    assert "| relu |" in capsys.readouterr().out


def test_unknown_activation_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["activations", "--acts", "nelu,bogus"])
    assert exit_info.value.code == 2
    assert "unknown activation 'bogus'" in capsys.readouterr().err
