"""The run folder as training sees it: checked before the work starts, one writer at a time, a fresh start
cleared of what a killed run left, newer checkpoints set aside when a resume falls back to an older one.

Its layout is in checkpoint.py.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gancli import checkpoint
from gancli.errors import GancliError
from gancli.files import check_writable

LOCK = ".gancli.lock"
SAMPLES = "samples"
SEED = re.compile(r"seed-\d+")
log = logging.getLogger("gancli")


def check(ckpt_dir: Path) -> None:
    """Before any work: gancli can keep checkpoints at ckpt_dir, and write in it and in what it holds."""
    ckpt_dir = Path(ckpt_dir)
    checkpoint.check_path(ckpt_dir)
    check_writable(ckpt_dir)
    if not ckpt_dir.is_dir():
        return
    for run_dir in checkpoint.find_runs(ckpt_dir):
        for folder in (run_dir, run_dir / checkpoint.CHECKPOINTS, run_dir / SAMPLES):
            if folder.is_dir():
                check_writable(folder)
        metrics = run_dir / checkpoint.METRICS
        if metrics.exists():
            try:
                open(metrics, "a").close()
            except OSError as e:
                raise GancliError(f"cannot write {metrics}: {e.strerror or e}") from None


@contextmanager
def claim(ckpt_dir: Path) -> Iterator[None]:
    """Hold ckpt_dir (checked, made if missing) for one writer until the block ends.

    The lock is an flock on RUN/.gancli.lock: the kernel drops it when the process ends however it ends, so a
    killed run never leaves a stale lock. The file keeps the holder's pid for the message a second one gets.
    """
    ckpt_dir = Path(ckpt_dir)
    check(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(ckpt_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise GancliError(
                f"{ckpt_dir} is being written by another gancli train (pid {holder}): "
                "wait for it to end, or choose another --ckpt"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def leftovers(ckpt_dir: Path, top: bool = True) -> list[Path] | None:
    """What a run stopped before its first checkpoint leaves in ckpt_dir (metrics lines, per-epoch pictures,
    Orbax's unfinished saves, the lock, seed folders of these), or None when it holds anything else."""
    found = []
    for p in sorted(Path(ckpt_dir).iterdir()):
        if p.is_file() and p.name in (checkpoint.METRICS, LOCK):
            found.append(p)
        elif p.is_dir() and p.name == SAMPLES and all(q.name.startswith(("epoch_", ".epoch_")) for q in p.iterdir()):
            found.append(p)
        elif p.is_dir() and p.name == checkpoint.CHECKPOINTS and all(checkpoint.UNFINISHED in q.name for q in p.iterdir()):
            found.append(p)
        elif top and p.is_dir() and SEED.fullmatch(p.name) and leftovers(p, top=False) is not None:
            found.append(p)
        else:
            return None
    return found


def start_fresh(ckpt_dir: Path) -> None:
    """Clear what a run stopped before its first checkpoint left, so that none of it mixes with the new run;
    refuse a folder that holds a checkpoint or anything not gancli's."""
    ckpt_dir = Path(ckpt_dir)
    if any(checkpoint.steps(d) for d in checkpoint.find_runs(ckpt_dir)):
        raise GancliError(f"{ckpt_dir} already holds a gancli checkpoint: resume it, or choose another --ckpt")
    found = leftovers(ckpt_dir)
    if found is None:
        raise GancliError(f"{ckpt_dir} is not empty and holds no gancli checkpoint: choose another --ckpt")
    for p in found:
        if p.name != LOCK:  # held by this process
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def set_aside(run_dirs: list[Path], step: int) -> list[Path]:
    """Rename the checkpoints after `step` (the one a resume falls back to) to <step>.skipped: kept for the user,
    out of the way of the saves that will reach their steps again, and of Orbax's keeping of the newest."""
    moved = []
    for run_dir in run_dirs:
        for s in checkpoint.steps(run_dir):
            if s > step:
                source = run_dir / checkpoint.CHECKPOINTS / str(s)
                target = source.with_name(f"{s}.skipped")
                n = 1
                while target.exists():
                    n += 1
                    target = source.with_name(f"{s}.skipped-{n}")
                source.rename(target)
                log.warning(f"set aside {source} as {target.name}: training goes on from step {step}")
                moved.append(target)
    return moved
