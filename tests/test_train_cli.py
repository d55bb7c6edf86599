"""The training CLI (`python -m experiments.train`): help, bad flags as one line,
the outputs of a run, and a real SIGINT / SIGTERM followed by a resumption."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from experiments import train as cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--model=lenet", "--limit-train=128", "--no-progress"]

pytestmark = pytest.mark.slow


def test_help_documents_every_flag_and_the_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--act", "--window", "--influence", "--threshold", "--placement", "--model",
                 "--dataset", "--epochs", "--batch-size", "--lr", "--optimizer", "--momentum",
                 "--weight-decay", "--nesterov", "--schedule", "--augment", "--precision",
                 "--seed", "--workdir", "--eval-every", "--coordinator", "--num-processes",
                 "--process-id"):
        assert flag in text, flag
    flattened = " ".join(text.split())
    assert "default: 50, the paper's; 10 on digits" in flattened
    assert "runs/<dataset>-<model>-<act>-s<seed>" in flattened


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


def test_diverged_run_exits_1(tmp_path):
    status = cli.main(["--act=relu", "--optimizer=sgd", "--lr=1e12", *TINY, f"--workdir={tmp_path}"])
    assert status == 1
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


@pytest.mark.parametrize("signum, exit_status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_a_checkpoint_and_the_same_command_resumes(tmp_path, signum, exit_status):
    workdir = tmp_path / "run"
    command = [sys.executable, "-m", "experiments.train", "--act=relu", *TINY, f"--workdir={workdir}"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    # Many epochs: the run is still training when the signal comes.
    process = subprocess.Popen([*command, "--epochs=1000"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
    finish = subprocess.run([*command, f"--epochs={done + 1}"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=180)
    assert finish.returncode == 0, finish.stderr
    assert "resuming" in finish.stdout
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == done + 1
    epochs = [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, done + 2))
