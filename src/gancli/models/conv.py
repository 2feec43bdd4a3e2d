"""The 2014 paper's CIFAR-10 and TFD models (goodfeli/adversarial's yaml files) and a DCGAN-style baseline.

cifar-fc    cifar10_fully_connected.yaml. G: z -> ReLU 8000 -> sigmoid 8000 -> linear 3072 (output weights U(-.5, .5),
            hidden U(-.05, .05)). D: maxout 1600x5 -> maxout 1600x5 -> sigmoid, gancli's mlp.Discriminator.
cifar-conv  cifar10_convolutional.yaml. G: z -> ReLU 8000 -> sigmoid 8000 -> reshaped 10x10x80 -> 5x5 transposed
            convolution with output stride 3 (10 -> 3 * 9 + 5 = 32) to 32x32x3, linear, one bias per output pixel
            (tied_b: 0). D: three conv-maxout layers (CONV_LAYERS, 2 pieces, tied biases, cuda-convnet's pooling that
            lets the last window hang over the edge) -> maxout 500x5 -> sigmoid; 32x32 -> 16 -> 7 -> 5 (conv_shapes).
tfd         tfd_pretrain/pretrain.yaml's G, trained from scratch: z -> ReLU 8000 -> sigmoid 8000 (bias -2) -> sigmoid
            2304 (sparse init: 100 N(0, 1) weights into each unit; bias = logit of the pixel means). D: maxout
            1200x5 x2 (mlp.Discriminator); the max column norm 1.9365 is generator/discriminator.max_col_norm.
dcgan       Radford et al. (2016): G z -> dense to (H/8)x(W/8)x512 -> 5x5 stride-2 transposed convolutions (256,
            128, then the image's channels), batch norm and ReLU between; D 5x5 stride-2 convolutions (64, 128, 256)
            with leaky ReLU 0.2, batch norm on all but the first; weights N(0, 0.02). Its G ends in a sigmoid for
            pixels in [0, 1] (DCGAN's tanh, for [-1, 1], shifted and scaled).

Config fields per family: generator.hidden are the dense widths (cifar-fc, tfd, cifar-conv: the first ReLU, the
rest sigmoid) or dcgan's channel widths, widest first; discriminator.units are cifar-conv's (conv1, conv2, conv3,
dense) channel/unit counts or dcgan's channel widths. discriminator.pieces is the dense maxout's (cifar-conv's conv
layers keep the yaml's 2). init_scale is U(-s, s)'s s, except in dcgan where it is N(0, s)'s standard deviation.
dcgan ignores discriminator.pieces; none of these families has dropout in G (generator.keep_hidden).
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gancli.config import DiscriminatorConfig, GeneratorConfig, RunConfig
from gancli.errors import GancliError
from gancli.models import mlp
from gancli.models.layers import MinibatchDiscrimination, dropout, maxout, uniform_init

# cifar10_convolutional.yaml's D: (kernel, pad, pool window, pool stride) per conv-maxout layer.
CONV_LAYERS = ((8, 4, 4, 2), (8, 3, 4, 2), (5, 3, 2, 2))
CONV_PIECES = 2
# ... and its G's last layer: kernel_shape [5, 5], output_stride [3, 3], pad_out 0.
DECONV_KERNEL, DECONV_STRIDE = 5, 3
TFD_OUTPUT_NONZERO = 100  # pretrain.yaml's sparse_init
TFD_SIGMOID_BIAS = -2.0  # pretrain.yaml's init_bias of the sigmoid 8000 layer
CIFAR_FC_OUTPUT_SCALE = 0.5  # cifar10_fully_connected.yaml's irange of the linear 3072 layer
DCGAN_KERNEL = 5


def sparse_init(nonzero: int, stdev: float = 1.0):
    """pylearn2's sparse_init: each unit gets `nonzero` N(0, stdev^2) weights from distinct random inputs, the rest 0."""

    def init(key, shape, dtype=jnp.float32):
        fan_in, units = shape
        k = min(nonzero, fan_in)
        pick, value = jax.random.split(key)
        _, rows = jax.lax.top_k(jax.random.uniform(pick, (units, fan_in)), k)
        w = jnp.zeros((units, fan_in), dtype).at[jnp.arange(units)[:, None], rows].set(jax.random.normal(value, (units, k), dtype) * stdev)
        return w.T

    return init


_DN = ("NHWC", "HWIO", "NHWC")


def _conv(x, w, padding):
    """A stride-1 convolution of an NHWC input with an HWIO kernel: the form XLA's CPU backend runs fast anywhere."""
    return lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=_DN)


# Autodiff writes a convolution's gradients as convolutions in other layouts (the kernel's channel axes swapped for
# the input gradient; batch and channels swapped for the weight gradient). XLA's CPU backend rewrites those into the
# NHWC/HWIO form of its fast kernels only in a program's entry computation (cpu/conv_canonicalization.cc visits
# nothing else); inside a while loop, which every lax.scan is, so every compiled epoch, they go to its naive loop
# emitter. One 3x3 convolution's gradients took 4.5 s inside a scan instead of 0.1 s, DCGAN's iteration at batch 32
# 85 s instead of 2.7 s (a loaded 2-core CPU). The gradients below are written in that form themselves.


def _input_grad(g, w, padding):
    """The input gradient of _conv(x, w, padding) at cotangent g, as a _conv: g padded for a full correlation with
    the kernel flipped in space, its channel axes swapped."""
    full = tuple((k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(w.shape[:2], padding))
    return _conv(g, jnp.flip(w, (0, 1)).swapaxes(2, 3), full)


def _weight_grad(x, g, padding):
    """The weight gradient of _conv(x, w, padding) at cotangent g, as a _conv: x's channels as its batch and its
    examples as its channels, g as the kernel (output positions as taps); back to HWIO after."""
    return _conv(x.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3), padding).transpose(1, 2, 0, 3)


def _tap_weight_grad(x, g, padding):
    """The same weight gradient as k*k plain matmuls, one per kernel offset: XLA's CPU convolution took 11.3 s for
    cifar-conv's first layer (an 8x8 kernel over a 40x40 padded input) at batch 256, this under 1 s (2-core CPU)."""
    xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    h, wd = g.shape[1:3]
    kh, kw = xp.shape[1] - h + 1, xp.shape[2] - wd + 1
    # dL/dw[i, j] = sum over examples and positions of x_padded[:, i + y, j + x, :]^T g[:, y, x, :]
    return jnp.stack([jnp.stack([jnp.einsum("nhwi,nhwo->io", xp[:, i : i + h, j : j + wd], g) for j in range(kw)])
                      for i in range(kh)])


def _conv_with_gradients(weight_grad: Callable):
    """_conv whose input gradient is _input_grad and weight gradient weight_grad(x, g, padding)."""

    @functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
    def conv(x, w, padding):
        return _conv(x, w, padding)

    def keep_inputs(x, w, padding):
        return _conv(x, w, padding), (x, w)

    def backward(padding, residuals, g):
        x, w = residuals
        return _input_grad(g, w, padding), weight_grad(x, g, padding)

    conv.defvjp(keep_inputs, backward)
    return conv


# Both stay fast inside a scan on CPUs; the second takes large kernels' weight gradients as per-offset matmuls.
_nhwc_conv = _conv_with_gradients(_weight_grad)
_patch_grad_conv = _conv_with_gradients(_tap_weight_grad)


def _on_cpu() -> bool:
    return jax.default_backend() == "cpu"


class PaddedConv(nn.Module):
    """nn.Conv's parameters (kernel HWIO, bias) for a stride-1 convolution with explicit padding; on CPUs its
    gradients come from _patch_grad_conv, elsewhere from XLA's own convolution."""

    features: int
    kernel: int
    pad: tuple[tuple[int, int], tuple[int, int]]
    kernel_init: Callable
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        w = self.param("kernel", self.kernel_init, (self.kernel, self.kernel, x.shape[-1], self.features))
        conv = _patch_grad_conv if _on_cpu() else _conv
        y = conv(x, w, self.pad)
        return y + self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else y


def _up_taps(k: int) -> tuple[np.ndarray, tuple[int, int]]:
    """For lax.conv_transpose(stride 2, "SAME") with k taps a side: the tap that joins input offset d to output phase a
    (row d - lowest d, column a; k where no tap does) and the stride-1 padding (-lowest d, highest d) that reaches it."""
    # lax's SAME padding of the input-dilated form: k + s - 2 in all, ceil of half before (k = 5: 3, 2); output
    # pixel 2i + a then takes input i + d through tap 2d + before - a.
    before = k - 1 if 2 > k - 1 else -(-k // 2)
    low, high = -(before // 2), (k - before) // 2
    taps = np.array([[2 * d + before - a for a in (0, 1)] for d in range(low, high + 1)])
    return np.where((taps >= 0) & (taps < k), taps, k), (-low, high)


def _up_conv(x, w):
    """lax.conv_transpose(x, w, (2, 2), "SAME") as a stride-1 convolution with four sets of output channels, one per
    output pixel phase (each made of the kernel taps that reach that phase), then depth-to-space. No zeros are
    inserted, so it does 36% of the input-dilated form's multiplications (k = 5), and every gradient is a stride-1
    convolution."""
    k, _, cin, cout = w.shape
    taps, pad = _up_taps(k)
    t = len(taps)
    with_zero = jnp.pad(w, ((0, 1), (0, 1), (0, 0), (0, 0)))
    kernel = with_zero[taps[:, None, :, None], taps[None, :, None, :]]  # (dy, dx, a, b, cin, cout)
    kernel = kernel.transpose(0, 1, 4, 2, 3, 5).reshape(t, t, cin, 4 * cout)
    y = _nhwc_conv(x, kernel, (pad, pad))
    n, h, wd, _ = y.shape
    return y.reshape(n, h, wd, 2, 2, cout).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * wd, cout)


def _down_conv(x, w):
    """lax.conv_general_dilated(x, w, (2, 2), "SAME") as space-to-depth (each 2x2 block of pixels becomes one pixel
    of 4x the channels) and a stride-1 convolution with ceil(k / 2) taps a side, the kernel regrouped to match."""
    k, _, cin, cout = w.shape
    t = -(-k // 2)
    kernel = jnp.pad(w, ((0, 2 * t - k), (0, 2 * t - k), (0, 0), (0, 0)))
    kernel = kernel.reshape(t, 2, t, 2, cin, cout).transpose(0, 2, 1, 3, 4, 5).reshape(t, t, 4 * cin, cout)
    pads = []
    for n in x.shape[1:3]:
        out = -(-n // 2)
        before = max(2 * (out - 1) + k - n, 0) // 2  # SAME's padding; the rest after, to an even side
        pads.append((before, 2 * (out + t - 1) - n - before))
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    n, h, wd, _ = x.shape
    x = x.reshape(n, h // 2, 2, wd // 2, 2, cin).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // 2, wd // 2, 4 * cin)
    return _nhwc_conv(x, kernel, ((0, 0), (0, 0)))


@jax.custom_vjp
def _stride_2_conv(x, w):
    """XLA's own stride-2 SAME convolution, with _down_conv's gradients: _down_conv's forward pass does 36/25 of
    the multiplications and took D's forward at batch 128 from 0.25 s to 0.74 s."""
    return lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=_DN)


def _stride_2_conv_fwd(x, w):
    return _stride_2_conv(x, w), (x, w)


def _stride_2_conv_bwd(residuals, g):
    return jax.vjp(_down_conv, *residuals)[1](g)


_stride_2_conv.defvjp(_stride_2_conv_fwd, _stride_2_conv_bwd)


class _Stride2Conv(nn.Module):
    """A k x k convolution of stride 2 with nn.Conv's parameters (kernel HWIO, bias): XLA's own op, or on CPUs
    the subclass's formulation of it."""

    features: int
    kernel: int
    kernel_init: Callable
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        k = self.kernel
        w = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features))
        y = self.on_cpu(x, w) if _on_cpu() else self.on_xla(x, w)
        return y + self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else y


class UpConv(_Stride2Conv):
    """nn.ConvTranspose(features, (k, k), strides=(2, 2), padding="SAME") with the same parameters and outputs. On
    CPUs it runs as _up_conv: XLA's CPU convolution with input dilation took 4 s for the forward pass of DCGAN's
    first G layer at batch 16 (_up_conv 0.08 s), its weight gradient 2 s for the second layer and 0.1 s for the
    last (_up_conv 0.15 s, 0.01 s); at batch 128, G's gradient (forward included) took 16.9 s with zeros
    inserted and a stride-1 convolution, 5.4 s with _up_conv (measured on a loaded 2-core CPU)."""

    def on_cpu(self, x, w):
        return _up_conv(x, w)

    def on_xla(self, x, w):
        return lax.conv_transpose(x, w, (2, 2), "SAME", dimension_numbers=_DN)


class DownConv(_Stride2Conv):
    """nn.Conv(features, (k, k), strides=(2, 2), padding="SAME") with the same parameters and outputs. On CPUs its
    gradients are _down_conv's: XLA's input gradient of a stride-2 convolution is one with input dilation, 0.24 s
    for DCGAN's last D layer at batch 16, 20 times the forward pass (_down_conv's: 0.07 s); at batch 128 D's input
    gradient took 5.3 s, 1.1 s this way, its parameters' 4.3 s, 1.9 s (forward included; a loaded 2-core CPU)."""

    def on_cpu(self, x, w):
        return _stride_2_conv(x, w)

    def on_xla(self, x, w):
        return lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=_DN)


def _keys(key, n: int) -> list:
    return [None] * n if key is None else list(jax.random.split(key, n))


def _activate(h, output: str):
    return nn.sigmoid(h) if output == "sigmoid" else h


def _hidden(z, c: GeneratorConfig, train: bool, sigmoid_bias: float = 0.0):
    """The 2014 G's dense layers: ReLU first, sigmoid after (batch norm before each activation when configured)."""
    h = z
    for i, width in enumerate(c.hidden):
        h = nn.Dense(width, kernel_init=uniform_init(c.init_scale), bias_init=nn.initializers.constant(0.0 if i == 0 else sigmoid_bias))(h)
        if c.batchnorm:
            h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
        h = nn.relu(h) if i == 0 else nn.sigmoid(h)
    return h


def _logit(h, c: DiscriminatorConfig, key):
    """The last layer on D's features: dropout, minibatch discrimination when configured, one logit."""
    features = h
    h = dropout(h, c.keep_hidden, key)
    if c.minibatch[0]:
        h = jnp.concatenate([h, MinibatchDiscrimination(*c.minibatch)(features)], axis=-1)
    return nn.Dense(1, kernel_init=uniform_init(c.init_scale))(h)[:, 0]


class SigmoidMLPGenerator(nn.Module):
    """z -> ReLU -> sigmoid ... -> dense output, as the 2014 CIFAR-10 (fully connected) and TFD generators."""

    config: GeneratorConfig
    out_shape: tuple[int, ...]
    out_init: Callable
    sigmoid_bias: float = 0.0

    @nn.compact
    def __call__(self, z, label=None, train: bool = True):
        c = self.config
        h = _hidden(z, c, train, self.sigmoid_bias)
        h = nn.Dense(math.prod(self.out_shape), kernel_init=self.out_init, name="out")(h)
        return _activate(h, c.output).reshape(z.shape[:-1] + tuple(self.out_shape))


class _UntiedDeconv(nn.Module):
    """A transposed convolution without bias, plus one bias per output value (flat, like a dense output's)."""

    out_shape: tuple[int, ...]
    init_scale: float

    @nn.compact
    def __call__(self, h):
        kernel, stride = (DECONV_KERNEL, DECONV_KERNEL), (DECONV_STRIDE, DECONV_STRIDE)
        y = nn.ConvTranspose(self.out_shape[-1], kernel, strides=stride, padding="VALID", use_bias=False,
                             kernel_init=uniform_init(self.init_scale), name="deconv")(h)
        return y + self.param("bias", nn.initializers.zeros, (math.prod(self.out_shape),)).reshape(self.out_shape)


class DeconvGenerator(nn.Module):
    """cifar10_convolutional.yaml's G: dense layers, a reshape to side x side x C, one 5x5 stride-3 transposed conv."""

    config: GeneratorConfig
    out_shape: tuple[int, ...]

    @nn.compact
    def __call__(self, z, label=None, train: bool = True):
        c = self.config
        side = deconv_side(self.out_shape)
        h = _hidden(z, c, train).reshape(z.shape[0], side, side, -1)
        return _activate(_UntiedDeconv(tuple(self.out_shape), c.init_scale, name="out")(h), c.output)


def deconv_side(shape: tuple[int, ...]) -> int:
    """The map side that a 5x5 stride-3 VALID transposed convolution turns into this square shape."""
    h, w = shape[:2]
    if len(shape) != 3 or h != w or (h - DECONV_KERNEL) % DECONV_STRIDE or h < DECONV_KERNEL:
        raise GancliError(f"cifar-conv's G makes square images of side 3k + 5 (32 from 10x10 maps), not {'x'.join(map(str, shape))}")
    return (h - DECONV_KERNEL) // DECONV_STRIDE + 1


def _pool_over_edge(h, window: int, stride: int):
    """Max pooling as cuda-convnet did it: ceil((n - window) / stride) + 1 outputs, the last windows cut by the edge."""
    pads = []
    for n in h.shape[1:3]:
        out = -(-(n - window) // stride) + 1
        pads.append((0, (out - 1) * stride + window - n))
    return nn.max_pool(h, (window, window), strides=(stride, stride), padding=pads)  # pads with -inf


def conv_shapes(shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """(conv output side, pooled side) of cifar-conv's D layers for an input shape, by pylearn2's arithmetic."""
    sides, n = [], shape[0]
    for kernel, pad, window, stride in CONV_LAYERS:
        conv = n + 2 * pad - kernel + 1
        if conv < window:
            raise GancliError(f"cifar-conv's D needs images of at least 32x32 or so: a {shape[0]}x{shape[1]} input shrinks below its pooling")
        n = -(-(conv - window) // stride) + 1
        sides.append((conv, n))
    return sides


class ConvMaxoutDiscriminator(nn.Module):
    """cifar10_convolutional.yaml's D: conv-maxout layers with over-the-edge max pooling, a maxout layer, a logit.
    Dropout on the input of every layer (keep_input on the image). Features: the maxout layer's output."""

    config: DiscriminatorConfig

    @nn.compact
    def __call__(self, x, label=None, dropout_key=None, train: bool = True):
        c = self.config
        init = uniform_init(c.init_scale)
        keys = _keys(dropout_key, len(CONV_LAYERS) + 2)
        h = x
        for i, ((kernel, pad, window, stride), units) in enumerate(zip(CONV_LAYERS, c.units)):
            h = dropout(h, c.keep_input if i == 0 else c.keep_hidden, keys[i])
            h = PaddedConv(units * CONV_PIECES, kernel, ((pad, pad), (pad, pad)), init, name=f"Conv_{i}")(h)
            if c.batchnorm:
                h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
            h = _pool_over_edge(maxout(h, units, CONV_PIECES), window, stride)
        h = dropout(h.reshape(h.shape[0], -1), c.keep_hidden, keys[-2])
        units = c.units[len(CONV_LAYERS)]
        h = nn.Dense(units * c.pieces, kernel_init=init)(h)
        if c.batchnorm:
            h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
        h = maxout(h, units, c.pieces)
        return {"logit": _logit(h, c, keys[-1]), "features": h}


class DCGANGenerator(nn.Module):
    """A dense layer to (H/2^L)x(W/2^L) maps, then 5x5 stride-2 transposed convolutions up to the image."""

    config: GeneratorConfig
    out_shape: tuple[int, ...]

    @nn.compact
    def __call__(self, z, label=None, train: bool = True):
        c = self.config
        init = nn.initializers.normal(c.init_scale)
        h_out, w_out, channels = self.out_shape
        scale = 2 ** len(c.hidden)

        def norm_relu(h):
            if c.batchnorm:
                h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(h)
            return nn.relu(h)

        h = nn.Dense((h_out // scale) * (w_out // scale) * c.hidden[0], kernel_init=init, use_bias=not c.batchnorm)(z)
        h = norm_relu(h.reshape(z.shape[0], h_out // scale, w_out // scale, c.hidden[0]))
        for i, width in enumerate(c.hidden[1:]):
            h = norm_relu(UpConv(width, DCGAN_KERNEL, init, use_bias=not c.batchnorm, name=f"ConvTranspose_{i}")(h))
        h = UpConv(channels, DCGAN_KERNEL, init, name="to_image")(h)
        return _activate(h, c.output)


class DCGANDiscriminator(nn.Module):
    """5x5 stride-2 convolutions with leaky ReLU 0.2 (batch norm on all but the first), then a logit; dropout on
    each layer's input when keep < 1. Features: the last convolution's output, flattened."""

    config: DiscriminatorConfig

    @nn.compact
    def __call__(self, x, label=None, dropout_key=None, train: bool = True):
        c = self.config
        init = nn.initializers.normal(c.init_scale)
        keys = _keys(dropout_key, len(c.units) + 1)
        h = x
        for i, width in enumerate(c.units):
            h = dropout(h, c.keep_input if i == 0 else c.keep_hidden, keys[i])
            norm = c.batchnorm and i > 0
            h = DownConv(width, DCGAN_KERNEL, init, use_bias=not norm, name=f"Conv_{i}")(h)
            if norm:
                h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(h)
            h = nn.leaky_relu(h, 0.2)
        features = h.reshape(h.shape[0], -1)
        return {"logit": _logit(features, c, keys[-1]), "features": features}


# ---- the families' builders and checks (registered in gancli.models.MODELS) ----------------------------------------


def _image_shape(shape: tuple[int, ...], model: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise GancliError(f"model {model} makes images (H, W, C), not data shaped {shape}")
    return tuple(shape)


def cifar_fc_generator(config: RunConfig, shape: tuple[int, ...]) -> nn.Module:
    return SigmoidMLPGenerator(config.generator, tuple(shape), uniform_init(CIFAR_FC_OUTPUT_SCALE))


def tfd_generator(config: RunConfig, shape: tuple[int, ...]) -> nn.Module:
    return SigmoidMLPGenerator(config.generator, tuple(shape), sparse_init(TFD_OUTPUT_NONZERO), TFD_SIGMOID_BIAS)


def maxout_discriminator(config: RunConfig, shape: tuple[int, ...]) -> nn.Module:
    return mlp.Discriminator(config.discriminator)


def cifar_conv_generator(config: RunConfig, shape: tuple[int, ...]) -> nn.Module:
    side = deconv_side(_image_shape(shape, "cifar-conv"))
    if config.generator.hidden[-1] % (side * side):
        raise GancliError(
            f"cifar-conv's last generator layer ({config.generator.hidden[-1]} units) must fill {side}x{side} maps: "
            f"make it a multiple of {side * side} (the paper's 8000 = 80 maps)"
        )
    return DeconvGenerator(config.generator, tuple(shape))


def cifar_conv_discriminator(config: RunConfig, shape: tuple[int, ...]) -> nn.Module:
    conv_shapes(_image_shape(shape, "cifar-conv"))
    return ConvMaxoutDiscriminator(config.discriminator)


def dcgan_generator(config: RunConfig, shape: tuple[int, ...]) -> nn.Module:
    h, w, _ = _image_shape(shape, "dcgan")
    scale = 2 ** len(config.generator.hidden)
    if h % scale or w % scale:
        raise GancliError(f"dcgan's G doubles {len(config.generator.hidden)} times: the image side must be a multiple of {scale}, not {h}x{w}")
    return DCGANGenerator(config.generator, tuple(shape))


def dcgan_discriminator(config: RunConfig, shape: tuple[int, ...]) -> nn.Module:
    _image_shape(shape, "dcgan")
    return DCGANDiscriminator(config.discriminator)


def _no_g_dropout(config: RunConfig) -> list[str]:
    if getattr(config.generator, "keep_hidden", 1.0) < 1:
        return [f"model {config.model} has no dropout in G: leave generator.keep_hidden at 1"]
    return []


def fc_problems(config: RunConfig) -> list[str]:
    return ([] if config.generator.hidden else [f"model {config.model} needs at least one generator hidden layer"]) + _no_g_dropout(config)


def cifar_conv_problems(config: RunConfig) -> list[str]:
    out = fc_problems(config)
    if len(config.discriminator.units) != len(CONV_LAYERS) + 1:
        out.append(f"model cifar-conv's discriminator.units are its 3 conv layers' channels and its maxout units, "
                   f"4 numbers (the paper's 32,32,192,500), not {config.discriminator.units}")
    return out


def dcgan_problems(config: RunConfig) -> list[str]:
    out = fc_problems(config)
    if not config.discriminator.units:
        out.append("model dcgan needs at least one discriminator layer")
    if config.generator.output_bias_from_data:
        out.append("model dcgan has no per-pixel output bias to set from the data: set generator.output_bias_from_data=false")
    return out
