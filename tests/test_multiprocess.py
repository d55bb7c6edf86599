"""Two processes joined by `jax.distributed` over 127.0.0.1 train as one run.

Each process is a CLI run with 2 CPU devices (4 in all); both dump their final
parameters, which must be identical, and equal (up to reduction order) to those
of one process with 4 devices.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from experiments import train as cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLAGS = ["--act=nelu", "--model=lenet", "--lr=1e-3", "--max-steps=2", "--no-progress"]

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_end_with_identical_parameters(tmp_path):
    port = free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "experiments.train",
                *FLAGS,
                f"--workdir={tmp_path / 'run'}",
                f"--dump-params={tmp_path / 'params'}",
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes=2",
                f"--process-id={index}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(2)
    ]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=240)[0])  # a hang fails, not blocks
    finally:
        for process in processes:
            process.kill()
    for index, (process, output) in enumerate(zip(processes, outputs, strict=True)):
        assert process.returncode == 0, output
        # Each process says once what it waits for; process 0 how many joined.
        assert output.count(f"process {index} of 2: waiting for the coordinator at 127.0.0.1:{port}") == 1, output
    assert "process 0: all 2 of 2 processes joined in" in outputs[0]
    assert "joined in" not in outputs[1]

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert not (tmp_path / "run" / "run.lock").exists()
    assert summary["num_processes"] == 2 and summary["num_devices"] == 4
    assert summary["global_step"] == 2 and summary["status"] == "interrupted"
    first, second = (np.load(tmp_path / f"params.{index}.npz") for index in range(2))
    assert first.files and sorted(first.files) == sorted(second.files)
    for name in first.files:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)

    # One process with the same 4 devices (conftest.py) takes the same 2 steps.
    assert cli.main([*FLAGS, f"--workdir={tmp_path / 'single'}", f"--dump-params={tmp_path / 'single'}"]) == 0
    single = np.load(tmp_path / "single.0.npz")
    for name in first.files:
        np.testing.assert_allclose(first[name], single[name], rtol=1e-5, atol=1e-6, err_msg=name)
