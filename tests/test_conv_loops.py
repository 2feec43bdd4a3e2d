"""Convolution gradients that XLA's CPU backend runs fast inside a compiled epoch (a lax.scan): written as NHWC
input / HWIO kernel convolutions, the only form it rewrites other layouts into, and only outside loops."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gancli import steps
from gancli.config import preset, with_overrides
from gancli.models import conv

FAST_FORM = "b01f_01io->b01f"  # NHWC input, HWIO kernel, NHWC output


@pytest.mark.parametrize("shape,kernel,padding", [((3, 9, 7, 4), (3, 2, 4, 5), ((2, 0), (1, 1))),
                                                  ((2, 12, 12, 3), (8, 8, 3, 6), ((4, 4), (3, 4)))])
def test_the_convolutions_written_gradients_are_autodiffs(shape, kernel, padding):
    """_nhwc_conv's and _patch_grad_conv's gradients against autodiff of XLA's convolution: uneven and asymmetric
    padding, a non-square kernel, padding wider than half the kernel."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    w = jnp.asarray(rng.normal(size=kernel), jnp.float32)
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w, padding)))
    want = jax.grad(loss(conv._conv), argnums=(0, 1))(x, w)
    for ours in (conv._nhwc_conv, conv._patch_grad_conv):
        np.testing.assert_allclose(ours(x, w, padding), conv._conv(x, w, padding), rtol=1e-5, atol=1e-5)
        for a, b in zip(jax.grad(loss(ours), argnums=(0, 1))(x, w), want):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU formulations are used on CPUs only")
@pytest.mark.parametrize("model,dataset,overrides,network", [
    ("dcgan", "cifar10", {"generator.hidden": (16, 8, 4), "discriminator.units": (4, 8, 8)}, ""),
    # sngan-cnn: 4x4 transposed (G) and stride-2 (D) convolutions, 3x3 stride-1 ones in both
    ("sngan", "cifar10", {"generator.hidden": (8, 4), "discriminator.units": (4, 4, 4), "k": 1}, ""),
    # cifar-conv's G ends in a stride-3 transposed convolution of XLA's own; its D is all PaddedConv
    ("cifar-conv", "cifar10_gcn", {"generator.hidden": (16, 200), "discriminator.units": (4, 4, 8, 10)}, "ConvMaxoutDiscriminator"),
])
def test_a_compiled_epoch_keeps_every_convolution_in_the_cpus_fast_form(model, dataset, overrides, network):
    """XLA's CPU backend leaves a convolution of any other form inside a loop to a naive emitter (DCGAN's iteration
    took 85 s there instead of 2.7 s): every convolution of the compiled chunk, gradients included, is NHWC/HWIO."""
    config = with_overrides(preset(model, dataset), **{"generator.z_dim": 8, "batch_size": 10, **overrides})
    text = steps.compiled_chunk(steps.Game(config, (32, 32, 3), 20), 1, 2).as_text()
    convs = re.findall(r"convolution\([^)]*\), window=\{[^}]*\}, dim_labels=(\S+),[^\n]*op_name=\"([^\"]*)\"", text)
    mine = [labels for labels, op in convs if network in op]
    assert mine and set(mine) == {FAST_FORM}

