"""Progress of long steps (calibration, verification runs), reported to whoever listens:
the CLI's spinner. Library calls report into nothing unless a listener is set."""

import contextlib
import contextvars
import time

_LISTENER = contextvars.ContextVar("keras_convx_progress", default=None)


@contextlib.contextmanager
def listen(callback):
    """Within the block, `callback(text)` receives each progress line (a status update)."""
    token = _LISTENER.set(callback)
    try:
        yield
    finally:
        _LISTENER.reset(token)


class Steps:
    """Counts `done` of `total` items of one step and reports '<what>: done/total <unit>,
    rate/s' to the listener, if any."""

    def __init__(self, what, total, unit="samples"):
        self.what, self.total, self.unit = what, total, unit
        self.done, self.start = 0, time.perf_counter()
        self._report()

    def advance(self, count=1):
        self.done += count
        self._report()

    def _report(self):
        listener = _LISTENER.get()
        if listener is None:
            return
        seconds = time.perf_counter() - self.start
        rate = f", {self.done / seconds:.1f} {self.unit}/s" if self.done and seconds > 0 else ""
        listener(f"{self.what}: {self.done}/{self.total} {self.unit}{rate}")
