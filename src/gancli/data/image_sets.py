"""Images of any size made into one fixed shape and built into the TFDS data dir as a gancli dataset: a folder of
the user's files (`gancli train path/to/folder`) and a TFDS catalog dataset resized (gancli.data.catalog).

Every image is turned upright by its EXIF orientation, converted to the dataset's channels (Pillow's "L", ITU-R
601-2 luma, for 1; "RGB" for 3; alpha is dropped), centre-cropped to a square (the shorter side; an odd pixel
goes to the right and bottom), then resized to size x size with Pillow's LANCZOS filter, and stored as uint8.

A folder's dataset is named after the folder, the shape and a digest of its files, so a changed folder is a new
dataset: it is built anew (with a line saying so) and the old one stays for the runs trained on it. Nothing is
rebuilt in place, and no run ever reads images other than those it was trained on.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import sys
import types
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gancli.data import builders, prepared
from gancli.errors import GancliError

log = logging.getLogger("gancli")

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
FOLDER_PREFIX = "folder_"
RESIZE = "LANCZOS"
# Pillow modes with one colour band: such an image counts as grey for the majority rule of the channels.
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
# A split by the digest of each image's path relative to the folder: stable when files are added or removed, and
# the same on every machine. Buckets 0-4 of 100 are test, 5-9 validation, the rest train.
SPLIT_SALT = b"gancli split v1\0"
TEST_PERCENT, VALIDATION_PERCENT = 5, 5
SPLIT_RULE = (f"by sha256('gancli split v1\\0' + relative path) mod 100: 0-{TEST_PERCENT - 1} test, "
              f"{TEST_PERCENT}-{TEST_PERCENT + VALIDATION_PERCENT - 1} validation, the rest train")
PREPROCESSING = (f"EXIF orientation applied; converted to L (luma) or RGB (alpha dropped); centre-cropped to a square; "
                 f"resized with Pillow's {RESIZE} filter; uint8")


def _pillow():
    """Pillow, which matplotlib already installs; gancli declares it too, as it reads the user's images with it."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise GancliError("reading images needs Pillow: pip install pillow") from None
    return Image, ImageOps


def fit(image, size: int, channels: int) -> np.ndarray:
    """A decoded Pillow image as uint8 (size, size, channels): upright, converted, centre-cropped, resized."""
    Image, ImageOps = _pillow()
    image = ImageOps.exif_transpose(image)
    image = image.convert("L" if channels == 1 else "RGB")
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
    out = np.asarray(image, np.uint8)
    return out[..., None] if out.ndim == 2 else out


def is_gray(image) -> bool:
    """Whether an image has one colour band (its Pillow mode), for the majority rule."""
    return image.mode in GRAY_MODES


def majority_channels(grays: int, colours: int) -> int:
    """1 when more than half the readable images are grey, else 3 (a tie is colour)."""
    return 1 if grays > colours else 3


def split_of(relative: str) -> str:
    """The split an image goes to, from its path relative to the folder (SPLIT_RULE)."""
    bucket = int.from_bytes(hashlib.sha256(SPLIT_SALT + relative.encode()).digest()[:8], "big") % 100
    if bucket < TEST_PERCENT:
        return "test"
    return "validation" if bucket < TEST_PERCENT + VALIDATION_PERCENT else "train"


def shape_name(size: int, channels: int) -> str:
    return f"{size}x{size}x{channels}"


# ---- the builder -------------------------------------------------------------------------------------------------


class GancliImages(builders._ImageBuilder, skip_registration=True):
    """Images already fitted to one shape, by split, with their labels and provenance, handed over at construction
    (source is an ImageRows); a subclass per dataset gives its name, shape and class names (make_builder)."""

    name = "gancli_images"
    DESCRIPTION = "Images fitted to one shape by gancli (centre crop, LANCZOS resize)."

    def _split_generators(self, dl_manager):
        rows: ImageRows = self._source
        self._record_provenance(rows.source, rows.sha256)
        self.info.metadata.update(rows.metadata)
        # TFDS cannot write an empty split: a split no image falls into is left out (load names the ones there are).
        return {s: self._generate_examples(x, y) for s, (x, y) in rows.splits.items() if len(x)}


@dataclass
class ImageRows:
    """What a GancliImages build writes: uint8 images and int64 labels by split, and its provenance."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    source: str
    sha256: dict[str, str]
    metadata: dict = field(default_factory=dict)


def make_builder(name: str, shape: tuple[int, int, int], classes: Iterable[str], rows: ImageRows, data_dir: Path):
    """A GancliImages builder for one dataset, named and shaped for it."""
    attrs = {"name": name, "IMAGE_SHAPE": tuple(shape), "LABEL_NAMES": tuple(classes)}
    cls = types.new_class(f"GancliImages_{name}", (GancliImages,), {"skip_registration": True}, lambda ns: ns.update(attrs))
    try:
        return cls(data_dir=data_dir, source=rows)
    except OSError as e:
        raise GancliError(f"cannot prepare {name} in {data_dir}: {e}") from None


# ---- a folder of the user's images -------------------------------------------------------------------------------


@dataclass
class FolderFile:
    relative: str  # posix path relative to the folder
    size: int
    sha256: str


@dataclass
class Folder:
    """A folder's image files (by suffix) in sorted order, their digest, and what else it holds."""

    root: Path
    files: list[FolderFile]
    others: int  # files whose suffix is none of SUFFIXES: ignored, and not in the digest
    unreadable: list[tuple[str, str]]  # (relative path, why) of image files that cannot even be read

    @property
    def digest(self) -> str:
        """sha256 over the sorted lines 'relative path<TAB>size<TAB>sha256' of every image file."""
        lines = "".join(f"{f.relative}\t{f.size}\t{f.sha256}\n" for f in self.files)
        return hashlib.sha256(lines.encode()).hexdigest()


def is_folder_argument(text: str) -> bool:
    """Whether a dataset argument names a folder: a path with a separator, or one starting with '.' or '~', that is
    (or would be) a folder. A bare word is always a dataset name (write ./photos for a folder photos here)."""
    return text.startswith((".", "~", os.sep)) or (os.sep in text and Path(text).expanduser().is_dir())


def scan(root: Path) -> Folder:
    """Read every image file under root (hidden files and folders skipped, links to folders not followed)."""
    files, others, unreadable = [], 0, []
    for dirpath, dirnames, filenames in os.walk(root, onerror=_walk_error):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if path.suffix.lower() not in SUFFIXES or not path.is_file():
                others += 1
                continue
            relative = path.relative_to(root).as_posix()
            try:
                raw = path.read_bytes()
            except OSError as e:
                unreadable.append((relative, e.strerror or str(e)))
                continue
            files.append(FolderFile(relative, len(raw), hashlib.sha256(raw).hexdigest()))
    files.sort(key=lambda f: f.relative)
    return Folder(root, files, others, unreadable)


def _walk_error(e: OSError) -> None:
    raise GancliError(f"cannot read the folder {e.filename}: {e.strerror or e}")


def _decode(root: Path, f: FolderFile):
    """A fully decoded Pillow image of the file, or the reason it is not one."""
    Image, _ = _pillow()
    try:
        raw = (root / f.relative).read_bytes()
    except OSError as e:
        return None, e.strerror or str(e)
    if hashlib.sha256(raw).hexdigest() != f.sha256:
        raise GancliError(f"{root / f.relative} changed while gancli read the folder: run it again once it is still")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns of oddities (EXIF, palettes) it decodes anyway
            image = Image.open(io.BytesIO(raw))
            image.load()
        return image, None
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError or its own for damaged files
        why = re.sub(r" <_io\.BytesIO object at 0x[0-9a-f]+>", "", " ".join(str(e).split()))  # not the buffer's address
        return None, why[:120] or type(e).__name__


def _labels(files: list[FolderFile]) -> tuple[list[str], list[int]]:
    """(class names, each file's label): the first subfolder level when every image lies in one, else unlabelled (-1)."""
    tops = [f.relative.split("/")[0] if "/" in f.relative else None for f in files]
    if any(t is None for t in tops):
        if any(t is not None for t in tops):
            log.warning("images lie both at the top of the folder and in subfolders: the folder is used unlabelled "
                        "(to label them by class, put every image in its class's subfolder)")
        return [], [-1] * len(files)
    classes = sorted(set(tops))
    index = {c: i for i, c in enumerate(classes)}
    return classes, [index[t] for t in tops]


def folder_name(root: Path, size: int, channels: int, digest: str) -> str:
    """The dataset's name: folder_<the folder's name>_<shape>_<the digest's first 10 hex digits>."""
    slug = re.sub(r"[^a-z0-9]+", "_", root.name.lower()).strip("_")[:40] or "images"
    return f"{FOLDER_PREFIX}{slug}_{shape_name(size, channels)}_{digest[:10]}"


def _earlier_builds(data_dir: Path, root: Path, stem: str) -> list[tuple[str, dict]]:
    """(name, folder metadata) of the prepared builds of this folder at this shape (stem: the name less its digest)."""
    found = []
    for name, path in prepared.list_prepared(data_dir).items():
        if name.startswith(stem):
            meta = dict(prepared.open_prepared(path).info.metadata or {}).get("folder") or {}
            if meta.get("path") == str(root):
                found.append((name, meta))
    return found


def use_folder(path, data_dir: Path, size: int, channels: int | None = None, strict: bool = False) -> str:
    """Build a folder of images into data_dir (once per content); return the dataset's name to train on.

    Unreadable image files are listed in one warning and skipped, or with strict refused; a folder without
    images is one line. A folder whose files changed since an earlier build is built anew, with a line naming both.
    """
    root = Path(path).expanduser().absolute()
    if not root.is_dir():
        raise GancliError(f"{path}: no such folder" if not root.exists() else f"{path} is not a folder")
    if size < 1:
        raise GancliError(f"--image-size must be >= 1 (got {size})")
    if channels not in (None, 1, 3):
        raise GancliError(f"--channels must be 1 or 3 (got {channels})")
    folder = scan(root)
    if not folder.files and not folder.unreadable:
        others = f" (it holds {folder.others} other file{'s' if folder.others != 1 else ''})" if folder.others else ""
        raise GancliError(f"{root} holds no images ({', '.join(SUFFIXES)}){others}")
    # The channels are part of the name: the majority needs each image's mode, read from its header only.
    if channels is None:
        Image, _ = _pillow()
        modes = []
        for f in folder.files:
            try:
                with Image.open(root / f.relative) as image:  # reads the header, not the pixels
                    modes.append(is_gray(image))
            except Exception:
                pass  # an unreadable file is found, and reported, when the folder is decoded
        channels = majority_channels(sum(modes), len(modes) - sum(modes))
    digest = folder.digest
    name = folder_name(root, size, channels, digest)
    if (done := prepared.find_prepared(data_dir, name)) is not None:
        # Built before from these very files; --strict still refuses the ones that build skipped.
        skipped = (dict(prepared.open_prepared(done).info.metadata or {}).get("folder") or {}).get("skipped") or []
        if strict and skipped:
            raise GancliError(f"{root}: --strict refuses {len(skipped)} unreadable image file{'s' if len(skipped) > 1 else ''}: "
                              + "; ".join(skipped[:20]))
        return name
    images, kept, unreadable = [], [], list(folder.unreadable)
    for f in folder.files:
        image, why = _decode(root, f)
        if image is None:
            unreadable.append((f.relative, why))
            continue
        images.append(fit(image, size, channels))
        kept.append(f)
    if unreadable:
        listed = "; ".join(f"{rel} ({why})" for rel, why in sorted(unreadable)[:20])
        more = f"; and {len(unreadable) - 20} more" if len(unreadable) > 20 else ""
        if strict or not kept:
            what = "--strict refuses" if kept else "no image could be read:"
            raise GancliError(f"{root}: {what} {len(unreadable)} unreadable image file{'s' if len(unreadable) > 1 else ''}: {listed}{more}")
        log.warning(f"{root}: skipped {len(unreadable)} unreadable image file{'s' if len(unreadable) > 1 else ''} "
                    f"(--strict refuses them): {listed}{more}")
    if folder.others:
        print(f"gancli: {root}: ignored {folder.others} file{'s' if folder.others > 1 else ''} without an image "
              f"suffix ({', '.join(SUFFIXES)})", file=sys.stderr)
    classes, labels = _labels(kept)
    stem = name[: -len(digest[:10])]
    for old, meta in _earlier_builds(data_dir, root, stem):
        print(f"gancli: {root} has changed since it was built as {old} ({meta.get('images')} image files, digest "
              f"{str(meta.get('digest'))[:10]}; now {len(folder.files)}, digest {digest[:10]}): building it anew as "
              f"{name}; {old} is kept for the runs trained on it", file=sys.stderr)
    which = np.array([split_of(f.relative) for f in kept])
    stacked = np.stack(images) if images else np.zeros((0, size, size, channels), np.uint8)
    ys = np.asarray(labels, np.int64)
    splits = {s: (stacked[which == s], ys[which == s]) for s in ("train", "validation", "test")}
    if not len(splits["train"][0]):
        raise GancliError(f"{root}: none of its {len(kept)} images falls in the training split ({SPLIT_RULE}): add images")
    meta = {
        "folder": {
            "path": str(root), "images": len(folder.files), "digest": digest, "used": len(kept),
            "skipped": sorted(rel for rel, _ in unreadable), "image_size": size, "channels": channels,
            "classes": classes, "split_rule": SPLIT_RULE,
        },
        "preprocessing": PREPROCESSING,
    }
    source = (f"image folder {root} ({len(folder.files)} image files, {len(kept)} used; sha256 over the sorted "
              f"(relative path, size, sha256) list)")
    rows = ImageRows(splits, source, {"folder digest": digest}, meta)
    builder = make_builder(name, (size, size, channels), classes, rows, data_dir)
    prepared.build(builder, f"{name} from {root}")
    return name
