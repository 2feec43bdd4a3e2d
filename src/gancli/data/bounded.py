"""Reading a user's file with a bound on what comes out of it: a hostile or damaged file (a gzip bomb, a header
declaring billions of rows) is refused in one line once it passes what its format holds, not read for minutes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from gancli.errors import GancliError

CHUNK = 4 << 20  # bytes read between two progress reports


def refusal(path: Path, what: str, format_holds: str) -> GancliError:
    """The one line for a file past its format's bound: what it is, and what the format holds."""
    return GancliError(f"{path}: {what}, far more than {format_holds}; not reading on")


def read_at_most(f: BinaryIO, limit: int, too_much: Callable[[], GancliError],
                 progress: Callable[[], None] | None = None) -> bytes:
    """f's bytes, a chunk at a time; too_much() is raised as soon as more than limit have come out (one chunk past
    it at most), before the rest is read or unpacked. progress() after each chunk."""
    parts, total = [], 0
    while part := f.read(min(CHUNK, limit + 1 - total)):
        parts.append(part)
        total += len(part)
        if total > limit:
            raise too_much()
        if progress is not None:
            progress()
    return b"".join(parts)
