"""Model sngan-cnn and preset sngan (Miyato et al. 2018's standard CNN): shapes, the preset's values, spectral
normalisation of every D weight, a short training run on colour images, and the one-line errors."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from typer.testing import CliRunner

from gancli import models, spectral, steps, train
from gancli.cli import app
from gancli.config import default_preset, preset, with_overrides
from gancli.errors import GancliError
from gancli.models import conv, count_params
from helpers import use_fake_data

SMALL = {"generator.z_dim": 8, "generator.hidden": (16, 8, 8, 4), "discriminator.units": (4, 4, 8, 8, 8, 8, 8),
         "batch_size": 8, "chunk": 2}


def small(**more):
    """The sngan preset with widths a CPU trains in seconds."""
    return models.check(with_overrides(preset("sngan", "cifar10"), **{**SMALL, **more}))


def colour_images(n: int = 80, shape=(32, 32, 3)) -> np.ndarray:
    return np.random.default_rng(0).random((n, *shape), dtype=np.float32)


@pytest.mark.parametrize("shape", [(32, 32, 3), (16, 16, 1), (24, 40, 3)])
def test_g_makes_images_of_the_datas_shape_and_d_a_logit_and_features(shape):
    """Traced, not compiled (the CPU is shared): G's samples, D's outputs and a whole training iteration."""
    game = steps.Game(small(), shape, 100)
    state = steps.abstract_state(game)
    x = jax.eval_shape(lambda s: steps.sample(game, s, jnp.zeros((5, 8))), state)
    assert x.shape == (5, *shape)
    out = jax.eval_shape(lambda s: steps.discriminate(game, s, jnp.zeros((5, *shape))), state)
    # the last convolution's 8 maps flattened: three stride-2 layers take the side to an eighth
    assert out["logit"].shape == (5,) and out["features"].shape == (5, shape[0] // 8 * shape[1] // 8 * 8)
    new, metrics = jax.eval_shape(lambda s, b: steps.iteration(game, s, b), state, steps.iteration_spec(game))
    assert jax.tree.structure(new) == jax.tree.structure(state) and {"d_loss", "g_loss"} <= set(metrics)


def test_the_papers_model_at_full_size():
    game = steps.Game(preset("sngan", "cifar10"), (32, 32, 3), 50_000)
    state = steps.abstract_state(game)
    d = {"/".join(p): v.shape for p, v in traverse_util.flatten_dict(state["d"]).items() if p[-1] == "kernel"}
    assert d == {"Conv_0/kernel": (3, 3, 3, 64), "Conv_1/kernel": (4, 4, 64, 64), "Conv_2/kernel": (3, 3, 64, 128),
                 "Conv_3/kernel": (4, 4, 128, 128), "Conv_4/kernel": (3, 3, 128, 256), "Conv_5/kernel": (4, 4, 256, 256),
                 "Conv_6/kernel": (3, 3, 256, 512), "Dense_0/kernel": (4 * 4 * 512, 1)}
    g = state["g"]
    assert g["Dense_0"]["kernel"].shape == (128, 4 * 4 * 512) and g["BatchNorm_0"]["scale"].shape == (4 * 4 * 512,)
    assert [g[f"ConvTranspose_{i}"]["kernel"].shape for i in range(3)] == [(4, 4, 512, 256), (4, 4, 256, 128), (4, 4, 128, 64)]
    assert g["to_image"]["kernel"].shape == (3, 3, 64, 3)
    assert (count_params(state["g"]), count_params(state["d"])) == (3_820_099, 2_935_873)
    x = jax.eval_shape(lambda s: steps.sample(game, s, jnp.zeros((2, 128))), state)
    assert x.shape == (2, 32, 32, 3)


def test_the_presets_values():
    c = preset("sngan", "cifar10")
    assert (c.model, c.d_loss, c.g_loss, c.spectral_norm, c.k, c.update, c.batch_size) == (
        "sngan-cnn", "hinge", "hinge", "d", 5, "alternating", 64)
    o = c.optimizer
    assert (o.name, o.lr, o.lr_decay, o.b1, o.b2) == ("adam", 2e-4, 1.0, 0.0, 0.9)
    g, d = c.generator, c.discriminator
    assert (g.z_dim, g.noise, g.hidden, g.output, g.batchnorm, g.init_scale) == (128, "gaussian", (512, 256, 128, 64), "sigmoid", True, 0.02)
    assert (d.units, d.keep_input, d.keep_hidden, d.batchnorm, d.init_scale) == ((64, 64, 128, 128, 256, 256, 512), 1.0, 1.0, False, 0.02)
    assert (c.ema, c.d_ema, c.g_batch, c.train_split) == (0.0, 0.0, "same", "train_full")
    # 100k G updates, as the paper's runs: 156 iterations of 5 x 64 images an epoch over the 50,000
    assert steps.Game(c, (32, 32, 3), 50_000).iters_per_epoch * c.epochs == 99_996
    assert preset("sngan", "mydata").train_split == "train"  # train_full is cifar10's
    assert default_preset("cifar10") == "dcgan"  # the default preset of cifar10 is unchanged
    models.check(c)


def test_spectral_normalisation_takes_every_weight_of_d():
    game = steps.Game(preset("sngan", "cifar10"), (32, 32, 3), 50_000)
    state = steps.abstract_state(game)
    flat = traverse_util.flatten_dict(state["d"])
    weights = sorted(p for p, v in flat.items() if v.ndim >= 2)
    assert len(weights) == 8 and spectral.kernels(state["d"]) == weights  # none skipped
    assert {p[-1] for p, v in flat.items() if v.ndim < 2} == {"bias"}  # the rest are biases
    assert sorted(traverse_util.flatten_dict(state["d_spectral"])) == weights and "g_spectral" not in state


@pytest.mark.parametrize("side", [6, 8])
def test_the_4x4_stride_2_convolutions_are_their_pad_1_convolutions(side):
    """UpConv and DownConv with 4x4 kernels (SAME) against flax's with padding 1 (Conv) and the padding of chainer's
    pad-1 Deconvolution2D (k - 1 - 1 = 2 on each side of the dilated input): same outputs, side doubled or halved."""
    x = jnp.asarray(np.random.default_rng(side).normal(size=(2, side, side + 2, 3)), jnp.float32)
    init = nn.initializers.normal(0.3)
    for ours, theirs, out in ((conv.UpConv(4, 4, init), nn.ConvTranspose(4, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2))), 2),
                              (conv.DownConv(4, 4, init), nn.Conv(4, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1))), 0.5)):
        params = ours.init(jax.random.PRNGKey(0), x)
        y = ours.apply(params, x)
        assert y.shape == (2, int(side * out), int((side + 2) * out), 4)
        np.testing.assert_allclose(y, theirs.apply(params, x), rtol=1e-5, atol=1e-5)


def test_one_epoch_on_colour_images_gives_finite_losses(tmp_path, monkeypatch):
    """Every kind of layer once (G: dense + batch norm, one transposed convolution, the 3x3 to the image; D: 3x3,
    4x4 stride 2, 3x3, dense), k = 5: compiling more layers costs the shared CPU more than it tests."""
    use_fake_data(monkeypatch, colour_images(), np.zeros(80, np.int64))
    config = small(epochs=1, **{"generator.hidden": (8, 4), "discriminator.units": (4, 4, 4)})
    result = train.train(config, tmp_path / "run")
    assert result.step == 2  # 80 images, 5 D batches of 8 an iteration
    (record,) = result.history
    assert all(np.isfinite(record[k]) for k in ("d_loss", "g_loss", "d_real", "d_fake"))


def test_what_it_cannot_build_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(GancliError, match="multiple of 8 .G doubles its maps 3 times, D halves them 3 times., not 28x28") as err:
        steps.Game(small(), (28, 28, 1), 100).generator
    assert "\n" not in str(err.value)
    with pytest.raises(GancliError, match="multiple of 4"):  # a shallower net takes smaller steps
        steps.Game(small(**{"generator.hidden": (8, 4, 4), "discriminator.units": (4, 4, 8, 8, 8)}), (10, 10, 1), 100).discriminator
    with pytest.raises(GancliError, match="an odd number of conv widths"):
        small(**{"discriminator.units": (4, 4)})
    with pytest.raises(GancliError, match="no dropout in D"):
        small(**{"discriminator.keep_hidden": 0.5})
    with pytest.raises(GancliError, match="no batch norm in D"):
        small(**{"discriminator.batchnorm": True})
    with pytest.raises(GancliError, match="output_bias_from_data=false"):
        small(**{"generator.output_bias_from_data": True})
    use_fake_data(monkeypatch, colour_images(20, (28, 28, 1)), np.zeros(20, np.int64))
    result = CliRunner().invoke(app, ["train", "mnist", "--preset", "sngan", "--batch-size", "4", "--ckpt", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.output.endswith("\nerror: model sngan-cnn needs an image side that is a multiple of 8 (G doubles its "
                                  "maps 3 times, D halves them 3 times), not 28x28\n")
