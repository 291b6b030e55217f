"""Ctrl-C while training steps run, deferred to the space between two steps."""

from __future__ import annotations

import signal
import threading


class DeferredInterrupt:
    """Ctrl-C while training steps run is recorded here and acted on between two steps.

    A KeyboardInterrupt raised inside a step could land after the step drew its batch (the saved
    random state would then be one batch ahead, and a resumed run would diverge) or between the
    per-parameter updates of the optimiser; and a second Ctrl-C could land in the checkpoint write.
    Deferring it makes an interrupted run save whole steps with the random state the next step
    needs, so that resuming gives the same bits as an uninterrupted run. Outside the main thread
    (where signal handlers cannot be set) Ctrl-C is left as it is.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _record(self, signum, frame) -> None:
        self.requested = True

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._record)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
