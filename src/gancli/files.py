"""Writing a file so that no reader, and no crash, ever leaves half of it: write beside it, then rename."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path to write in place of `path`; it replaces `path` when the block succeeds and is removed
    either way."""
    path = Path(path)
    # Same folder, so os.replace is atomic; same suffix, so matplotlib picks the format from it.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
