"""Ctrl-C (SIGINT) and SIGTERM during `gancli train`, from its first line to its last.

The first signal asks the run to stop at its next safe point: during start-up (data, the state, compilation) it
stops there with nothing saved; once training has begun, at the end of the running chunk, saving that state. A
second signal never breaks a checkpoint being written: during start-up, when nothing is being written, it ends the
process at once; from the first step on, it (and any after it) waits for the stopping save to be complete on disk.

The handler never raises. An exception raised from a signal handler surfaces wherever the main thread happens to
be: inside a garbage-collection callback (JAX's) Python prints "Exception ignored" and the run goes on; inside
Orbax's save it breaks the save half-way. No JAX here: the CLI installs this before JAX is imported.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)
STARTING, TRAINING, SAVING = "starting", "training", "saving"
_active: Stop | None = None  # the one installed, which nested watch() calls share


class Interrupted(Exception):
    """A signal came during start-up: raised at its next safe point, before anything of the run was written."""

    def __init__(self, signum: int):
        super().__init__(name(signum))
        self.signum = signum


def name(signum: int) -> str:
    return signal.Signals(signum).name


class Stop:
    """The signals received, and what a second one may do at this point of the run (phase)."""

    def __init__(self):
        self.hits: list[int] = []
        self.phase = STARTING
        self._step: int | None = None  # the step the stopping save writes
        self._told = False
        self._undo: list[Callable[[], None]] = []  # run when a second signal ends start-up at once

    @property
    def signum(self) -> int:
        """The first signal's number, or 0."""
        return self.hits[0] if self.hits else 0

    def check(self) -> None:
        """A safe point of start-up: Interrupted if a signal came."""
        if self.hits:
            raise Interrupted(self.hits[0])

    @contextmanager
    def undoing(self, undo: Callable[[], None] | None) -> Iterator[None]:
        """While the block runs, a second signal that ends start-up at once calls undo() first (None: nothing)."""
        if undo is None:
            yield
            return
        self._undo.append(undo)
        try:
            yield
        finally:
            self._undo.remove(undo)

    def training(self) -> None:
        """From here on a checkpoint may be being written: a second signal waits for it."""
        self.phase = TRAINING

    def saving(self, step: int) -> None:
        """The loop's last save (of `step`) begins, and what the user sees of the run no longer moves: a second
        signal is answered from here on, and one that came before is answered now."""
        self.phase, self._step = SAVING, step
        self._tell()

    def handle(self, signum: int, frame=None) -> None:
        self.hits.append(signum)
        if len(self.hits) < 2:
            return
        if self.phase == STARTING:
            _say(f"{name(signum)} again: stopping at once; training had not begun, nothing was saved and the "
                 "checkpoints are as they were")
            for undo in self._undo:
                undo()
            os._exit(128 + self.hits[0])
        if self.phase == SAVING:
            self._tell()

    def _tell(self) -> None:
        if len(self.hits) > 1 and not self._told:
            self._told = True
            _say(f"{name(self.hits[1])} again: waiting for the checkpoint of step {self._step} to be complete on disk, "
                 "then stopping (kill -9 stops at once, keeping the previous checkpoints)")


def _say(line: str) -> None:
    """One line on stderr, written past Python's buffers: a handler may run while the main thread is inside a write
    to sys.stderr, which the same buffer refuses to re-enter."""
    lead = "\n" if os.isatty(2) else ""  # past the ^C the terminal echoed
    os.write(2, f"{lead}{line}\n".encode())


@contextmanager
def watch() -> Iterator[Stop]:
    """Install the handler for SIGINT and SIGTERM until the block ends (the one already installed, when nested).
    Outside the main thread, where Python cannot install handlers, the Stop yielded never sees a signal."""
    global _active
    if _active is not None:
        yield _active
        return
    stop = Stop()
    try:
        previous = {s: signal.signal(s, stop.handle) for s in SIGNALS}
    except ValueError:  # not the main thread: leave the signals alone
        yield stop
        return
    _active = stop
    try:
        yield stop
    finally:
        _active = None
        for s, handler_before in previous.items():
            signal.signal(s, handler_before)
