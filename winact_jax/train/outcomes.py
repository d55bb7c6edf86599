"""How a run can end: its `Status`, the CLI's exit codes, and the errors that stop it.

    Status.COMPLETED == "completed"        # a str, so it is written to JSON as is
    ExitCode.DIVERGED == 5

Every status string and exit code is spelled here and nowhere else; the run
directory (`run_dir.py`), the CLI, the sweep and the report import them.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """What a run directory's summary.json says about its run.

    RUNNING: training now (or killed before it could say otherwise: readers then
      report INTERRUPTED, see `run_dir.RunRecord.status`).
    COMPLETED: trained every epoch and evaluated on the test split.
    DIVERGED: stopped at a non-finite loss, or a loss above the divergence bound.
    INTERRUPTED: stopped by a signal or `max_steps` after saving a checkpoint.
    FAILED: stopped by an error (the summary's `error` says which).
    """

    RUNNING = "running"
    COMPLETED = "completed"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


# A sweep does not train a run again once it has one of these.
FINISHED = (Status.COMPLETED, Status.DIVERGED)


class ExitCode(enum.IntEnum):
    """The exit status of `python -m experiments.train` (documented in its epilog
    and the README)."""

    COMPLETED = 0  # also a run stopped by --max-steps
    FAILED = 1  # an unexpected error (a traceback)
    BAD_CONFIG = 2  # bad flags or settings, a bad --workdir, data that cannot be had
    WORKDIR_BUSY = 3  # another run holds the --workdir's lock
    CANNOT_RESUME = 4  # no checkpoint of the --workdir restores
    DIVERGED = 5
    INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2
    TERMINATED = 143  # SIGTERM: 128 + 15


# What each exit status means, for --help and the README.
EXIT_CODE_MEANINGS = {
    ExitCode.COMPLETED: "completed (also a run stopped by --max-steps)",
    ExitCode.FAILED: "an unexpected error (with its traceback)",
    ExitCode.BAD_CONFIG: "bad flags or settings, a bad --workdir, or a dataset that is not there",
    ExitCode.WORKDIR_BUSY: "the --workdir is in use by another run (its pid, host and start time are named)",
    ExitCode.CANNOT_RESUME: "no checkpoint of the --workdir restores (each is moved to checkpoints_corrupt/)",
    ExitCode.DIVERGED: "diverged: a non-finite loss or one above the bound (recorded, not dropped)",
    ExitCode.INTERRUPTED: "interrupted by SIGINT (Ctrl-C); a checkpoint is saved, the same command resumes",
    ExitCode.TERMINATED: "interrupted by SIGTERM; likewise",
}


def exit_codes_text(indent: str = "  ") -> str:
    """The exit statuses, one per line: "  0  completed ..."."""
    return "\n".join(f"{indent}{int(code):<4}{meaning}" for code, meaning in EXIT_CODE_MEANINGS.items())


class RunError(Exception):
    """A run that cannot start or go on; the message is one line for the user."""

    exit_code = ExitCode.FAILED


class ConfigError(RunError, ValueError):
    """A setting this run cannot use (also a bad or foreign --workdir)."""

    exit_code = ExitCode.BAD_CONFIG


class NotApplicableError(ConfigError):
    """A setting given explicitly that the chosen activation, optimizer or schedule
    does not use, e.g. `threshold` with `nelu`."""

    def __init__(self, field: str, value, reason: str):
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"{field}={value!r} does not apply: {reason}")


class WorkdirBusyError(RunError):
    """Another live run holds the workdir's lock."""

    exit_code = ExitCode.WORKDIR_BUSY


class CannotResumeError(RunError):
    """The workdir has checkpoints, and none of them restores."""

    exit_code = ExitCode.CANNOT_RESUME
