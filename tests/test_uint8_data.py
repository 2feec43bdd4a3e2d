"""The training set lies on the device as uint8 bytes and becomes float32 inside the compiled step (gancli.pixels):
a quarter of the memory, and exactly the floats data.load gives, so a run trains bit for bit as it did on float32."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import leaves_equal, tiny

from gancli import checkpoint, data, parallel, pixels, steps, train
from gancli.config import preset, with_overrides


def test_pack_is_exact_or_refuses():
    every_byte = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    assert np.array_equal(pixels.pack(pixels.to_unit(every_byte)), every_byte)
    assert pixels.TABLE.dtype == np.float32 and np.array_equal(pixels.TABLE, np.arange(256, dtype=np.float32) / np.float32(255))
    k256 = (np.arange(256) / 256).astype(np.float32).reshape(1, 16, 16, 1)  # k/256: not bytes k/255
    assert pixels.pack(k256) is None
    one_off = pixels.to_unit(every_byte)
    one_off.reshape(-1)[7] = np.nextafter(one_off.reshape(-1)[7], np.float32(1))  # one pixel a bit away
    assert pixels.pack(one_off) is None
    for bad in (np.float32(np.nan), np.float32(-0.5), np.float32(2.0)):
        images = pixels.to_unit(every_byte)
        images.reshape(-1)[3] = bad
        assert pixels.pack(images) is None, bad


def test_x_over_255_by_a_reciprocal_would_not_be_exact():
    """Why a table, not x / 255, inside the step: the reciprocal form XLA may rewrite a division into differs."""
    k = np.arange(256, dtype=np.float32)
    assert np.count_nonzero(k * (np.float32(1) / np.float32(255)) != pixels.TABLE) > 100


def test_the_compiled_chunk_takes_a_quarter_of_the_memory():
    """CIFAR-10's 40,000 training images as the compiled program's argument: 122,880,000 bytes as uint8 against
    491,520,000 as float32 (XLA's own memory analysis), and its scratch memory still grows by the shuffled order
    (an int32 per image), not by images."""
    config = tiny()  # the paper MLP shrunk: any image shape
    memory = {(dtype, n): steps.compiled_chunk(steps.Game(config, (32, 32, 3), n, data_dtype=dtype), 1, 4).memory_analysis()
              for dtype, n in (("float32", 40_000), ("uint8", 40_000), ("uint8", 2_000))}
    sizes = {dtype: memory[dtype, 40_000].argument_size_in_bytes for dtype in ("float32", "uint8")}
    assert sizes["float32"] - sizes["uint8"] == 40_000 * 32 * 32 * 3 * 3
    assert sizes["uint8"] >= 40_000 * 32 * 32 * 3
    scratch = [memory["uint8", n].temp_size_in_bytes for n in (2_000, 40_000)]
    assert (scratch[1] - scratch[0]) / 38_000 <= 8 and scratch[0] < 2_000 * 32 * 32 * 3


def placed(monkeypatch) -> list:
    """Every training set train.train puts on the device, as it lies there."""
    seen = []
    real = parallel.place_data

    def spy(placement, images, labels):
        out = real(placement, images, labels)
        seen.append(out)
        return out

    monkeypatch.setattr(parallel, "place_data", spy)
    return seen


def test_byte_images_lie_on_the_device_as_uint8(fake_data, monkeypatch, tmp_path):
    """fake_data's 200 4x4 images are k/255: on the device 200*4*4*1 bytes, uint8."""
    seen = placed(monkeypatch)
    train.train(tiny(epochs=1), tmp_path / "run")
    (device,) = seen
    assert device["image"].dtype == jnp.uint8 and device["image"].nbytes == 200 * 4 * 4 * 1
    assert checkpoint.load_run(tmp_path / "run").metadata["n_train"] == 200


def test_other_floats_stay_float32(monkeypatch, tmp_path):
    """k/256 images, and the toy sets' points, are not bytes k/255: they go to the device as float32."""
    from helpers import random_images, use_fake_data

    use_fake_data(monkeypatch, random_images(256), np.zeros(200, np.int64))
    seen = placed(monkeypatch)
    train.train(tiny(epochs=1), tmp_path / "run")
    assert seen[0]["image"].dtype == jnp.float32 and seen[0]["image"].nbytes == 200 * 4 * 4 * 4


def test_mnist_trains_bit_for_bit_as_on_float32(mnist_data_dir, monkeypatch, tmp_path):
    """The paper preset, two epochs through train.train on the first 1,000 real MNIST training images (uint8 on the
    device), against the same compiled program run by hand on the float32 images from the same state: the same
    parameters to the bit, and the logged epoch means those of the float32 program."""
    images, labels = data.load("mnist", "train", mnist_data_dir)
    images, labels = images[:1000], labels[:1000]
    monkeypatch.setattr(data, "load", lambda name, split, data_dir=None: (images, labels))
    seen = placed(monkeypatch)
    config = with_overrides(preset("paper", "mnist"), epochs=2)
    train.train(config, tmp_path / "run", mnist_data_dir)
    assert seen[0]["image"].dtype == jnp.uint8 and seen[0]["image"].nbytes == 1000 * 28 * 28

    game = steps.Game(config, (28, 28, 1), 1000)  # float32 on the device, as before
    state = steps.init_state(game, config.seed, images)
    floats = {"image": jnp.asarray(images), "label": jnp.asarray(labels, jnp.int32)}
    means = []
    for _ in range(2):
        state, metrics = steps.compiled_chunk(game, 1, game.iters_per_epoch)(state, floats)
        means.append({k: float(np.asarray(v, np.float64).mean()) for k, v in metrics.items()})
    restored = checkpoint.load_run(tmp_path / "run", lambda c, m: steps.abstract_state(game)).state
    assert leaves_equal(restored["g"], state["g"]) and leaves_equal(restored["d"], state["d"])
    assert leaves_equal(restored["g_opt"], state["g_opt"]) and leaves_equal(restored["d_opt"], state["d_opt"])
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for record, mean in zip(logged, means):
        for key in ("d_loss", "g_loss", "d_real", "d_fake"):
            assert record[key] == pytest.approx(mean[key], abs=1.5e-6), key


def test_bytes_stay_bytes_when_padded_for_a_mesh():
    """A mesh pads the training set to rows its devices divide: the padding is bytes too, never a float32 copy."""
    from types import SimpleNamespace

    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    placement = SimpleNamespace(data_rows=lambda n: n + 3, data_sharding=NamedSharding(mesh, PartitionSpec()))
    images = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4, 1)
    placed = parallel.place_data(placement, images, np.arange(5))
    assert placed["image"].dtype == jnp.uint8 and placed["image"].shape == (8, 4, 4, 1)
    assert np.array_equal(np.asarray(placed["image"])[:5], images) and not np.asarray(placed["image"])[5:].any()
