"""The run folder, owned here: its layout, its seed folders, which checkpoints are complete, the metrics log, the
lock; checked before the work starts, one writer at a time, a fresh start cleared of what a killed run left,
newer checkpoints set aside when a resume falls back to an older one. Train, sample, evaluate, inspect and the
reports find everything in a run through this module.

    RUN/checkpoints/<step>/   Orbax checkpoints (gancli.checkpoint writes and reads them)
    RUN/metrics.jsonl         one record per epoch
    RUN/events.out.tfevents.* the same figures and each epoch's picture for TensorBoard (one file per training process)
    RUN/samples/              a PNG grid per epoch
    RUN/reports/              evaluation reports
    RUN/seed-<i>/             a multi-seed run: one such folder per seed, each laid out as above
    RUN/.gancli.lock          locked by the training process that writes the folder
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from typing import Any
from contextlib import contextmanager
from pathlib import Path

from gancli import events
from gancli.errors import GancliError
from gancli.files import atomic_path, check_names, check_writable

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
SAMPLES = "samples"
REPORTS = "reports"
LOCK = ".gancli.lock"
UNFINISHED = ".orbax-checkpoint-tmp"  # in the name of a save Orbax had not finished
SEED = re.compile(r"seed-\d+")
log = logging.getLogger("gancli")


def check_path(path: Path) -> None:
    """GancliError if Orbax cannot write complete checkpoints under path.

    Orbax finds the per-process parts of a saved state with glob on the folder's full path, so [ ] * ? in any
    folder name make it match nothing: the save skips its final merge and every later restore fails.
    """
    check_names(path)
    odd = sorted(set("[]*?") & set(str(Path(path).absolute())))
    if odd:
        raise GancliError(
            f"{path}: its path holds {' '.join(odd)}, which Orbax reads as a glob pattern (its checkpoints there "
            "would be incomplete): choose a --ckpt without them"
        )


def find_runs(path: Path) -> list[Path]:
    """[path] for a single run, its seed-N folders (in seed order) for a multi-seed run."""
    path = Path(path)
    check_names(path)
    if not path.exists():
        raise GancliError(f"{path} does not exist: give a checkpoint folder written by 'gancli train'")
    if not path.is_dir():
        raise GancliError(f"{path} is not a folder: give a checkpoint folder written by 'gancli train'")
    seeds = sorted(
        (p for p in path.iterdir() if p.is_dir() and p.name.startswith("seed-") and p.name[5:].isdigit()),
        key=lambda p: int(p.name[5:]),
    )
    if seeds:
        return seeds
    return [path]


def checkpoint_steps(run_dir: Path) -> list[int]:
    """The steps of the complete checkpoints in a run folder, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def read_metrics(run_dir: Path) -> tuple[list[dict[str, Any]], int]:
    """The metrics.jsonl records (one per epoch) and how many lines could not be read."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return [], 0
    records, skipped = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("epoch"), int):
            records.append(record)
        else:
            skipped += 1
    return records, skipped


def seed_dirs(ckpt_dir: Path, seeds: int) -> list[Path]:
    """One run folder per seed: the folder itself for one seed, seed-i inside it for several."""
    ckpt_dir = Path(ckpt_dir)
    return [ckpt_dir] if seeds == 1 else [ckpt_dir / f"seed-{i}" for i in range(seeds)]


def reports_dir(run_dir: Path) -> Path:
    return Path(run_dir) / REPORTS


def history(run_dir: Path, upto_epoch: int, rewrite: bool = True, upto_step: int | None = None) -> list[dict[str, Any]]:
    """The metrics log up to a checkpoint's epoch; with rewrite, later or unreadable lines are dropped on disk too
    (a resumed run logs those epochs again), and with upto_step (the checkpoint's) the TensorBoard events after it."""
    if rewrite and upto_step is not None:
        try:
            events.cut_after(run_dir, upto_step)
        except OSError as e:
            raise GancliError(f"cannot cut the events after step {upto_step} out of {e.filename or run_dir}: "
                              f"{e.strerror or e}") from None
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    logged, unreadable = read_metrics(run_dir)
    records = [r for r in logged if r["epoch"] <= upto_epoch]
    if (unreadable or len(records) < len(logged)) and rewrite:
        with atomic_path(path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """One epoch's record at the end of the run's metrics log."""
    path = Path(run_dir) / METRICS
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


class Log:
    """What the training loop adds to one run folder each epoch: the metrics.jsonl record and, beside it, the same
    figures (every number in the record, the training step as the step) and the epoch's sample picture as
    TensorBoard events, flushed each time, so that a live `tensorboard --logdir RUN` follows the run.

    A resumed run logs in a new events file, after `history` has cut the events past the step it resumes from out
    of the earlier ones, with the metrics log's lines: each step is in the folder once, whatever was killed when.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.events = events.Writer(self.run_dir)

    def epoch(self, record: dict[str, Any]) -> None:
        append_metrics(self.run_dir, record)
        self.events.scalars(record["step"], {k: v for k, v in record.items() if _number(v) and k != "step"})

    def picture(self, step: int, png: Path) -> None:
        """The epoch's sample picture, a PNG file already written, as TensorBoard's image "samples" at step."""
        self.events.image(step, "samples", Path(png).read_bytes())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.events.close()


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check(ckpt_dir: Path) -> None:
    """Before any work: gancli can keep checkpoints at ckpt_dir, and write in it and in what it holds."""
    ckpt_dir = Path(ckpt_dir)
    check_path(ckpt_dir)
    check_writable(ckpt_dir)
    if not ckpt_dir.is_dir():
        return
    for run_dir in find_runs(ckpt_dir):
        for folder in (run_dir, run_dir / CHECKPOINTS, run_dir / SAMPLES):
            if folder.is_dir():
                check_writable(folder)
        metrics = run_dir / METRICS
        if metrics.exists():
            try:
                open(metrics, "a").close()
            except OSError as e:
                raise GancliError(f"cannot write {metrics}: {e.strerror or e}") from None


@contextmanager
def claim(ckpt_dir: Path) -> Iterator[Callable[[], None]]:
    """Hold ckpt_dir (checked, made if missing) for one writer until the block ends.

    The lock is an flock on RUN/.gancli.lock: the kernel drops it when the process ends however it ends, so a
    killed run never leaves a stale lock. The file keeps the holder's pid for the message a second one gets.
    When the block fails (an option refused once the data is known, a signal during start-up) and the folder
    holds nothing but the lock, what the claim made (the lock file, the folders) is taken back; a folder that
    existed before is never removed. Yields the function that takes them back, for a process about to end at once.
    """
    ckpt_dir = Path(ckpt_dir)
    check(ckpt_dir)
    made = [p for p in (ckpt_dir, *ckpt_dir.parents) if not p.exists()]  # deepest first, as they are removed
    lock = ckpt_dir / LOCK
    lock_made = not lock.exists()
    fd = _lock(ckpt_dir)
    take_back = lambda: _take_back(ckpt_dir, made, lock_made)
    try:
        try:
            yield take_back
        except BaseException:
            take_back()
            raise
    finally:
        os.close(fd)


def _lock(ckpt_dir: Path) -> int:
    """An fd holding the flock on ckpt_dir's lock file, which names this process."""
    lock = ckpt_dir / LOCK
    while True:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # a claim that failed took back the folder in between
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise GancliError(
                f"{ckpt_dir} is being written by another gancli train (pid {holder}): "
                "wait for it to end, or choose another --ckpt"
            ) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)  # locked a file that a failed claim had just taken back: lock the one there now


def _take_back(ckpt_dir: Path, made: list[Path], lock_made: bool) -> None:
    """Remove the lock file a failed claim made, then the folders it made, while they hold nothing else."""
    try:
        if any(p.name != LOCK for p in ckpt_dir.iterdir()):
            return
        if lock_made:
            (ckpt_dir / LOCK).unlink(missing_ok=True)  # still locked: a claim waiting on it locks the next one
        for folder in made:
            folder.rmdir()
    except OSError:  # a folder another process has written into meanwhile, one that went: left as it is
        pass


def leftovers(ckpt_dir: Path, top: bool = True) -> list[Path] | None:
    """What a run stopped before its first checkpoint leaves in ckpt_dir (metrics lines, events, per-epoch pictures,
    Orbax's unfinished saves, the lock, seed folders of these), or None when it holds anything else."""
    found = []
    for p in sorted(Path(ckpt_dir).iterdir()):
        if p.is_file() and (p.name in (METRICS, LOCK) or p.name.startswith(events.PREFIX)):
            found.append(p)
        elif p.is_dir() and p.name == SAMPLES and all(q.name.startswith(("epoch_", ".epoch_")) for q in p.iterdir()):
            found.append(p)
        elif p.is_dir() and p.name == CHECKPOINTS and all(UNFINISHED in q.name for q in p.iterdir()):
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
    if any(checkpoint_steps(d) for d in find_runs(ckpt_dir)):
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
        for s in checkpoint_steps(run_dir):
            if s > step:
                source = run_dir / CHECKPOINTS / str(s)
                target = _aside(source)
                log.warning(f"set aside {source} as {target.name}: training goes on from step {step}")
                moved.append(target)
    return moved


# The names Orbax saves a step under: <step>/ and, until the save is complete, <step>.orbax-checkpoint-tmp/.
STEP_NAME = re.compile(r"\d+(" + re.escape(UNFINISHED) + r"(-\d+)?)?")


def set_aside_strays(run_dirs: list[Path]) -> list[Path]:
    """Rename to <name>.skipped whatever holds a step's name in checkpoints/ but is not a folder of its own (a file,
    a symlink, a symlink loop): Orbax can neither save over nor delete it, and would fail at the first save that
    reaches its step, an epoch after training began. Kept for the user, like skipped checkpoints."""
    moved = []
    for run_dir in run_dirs:
        root = Path(run_dir) / CHECKPOINTS
        if not root.is_dir():
            continue
        for p in sorted(root.iterdir()):
            if STEP_NAME.fullmatch(p.name) and (p.is_symlink() or not p.is_dir()):
                what = _stray_kind(p)
                # Without Orbax's suffix: the one set aside must not be taken for an unfinished save again.
                target = _aside(p, p.name.replace(UNFINISHED, ".tmp"))
                log.warning(f"set aside {p} as {target.name}: a {what} where Orbax keeps a checkpoint folder")
                moved.append(target)
    return moved


def _stray_kind(p: Path) -> str:
    if p.is_symlink():
        try:
            p.resolve(strict=True)
        except RuntimeError:  # Python 3.11 says "Symlink loop"; 3.13 raises OSError(ELOOP)
            return "symlink loop"
        except OSError as e:
            return "symlink loop" if e.errno == errno.ELOOP else "broken symlink"
        return "symlink"
    return "file" if p.is_file() else "special file"


def _aside(source: Path, name: str | None = None) -> Path:
    """Rename source to <name>.skipped (or .skipped-2, ...: never over an earlier one; name: source's) and return
    the new path."""
    name = name or source.name
    target = source.with_name(f"{name}.skipped")
    n = 1
    while target.exists() or target.is_symlink():
        n += 1
        target = source.with_name(f"{name}.skipped-{n}")
    source.rename(target)
    return target
