"""Orbax save and restore of {state, config, metadata}. The only module that imports Orbax.

A run folder is self-describing:
    RUN/checkpoints/<step>/   Orbax checkpoints (state, config.json, metadata.json), written atomically
    RUN/checkpoints/<step>.skipped/   newer checkpoints a resume fell back past, set aside (rundir.py)
    RUN/metrics.jsonl         one line per epoch
    RUN/samples/              PNG grids from a fixed z, one per epoch
    RUN/reports/              evaluation reports
A multi-seed run keeps one such folder per seed: RUN/seed-0, RUN/seed-1, ... The --ckpt folder also holds
.gancli.lock, locked by the training process that writes it (rundir.py).

A checkpoint that cannot be used (damaged files, a config that does not fit its state) is skipped for the
newest one that restores; each skip is logged as a warning on the "gancli" logger and kept in Run.skipped.
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp

from gancli import models, parallel
from gancli.rundir import CHECKPOINTS, checkpoint_steps, find_runs
from gancli.config import RunConfig
from gancli.errors import GancliError


# Orbax logs routine notes (every save, read-only restores) through absl; they are not for the user.
logging.getLogger("absl").setLevel(logging.ERROR)
log = logging.getLogger("gancli")


@dataclass
class Run:
    """A restored run: its folder, config, metadata, (unless not asked for) state pytree, and one line per newer
    checkpoint that was skipped, saying why."""

    path: Path
    config: RunConfig
    metadata: dict[str, Any]
    state: Any = None
    skipped: list[str] = field(default_factory=list)


def _options(keep: int, read_only: bool = False) -> ocp.CheckpointManagerOptions:
    return ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        cleanup_tmp_directories=not read_only,
        enable_async_checkpointing=not read_only,
        read_only=read_only,
        create=not read_only,
    )


class Writer:
    """Saves checkpoints of one run folder, keeping the last `keep`, in the background.

    save() returns once Orbax holds the arrays in host memory (orbax-checkpoint 0.12 copies them there before it
    returns); a thread of Orbax's writes them into a temporary folder, renames it when complete, and only then
    deletes the checkpoints past `keep`: a crash mid-save leaves the previous ones whole. The next save, wait() and
    close() wait for the one in flight and raise its error, if it failed.
    """

    def __init__(self, run_dir: Path, keep: int):
        self._manager = ocp.CheckpointManager(Path(run_dir).absolute() / CHECKPOINTS, options=_options(keep))

    def save(self, step: int, state, config: RunConfig, metadata: dict[str, Any]) -> None:
        """Start saving `state`: arrays that nothing donates or deletes until wait() (a newer Orbax may read them
        from the device after save returns)."""
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                config=ocp.args.JsonSave(config.to_dict()),
                metadata=ocp.args.JsonSave(metadata),
            ),
            force=True,
        )

    def wait(self) -> None:
        """Block until the save in flight is complete on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def latest_step(run_dir: Path) -> int | None:
    """The newest complete checkpoint's step in a run folder, or None if it has none."""
    found = checkpoint_steps(run_dir)
    return found[-1] if found else None


class _Unusable(Exception):
    """Why one checkpoint cannot be used, as a phrase that follows 'skipped step S of RUN: '."""

    def __init__(self, run_dir: Path, reason: str):
        super().__init__(reason)
        self.run_dir, self.reason = run_dir, reason


def load_run(path: Path, abstract_state: Callable[[RunConfig, dict], Any] | None = None) -> Run:
    """Restore the newest checkpoint of a run folder that restores.

    abstract_state(config, metadata) gives the expected tree (shapes and dtypes) to restore against; without
    it only config and metadata are read (and checked), not the state.
    """
    runs = find_runs(path)
    if len(runs) > 1:
        raise GancliError(f"{path} holds a {len(runs)}-seed run: give one of its seed folders, e.g. {runs[0]}")
    return load_common(runs, abstract_state)[0]


def load_common(dirs: list[Path], abstract_state: Callable[[RunConfig, dict], Any] | None = None) -> list[Run]:
    """Restore, in every folder of dirs (one run's seed folders), the newest step that all of them can restore.

    Seeds train in one program, so they resume from one step; a step that one seed lacks or cannot restore
    is skipped for all. Skips are logged; when no step restores, one GancliError says why.
    """
    dirs = [Path(d) for d in dirs]
    where = dirs[0] if len(dirs) == 1 else dirs[0].parent
    found = [checkpoint_steps(d) for d in dirs]
    if not any(found):
        raise GancliError(f"{where} holds no gancli checkpoint (no {CHECKPOINTS}/<step> folder inside)")
    failed: list[tuple[Path, int, str]] = []
    for step in sorted(set().union(*found), reverse=True):
        lacking = [d.name for d, s in zip(dirs, found) if step not in s]
        try:
            if lacking:
                has = "has" if len(lacking) == 1 else "have"
                raise _Unusable(where, f"{' and '.join(lacking)} {has} no checkpoint at that step")
            runs = [_load(d, step, abstract_state) for d in dirs]
        except _Unusable as e:
            failed.append((e.run_dir, step, e.reason))
            continue
        skipped = [f"skipped step {s} of {d}: {reason}" for d, s, reason in failed]
        for line in skipped:
            log.warning(line)
        for run in runs:
            run.skipped = list(skipped)
        return runs
    if len(failed) == 1:
        run_dir, step, reason = failed[0]
        raise GancliError(f"cannot restore {run_dir / CHECKPOINTS / str(step)}: {reason}")
    reasons = "; ".join(f"step {s}: {reason}" for _, s, reason in failed)
    raise GancliError(f"no checkpoint of {where} restores: {reasons}")


def newest_config(run_dir: Path) -> RunConfig:
    """The config of the newest checkpoint whose config reads; quietly (load_run warns about what it skips)."""
    for step in reversed(checkpoint_steps(run_dir)):
        try:
            return _load(Path(run_dir), step).config
        except _Unusable:
            continue
    return load_run(run_dir).config  # raises the one-line error saying why


def _load(run_dir: Path, step: int, abstract_state: Callable[[RunConfig, dict], Any] | None = None) -> Run:
    step_dir = run_dir / CHECKPOINTS / str(step)
    config_dict, metadata = _read_json(run_dir, step_dir, "config"), _read_json(run_dir, step_dir, "metadata")
    try:
        config = models.check(RunConfig.from_dict(config_dict).validate())
    except (TypeError, ValueError, AttributeError, GancliError) as e:
        raise _Unusable(run_dir, f"its config is one gancli cannot use ({e})") from None
    if metadata.get("step", step) != step:
        raise _Unusable(run_dir, f"its metadata says it is step {metadata['step']!r}")
    run = Run(path=run_dir, config=config, metadata=metadata)
    if abstract_state is None:
        return run
    try:
        # Without a sharding Orbax would place each array as the run that saved it did, on devices that a
        # process with another device count (8 wrote it, 1 reads it) does not have: the default device instead.
        target = parallel.with_default_sharding(abstract_state(config, metadata))
    except (TypeError, ValueError, KeyError, GancliError) as e:
        raise _Unusable(run_dir, f"its config or metadata is one gancli cannot use ({e})") from None
    _quiet_failed_restores()
    with closing(_reader(run_dir)) as manager:
        try:
            run.state = _restore(manager, step, target)
        except _RestoreFailed as e:  # Orbax raises many types for damaged files; the user needs one line
            raise _Unusable(run_dir, _why_not_restored(step_dir, e.stored, target, e.error)) from None
        # Orbax casts what it reads to the target's dtype without a word: a state stored as float16 or int32
        # would train on silently as another run. The stored arrays must be exactly those the config gives.
        wrong = _not_as_stored(_stored_arrays(manager, step), target)
        if wrong:
            raise _Unusable(run_dir, wrong)
    saved_step = run.state.get("step") if isinstance(run.state, dict) else None
    if saved_step is not None and int(saved_step) != step:
        raise _Unusable(run_dir, f"its state is at step {int(saved_step)}")
    return run


def _reader(run_dir: Path) -> ocp.CheckpointManager:
    # The state's handler is named so that its stored names and shapes can be read: the layout, and why a restore failed.
    return ocp.CheckpointManager(
        Path(run_dir).absolute() / CHECKPOINTS,
        options=_options(1, read_only=True),
        item_handlers={"state": ocp.StandardCheckpointHandler()},
    )


class _RestoreFailed(Exception):
    def __init__(self, error: Exception, stored: dict[str, tuple[int, ...]] | None):
        super().__init__(str(error))
        self.error, self.stored = error, stored


def _restore(manager: ocp.CheckpointManager, step: int, target):
    """The state of a checkpoint in target's tree; one in the old layout (below) only once the ordinary restore
    has failed, so that reading any other checkpoint costs nothing more. _RestoreFailed carries Orbax's error and
    the stored shapes, read once: reading a damaged checkpoint's metadata leaves Orbax's failed reads behind."""
    try:
        return manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
    except Exception as e:
        stored = _stored_shapes(manager, step)
        legacy = _legacy_names(stored or {})
        if not legacy:
            raise _RestoreFailed(e, stored) from None
    try:
        return _restore_legacy(manager, step, target, legacy)
    except Exception as e:
        raise _RestoreFailed(e, stored) from None


def _stored_shapes(manager: ocp.CheckpointManager, step: int) -> dict[str, tuple[int, ...]] | None:
    """Each stored array's shape by its stored name, from the checkpoint's metadata; None if that is unreadable."""
    stored = _stored_arrays(manager, step)
    return None if stored is None else {name: shape for name, (shape, _) in stored.items()}


def _stored_arrays(manager: ocp.CheckpointManager, step: int) -> dict[str, tuple[tuple[int, ...], str]] | None:
    """Each stored array's (shape, dtype) by its stored name, from the checkpoint's metadata; None if unreadable."""
    try:
        return _arrays(manager.item_metadata(step)["state"])
    except Exception:  # damaged: the restore fails too, and says so
        return None


def _not_as_stored(stored: dict[str, tuple[tuple[int, ...], str]] | None, target) -> str | None:
    """Why a state that restored is not the one stored (an array of another dtype or shape, one missing or one
    more, naming the first), as a reason for _Unusable; None when every array is stored as target has it."""
    if stored is None:
        return "its state metadata cannot be read, so its arrays' dtypes cannot be checked"
    stored = {_today(name): array for name, array in stored.items()}
    wanted = _arrays(target)
    absent = ("absent", "absent")
    names = sorted(set(stored) | set(wanted))
    shapes = [n for n in names if stored.get(n, absent)[0] != wanted.get(n, absent)[0]]
    if shapes:
        more = f"; {len(shapes) - 1} more" if len(shapes) > 1 else ""
        first = shapes[0]
        return (f"its config does not match the stored state ({first}: {stored.get(first, absent)[0]} stored, "
                f"{wanted.get(first, absent)[0]} in the config{more})")
    dtypes = [n for n in names if stored[n][1] != wanted[n][1]]
    if dtypes:
        more = f"; {len(dtypes) - 1} more" if len(dtypes) > 1 else ""
        first = dtypes[0]
        return f"its state files are damaged ({first} is stored as {stored[first][1]}, gancli keeps {wanted[first][1]}{more})"
    return None


def _why_not_restored(step_dir: Path, stored: dict[str, tuple[int, ...]] | None, target, error: Exception) -> str:
    """A restore failed: say whether the config asks for other shapes than the stored state has, or the files
    are damaged."""
    damaged = f"its state files are damaged ({type(error).__name__})"
    state_dir = step_dir / "state"
    if any(state_dir.glob("ocdbt.process_*")) and not (state_dir / "manifest.ocdbt").exists():
        return "its state files were never merged into one (Orbax skips that under a path holding [ ] * ?)"
    if stored is None:
        return damaged
    stored = {_today(name): shape for name, shape in stored.items()}
    wanted = _shapes(target)
    differ = [
        f"{name}: {stored.get(name, 'absent')} stored, {wanted.get(name, 'absent')} in the config"
        for name in sorted(set(stored) | set(wanted))
        if stored.get(name) != wanted.get(name)
    ]
    if not differ:
        return damaged
    more = f"; {len(differ) - 1} more" if len(differ) > 1 else ""
    return f"its config does not match the stored state ({differ[0]}{more})"


# Checkpoints written before the one training core kept Flax's {"params": ...} level inside
# each network's tree and its optimiser's, e.g. g.params.out.kernel and g_opt.velocity.params.out.kernel where
# gancli now keeps g.out.kernel: such runs (a long training resumed with the gancli it began with, say) are read
# by their stored names and given the tree of today's config.
def _legacy_names(stored: dict[str, tuple[int, ...]]) -> dict[str, str]:
    """{today's name: stored name} of each array of a checkpoint in the old layout; {} for any other."""
    legacy = {_today(name): name for name in stored}
    return legacy if any(today != name for today, name in legacy.items()) else {}


def _today(name: str) -> str:
    """A stored array's name in today's layout: without the old "params" level (no module is named so)."""
    return ".".join(part for part in name.split(".") if part != "params")


def _restore_legacy(manager: ocp.CheckpointManager, step: int, target, legacy: dict[str, str]):
    """The state of an old-layout checkpoint, in target's tree (KeyError for an array it lacks)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(target)
    as_stored: dict = {}
    for path, leaf in leaves:
        *parents, last = legacy[_name(path)].split(".")
        node = as_stored
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = leaf
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(as_stored)))["state"]
    by_name = {_name(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(restored)}
    return jax.tree_util.tree_unflatten(treedef, [by_name[legacy[_name(path)]] for path, _ in leaves])


def _shapes(tree) -> dict[str, tuple[int, ...]]:
    """Each array's shape by its path (a.b.c), for trees of dicts, named tuples and Orbax's stored metadata alike."""
    return {_name(path): tuple(leaf.shape) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _arrays(tree) -> dict[str, tuple[tuple[int, ...], str]]:
    """Each array's (shape, dtype name) by its path, for target trees and Orbax's stored metadata alike."""
    return {_name(path): (tuple(leaf.shape), str(leaf.dtype)) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _name(path) -> str:
    """A tree path as a.b.c, whether its keys are a dict's, a named tuple's or a sequence's."""
    def part(key) -> str:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                return str(getattr(key, attr))
        return str(key)

    return ".".join(part(k) for k in path)


def _quiet_failed_restores() -> None:
    """Drop the reports a failed restore leaves behind, tracebacks printed around (some after) its one-line error.

    Orbax runs a restore's reads concurrently on an event loop of its own and closes it at the first failure: the
    reads still in flight then finish on TensorStore's threads and report "Event loop is closed", and the reads
    not yet started are dropped as never-awaited coroutines. Both reach sys.unraisablehook; nothing is lost by
    dropping exactly those, and every other report still goes to the hook that was there before. A read that
    failed beside the first is logged by asyncio, when its task is collected, as an exception never retrieved:
    only those whose task ran Orbax's code are dropped.
    """
    previous = sys.unraisablehook
    if getattr(previous, "gancli_quiet", False):
        return
    orbax_dir = str(Path(ocp.__file__).parent)

    def keep(record: logging.LogRecord) -> bool:  # drops only the leftover reads of a failed Orbax restore
        message = record.getMessage()
        return not (message.startswith("Task exception was never retrieved") and orbax_dir in message)

    logging.getLogger("asyncio").addFilter(keep)

    def hook(unraisable):
        closed_loop = isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed"
        code = getattr(unraisable.object, "cr_code", None)
        if closed_loop or (code is not None and code.co_filename.startswith(orbax_dir)):
            return
        previous(unraisable)

    hook.gancli_quiet = True
    sys.unraisablehook = hook


def _read_json(run_dir: Path, step_dir: Path, item: str) -> dict:
    # Orbax keeps each Composite item in its own folder; JsonSave writes <item>/metadata.
    for c in (step_dir / item / "metadata", step_dir / f"{item}.json", step_dir / item):
        if c.is_file():
            try:
                value = json.loads(c.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise _Unusable(run_dir, f"its {item} is corrupt ({e})") from None
            except OSError as e:
                raise _Unusable(run_dir, f"its {item} cannot be read ({e.strerror or e})") from None
            if not isinstance(value, dict):
                raise _Unusable(run_dir, f"its {item} is not a JSON object but {type(value).__name__}")
            return value
    raise _Unusable(run_dir, f"it is incomplete: its {item} is missing")
