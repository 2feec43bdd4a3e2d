"""Orbax save and restore of {state, config, metadata}. The only module that imports Orbax.

A run folder is self-describing:
    RUN/checkpoints/<step>/   Orbax checkpoints (state, config.json, metadata.json), written atomically
    RUN/metrics.jsonl         one line per epoch
    RUN/samples/              PNG grids from a fixed z, one per epoch
    RUN/reports/              evaluation reports
A multi-seed run keeps one such folder per seed: RUN/seed-0, RUN/seed-1, ...
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import orbax.checkpoint as ocp

from gancli.config import RunConfig
from gancli.errors import GancliError

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"

# Orbax logs routine notes (every save, read-only restores) through absl; they are not for the user.
logging.getLogger("absl").setLevel(logging.ERROR)


@dataclass
class Run:
    """A restored run: its folder, config, metadata and (unless skipped) state pytree."""

    path: Path
    config: RunConfig
    metadata: dict[str, Any]
    state: Any = None


def _options(keep: int, read_only: bool = False) -> ocp.CheckpointManagerOptions:
    return ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        cleanup_tmp_directories=not read_only,
        enable_async_checkpointing=False,  # the state is donated to the next step: save it before that
        read_only=read_only,
        create=not read_only,
    )


class Writer:
    """Saves checkpoints of one run folder, keeping the last `keep`."""

    def __init__(self, run_dir: Path, keep: int):
        self._manager = ocp.CheckpointManager(Path(run_dir).absolute() / CHECKPOINTS, options=_options(keep))

    def save(self, step: int, state, config: RunConfig, metadata: dict[str, Any]) -> None:
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                config=ocp.args.JsonSave(config.to_dict()),
                metadata=ocp.args.JsonSave(metadata),
            ),
            force=True,
        )
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def latest_step(run_dir: Path) -> int | None:
    """The newest complete checkpoint's step in a run folder, or None if it has none."""
    found = steps(run_dir)
    return found[-1] if found else None


def steps(run_dir: Path) -> list[int]:
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


def find_runs(path: Path) -> list[Path]:
    """[path] for a single run, its seed-N folders (in seed order) for a multi-seed run."""
    path = Path(path)
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


def load_run(path: Path, abstract_state: Callable[[RunConfig, dict], Any] | None = None) -> Run:
    """Restore the latest checkpoint of a run folder.

    abstract_state(config, metadata) gives the expected tree (shapes and dtypes) to restore against; without
    it only config and metadata are read.
    """
    runs = find_runs(path)
    if len(runs) > 1:
        raise GancliError(f"{path} holds a {len(runs)}-seed run: give one of its seed folders, e.g. {runs[0]}")
    path = runs[0]
    step = latest_step(path)
    if step is None:
        raise GancliError(f"{path} holds no gancli checkpoint (no {CHECKPOINTS}/<step> folder inside)")
    step_dir = path / CHECKPOINTS / str(step)
    config_dict, metadata = _read_json(step_dir, "config"), _read_json(step_dir, "metadata")
    try:
        config = RunConfig.from_dict(config_dict).validate()
    except (TypeError, ValueError, AttributeError, GancliError) as e:
        raise GancliError(f"{step_dir} has a config gancli cannot use ({e})") from None
    run = Run(path=path, config=config, metadata=metadata)
    if abstract_state is not None:
        try:
            target = abstract_state(config, metadata)
        except (TypeError, ValueError, KeyError) as e:
            raise GancliError(f"{step_dir} has a config or metadata gancli cannot use ({type(e).__name__}: {e})") from None
        manager = ocp.CheckpointManager(path.absolute() / CHECKPOINTS, options=_options(1, read_only=True))
        try:
            restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
        except Exception as e:  # Orbax raises many types for damaged files; the user needs one line
            older = [s for s in steps(path) if s < step]
            hint = f"; step {max(older)} is also there: delete {step_dir} to fall back to it" if older else ""
            raise GancliError(
                f"cannot restore {step_dir}: its state files are damaged or incomplete ({type(e).__name__}){hint}"
            ) from None
        finally:
            manager.close()
        run.state = restored["state"]
    return run


def _read_json(step_dir: Path, item: str) -> dict:
    # Orbax keeps each Composite item in its own folder; JsonSave writes <item>/metadata.
    candidates = [step_dir / item / "metadata", step_dir / f"{item}.json", step_dir / item]
    for c in candidates:
        if c.is_file():
            try:
                return json.loads(c.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise GancliError(f"{c} is corrupt ({e})") from None
    raise GancliError(f"{step_dir} is incomplete: its {item} is missing")
