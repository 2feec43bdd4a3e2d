"""Read CIFAR-10's python release (cifar-10-python.tar.gz, or its folder cifar-10-batches-py) without letting its
pickles run code, and pylearn2's global contrast normalisation.

Each batch file is a protocol-2 pickle of {"data": uint8 [n, 3072], "labels": [n ints], ...}; a row holds the red,
green and blue 32x32 planes one after another, each row-major.
"""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gancli.data import bounded, unpickle
from gancli.errors import GancliError

ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
BATCHES = (*TRAIN_BATCHES, TEST_BATCH)
SHAPE = (32, 32, 3)
Progress = Callable[[str, int, int], None]  # progress(what, done, total), as the library reports long work
LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# md5 of the official release's batches (the site publishes md5 only); provenance says whether a file matches them.
OFFICIAL_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
# A batch of the real release is 31 MB; a pickle much larger than that is not one.
MAX_BATCH_BYTES = 64 << 20
# The release's tar holds 178 MB (six batches, batches.meta, readme.html). Any member over a batch's bound, or an
# archive past this many bytes unpacked, is refused at its header, before a gzip bomb is unpacked for minutes.
MAX_ARCHIVE_BYTES = 8 * MAX_BATCH_BYTES
_EXTENSIONS = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
               tarfile.SOLARIS_XHDTYPE)
_MAX_EXTENSION_BYTES = 1 << 20
# pylearn2's CIFAR10(gcn=55.): per image, subtract the mean, divide by the L2 norm, multiply by 55.
GCN_SCALE = 55.0
GCN_MIN_DIVISOR = 1e-8  # pylearn2's global_contrast_normalize leaves images flatter than this undivided


def _batches_from_archive(path: Path, progress: Progress | None = None) -> dict[str, bytes]:
    """The batch files' bytes from the .tar.gz, read as a stream (a member at a time, never the whole archive);
    progress(what, done, total) in bytes of the file read."""
    found: dict[str, bytes] = {}
    what, total = f"reading {path.name}", path.stat().st_size

    def refuse(name: str, too: str) -> GancliError:
        return bounded.refusal(path, f"{name} {too}", "CIFAR-10's python release holds "
                               f"({MAX_BATCH_BYTES >> 20} MiB a file, {MAX_ARCHIVE_BYTES >> 20} MiB in all)")

    class Bounded(tarfile.TarInfo):
        """A header whose extension data (a long name, pax records) tarfile would read whole is bounded too."""

        def _proc_member(self, tar):
            if self.type in _EXTENSIONS and self.size > _MAX_EXTENSION_BYTES:
                raise refuse(f"a {self.size:,}-byte extended header", "before a member")
            return super()._proc_member(tar)

    try:
        with open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*", tarinfo=Bounded) as tar:
            for member in tar:
                if member.size > MAX_BATCH_BYTES:
                    raise refuse(member.name, f"is {member.size:,} bytes unpacked")
                if member.offset_data + member.size > MAX_ARCHIVE_BYTES:
                    raise refuse(member.name, f"ends {member.offset_data + member.size:,} bytes into the unpacked archive")
                name = Path(member.name).name
                if name not in BATCHES or not member.isfile() or Path(member.name).parent.name != FOLDER:
                    continue
                f = tar.extractfile(member)
                told = None if progress is None else lambda: progress(what, min(raw.tell(), total), total)
                found[name] = b"" if f is None else bounded.read_at_most(
                    f, member.size, lambda: refuse(member.name, "unpacks past its header's size"), told)
                if len(found[name]) != member.size:
                    raise GancliError(f"{path} is truncated: {member.name} ends early")
        if progress is not None:
            progress(what, total, total)
    except GancliError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise GancliError(f"{path} is not a readable {ARCHIVE} (truncated or damaged: {_line(e)})") from None
    return found


def _batches_from_folder(folder: Path) -> dict[str, bytes]:
    found = {}
    for name in BATCHES:
        p = folder / name
        if p.is_file():
            if p.stat().st_size > MAX_BATCH_BYTES:
                raise GancliError(f"{p} is {p.stat().st_size:,} bytes, not a CIFAR-10 batch")
            found[name] = p.read_bytes()
    return found


def batch_folder(path: Path) -> Path | None:
    """The cifar-10-batches-py folder that path is, or holds; None when it is neither."""
    for folder in (path, path / FOLDER):
        if (folder / TRAIN_BATCHES[0]).is_file():
            return folder
    return None


def read_batches(path: Path, progress: Progress | None = None) -> dict[str, bytes]:
    """The six batch files' bytes from an archive or a folder; GancliError naming any that are missing."""
    folder = batch_folder(path) if path.is_dir() else None
    if path.is_dir() and folder is None:
        raise GancliError(f"{path} is a folder without {FOLDER}'s batch files (data_batch_1 ... test_batch)")
    found = _batches_from_folder(folder) if folder is not None else _batches_from_archive(path, progress)
    missing = [name for name in BATCHES if name not in found]
    if missing:
        raise GancliError(f"{path} lacks {', '.join(missing)} of {FOLDER}: not the complete CIFAR-10 python release")
    return found


def _text(key) -> str:
    return key.decode("latin1") if isinstance(key, bytes) else key


def parse_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch as uint8 images (n, 32, 32, 3) and int64 labels."""
    try:
        obj = unpickle.loads_arrays(raw)
    except GancliError as e:
        raise GancliError(f"CIFAR-10 {name}: {e}") from None
    if not isinstance(obj, dict):
        raise GancliError(f"CIFAR-10 {name} does not hold a dict of data and labels")
    # Python 2 wrote the keys as str; read as bytes or text, they mean the same.
    batch = {_text(k): v for k, v in obj.items()}
    x, y = batch.get("data"), batch.get("labels")
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        what = f"{x.dtype}{list(x.shape)}" if isinstance(x, np.ndarray) else type(x).__name__
        raise GancliError(f"CIFAR-10 {name}: data is {what}, expected uint8[n, 3072]")
    try:
        labels = np.asarray(y, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise GancliError(f"CIFAR-10 {name}: labels are not whole numbers") from None
    if labels.shape != (len(x),):
        raise GancliError(f"CIFAR-10 {name}: {labels.size} labels for {len(x)} images")
    if labels.size and (labels.min() < 0 or labels.max() >= len(LABEL_NAMES)):
        raise GancliError(f"CIFAR-10 {name}: labels outside 0..9")
    images = x.reshape(len(x), 3, 32, 32).transpose(0, 2, 3, 1)  # planes -> (H, W, C)
    return np.ascontiguousarray(images), labels


def read(path: Path, progress: Progress | None = None) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str], bool]:
    """The paper's splits, the sha256 of each batch file, and whether all six match the official release.

    train = data_batch_1..4 (rows [0:40000] of the training file, as the paper's yaml took them), validation =
    data_batch_5 ([40000:50000]), test = test_batch.
    """
    raw = read_batches(path, progress)
    sha256 = {name: hashlib.sha256(raw[name]).hexdigest() for name in BATCHES}
    official = all(hashlib.md5(raw[name]).hexdigest() == OFFICIAL_MD5[name] for name in BATCHES)
    parsed = {name: parse_batch(raw.pop(name), name) for name in BATCHES}
    train = [parsed[name] for name in TRAIN_BATCHES[:-1]]
    splits = {
        "train": (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])),
        "validation": parsed[TRAIN_BATCHES[-1]],
        "test": parsed[TEST_BATCH],
    }
    return splits, sha256, official


def global_contrast_normalize(images: np.ndarray, scale: float = GCN_SCALE, chunk: int = 4096) -> np.ndarray:
    """float32 images, each centred on its own mean and scaled to L2 norm `scale` (pylearn2's gcn); chunked so
    that no float64 copy of the whole set is ever held."""
    out = np.empty(images.shape, np.float32)
    flat_out = out.reshape(len(images), -1)
    flat_in = images.reshape(len(images), -1)
    for start in range(0, len(images), chunk):
        x = flat_in[start : start + chunk].astype(np.float64)
        x -= x.mean(axis=1, keepdims=True)
        norm = np.sqrt(np.square(x).sum(axis=1, keepdims=True))
        norm[norm < GCN_MIN_DIVISOR] = 1.0
        flat_out[start : start + chunk] = x * (scale / norm)
    return out


def _line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:200]
