"""Streaming a training set from disk (gancli.streaming) on a folder of PNGs the tests make: a streamed run trains bit
for bit as one with the set on the device, a resumed streamed run as an uninterrupted one, the order follows the
run's seed and epoch, the threshold or --stream chooses it, and what it cannot do is refused in one line."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from helpers import leaves_equal, tiny
from PIL import Image
from typer.testing import CliRunner

from gancli import checkpoint, data, parallel, pixels, steps, streaming, train
from gancli.cli import app
from gancli.config import with_overrides
from gancli.errors import GancliError


@pytest.fixture(scope="module")
def folder_set(tmp_path_factory):
    """(data dir, dataset name) of a built folder of 130 grey 8x8 PNGs (about 117 training images: 11 iterations an
    epoch of batches of 10, in chunks of 4, 4 and 3)."""
    root = tmp_path_factory.mktemp("streamed") / "pictures"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(130):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / f"p{i:03d}.png")
    data_dir = root.parent / "tfds"
    return data_dir, data.use_folder(root, data_dir, image_size=8)


def config_of(name: str, **more):
    return with_overrides(tiny(), dataset=name, **more)


class Told(train.Silent):
    def __init__(self):
        self.lines = []

    def message(self, text):
        self.lines.append(text)


def state_of(run):
    return checkpoint.load_run(run, lambda c, m: steps.abstract_state(steps.Game(c, tuple(m["data_shape"]), m["n_train"]))).state


def test_a_streamed_run_trains_bit_for_bit_as_in_memory(folder_set, tmp_path):
    data_dir, name = folder_set
    config = config_of(name, epochs=2)
    told = Told()
    streamed = train.train(config, tmp_path / "streamed", data_dir, told, stream=True)
    in_memory = train.train(config, tmp_path / "memory", data_dir)
    assert streamed.status == in_memory.status == "done" and streamed.step == 22
    assert any("streaming" in line for line in told.lines)
    assert leaves_equal(state_of(tmp_path / "streamed"), state_of(tmp_path / "memory"))
    assert [r["d_loss"] for r in streamed.history] == [r["d_loss"] for r in in_memory.history]


def test_a_resumed_streamed_run_ends_as_an_uninterrupted_one(folder_set, tmp_path):
    data_dir, name = folder_set
    train.train(config_of(name, epochs=2), tmp_path / "whole", data_dir, stream=True)
    train.train(config_of(name, epochs=1), tmp_path / "resumed", data_dir, stream=True)
    meta = checkpoint.load_run(tmp_path / "resumed").metadata
    assert meta[streaming.STATE_KEY] == {"step": 11, "epoch": 1, "position": 0, "iterator": {"next_index": 11}}
    outcome = train.train(config_of(name, epochs=2), tmp_path / "resumed", data_dir, resume=True, stream=True)
    assert outcome.status == "done" and outcome.step == 22
    assert leaves_equal(state_of(tmp_path / "resumed"), state_of(tmp_path / "whole"))
    # A damaged stream record is refused, not trained on from another place.
    bad = dict(meta[streaming.STATE_KEY], step=5)
    game = steps.Game(config_of(name), (8, 8, 1), 117, "uint8")
    with pytest.raises(GancliError, match="data stream is at iteration 5"):
        streaming.Feed(game, data.source(name, "train", data_dir), jax.random.PRNGKey(0), 11, 22, lambda s: 4, bad)


def test_the_order_follows_the_seed_and_the_epoch(folder_set):
    data_dir, name = folder_set
    source = data.source(name, "train", data_dir)
    n = len(source)
    orders = {(seed, epoch): streaming.epoch_order(jax.random.PRNGKey(seed), epoch, n) for seed in (0, 1) for epoch in (0, 1)}
    assert all(sorted(o.tolist()) == list(range(n)) for o in orders.values())
    assert len({o.tobytes() for o in orders.values()}) == 4
    # What the in-memory chunk draws on the device, to the index.
    key = jax.random.PRNGKey(1)
    on_device = jax.jit(lambda key: jax.random.permutation(jax.random.fold_in(jax.random.fold_in(key, steps.ORDER), 1), n))(key)
    assert np.array_equal(np.asarray(on_device), orders[1, 1])
    # The feed's iteration 12 (epoch 1, iteration 1) is those rows of the split, in that order.
    game = steps.Game(config_of(name), (8, 8, 1), n, "uint8")
    with streaming.Feed(game, source, key, 12, 22, lambda s: 1, prefetch=False) as feed:
        batch = feed.take(12, 1)
    images, labels = source.take(orders[1, 1][10:20])
    assert np.array_equal(np.asarray(batch["image"]).reshape(images.shape), images)
    assert batch["image"].dtype == np.uint8 and batch["image"].shape == (1, 1, 10, 8, 8, 1)


def test_the_threshold_or_the_flag_chooses_streaming(folder_set, tmp_path, monkeypatch):
    data_dir, name = folder_set
    nbytes = data.prepared_bytes(name, "train", data_dir)
    assert nbytes == len(data.source(name, "train", data_dir)) * 64
    assert data.prepared_bytes("mnist", "train", data_dir) is None  # gancli's named sets are never streamed unasked
    with monkeypatch.context() as mp:  # half of what the device holds, either side of the set's bytes
        mp.setattr(parallel, "device_memory", lambda: (2 * nbytes + 2, "one device holds {}"))
        assert streaming.too_big(nbytes)[0] is False
        mp.setattr(parallel, "device_memory", lambda: (2 * nbytes - 2, "one device holds {}"))
        big, why = streaming.too_big(nbytes)
        assert big and "more than 50% of what one device holds" in why
    have = parallel.device_memory()[0]  # the real device, with the share moved either side of the set
    told = Told()
    monkeypatch.setattr(streaming, "STREAM_SHARE", 2 * nbytes / have)
    train.train(config_of(name, epochs=1), tmp_path / "fits", data_dir, told)
    assert not told.lines
    monkeypatch.setattr(streaming, "STREAM_SHARE", nbytes / have / 2)
    train.train(config_of(name, epochs=1), tmp_path / "big", data_dir, told)
    assert len(told.lines) == 1 and told.lines[0].startswith(f"{name} streams from disk: its training images take ")
    assert streaming.STATE_KEY in checkpoint.load_run(tmp_path / "big").metadata
    assert streaming.STATE_KEY not in checkpoint.load_run(tmp_path / "fits").metadata


@pytest.mark.parametrize("more, says", [
    ({"seeds": 2}, "--stream: a streamed run trains one seed (each seed has its own order); drop --seeds"),
    ({"preset": "semi-supervised"}, "--stream: a streamed run draws no extra batches"),
])
def test_what_streaming_cannot_do_is_one_line(folder_set, tmp_path, more, says):
    data_dir, name = folder_set
    args = ["train", name, "--stream", "--data-dir", str(data_dir), "--ckpt", str(tmp_path / "run"), "--epochs", "1"]
    args += ["--seeds", "2"] if "seeds" in more else ["--preset", more["preset"]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and says in result.stderr, result.stderr


def test_a_set_made_in_memory_cannot_be_streamed(tmp_path):
    with pytest.raises(GancliError, match="ring8 train is made in memory or converted as it is read; it cannot be streamed"):
        data.source("ring8", "train", tmp_path)
    assert pixels.TABLE.dtype == np.float32


def test_a_streamed_run_resumes_exactly_from_inside_an_epoch(folder_set, tmp_path):
    """A checkpoint after each chunk (ckpt_minutes 1e-9); the run goes on from step 8, inside epoch 1, its stream set
    from that checkpoint's iterator state."""
    import shutil

    data_dir, name = folder_set
    config = config_of(name, epochs=2, ckpt_every=0, ckpt_minutes=1e-9, keep=10)
    train.train(config, tmp_path / "whole", data_dir, stream=True)
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    for later in (tmp_path / "cut" / "checkpoints").iterdir():
        if later.name.isdigit() and int(later.name) > 8:
            shutil.rmtree(later)
    meta = checkpoint.load_run(tmp_path / "cut").metadata
    assert meta[streaming.STATE_KEY] == {"step": 8, "epoch": 0, "position": 8, "iterator": {"next_index": 8}}
    outcome = train.train(config, tmp_path / "cut", data_dir, resume=True, stream=True)
    assert outcome.step == 22
    assert leaves_equal(state_of(tmp_path / "cut"), state_of(tmp_path / "whole"))


def test_a_set_above_the_threshold_that_cannot_stream_goes_on_the_device_with_a_warning(folder_set, tmp_path, monkeypatch):
    data_dir, name = folder_set
    monkeypatch.setattr(streaming, "STREAM_SHARE", 1e-12)
    told = Told()
    assert train._stream_source(config_of(name, seeds=2), data_dir, None, False, told) is None  # the set goes on the device
    assert len(told.lines) == 1 and told.lines[0].startswith(f"warning: {name} streams from disk: ")
    assert told.lines[0].endswith("drop --seeds; the training set goes on the device instead")


def test_an_in_memory_checkpoint_resumes_streamed_in_the_same_order(folder_set, tmp_path):
    data_dir, name = folder_set
    train.train(config_of(name, epochs=2), tmp_path / "whole", data_dir)
    train.train(config_of(name, epochs=1), tmp_path / "switched", data_dir)
    assert streaming.STATE_KEY not in checkpoint.load_run(tmp_path / "switched").metadata
    train.train(config_of(name, epochs=2), tmp_path / "switched", data_dir, resume=True, stream=True)
    assert checkpoint.load_run(tmp_path / "switched").metadata[streaming.STATE_KEY]["iterator"] == {"next_index": 22}
    assert leaves_equal(state_of(tmp_path / "switched"), state_of(tmp_path / "whole"))
