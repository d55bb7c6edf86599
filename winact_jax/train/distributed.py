"""Joining the processes of a multi-host run (`jax.distributed.initialize`).

Call `initialize` before anything touches a device. A run is multi-process when it
is given a coordinator (the flags `--coordinator HOST:PORT --num-processes N
--process-id I`, or the variables `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`,
`JAX_PROCESS_ID`), or when it runs as one of several tasks of a SLURM or Open MPI
job, whose variables JAX reads itself. Each process then sees every device of the
run through `jax.devices()`; the training loop builds its mesh over all of them.

On CPU, cross-process collectives go through Gloo (JAX's default
`jax_cpu_collectives_implementation`), so the multi-process path can be tested on
one machine over 127.0.0.1.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import jax

# How often process 0 says it is still waiting for the others to connect.
WAITING_REPORT_EVERY_S = 15.0


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _join(coordinator: str, num_processes: int, process_id: int) -> None:
    """`jax.distributed.initialize`, saying what it waits for: every process says
    once that it is waiting for the coordinator; process 0 says every
    `WAITING_REPORT_EVERY_S` seconds that it is still waiting, and how many joined."""
    _say(
        f"process {process_id} of {num_processes}: waiting for the coordinator at {coordinator} "
        f"(all {num_processes} processes must start)"
    )
    started = time.monotonic()
    joined = threading.Event()

    def report_waiting():
        while not joined.wait(WAITING_REPORT_EVERY_S):
            _say(
                f"process 0: still waiting for the other {num_processes - 1} process(es) to join "
                f"({time.monotonic() - started:.0f} s so far)"
            )

    if process_id == 0:
        threading.Thread(target=report_waiting, daemon=True).start()
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    finally:
        joined.set()
    if process_id == 0:
        _say(
            f"process 0: all {jax.process_count()} of {num_processes} processes joined in "
            f"{time.monotonic() - started:.1f} s ({jax.device_count()} devices)"
        )


def cluster_task_count() -> int:
    """The number of tasks of the SLURM or Open MPI job this process belongs to (1 if none)."""
    for variable in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        if os.environ.get(variable, "").isdigit():
            return int(os.environ[variable])
    return 1


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Joins the other processes of the run; returns whether there are several.

    Args:
      coordinator: "HOST:PORT" of process 0, which every process can reach.
        Default: `$JAX_COORDINATOR_ADDRESS`.
      num_processes: how many processes the run has. Default: `$JAX_NUM_PROCESSES`.
      process_id: this process's index, 0..num_processes-1. Default: `$JAX_PROCESS_ID`.

    Without a coordinator, a SLURM or Open MPI job of several tasks is joined by
    JAX's own detection; anything else is a single-process run and nothing is done.

    Raises:
      ValueError: a coordinator without the number of processes or the process id,
        or inconsistent values.
    """
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    if num_processes is None and os.environ.get("JAX_NUM_PROCESSES"):
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and os.environ.get("JAX_PROCESS_ID"):
        process_id = int(os.environ["JAX_PROCESS_ID"])

    if coordinator is None:
        if num_processes not in (None, 1) or process_id not in (None, 0):
            raise ValueError("--num-processes and --process-id need --coordinator HOST:PORT")
        if cluster_task_count() > 1:
            jax.distributed.initialize()  # SLURM / Open MPI: JAX reads the job's variables
            return True
        return False

    if num_processes is None or process_id is None:
        raise ValueError("--coordinator needs --num-processes and --process-id as well")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ValueError(
            f"--process-id must be in 0..{num_processes - 1} for --num-processes {num_processes}; got {process_id}"
        )
    if ":" not in coordinator:
        raise ValueError(f"--coordinator must be HOST:PORT; got {coordinator!r}")
    _join(coordinator, num_processes, process_id)
    return num_processes > 1
