"""The training CLI (`python -m experiments.train`): help, bad flags as one line,
the outputs of a run, and a real SIGINT / SIGTERM followed by a resumption."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from experiments import train as cli
from winact_jax.train import ExitCode, TrainConfig
from winact_jax.train.config import defaults_table, describe_default
from winact_jax.train.outcomes import EXIT_CODE_MEANINGS

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--model=lenet", "--limit-train=128", "--no-progress"]

pytestmark = pytest.mark.slow


def _help_text(capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_help_documents_every_flag_and_the_defaults(capsys):
    text = _help_text(capsys)
    for flag in (
        "--act",
        "--window",
        "--influence",
        "--threshold",
        "--window-mode",
        "--window-over",
        "--learn-influence",
        "--placement",
        "--model",
        "--dataset",
        "--label-noise",
        "--epochs",
        "--batch-size",
        "--lr",
        "--optimizer",
        "--momentum",
        "--weight-decay",
        "--nesterov",
        "--schedule",
        "--cycle-epochs",
        "--augment",
        "--precision",
        "--seed",
        "--divergence-factor",
        "--max-loss",
        "--workdir",
        "--overwrite",
        "--eval-every",
        "--coordinator",
        "--num-processes",
        "--process-id",
    ):
        assert flag in text, flag
    flattened = " ".join(text.split())
    assert "default: 50, the paper's; 10 on digits" in flattened
    assert "runs/<dataset>-<model>-<act>-s<seed>" in flattened
    for code in ExitCode:
        assert f"{int(code)} " in text, code


def test_the_help_shows_the_configs_defaults(capsys):
    """Defaults once: every flag of a TrainConfig field shows `describe_default`,
    and has no default of its own (None), so TrainConfig's is the one used."""
    flattened = " ".join(_help_text(capsys).split())
    parser = cli.build_parser()
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    flags = {action.dest: action for action in parser._actions if action.dest in fields - {"act"}}
    assert set(flags) == fields - {"act"}, "every setting has a flag"
    for name, action in flags.items():
        assert action.default is None, name
        assert f"(default: {' '.join(describe_default(name).split())})" in flattened, name
    assert cli.config_from_args(parser.parse_args(["--act=nelu"])) == TrainConfig(act="nelu")
    assert describe_default("learning_rate") == "1e-4" and describe_default("batch_size") == "64"


def test_the_readme_table_is_the_configs():
    readme = (ROOT / "README.md").read_text()
    assert defaults_table() in readme, "README's defaults table: paste winact_jax.train.config.defaults_table()"
    for code, meaning in EXIT_CODE_MEANINGS.items():
        assert f"| {int(code)} | {meaning} |" in readme, code


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--act=nope"], "unknown activation"),
        (["--act=relu", "--model=nope"], "invalid choice: 'nope'"),
        (["--act=relu", "--dataset=nope"], "invalid choice: 'nope'"),
        (["--act=relu", "--batch-size=30"], "not divisible by the 4 devices"),
        (["--act=nelu", "--window=0"], "--window: expected an integer >= 1"),
        (["--act=nelu", "--influence=-1"], "influence"),
        (["--act=relu", "--lr=0"], "--lr: expected a positive number"),
        (["--act=relu", "--process-id=1"], "need --coordinator"),
        (["--act=relu", "--label-noise=1"], "--label-noise: expected a number in [0, 1)"),
        (["--act=relu", "--max-loss=0"], "--max-loss: expected a positive number or inf"),
        (["--act=relu", "--divergence-factor=1"], "--divergence-factor: expected a number above 1"),
    ],
)
def test_bad_flags_end_with_one_clear_line(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*flags, *TINY, f"--workdir={tmp_path / 'run'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("python -m experiments.train: error:") and message in last, err
    assert not (tmp_path / "run").exists()


def test_a_run_writes_its_directory_and_ends_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default workdir is relative
    status = cli.main(["--act=relu", "--epochs=2", "--lr=1e-3", *TINY])
    assert status == 0
    run = tmp_path / "runs" / "digits-lenet-relu-s0"
    for name in ("config.json", "metrics.jsonl", "summary.json", "tensorboard", "checkpoints"):
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("digits lenet relu seed 0: completed 2 epochs in ")
    assert "test accuracy" in last and "runs/digits-lenet-relu-s0" in last


def test_diverged_run_exits_5(tmp_path):
    status = cli.main(["--act=relu", "--optimizer=sgd", "--lr=1e12", *TINY, f"--workdir={tmp_path}"])
    assert status == ExitCode.DIVERGED == 5
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"


def _wait_for_checkpoint(process, checkpoints: pathlib.Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the run ended early: {process.communicate()}")
        if checkpoints.exists() and any(p.name.isdigit() for p in checkpoints.iterdir()):
            return
        time.sleep(0.2)
    process.kill()
    raise AssertionError("no checkpoint appeared in time")


def test_a_triangular_schedule_and_label_noise_run_and_are_recorded(tmp_path):
    assert (
        cli.main(
            [
                "--act=nelu",
                "--schedule=triangular",
                "--cycle-epochs=2",
                "--label-noise=0.2",
                "--epochs=2",
                *TINY,
                f"--workdir={tmp_path}",
            ]
        )
        == 0
    )
    config = json.loads((tmp_path / "config.json").read_text())["config"]
    assert (config["schedule"], config["cycle_epochs"], config["label_noise"]) == ("triangular", 2, 0.2)
    assert config["threshold"] is None and config["momentum"] is None  # they do not apply
    rates = [json.loads(line)["learning_rate"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # 2 steps an epoch, a 4-step cycle between 1e-5 and 1e-4: step 1 is halfway up, step 3 halfway down
    assert rates == pytest.approx([1e-5 + 0.5 * 9e-5, 1e-5 + 0.5 * 9e-5])


@pytest.mark.parametrize("signum, exit_status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_a_checkpoint_and_the_same_command_resumes(tmp_path, signum, exit_status):
    workdir = tmp_path / "run"
    command = [sys.executable, "-m", "experiments.train", "--act=relu", *TINY, f"--workdir={workdir}"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    # Many epochs: the run is still training when the signal comes.
    process = subprocess.Popen(
        [*command, "--epochs=1000"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for_checkpoint(process, workdir / "checkpoints")
        process.send_signal(signum)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == exit_status, err
    assert "Traceback" not in err
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["stop_reason"] == signal.Signals(signum).name
    assert "--epochs=1000" in summary["resume"] and "interrupted" in out.strip().splitlines()[-1]
    done = summary["epochs_completed"]
    assert done >= 1
    if signum != signal.SIGTERM:
        return  # resumption is the same after either signal: checked once

    # The same command resumes (with fewer epochs, to end soon).
    finish = subprocess.run(
        [*command, f"--epochs={done + 1}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert finish.returncode == 0, finish.stderr
    assert "resuming" in finish.stdout
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == done + 1
    epochs = [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, done + 2))
