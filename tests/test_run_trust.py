"""Runs you can trust: each way a run directory could be misused or damaged ends
in one line and its exit code, and leaves what earlier runs wrote intact.

1. two runs on one workdir (the lock); 2. damaged checkpoints (the fallback);
3. a TFDS dataset offline (fails in seconds); 4. a loss explosion (diverged);
5. a bad --workdir; 6. flags that do not apply; 7. foreign directories.
(8, multi-process progress, is in test_multiprocess.py.)
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from experiments import train as cli
from winact_jax.train import (
    ConfigError,
    ExitCode,
    Status,
    TrainConfig,
    WorkdirBusyError,
    read_run,
    train_and_evaluate,
)
from winact_jax.train.run_dir import CORRUPT_CHECKPOINTS, LOCK

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--act=relu", "--model=lenet", "--limit-train=128", "--no-progress"]
ENV = dict(os.environ, JAX_PLATFORMS="cpu")


def snapshot(directory: pathlib.Path) -> dict[str, str]:
    """{relative path: sha256} of every file below `directory`."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def run_cli(capsys, flags) -> tuple[int, str, str]:
    """`experiments.train`'s exit status, stdout and stderr, in this process."""
    try:
        status = cli.main(flags)
    except SystemExit as exit_info:
        status = exit_info.code
    out, err = capsys.readouterr()
    return status, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("python -m experiments.train: error: "), err
    return lines[0]


def epochs_of(workdir: pathlib.Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- 1. the lock


@pytest.mark.slow
def test_a_second_run_on_a_busy_workdir_exits_3_and_touches_nothing(tmp_path):
    workdir = tmp_path / "run"
    command = [sys.executable, "-m", "experiments.train", *TINY, f"--workdir={workdir}"]
    first = subprocess.Popen(
        [*command, "--epochs=1000"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 180
        while not (workdir / "metrics.jsonl").exists():  # the first is training
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.2)
        holder = json.loads((workdir / LOCK).read_text())
        assert (holder["pid"], holder["host"]) == (first.pid, socket.gethostname())

        second = subprocess.run(
            [*command, "--epochs=1000"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120
        )
        assert second.returncode == ExitCode.WORKDIR_BUSY == 3, second.stderr
        line = one_error_line(second.stderr)
        assert f"is in use by another run (pid {first.pid} on {socket.gethostname()}, started " in line
        assert holder["started"] in line
        assert first.poll() is None, "the first run goes on"
        assert json.loads((workdir / LOCK).read_text()) == holder

        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == ExitCode.INTERRUPTED
    done = json.loads((workdir / "summary.json").read_text())["epochs_completed"]
    assert epochs_of(workdir) == list(range(1, done + 1)), "one line per epoch, none duplicated"
    assert not (workdir / LOCK).exists()


def test_a_busy_workdir_is_refused_before_any_work_and_left_as_it_was(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text("{}")
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00"}
    (workdir / LOCK).write_text(json.dumps(holder))
    before = snapshot(workdir)
    with pytest.raises(WorkdirBusyError, match=f"pid {os.getpid()} on .*, started 2026-01-01"):
        train_and_evaluate(TrainConfig(act="relu", model="lenet", workdir=str(workdir)))
    assert snapshot(workdir) == before


@pytest.mark.slow
def test_the_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / LOCK).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "started": "x"}))
    status, out, _ = run_cli(capsys, [*TINY, "--max-steps=1", f"--workdir={workdir}"])
    assert status == ExitCode.COMPLETED
    assert f"taking over the lock of {workdir} from a run that is gone (pid {int(dead.stdout)}" in out
    assert not (workdir / LOCK).exists()


# --------------------------------------------------------------------------- 2. damaged checkpoints


def _largest_data_file(checkpoint: pathlib.Path) -> pathlib.Path:
    """The biggest array chunk file of a checkpoint (Orbax's OCDBT data files)."""
    files = [p for p in (checkpoint / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    return max(files, key=lambda p: p.stat().st_size)


@pytest.mark.slow
def test_damaged_checkpoints_are_moved_aside_and_an_older_one_is_used(tmp_path, capsys):
    workdir = tmp_path / "run"
    flags = [*TINY, "--epochs=3", f"--workdir={workdir}"]
    assert run_cli(capsys, flags)[0] == 0
    checkpoints = workdir / "checkpoints"
    assert sorted(int(p.name) for p in checkpoints.iterdir()) == [2, 4, 6]  # 2 steps an epoch
    first_epoch = (workdir / "metrics.jsonl").read_text().splitlines()[0]

    truncated = _largest_data_file(checkpoints / "6")
    truncated.write_bytes(truncated.read_bytes()[:20])
    garbage = _largest_data_file(checkpoints / "4")
    garbage.write_bytes(os.urandom(garbage.stat().st_size))
    damaged = {step: snapshot(checkpoints / step) for step in ("6", "4")}

    status, out, err = run_cli(capsys, [*TINY, "--epochs=4", f"--workdir={workdir}"])
    assert status == ExitCode.COMPLETED, err
    reports = [line for line in out.splitlines() if "does not restore" in line]
    assert [line.split()[1] for line in reports] == ["6", "4"]
    assert all(f"moved to {workdir / CORRUPT_CHECKPOINTS}" in line for line in reports), reports
    assert "resuming" in out and "after epoch 1" in out
    # Moved aside, not deleted, byte for byte.
    for step, files in damaged.items():
        assert snapshot(workdir / CORRUPT_CHECKPOINTS / step) == files
    # One line per epoch: those after the restored epoch were redone, not duplicated.
    assert epochs_of(workdir) == [1, 2, 3, 4]
    assert (workdir / "metrics.jsonl").read_text().splitlines()[0] == first_epoch
    assert read_run(workdir).status == Status.COMPLETED

    # When no checkpoint restores: one line, exit 4, and the metrics as they were.
    for step in (p.name for p in checkpoints.iterdir()):
        (checkpoints / step / "meta" / "metadata").write_bytes(b"\0not json")
    metrics = (workdir / "metrics.jsonl").read_text()
    status, out, err = run_cli(capsys, [*TINY, "--epochs=5", f"--workdir={workdir}"])
    assert status == ExitCode.CANNOT_RESUME == 4
    assert "no checkpoint of" in one_error_line(err) and "--overwrite" in err
    assert (workdir / "metrics.jsonl").read_text() == metrics
    assert len(list((workdir / CORRUPT_CHECKPOINTS).iterdir())) == 2 + 3
    assert not (workdir / LOCK).exists()


# --------------------------------------------------------------------------- 3. offline TFDS

OFFLINE = textwrap.dedent("""
    import socket, sys
    def offline(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (no network in this test)")
    socket.getaddrinfo = offline
    def refuse(self, *args):
        raise OSError(101, "Network is unreachable (no network in this test)")
    socket.socket.connect = refuse
    from experiments import train
    sys.exit(train.main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_an_unprepared_tfds_dataset_offline_fails_in_seconds_with_what_to_place_where(tmp_path):
    data_dir = tmp_path / "tfds"
    # A hang guard, not a timing claim: TFDS's own retries took 212 s here.
    finished = subprocess.run(
        [
            sys.executable,
            "-c",
            OFFLINE,
            *TINY,
            "--dataset=cifar100",
            f"--data-dir={data_dir}",
            f"--workdir={tmp_path / 'run'}",
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == ExitCode.BAD_CONFIG, finished.stderr
    assert "Traceback" not in finished.stderr and "Retrying" not in finished.stderr
    assert "Dataset 'cifar100' is not prepared" in finished.stderr
    assert "cifar-100-binary.tar.gz" in finished.stderr
    assert f"{data_dir / 'downloads' / 'manual'}{os.sep}" in finished.stderr
    assert not (tmp_path / "run").exists()
    assert not data_dir.exists() or not any(data_dir.rglob("*")), "nothing half-written left"


# --------------------------------------------------------------------------- 4. loss explosion


@pytest.mark.slow
def test_adam_at_lr_1e4_is_diverged_not_completed(tmp_path, capsys):
    workdir = tmp_path / "run"
    status, out, _ = run_cli(capsys, [*TINY, "--lr=1e4", "--epochs=3", f"--workdir={workdir}"])
    assert status == ExitCode.DIVERGED == 5
    summary = read_run(workdir).summary
    assert summary.status == Status.DIVERGED and summary.test_accuracy is None
    assert "above max_loss 1e6" in summary.diverged_reason  # in the first epoch: no reference yet
    assert summary.diverged_reason in out.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_loss_above_the_factor_of_the_first_epoch_is_diverged(tmp_path, capsys):
    # SGD at a rate that makes the loss climb for epochs while it stays finite and
    # below max_loss: 1.5 times the first epoch's mean loss catches it.
    workdir = tmp_path / "run"
    flags = [*TINY, "--optimizer=sgd", "--lr=2", "--epochs=8", "--divergence-factor=1.5", f"--workdir={workdir}"]
    status, out, _ = run_cli(capsys, flags)
    summary = read_run(workdir).summary
    assert status == ExitCode.DIVERGED, out
    assert "above divergence_factor 1.5 x the first epoch's mean loss" in summary.diverged_reason
    assert summary.diverged_epoch >= 2
    assert epochs_of(workdir) == list(range(1, summary.diverged_epoch))


# --------------------------------------------------------------------------- 5. bad --workdir


def test_a_file_as_workdir_is_one_line_and_exit_2(tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("precious")
    status, _, err = run_cli(capsys, [*TINY, f"--workdir={target}"])
    assert status == ExitCode.BAD_CONFIG == 2
    assert f"--workdir {target} is a file, not a directory" in one_error_line(err)
    assert target.read_text() == "precious"


def test_a_workdir_that_cannot_be_created_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    status, _, err = run_cli(capsys, [*TINY, f"--workdir={tmp_path / 'afile' / 'run'}"])
    assert status == 2 and "cannot be created" in one_error_line(err)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_workdir_is_one_line(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    status, _, err = run_cli(capsys, [*TINY, f"--workdir={locked}"])
    assert status == 2 and "is not writable" in one_error_line(err)


def test_a_run_of_other_settings_is_one_line(tmp_path, capsys):
    workdir = tmp_path / "run"
    (workdir / "checkpoints" / "4").mkdir(parents=True)
    config = TrainConfig(act="relu", model="lenet", limit_train=128, learning_rate=1e-3, workdir=str(workdir))
    (workdir / "config.json").write_text(json.dumps({"config": config.to_dict()}))
    before = snapshot(workdir)
    status, _, err = run_cli(capsys, [*TINY, f"--workdir={workdir}"])
    assert status == 2
    assert "holds a run with other settings (learning_rate: 0.001 there, 0.0001 now)" in one_error_line(err)
    assert snapshot(workdir) == before


# --------------------------------------------------------------------------- 6. flags that do not apply


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--act=nelu", "--threshold=0.5"], "--threshold does not apply: activation 'nelu' does not take 'threshold'"),
        (["--act=relu", "--influence=0.2"], "--influence does not apply: activation 'relu' does not take 'influence'"),
        (["--act=relu", "--window=2"], "--window does not apply"),
        (["--act=softmax_threshold", "--influence=0.2"], "--influence does not apply"),
        (["--act=gelu", "--learn-influence"], "--learn-influence does not apply: activation 'gelu' has no influence"),
        (["--act=nelu", "--momentum=0.5"], "--momentum does not apply: it is SGD's, and the optimizer is 'adam'"),
        (["--act=nelu", "--nesterov"], "--nesterov does not apply"),
        (["--act=nelu", "--cycle-epochs=2"], "--cycle-epochs does not apply: it is the triangular schedule's"),
    ],
)
def test_a_flag_that_does_not_apply_is_one_line_naming_it(tmp_path, capsys, flags, message):
    status, _, err = run_cli(capsys, [*flags, "--model=lenet", f"--workdir={tmp_path / 'run'}"])
    assert status == ExitCode.BAD_CONFIG
    assert message in one_error_line(err)
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- 7. foreign directories


def _results_without_checkpoint(workdir: pathlib.Path) -> None:
    workdir.mkdir()
    config = TrainConfig(act="relu", model="lenet", limit_train=128, progress=False, workdir=str(workdir))
    (workdir / "config.json").write_text(json.dumps({"config": config.to_dict()}))
    (workdir / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 2.0}) + "\n")


def test_a_run_with_results_and_no_checkpoint_is_not_overwritten(tmp_path, capsys):
    workdir = tmp_path / "run"
    _results_without_checkpoint(workdir)
    before = snapshot(workdir)
    status, _, err = run_cli(capsys, [*TINY, f"--workdir={workdir}"])
    assert status == ExitCode.BAD_CONFIG
    assert "holds a run with results but no checkpoint" in one_error_line(err) and "--overwrite" in err
    assert snapshot(workdir) == before


@pytest.mark.slow
def test_overwrite_starts_such_a_run_over(tmp_path, capsys):
    workdir = tmp_path / "run"
    _results_without_checkpoint(workdir)
    status, _, err = run_cli(capsys, [*TINY, "--max-steps=1", "--overwrite", f"--workdir={workdir}"])
    assert status == ExitCode.COMPLETED, err
    assert not (workdir / "metrics.jsonl").exists(), "the old epoch line is gone with the old run"
    assert read_run(workdir).summary.global_step == 1


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_directory_that_holds_no_run_is_refused(tmp_path, capsys, overwrite):
    workdir = tmp_path / "papers"
    workdir.mkdir()
    (workdir / "thesis.tex").write_text("years of work")
    status, _, err = run_cli(capsys, [*TINY, *overwrite, f"--workdir={workdir}"])
    assert status == ExitCode.BAD_CONFIG
    assert "is a non-empty directory that holds no run (thesis.tex)" in one_error_line(err)
    assert [p.name for p in workdir.iterdir()] == ["thesis.tex"]


def test_an_empty_directory_and_a_killed_runs_leftovers_are_fine():
    import tempfile

    from winact_jax.train.run_dir import check_workdir

    with tempfile.TemporaryDirectory() as empty:
        check_workdir(empty)
        # A run killed before its first epoch: a config, a "running" summary, no results.
        (pathlib.Path(empty) / "config.json").write_text("{}")
        (pathlib.Path(empty) / "summary.json").write_text(json.dumps({"status": "running"}))
        check_workdir(empty)
        with pytest.raises(ConfigError):
            (pathlib.Path(empty) / "summary.json").write_text(json.dumps({"status": "diverged"}))
            check_workdir(empty)
