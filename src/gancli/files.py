"""Writing files: never half of one (write beside it, then rename); and, before slow work, whether there is room for what
it makes (a writable folder, free disk, free memory)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gancli.errors import GancliError


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


def check_names(path: Path) -> None:
    """GancliError if a name in path is longer than its file system takes (PC_NAME_MAX, usually 255 bytes): every
    look at such a path fails with an OSError, the first one deep inside some library."""
    path = Path(path).absolute()
    at, limit = Path(path.anchor), 255
    for part in path.parts[1:]:
        if os.path.isdir(at):  # the limit of the file system the name would be made in
            try:
                limit = os.pathconf(at, "PC_NAME_MAX")
            except (OSError, ValueError):
                pass
        size = len(os.fsencode(part))
        if size > limit:
            short = part if len(part) <= 40 else f"{part[:20]}...{part[-8:]}"
            raise GancliError(
                f"{at}: the name {short!r} is {size} bytes long, more than the {limit} its file system takes for "
                "one name: choose a shorter one"
            )
        at = at / part


def _existing_folder(folder: Path) -> Path:
    """The folder if it exists, else its nearest existing ancestor (where it would be made)."""
    check_names(folder)
    folder = p = Path(folder).absolute()
    while not p.exists():
        p = p.parent
    if not p.is_dir():
        raise GancliError(f"cannot write into {folder}: {p} is a file, not a folder")
    return p


def check_writable(folder: Path, need_bytes: int = 0) -> None:
    """GancliError unless files can be written into folder (made if missing), with need_bytes free there."""
    base = _existing_folder(folder)
    # A real file is tried, not os.access: that says yes on /sys, where nothing can be made.
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as e:
        where = "" if base == Path(folder).absolute() else f" (it would be made in {base})"
        raise GancliError(f"cannot write into {folder}{where}: {e.strerror or e}") from None
    free = shutil.disk_usage(base).free
    if need_bytes > free:
        raise GancliError(f"{human_bytes(need_bytes)} would be written into {folder}, but its disk has {human_bytes(free)} free")


MEMORY_SHARE = 0.8  # of the memory available when a command starts: the rest is for the program and the machine


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation without swapping (Linux MemAvailable); None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(n: int, item_bytes: int, what: str) -> None:
    """GancliError, naming the most that fit, unless n items of item_bytes each fit in MEMORY_SHARE of the memory
    available; `what` names the items ("samples")."""
    available = available_memory()
    if available is None:
        return
    room = int(available * MEMORY_SHARE)
    if n * item_bytes > room:
        raise GancliError(
            f"{n:,} {what} need {human_bytes(n * item_bytes)} of memory ({item_bytes:,} bytes each), but "
            f"{human_bytes(available)} is available: at most {room // item_bytes:,} fit ({MEMORY_SHARE:.0%} of it)"
        )


def human_bytes(n: float) -> str:
    """A byte count in decimal units: 512 B, 3.14 GB, 350 TB, 8,000,000 EB."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n, i = n / 1000, i + 1
    return f"{n:.3g} {units[i]}" if i and n < 1000 else f"{n:,.0f} {units[i]}"


def check_count(n: int | None, what: str) -> None:
    """GancliError unless n (when given) is a count of at least one: the one rule for every --n-like option."""
    if n is not None and n < 1:
        raise GancliError(f"{what} must be >= 1 (got {n})")
