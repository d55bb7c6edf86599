"""Ctrl-C and SIGTERM as a request to stop cleanly, not an exception mid-step.

While a `StopRequests` is active, the first SIGINT or SIGTERM only records itself:
the training loop finishes the step it is on, saves a checkpoint, writes the
summary and exits with 128 + the signal's number (130, 143), so the same command
resumes the run. A second signal aborts at once (`KeyboardInterrupt`).
"""

from __future__ import annotations

import signal
import sys
import threading

HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """A context manager that turns SIGINT/SIGTERM into `requested`."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    def _handle(self, signum, frame):
        if self.signum is not None:  # the second one: stop waiting
            self._restore()
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"\n{signal.Signals(signum).name}: finishing this step, then saving a checkpoint "
            "(send it again to abort without saving)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopRequests:
        # Signal handlers can only be installed from the main thread; elsewhere
        # (e.g. a run started from a worker thread) signals keep their defaults.
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __exit__(self, *exc_info) -> None:
        self._restore()
