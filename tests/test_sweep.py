"""`python -m experiments.sweep`: grids, shards, skipping finished runs and resuming."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

import winact_jax as wa
from experiments import sweep
from winact_jax.train import Status
from winact_jax.train.run_dir import FINISHED


def test_digits_table_has_every_activation_three_times(tmp_path):
    configs = sweep.expand(sweep.PRESETS["digits-table"], tmp_path)
    assert len(configs) == 3 * len(wa.names())
    assert sorted({c.act for c in configs}) == sorted(wa.names())
    assert {c.seed for c in configs} == {0, 1, 2}
    assert {c.dataset for c in configs} == {"digits"}
    assert len({c.workdir for c in configs}) == len(configs)
    assert all(Path(c.workdir).parent == tmp_path for c in configs)


def test_paper_table1_is_the_papers_grid(tmp_path):
    configs = sweep.expand(sweep.PRESETS["paper-table1"], tmp_path)
    assert len(configs) == 10 * 3 * 3
    assert {c.model for c in configs} == {"seed_backbone"}
    assert {c.dataset for c in configs} == {"tiny_imagenet", "caltech101", "cifar100"}
    assert {(c.learning_rate, c.batch_size, c.epochs, c.optimizer) for c in configs} == {(1e-4, 64, 50, "adam")}
    # Each activation's own parameters at the paper's values, and no others.
    assert {(c.window, c.influence) for c in configs if c.act == "nelu"} == {(4, 0.1)}
    assert {(c.window, c.threshold) for c in configs if c.act == "softmax_threshold"} == {(4, 0.25)}
    assert {(c.window, c.influence, c.threshold) for c in configs if c.act == "relu"} == {(None, None, None)}


def test_parameters_vary_only_for_activations_that_take_them(tmp_path):
    grid = sweep.Grid(
        acts=("relu", "nelu", "softmax_threshold"),
        datasets=("digits",),
        seeds=(0, 1),
        windows=(2, 4),
        influences=(0.1, 0.5),
    )
    configs = sweep.expand([grid], tmp_path)
    per_act = {act: [c for c in configs if c.act == act] for act in ("relu", "nelu", "softmax_threshold")}
    assert len(per_act["relu"]) == 2  # one per seed: relu takes no window and no influence
    assert len(per_act["nelu"]) == 2 * 2 * 2
    assert len(per_act["softmax_threshold"]) == 2 * 2  # windows only
    names = {Path(c.workdir).name for c in configs}
    assert "digits-resnet38-relu-s1" in names
    assert "digits-resnet38-nelu-w2-i0.5-s0" in names
    assert "digits-resnet38-softmax_threshold-w4-s1" in names


def test_window_sweep_deduplicates_the_shared_setting(tmp_path):
    configs = sweep.expand(sweep.PRESETS["paper-window-sweep"], tmp_path)
    workdirs = [c.workdir for c in configs]
    assert len(workdirs) == len(set(workdirs))
    nelu = {(c.window, c.influence) for c in configs if c.act == "nelu" and c.seed == 0}
    # windows 2/4/8/32 at influence 0.1, influences 0.001..1 at window 4: 4 + 5 - 1 shared
    assert nelu == {(2, 0.1), (4, 0.1), (8, 0.1), (32, 0.1), (4, 0.001), (4, 0.01), (4, 0.5), (4, 1.0)}
    assert not any(c.act == "relu" for c in configs)


def test_shards_split_the_grid_without_overlap(tmp_path):
    configs = sweep.expand(sweep.PRESETS["digits-table"], tmp_path)
    shards = [sweep.take_shard(configs, (i, 4)) for i in range(4)]
    assert sorted(c.workdir for shard in shards for c in shard) == sorted(c.workdir for c in configs)
    assert shards[1][:2] == [configs[1], configs[5]]
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


@pytest.mark.parametrize("bad", ["4/4", "-1/2", "1", "a/b", "2/1"])
def test_bad_shard_is_one_line(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sweep.main(["--preset", "digits-table", "--shard", bad, "--dry-run"])
    assert exit_info.value.code == 2
    assert "--shard" in capsys.readouterr().err


def test_dry_run_lists_runs_with_their_status(tmp_path, capsys):
    done = tmp_path / "digits-seed_backbone-relu-s0"
    done.mkdir()
    (done / "config.json").write_text("{}")
    (done / "summary.json").write_text(json.dumps({"status": "completed"}))
    assert (
        sweep.main(
            [
                "--acts",
                "relu,nelu",
                "--seeds",
                "0",
                "--model",
                "seed_backbone",
                "--runs-dir",
                str(tmp_path),
                "--dry-run",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "2 runs in" in out and "1 finished, 1 to run" in out
    assert f"completed   {done}" in out
    assert f"new         {tmp_path / 'digits-seed_backbone-nelu-s0'}" in out


def _tiny_grid(**settings) -> sweep.Grid:
    base = {"model": "lenet", "epochs": 1, "limit_train": 64, "progress": False}
    return sweep.Grid(
        acts=("relu", "nelu"),
        datasets=("digits",),
        seeds=(0,),
        batch_sizes=(16,),
        settings=tuple({**base, **settings}.items()),
    )


def _summary(config) -> dict:
    return json.loads((Path(config.workdir) / "summary.json").read_text())


@pytest.mark.slow
def test_sweep_stops_at_an_interrupt_resumes_and_skips_finished_runs(tmp_path, capsys):
    # Every run stops after 2 of its 4 steps, as Ctrl-C would: the sweep stops there.
    interrupted = sweep.expand([_tiny_grid(max_steps=2)], tmp_path)
    outcomes, failures = sweep.execute(interrupted)
    assert (outcomes, failures) == ({Status.INTERRUPTED: 1}, [])
    assert [sweep.run_status(c.workdir) for c in interrupted] == [Status.INTERRUPTED, None]

    # The same sweep without the stop resumes the first run and trains the second.
    configs = sweep.expand([_tiny_grid()], tmp_path)
    assert [c.workdir for c in configs] == [c.workdir for c in interrupted]
    todo = [c for c in configs if sweep.run_status(c.workdir) not in FINISHED]
    assert len(todo) == 2
    outcomes, failures = sweep.execute(todo)
    assert (outcomes, failures) == ({Status.COMPLETED: 2}, [])
    first = _summary(configs[0])  # summary.json as written
    assert first["status"] == "completed" and first["epochs_completed"] == 1
    metrics = (Path(configs[0].workdir) / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 1  # the resumed epoch was recorded once

    # Now everything is finished: the command line trains nothing.
    assert all(sweep.run_status(c.workdir) == "completed" for c in configs)
    assert (
        sweep.main(
            [
                "--acts",
                "relu,nelu",
                "--seeds",
                "0",
                "--model",
                "lenet",
                "--epochs",
                "1",
                "--batch-sizes",
                "16",
                "--runs-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "2 runs in" in out and "2 finished, 0 to run" in out
    assert "0 runs trained (nothing to do), 2 already finished" in out


def test_grid_defaults_are_the_training_defaults(tmp_path):
    from winact_jax.train import TrainConfig

    (config,) = sweep.expand([sweep.Grid(acts=("nelu",), datasets=("digits",), seeds=(0,))], tmp_path)
    default = TrainConfig(act="nelu", workdir=config.workdir)
    assert config == default


def test_new_axes_vary_only_where_they_apply(tmp_path):
    grid = sweep.Grid(
        acts=("relu", "nelu"),
        datasets=("digits",),
        seeds=(0,),
        window_modes=("tiled", "centered"),
        learn_influences=(False, True),
        label_noises=(0.0, 0.16),
    )
    configs = sweep.expand([grid], tmp_path)
    relu = [c for c in configs if c.act == "relu"]
    nelu = [c for c in configs if c.act == "nelu"]
    assert len(relu) == 2 and {c.label_noise for c in relu} == {0.0, 0.16}
    assert len(nelu) == 2 * 2 * 2
    assert {(c.window_mode, c.learn_influence) for c in nelu} == {
        ("tiled", False),
        ("tiled", True),
        ("centered", False),
        ("centered", True),
    }
    assert "digits-resnet38-nelu-mcentered-li1-n0.16-s0" in {Path(c.workdir).name for c in nelu}


def test_a_setting_no_run_can_use_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        sweep.main(["--acts", "nelu", "--window-modes", "sideways", "--dry-run"])
    assert exit_info.value.code == 2
    assert "window_mode must be one of" in capsys.readouterr().err


def test_a_run_another_process_trains_now_is_left_to_it(tmp_path, capsys):
    busy = tmp_path / "digits-seed_backbone-relu-s0"
    busy.mkdir()
    (busy / "config.json").write_text("{}")
    (busy / "summary.json").write_text(json.dumps({"status": "running"}))
    (busy / "run.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}))
    assert (
        sweep.main(
            [
                "--acts",
                "relu,nelu",
                "--seeds",
                "0",
                "--model",
                "seed_backbone",
                "--runs-dir",
                str(tmp_path),
                "--dry-run",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "0 finished, 1 running elsewhere, 1 to run" in out
    assert f"running     {busy}" in out
