"""Find prepared TFDS datasets on disk and build gancli's own into place atomically."""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
import sys
import time
from pathlib import Path

import tensorflow_datasets as tfds

from gancli.errors import GancliError

_VERSION_DIR = re.compile(r"^\d+\.\d+\.\d+$")
_INFO_FILE = "dataset_info.json"


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in path.name.split("."))


def complete_versions(folder: Path) -> list[Path]:
    """Version folders under folder that TFDS finished (renamed into place with their info), newest first."""
    if not folder.is_dir():
        return []
    # TFDS writes into incomplete.* and renames on success, so a version-named folder with its
    # dataset_info.json is a finished build; leftovers of killed builds never match.
    found = [p for p in folder.iterdir() if _VERSION_DIR.match(p.name) and (p / _INFO_FILE).is_file()]
    return sorted(found, key=_version_key, reverse=True)


def find_prepared(data_dir: Path, name: str, version: str | None = None) -> Path | None:
    """The prepared folder of name ('ds' or 'ds/config') at version (default: newest) in data_dir, or None."""
    found = [p for p in complete_versions(data_dir / name) if version is None or p.name == version]
    return found[0] if found else None


def list_prepared(data_dir: Path) -> dict[str, Path]:
    """Every prepared dataset in data_dir as 'name' or 'name/config' -> newest version folder."""
    out: dict[str, Path] = {}
    if not data_dir.is_dir():
        return out
    for ds in sorted(p for p in data_dir.iterdir() if p.is_dir() and p.name != "downloads"):
        if found := complete_versions(ds):
            out[ds.name] = found[0]
            continue
        for config in sorted(p for p in ds.iterdir() if p.is_dir()):
            if found := complete_versions(config):
                out[f"{ds.name}/{config.name}"] = found[0]
    return out


def open_prepared(path: Path, features: dict | None = None):
    """A read-only TFDS builder for one prepared version folder; needs no builder code and no network.

    features: the features.json that gancli's builder writes, for a dataset gancli built; the file must be exactly
    that. Any other dataset's feature classes must be TFDS's own. TFDS imports the module a class name in those
    files names, so a tampered file would otherwise choose what Python imports."""
    check_features(Path(path), features)
    try:
        return tfds.builder_from_directory(path)
    except Exception as e:  # a damaged dataset_info.json or features.json
        msg = f"cannot read the prepared dataset at {path} ({one_line(e)}); delete that folder to rebuild it"
        raise GancliError(msg) from None


_FEATURES_FILE = "features.json"
# Where TFDS reads a class name to import: a Feature proto's field (in either of protobuf's JSON spellings) and the
# legacy {"type": ..., "content": ...} form.
_CLASS_KEYS = ("pythonClassName", "python_class_name")
_TFDS_FEATURES = "tensorflow_datasets.core.features."


def check_features(path: Path, expected: dict | None = None) -> None:
    """GancliError, naming the file, unless the prepared dataset at path describes its features as gancli's builder
    wrote them (expected) or, for a dataset gancli did not build (None), with TFDS's own feature classes only."""
    files = {_FEATURES_FILE: path / _FEATURES_FILE, _INFO_FILE: path / _INFO_FILE}
    content = {}
    for name, file in files.items():
        try:
            content[name] = json.loads(file.read_text())
        except FileNotFoundError:
            content[name] = None
        except (OSError, UnicodeDecodeError, ValueError):
            return  # unparsable: TFDS fails on it before it imports anything, and open_prepared reports that
    info = content[_INFO_FILE] if isinstance(content[_INFO_FILE], dict) else {}
    if expected is not None:
        if content[_FEATURES_FILE] != expected or "features" in info:
            found = _class_names(content[_FEATURES_FILE]) + _class_names(info.get("features"))
            strange = sorted(set(found) - set(_class_names(expected)))
            what = f"it names {', '.join(strange)}" if strange else "its features differ"
            raise GancliError(
                f"{files[_FEATURES_FILE]} is not the features file gancli writes for {path.parent.name} ({what}); "
                f"not reading it: delete {path} to rebuild it"
            )
        return
    for name, found in ((_FEATURES_FILE, content[_FEATURES_FILE]), (_INFO_FILE, info.get("features"))):
        foreign = [c for c in _class_names(found) if not _tfds_feature(c)]
        if foreign:
            raise GancliError(
                f"{files[name]} names the feature class {foreign[0]!r}, which is not one of TFDS's: not reading it, "
                "as TFDS would import its module"
            )


def _class_names(node) -> list[str]:
    """Every feature class name in a features description, nested ones and those in JSON strings included."""
    if isinstance(node, str):
        if node.lstrip().startswith("{"):
            try:
                return _class_names(json.loads(node))
            except ValueError:
                return []
        return []
    if isinstance(node, list):
        return [c for item in node for c in _class_names(item)]
    if not isinstance(node, dict):
        return []
    found = [str(node[k]) for k in _CLASS_KEYS if k in node]
    if "type" in node and "content" in node:
        found.append(str(node["type"]))
    return found + [c for k, v in node.items() for c in _class_names(v)]


def _tfds_feature(name: str) -> bool:
    """Whether TFDS already knows the class, or it lives in TFDS's own features package."""
    return name in getattr(tfds.features.FeatureConnector, "_registered_features", {}) or name.startswith(_TFDS_FEATURES)


def one_line(e: BaseException, limit: int = 200) -> str:
    """An exception as one short line, for error messages."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# A build starts inside whichever data.load first needs the dataset (under train, evaluate, judge, ...): the progress
# a caller wants shown for it is set for a block (reporting_builds) rather than threaded through every loader.
_BUILD_PROGRESS: contextvars.ContextVar = contextvars.ContextVar("gancli_build_progress", default=None)


@contextlib.contextmanager
def reporting_builds(progress):
    """Within the block, a build started without a progress of its own reports progress(what, done, total)."""
    token = _BUILD_PROGRESS.set(progress)
    try:
        yield
    finally:
        _BUILD_PROGRESS.reset(token)


def build(builder, label: str, progress=None) -> Path:
    """download_and_prepare a gancli builder as array_record; on any failure nothing prepared is left.
    progress(what, done, total) per split as its examples are written (default: reporting_builds's)."""
    data_dir = Path(builder.data_dir_root)
    progress = progress if progress is not None else _BUILD_PROGRESS.get()
    if progress is not None:
        builder.report = lambda split, done, total: progress(f"building {label}: {split}", done, total)
    print(f"gancli: building {label} into {data_dir} (first use)", file=sys.stderr)
    start = time.perf_counter()
    tfds.disable_progress_bar()
    try:
        # TFDS prints its own notes to stdout; keep stdout for the program's results.
        with contextlib.redirect_stdout(sys.stderr):
            builder.download_and_prepare(
                file_format="array_record",
                download_dir=data_dir / "downloads",
                # No GCS look-up: it would be a network call, and gancli builds from local sources.
                download_config=tfds.download.DownloadConfig(try_download_gcs=False),
            )
    except Exception as e:
        # TFDS builds in an incomplete.* folder and deletes it on failure; a concurrent build that
        # won the final rename is the one failure that still leaves a good dataset.
        if done := find_prepared(data_dir, builder.name, str(builder.version)):
            return done
        if isinstance(e, GancliError):
            raise GancliError(f"building {label} failed: {one_line(e, 400)}") from None
        raise GancliError(f"building {label} failed: {type(e).__name__}: {one_line(e)}") from None
    done = find_prepared(data_dir, builder.name, str(builder.version))
    if done is None:
        raise GancliError(f"building {label} finished but left no prepared dataset in {data_dir / builder.name}")
    print(f"gancli: built {label} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return done
