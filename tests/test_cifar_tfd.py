"""CIFAR-10 and TFD from the user's files (small files in the real formats, made here), the paper's CIFAR-10 / TFD
models and a DCGAN, and colour pictures."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import checkpoint, data, evaluate, images, models, optim, sampling, steps, train
from gancli.cli import app
from gancli.config import default_preset, preset, with_overrides
from gancli.data import cifar, tfd, user_files
from gancli.errors import GancliError
from gancli.models import conv, count_params

PER_BATCH = 40  # images per CIFAR-10 batch file: train 160, validation 40, test 40


@pytest.fixture(autouse=True)
def _no_env_data_dir(monkeypatch):
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)


# ---- small files in the real formats -------------------------------------------------------------------------


def cifar_batches(seed: int = 0, per_batch: int = PER_BATCH) -> dict[str, tuple[np.ndarray, list[int]]]:
    """name -> (uint8 [n, 3072] rows of R, G, B planes, labels) for the five data batches and the test batch."""
    rng = np.random.default_rng(seed)
    return {name: (rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8), rng.integers(0, 10, per_batch).tolist())
            for name in cifar.BATCHES}


def batch_pickle(x: np.ndarray, labels, name: str, bytes_keys: bool = False) -> bytes:
    """A batch file as the python release has it: a protocol-2 pickle of a dict (Python 2 wrote its keys as str)."""
    batch = {"batch_label": f"{name} of 5", "labels": labels, "data": x, "filenames": [f"img_{i}.png" for i in range(len(x))]}
    if bytes_keys:
        batch = {k.encode(): v for k, v in batch.items()}
    return pickle.dumps(batch, protocol=2)


def write_cifar_archive(path, batches, raw: dict[str, bytes] | None = None, omit=()):
    """cifar-10-python.tar.gz: cifar-10-batches-py/ with the batches, batches.meta and readme.html."""
    files = {name: batch_pickle(x, y, name) for name, (x, y) in batches.items() if name not in omit}
    files.update(raw or {})
    files["batches.meta"] = pickle.dumps({"label_names": list(cifar.LABEL_NAMES), "num_vis": 3072}, protocol=2)
    files["readme.html"] = b"<html></html>"
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(f"{cifar.FOLDER}/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def write_cifar_folder(folder, batches):
    folder.mkdir(parents=True)
    for name, (x, y) in batches.items():
        (folder / name).write_bytes(batch_pickle(x, y, name))
    return folder


def tfd_arrays(n_unlabeled: int = 30, n_labeled: int = 30, size: int = 48, seed: int = 0) -> dict[str, np.ndarray]:
    """The variables of a TFD .mat: images [N, S, S] uint8, labs_ex / labs_id [N, 1], folds [N, 5]. Unlabelled and
    labelled faces interleave; each fold deals the labelled ones into train / valid / test differently."""
    rng = np.random.default_rng(seed)
    n = n_unlabeled + n_labeled
    labeled = np.zeros(n, bool)
    labeled[rng.permutation(n)[:n_labeled]] = True
    folds = np.zeros((n, tfd.FOLDS), np.int64)
    rows = np.flatnonzero(labeled)
    for k in range(tfd.FOLDS):
        folds[rows, k] = (np.arange(len(rows)) + k) % 3 + 1
    labs_ex = np.where(labeled, rng.integers(1, 8, n), -1)
    return {
        "images": rng.integers(0, 256, (n, size, size), dtype=np.uint8),
        "labs_ex": labs_ex.reshape(n, 1).astype(np.float64),
        "labs_id": rng.integers(1, 50, (n, 1)).astype(np.float64),
        "folds": folds.astype(np.float64),
    }


def write_tfd(path, arrays):
    from scipy import io as sio

    sio.savemat(str(path), arrays, do_compression=True)
    return path


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def hwc(rows: np.ndarray) -> np.ndarray:
    """Rows of R, G, B planes as (n, 32, 32, 3) pixels in [0, 1], written out index by index."""
    out = np.empty((len(rows), 32, 32, 3), np.float32)
    for c in range(3):
        out[..., c] = rows[:, c * 1024 : (c + 1) * 1024].reshape(-1, 32, 32) / np.float32(255)
    return out


@pytest.fixture
def cifar_file(tmp_path):
    batches = cifar_batches()
    return write_cifar_archive(tmp_path / cifar.ARCHIVE, batches), batches


@pytest.fixture
def built_cifar(tmp_path, cifar_file):
    archive, batches = cifar_file
    data.use_file(archive, tmp_path / "tfds")
    return tmp_path / "tfds", archive, batches


# ---- CIFAR-10 ------------------------------------------------------------------------------------------------


def test_cifar_archive_builds_the_papers_split_in_order_with_its_checksums(tmp_path, built_cifar, capsys):
    data_dir, archive, batches = built_cifar
    expect = {
        "train": [batches[f"data_batch_{i}"] for i in range(1, 5)],
        "validation": [batches["data_batch_5"]],
        "test": [batches["test_batch"]],
        "train_full": [batches[f"data_batch_{i}"] for i in range(1, 6)],
    }
    for split, parts in expect.items():
        x, y = data.load("cifar10", split, data_dir)
        rows = np.concatenate([p[0] for p in parts])
        assert x.shape == (len(rows), 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int64
        np.testing.assert_array_equal(x, hwc(rows))  # planes -> (H, W, C), order kept
        np.testing.assert_array_equal(y, np.concatenate([p[1] for p in parts]))
    prov = data.provenance("cifar10", data_dir)
    assert prov["state"] == "ready" and prov["splits"] == {"train": 160, "validation": 40, "test": 40, "train_full": 200}
    assert prov["sha256"][cifar.ARCHIVE] == sha256(archive.read_bytes())
    for name, (x, y) in batches.items():
        assert prov["sha256"][name] == sha256(batch_pickle(x, y, name))
    assert str(archive) in prov["source"] and "differ from the official release" in prov["source"]
    capsys.readouterr()
    assert data.use_file(archive, data_dir) == ["cifar10", "cifar10_gcn"]  # already built from these bytes: no rebuild
    assert "building" not in capsys.readouterr().err


def test_cifar10_gcn_is_pylearn2s_global_contrast_normalisation(built_cifar):
    data_dir, _, batches = built_cifar
    x, y = data.load("cifar10_gcn", "validation", data_dir)
    rows = batches["data_batch_5"][0].astype(np.float64)
    centred = rows - rows.mean(axis=1, keepdims=True)
    by_hand = hwc(np.zeros_like(rows))  # the layout, then the values
    flat = 55.0 * centred / np.sqrt((centred**2).sum(axis=1, keepdims=True))
    for c in range(3):
        by_hand[..., c] = flat[:, c * 1024 : (c + 1) * 1024].reshape(-1, 32, 32)
    np.testing.assert_allclose(x, by_hand, rtol=1e-5, atol=1e-5)
    assert np.allclose(np.linalg.norm(x.reshape(len(x), -1), axis=1), 55.0, rtol=1e-5)
    assert "contrast normalisation" in data.provenance("cifar10_gcn", data_dir)["preprocessing"]
    flat_image = cifar.global_contrast_normalize(np.full((1, 2, 2, 3), 7, np.uint8))
    assert np.array_equal(flat_image, np.zeros((1, 2, 2, 3), np.float32)), "a constant image stays 0, never NaN"


def test_the_extracted_folder_in_the_manual_dir_is_found_and_matches_the_archive(tmp_path, cifar_file):
    archive, batches = cifar_file
    data_dir = tmp_path / "tfds"
    (entry,) = [e for e in data.describe(data_dir) if e["name"] == "cifar10"]
    assert entry["state"] == "needs a file" and entry["source"] == "cifar-10-python.tar.gz (or its extracted folder cifar-10-batches-py)"
    assert str(user_files.manual_dir(data_dir)) in entry["hint"] and "--data-file" in entry["hint"]
    write_cifar_folder(user_files.manual_dir(data_dir) / cifar.FOLDER, batches)
    assert next(e for e in data.describe(data_dir) if e["name"] == "cifar10")["state"] == "buildable"
    x, _ = data.load("cifar10", "test", data_dir)
    np.testing.assert_array_equal(x, hwc(batches["test_batch"][0]))
    data.use_file(archive, data_dir)  # the archive holds the same batch files: accepted without a rebuild
    x, y = batches["data_batch_1"]  # keys read as bytes (Python 3's encoding="bytes") or as text mean the same
    for raw in (batch_pickle(x, y, "b"), batch_pickle(x, y, "b", bytes_keys=True)):
        got_x, got_y = cifar.parse_batch(raw, "data_batch_1")
        np.testing.assert_array_equal(got_x, (hwc(x) * 255).round().astype(np.uint8))
        assert got_y.tolist() == y


def test_a_different_file_is_never_used_silently(built_cifar, tmp_path):
    data_dir, archive, _ = built_cifar
    other = write_cifar_archive(tmp_path / "other.tar.gz", cifar_batches(seed=1))
    with pytest.raises(GancliError, match=r"gancli_cifar10 in .* was built from .*whose contents differ from .*other\.tar\.gz: delete"):
        data.use_file(other, data_dir)


def test_loading_without_the_file_says_where_to_put_it(tmp_path):
    with pytest.raises(GancliError) as err:
        data.load("cifar10_gcn", "train", tmp_path)
    message = str(err.value)
    assert "cifar10_gcn needs cifar-10-python.tar.gz" in message and str(tmp_path / "downloads" / "manual") in message
    assert "--data-file" in message and "\n" not in message


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _bad_archives(tmp_path, batches):
    good = write_cifar_archive(tmp_path / "good.tar.gz", batches)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "photo.png"
    foreign.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (tmp_path / "empty_folder").mkdir()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    x, y = batches["data_batch_1"]
    return {
        "missing": (tmp_path / "nowhere.tar.gz", "does not exist"),
        "truncated": (truncated, "truncated"),
        "foreign": (foreign, "not a file gancli reads"),
        "folder": (tmp_path / "empty_folder", "folder without CIFAR-10's batch files"),
        "pipe": (fifo, "not a regular file"),
        "no_test_batch": (write_cifar_archive(tmp_path / "a.tar.gz", batches, omit=("test_batch",)), "lacks test_batch"),
        "code": (write_cifar_archive(tmp_path / "b.tar.gz", batches, raw={"data_batch_2": pickle.dumps(Evil(), protocol=2)}),
                 "refusing to unpickle posix.system"),
        "labels": (write_cifar_archive(tmp_path / "c.tar.gz", batches, raw={"data_batch_3": batch_pickle(x, [12] * len(x), "b")}),
                   "labels outside 0..9"),
        "shape": (write_cifar_archive(tmp_path / "d.tar.gz", batches, raw={"test_batch": batch_pickle(x[:, :100], y, "t")}),
                  r"data is uint8\[40, 100\], expected uint8\[n, 3072\]"),
    }


def test_bad_files_are_one_line_errors(tmp_path):
    cases = _bad_archives(tmp_path, cifar_batches())
    for name, (path, message) in cases.items():
        with pytest.raises(GancliError, match=message) as err:
            data.use_file(path, tmp_path / f"tfds-{name}")
        assert "\n" not in str(err.value), name
        assert not (tmp_path / f"tfds-{name}" / "gancli_cifar10").exists() or not list(
            (tmp_path / f"tfds-{name}" / "gancli_cifar10").glob("1.0.0")), f"{name}: nothing half-built is left"
    result = CliRunner().invoke(app, ["train", "cifar10", "--data-file", str(cases["truncated"][0]), "--ckpt", str(tmp_path / "run"),
                                      "--data-dir", str(tmp_path / "tfds")])
    last = result.output.splitlines()[-1]  # after the build's own notes on stderr
    assert result.exit_code == 1 and last.startswith("error: building cifar10 failed: ") and "truncated" in last
    assert "Traceback" not in result.output
    result = CliRunner().invoke(app, ["train", "tfd", "--data-file", str(cases["foreign"][0].parent / "good.tar.gz"),
                                      "--ckpt", str(tmp_path / "run2"), "--data-dir", str(tmp_path / "tfds")])
    assert result.exit_code == 1 and "for cifar10 and cifar10_gcn, not data for tfd" in result.output


def gzip_bomb(path, member: str, size: int):
    """A .tar.gz whose one member unpacks to size bytes of zeros (a whole number of MiB), made in milliseconds: one
    gzip member holding the tar header, then the same 1 MiB of zeros, compressed once, as gzip members one after
    another (gzip readers read them as one stream)."""
    import gzip

    header = tarfile.TarInfo(f"{cifar.FOLDER}/{member}")
    header.size = size
    mib = gzip.compress(bytes(1 << 20), compresslevel=9)
    with open(path, "wb") as f:
        f.write(gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT)))
        for _ in range(size >> 20):
            f.write(mib)
    return path


def test_a_gzip_bomb_in_a_data_file_is_refused_at_its_header_in_one_line(tmp_path, monkeypatch):
    """Issue 35, 10: a 17.8 MB archive unpacking to 16 GiB was read for minutes with no word. A member past a batch's
    bound is refused before it is unpacked, whatever its name; so is an archive that goes on past the release's size,
    and a long-name header tarfile would read whole."""
    import time

    bomb = gzip_bomb(tmp_path / "bomb.tar.gz", "readme.html", 1 << 30)  # 1 MB on disk, 1 GiB unpacked
    assert bomb.stat().st_size < 2 << 20
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["datasets", "--data-dir", str(tmp_path / "tfds"), "--data-file", str(bomb)])
    assert time.perf_counter() - started < 5, "the bomb was unpacked"
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines()[-1] == (
        f"error: building cifar10 failed: {bomb}: {cifar.FOLDER}/readme.html is 1,073,741,824 bytes unpacked, far "
        "more than CIFAR-10's python release holds (64 MiB a file, 512 MiB in all); not reading on")
    assert not list((tmp_path / "tfds").glob("gancli_cifar10/1.0.0"))

    batches = cifar_batches()
    many = write_cifar_archive(tmp_path / "many.tar.gz", batches)
    monkeypatch.setattr(cifar, "MAX_ARCHIVE_BYTES", 100_000)  # the six test batches unpack to 6 x 123 kB
    with pytest.raises(GancliError, match=r"data_batch_1 ends [\d,]+ bytes into the unpacked archive, far more than"):
        cifar.read_batches(many)
    monkeypatch.undo()
    long_name = tmp_path / "long.tar.gz"
    with tarfile.open(long_name, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(f"{cifar.FOLDER}/" + "x" * (2 << 20))
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(GancliError, match=r"a 2,097,[\d,]+-byte extended header before a member, far more than"):
        cifar.read_batches(long_name)


def test_reading_a_data_file_reports_progress(tmp_path, cifar_file):
    archive, _ = cifar_file
    calls = []
    data.use_file(archive, tmp_path / "tfds", progress=lambda *a: calls.append(a))
    size = archive.stat().st_size
    reads = [c for c in calls if c[0] == f"reading {archive.name}"]
    assert reads and all(total == size for _, _, total in reads)
    done = [d for _, d, _ in reads]
    assert done == sorted(done) and done[-1] == size
    assert len(reads) < len(calls)  # the build that follows the read reports its splits too


def test_datasets_command_names_the_files_and_builds_from_data_file(tmp_path, cifar_file):
    archive, _ = cifar_file
    runner = CliRunner()
    result = runner.invoke(app, ["datasets", "--data-dir", str(tmp_path / "tfds")], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    for name in ("cifar10_gcn", "tfd96", "needs a file", "cifar-10-python.tar.gz", "TFD_48x48.mat", "TFD_96x96.mat"):
        assert name in result.output
    result = runner.invoke(app, ["datasets", "--data-dir", str(tmp_path / "tfds"), "--data-file", str(archive)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.strip("│ ").startswith("cifar10 "))
    assert "ready" in row


# ---- TFD -----------------------------------------------------------------------------------------------------


def test_tfd_splits_are_the_folds_as_pylearn2_read_them(tmp_path):
    arrays = tfd_arrays()
    path = write_tfd(tmp_path / "TFD_48x48.mat", arrays)
    data_dir = tmp_path / "tfds"
    assert data.use_file(path, data_dir, "tfd") == ["tfd"]
    folds, labs = arrays["folds"].astype(int), arrays["labs_ex"][:, 0].astype(int)

    def expect(fold, code):
        rows = np.flatnonzero(folds[:, fold] == code)
        return arrays["images"][rows][..., None] / np.float32(255), np.where(labs[rows] > 0, labs[rows] - 1, -1)

    named = {"train": (0, 0), "validation": (0, 2), "test": (0, 3), "labeled_train": (0, 1), "fold3_test": (3, 3), "fold4_validation": (4, 2)}
    for split, (fold, code) in named.items():
        x, y = data.load("tfd", split, data_dir)
        want_x, want_y = expect(fold, code)
        assert x.shape == (len(want_x), 48, 48, 1) and len(x) > 0
        np.testing.assert_array_equal(x, want_x.astype(np.float32))
        np.testing.assert_array_equal(y, want_y)
    assert (data.load("tfd", "train", data_dir)[1] == -1).all()
    prov = data.provenance("tfd", data_dir)
    assert prov["sha256"] == {"TFD_48x48.mat": sha256(path.read_bytes())}
    assert prov["splits"]["train"] == 30 and prov["splits"]["validation"] == 10


def test_tfd_file_problems_are_one_line_errors(tmp_path):
    big = write_tfd(tmp_path / "TFD_96x96.mat", tfd_arrays(4, 6, size=96))
    with pytest.raises(GancliError, match=r"holds 96x96 faces .* for tfd96, not data for tfd|for tfd96, not data for tfd"):
        data.use_file(big, tmp_path / "tfds", "tfd")
    v73 = tmp_path / "v73.mat"
    v73.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(512, b" ") + bytes(1000))
    good = write_tfd(tmp_path / "TFD_48x48.mat", tfd_arrays())
    cut = tmp_path / "cut.mat"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    no_folds = write_tfd(tmp_path / "nofolds.mat", {k: v for k, v in tfd_arrays().items() if k != "folds"})
    for path, message in ((v73, "v7.3 .HDF5. file.*save -v7"), (cut, "is truncated"), (no_folds, "has no folds")):
        with pytest.raises(GancliError, match=message) as err:
            data.use_file(path, tmp_path / "tfds2", "tfd")
        assert "\n" not in str(err.value)


def test_a_tfd_file_far_larger_than_the_releases_is_refused_before_scipy_reads_it(tmp_path, monkeypatch):
    """Issue 35, 10d: a .mat of any size went to scipy, which reads each variable whole."""
    assert tfd.max_bytes(48) == 4 * 102_236 * 48 * 48 and tfd.max_bytes(96) > 3 << 30  # 4 times the releases
    monkeypatch.setattr("scipy.io.loadmat", lambda *a, **k: pytest.fail("scipy read the file"))
    padded = write_tfd(tmp_path / "TFD_48x48.mat", tfd_arrays())
    with open(padded, "r+b") as f:  # zeros past the variables, without the disk space: a sparse file
        f.truncate(tfd.max_bytes(96) + 1)
    with pytest.raises(GancliError) as e:
        data.use_file(padded, tmp_path / "tfds", "tfd")
    assert str(e.value).endswith(
        f"{padded}: is {tfd.max_bytes(96) + 1:,} bytes, far more than the TFD_96x96.mat release holds (102,236 "
        f"faces, {tfd.max_bytes(96) >> 20} MiB at most); not reading on")
    small = write_tfd(tmp_path / "small.mat", tfd_arrays(size=48))  # over the bound of a 48x48 file: 48x48 faces
    monkeypatch.setattr(tfd, "RELEASE_FACES", 5)  # 46 kB at 48x48, 184 kB at 96x96
    with pytest.raises(GancliError, match=r"small.mat: is [\d,]+ bytes, far more than the TFD_48x48.mat release holds "
                                          r"\(5 faces"):
        data.use_file(small, tmp_path / "tfds", "tfd")
    flat = write_tfd(tmp_path / "flat.mat", {**tfd_arrays(), "images": np.zeros((60, 48, 48), np.uint8)})
    monkeypatch.setattr(tfd, "RELEASE_FACES", 10)  # the file (a few kB) fits; the 60 faces its images declare do not
    with pytest.raises(GancliError, match=r"flat.mat: its variables declare images \[60, 48, 48\], labs_ex \[60, 1\], "
                                          r"folds \[60, 5\], far more than the TFD_48x48.mat release holds"):
        data.use_file(flat, tmp_path / "tfds", "tfd")


# ---- the models ----------------------------------------------------------------------------------------------

TINY_MODELS = {
    "cifar-fc": {"generator.hidden": (16, 16), "discriminator.units": (8, 8), "batch_size": 10},
    "cifar-conv": {"generator.hidden": (16, 200), "discriminator.units": (4, 4, 8, 10), "batch_size": 10},
    "dcgan": {"generator.hidden": (16, 8, 4), "discriminator.units": (4, 8, 8), "batch_size": 10},
    "tfd": {"generator.hidden": (16, 16), "discriminator.units": (8, 8), "batch_size": 10},
}


def tiny(name: str, dataset: str = "cifar10_gcn", **more):
    return models.check(with_overrides(preset(name, dataset), **{"generator.z_dim": 8, "chunk": 4, **TINY_MODELS[name], **more}))


@pytest.mark.parametrize("name,shape", [("cifar-fc", (32, 32, 3)), ("cifar-conv", (32, 32, 3)), ("dcgan", (32, 32, 3)),
                                        ("dcgan", (48, 48, 1)), ("tfd", (48, 48, 1))])
def test_each_model_makes_judges_and_trains_on_data_of_its_shape(name, shape):
    """Traced, not compiled (the CPU is shared): G's samples, D's outputs and a whole training iteration."""
    game = steps.Game(tiny(name), shape, 100)
    state = steps.abstract_state(game)
    x = jax.eval_shape(lambda s: steps.sample(game, s, jnp.zeros((6, 8))), state)
    assert x.shape == (6, *shape)
    out = jax.eval_shape(lambda s: steps.discriminate(game, s, jnp.zeros((6, *shape))), state)
    assert out["logit"].shape == (6,) and len(out["features"].shape) == 2
    batches = {"image": jax.ShapeDtypeStruct((1, 10, *shape), jnp.float32), "label": jax.ShapeDtypeStruct((1, 10), jnp.int32)}
    new, metrics = jax.eval_shape(lambda s, b: steps.iteration(game, s, b), state, batches)
    assert jax.tree.structure(new) == jax.tree.structure(state) and {"d_loss", "g_loss"} <= set(metrics)


def test_the_papers_models_at_full_size():
    """Shapes by the yamls' arithmetic, without computing anything: cifar-conv's D maps 32 -> 16 -> 7 -> 5."""
    assert conv.conv_shapes((32, 32, 3)) == [(33, 16), (15, 7), (9, 5)]
    counts = {}
    for name, dataset, shape in (("cifar-fc", "cifar10_gcn", (32, 32, 3)), ("cifar-conv", "cifar10_gcn", (32, 32, 3)),
                                 ("dcgan", "cifar10", (32, 32, 3)), ("tfd", "tfd", (48, 48, 1))):
        game = steps.Game(preset(name, dataset), shape, 40000)
        state = steps.abstract_state(game)
        counts[name] = (count_params(state["g"]), count_params(state["d"]))
        x = jax.eval_shape(lambda s: steps.sample(game, s, jnp.zeros((2, 100))), state)
        assert x.shape == (2, *shape)
        features = jax.eval_shape(lambda s: steps.discriminate(game, s, jnp.zeros((2, *shape))), state)["features"]
        counts[name + " features"] = features.shape[1]
    d = steps.abstract_state(steps.Game(preset("cifar-conv", "cifar10_gcn"), (32, 32, 3), 40000))["d"]
    assert [d[f"Conv_{i}"]["kernel"].shape for i in range(3)] == [(8, 8, 3, 64), (8, 8, 32, 64), (5, 5, 32, 384)]
    assert d["Dense_0"]["kernel"].shape == (5 * 5 * 192, 2500)
    g = steps.abstract_state(steps.Game(preset("cifar-conv", "cifar10_gcn"), (32, 32, 3), 40000))["g"]
    assert g["out"]["deconv"]["kernel"].shape == (5, 5, 80, 3) and g["out"]["bias"].shape == (3072,)
    assert counts == {
        "cifar-fc": (89_395_072, 37_393_601), "cifar-fc features": 1600,
        "cifar-conv": (64_825_072, 12_454_073), "cifar-conv features": 500,
        "dcgan": (4_926_595, 1_033_729), "dcgan features": 4096,
        "tfd": (83_250_304, 21_037_201), "tfd features": 1200,
    }


def test_pooling_lets_the_last_window_hang_over_the_edge_as_cuda_convnet_did():
    x = np.random.default_rng(0).normal(size=(2, 9, 9, 3)).astype(np.float32)
    got = np.asarray(conv._pool_over_edge(jnp.asarray(x), 2, 2))
    want = np.empty((2, 5, 5, 3), np.float32)  # ceil((9 - 2) / 2) + 1 = 5 windows a side, the last one 1 pixel wide
    for i in range(5):
        for j in range(5):
            want[:, i, j] = x[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].max(axis=(1, 2))
    np.testing.assert_array_equal(got, want)


def test_the_cpu_friendly_convolutions_compute_what_flax_does_gradients_included():
    """PaddedConv and UpConv (patches for the weight gradient, zeros inserted for the transposed one) against
    nn.Conv and nn.ConvTranspose with the same parameters."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, 6, 6, 4)), jnp.float32)
    init = nn.initializers.normal(0.3)
    pairs = [(conv.PaddedConv(5, 3, ((2, 2), (2, 2)), init), nn.Conv(5, (3, 3), padding=((2, 2), (2, 2)))),
             (conv.UpConv(16, 5, init), nn.ConvTranspose(16, (5, 5), strides=(2, 2), padding="SAME"))]
    for ours, flax_own in pairs:
        params = ours.init(jax.random.PRNGKey(0), x)
        loss = lambda module: lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
        np.testing.assert_allclose(ours.apply(params, x), flax_own.apply(params, x), rtol=1e-5, atol=1e-5)
        for a, b in zip(jax.tree.leaves(jax.grad(loss(ours), argnums=(0, 1))(params, x)),
                        jax.tree.leaves(jax.grad(loss(flax_own), argnums=(0, 1))(params, x))):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel,side", [(5, 7), (2, 4)])  # 2: lax pads the dilated input k - 1 before
def test_the_stride_2_convolutions_compute_what_flax_does_gradients_included(kernel, side):
    """UpConv (sub-pixel: phase kernels, then depth-to-space) and DownConv (space-to-depth) against nn.ConvTranspose
    and nn.Conv with stride 2 and SAME padding and the same parameters, on even and odd sides (a non-square input)."""
    rng = np.random.default_rng(kernel * side)
    x = jnp.asarray(rng.normal(size=(2, side, side + 1, 3)), jnp.float32)
    init = nn.initializers.normal(0.3)
    pairs = [(conv.UpConv(4, kernel, init), nn.ConvTranspose(4, (kernel, kernel), strides=(2, 2), padding="SAME")),
             (conv.DownConv(4, kernel, init), nn.Conv(4, (kernel, kernel), strides=(2, 2), padding="SAME"))]
    for ours, flax_own in pairs:
        params = ours.init(jax.random.PRNGKey(0), x)
        assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, flax_own.init(jax.random.PRNGKey(0), x))
        loss = lambda module: lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
        np.testing.assert_allclose(ours.apply(params, x), flax_own.apply(params, x), rtol=1e-5, atol=1e-5)
        for a, b in zip(jax.tree.leaves(jax.grad(loss(ours), argnums=(0, 1))(params, x)),
                        jax.tree.leaves(jax.grad(loss(flax_own), argnums=(0, 1))(params, x))):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_dcgans_discriminator_keeps_the_parameter_names_of_flaxs_conv():
    """Checkpoints saved when D's layers were nn.Conv (Conv_i: kernel, and a bias where no batch norm follows)
    still restore."""
    d = steps.abstract_state(steps.Game(preset("dcgan", "cifar10"), (32, 32, 3), 40000))["d"]
    shapes = {name: {k: v.shape for k, v in layer.items()} for name, layer in d.items() if name.startswith("Conv")}
    assert shapes == {"Conv_0": {"kernel": (5, 5, 3, 64), "bias": (64,)}, "Conv_1": {"kernel": (5, 5, 64, 128)},
                      "Conv_2": {"kernel": (5, 5, 128, 256)}}


def test_wrong_shapes_and_settings_are_refused():
    with pytest.raises(GancliError, match="multiple of 100"):
        steps.Game(tiny("cifar-conv", **{"generator.hidden": (16, 150)}), (32, 32, 3), 100).generator
    with pytest.raises(GancliError, match="side 3k . 5"):
        steps.Game(tiny("cifar-conv"), (48, 48, 1), 100).generator
    with pytest.raises(GancliError, match="4 numbers"):
        tiny("cifar-conv", **{"discriminator.units": (4, 4)})
    with pytest.raises(GancliError, match="output_bias_from_data=false"):
        tiny("dcgan", **{"generator.output_bias_from_data": True})
    with pytest.raises(GancliError, match="multiple of 8"):
        steps.Game(tiny("dcgan"), (28, 28, 1), 100).generator


def test_max_col_norm_caps_the_weights_into_each_unit_after_an_update():
    tx = optim.make(preset("tfd", "tfd").optimizer, 10, max_norm=1.0)
    params = {"Dense_0": {"kernel": jnp.full((4, 3), 0.4), "bias": jnp.zeros(3)}}
    grads = {"Dense_0": {"kernel": -jnp.ones((4, 3)) * jnp.array([0.0, 10.0, 100.0]), "bias": -jnp.ones(3) * 100}}
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    new = jax.tree.map(lambda p, u: p + u, params, updates)
    norms = np.linalg.norm(np.asarray(new["Dense_0"]["kernel"]), axis=0)
    assert norms[0] == pytest.approx(0.8, rel=1e-6) and np.allclose(norms[1:], 1.0, rtol=1e-6)
    assert float(new["Dense_0"]["bias"][0]) == pytest.approx(100 * 0.05), "biases are not capped"
    assert float(state[0].velocity["Dense_0"]["kernel"][0, 2]) == pytest.approx(0.05 * 100), "momentum keeps its own"


def test_default_presets_follow_the_dataset():
    assert [default_preset(d) for d in ("cifar10_gcn", "cifar10", "tfd", "mnist", "ring8")] == ["cifar-conv", "dcgan", "tfd", "paper", "toy"]
    assert preset("cifar-conv", "cifar10_gcn").generator.noise == "gaussian" and preset("cifar-conv", "x").batch_size == 128


def test_pictures_of_contrast_normalised_and_of_pixel_images():
    pixels = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
    np.testing.assert_array_equal(images.for_display(pixels), pixels)
    gcn = cifar.global_contrast_normalize((pixels * 255).astype(np.uint8))
    shown = images.for_display(gcn)
    assert shown.min() >= 0 and shown.max() <= 1
    for one, scaled in zip(gcn, shown):  # each image by its own largest |value|
        np.testing.assert_allclose(scaled, 0.5 + 0.5 * one / np.abs(one).max(), rtol=1e-6)


# ---- through gancli's own training, sampling and evaluation, on a real-format file -------------------------------


def test_train_sample_and_evaluate_a_cifar_model_end_to_end(built_cifar, tmp_path):
    data_dir = built_cifar[0]
    outcome = train.train(tiny("cifar-fc", epochs=1), tmp_path / "run", data_dir)  # dense layers compile fastest
    assert outcome.status == "done" and outcome.step == 16 and np.isfinite(outcome.history[-1]["d_loss"])
    import matplotlib.pyplot as plt

    assert plt.imread(tmp_path / "run" / "samples" / "epoch_0001.png").shape[-1] in (3, 4), "a colour grid"
    run = sampling.restore(tmp_path / "run")
    train_images = data.load("cifar10_gcn", "train", data_dir)[0]
    drawn = sampling.with_nearest(sampling.draw(run, 6, 0), train_images)
    assert drawn["samples"].shape == (6, 32, 32, 3) and drawn["nearest_index"].max() < 160
    sampling.save_picture(drawn, tmp_path / "nearest.png", train_images)
    sampling.save_picture(sampling.draw_interpolation(run, 2, 4, 0), tmp_path / "interp.png")
    for picture in ("nearest.png", "interp.png"):
        assert plt.imread(tmp_path / picture).shape[-1] in (3, 4)
    result = evaluate.evaluate_checkpoint(tmp_path / "run", [evaluate.Parzen(n_valid=20)], n_samples=50, data_dir=data_dir, calibration=False)["parzen"]
    (model,) = result.models
    assert model["n_test"] == 40 and model["dim"] == 3072 and np.isfinite(model["mean"])
    meta = checkpoint.load_run(tmp_path / "run").metadata
    assert meta["provenance"]["dataset"] == "cifar10_gcn" and meta["data_shape"] == [32, 32, 3]


def test_one_epoch_of_the_tfd_model_keeps_its_column_norms_capped(tmp_path):
    write_tfd(tmp_path / "TFD_48x48.mat", tfd_arrays(n_unlabeled=40))
    data.use_file(tmp_path / "TFD_48x48.mat", tmp_path / "tfds")
    big_steps = {"optimizer.lr": 5.0, "discriminator.init_scale": 0.5}  # so that the cap has work to do
    outcome = train.train(tiny("tfd", "tfd", epochs=1, **big_steps), tmp_path / "faces", tmp_path / "tfds")
    assert outcome.status == "done" and outcome.step == 4
    state = sampling.restore(tmp_path / "faces").state
    for net, layers in (("d", ("Dense_0", "Dense_1", "Dense_2")), ("g", ("Dense_0", "Dense_1", "out"))):
        for layer in layers:
            assert np.linalg.norm(np.asarray(state[net][layer]["kernel"]), axis=0).max() <= 1.9365 + 1e-4, (net, layer)


def test_an_epoch_reads_the_dataset_in_place_never_copying_it():
    """The compiled chunk takes the device-resident dataset as an argument and gathers each batch from it: from
    2,000 to 8,000 CIFAR images its scratch memory grows by the shuffled order (an int32 per image), not by images."""
    scratch = []
    for n in (2000, 8000):
        memory = steps.compiled_chunk(steps.Game(tiny("cifar-fc"), (32, 32, 3), n), 1, 4).memory_analysis()
        assert memory.argument_size_in_bytes >= n * 32 * 32 * 3 * 4
        scratch.append(memory.temp_size_in_bytes)
    assert (scratch[1] - scratch[0]) / 6000 <= 8 and scratch[0] < 2000 * 32 * 32 * 3 * 4 / 4
