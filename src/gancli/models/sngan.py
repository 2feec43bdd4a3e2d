"""The "standard CNN" of Miyato et al. (2018), Spectral Normalization for GANs (Table 3, appendix B.4): family
sngan-cnn, trained by the sngan preset with spectral normalisation of D.

G  z -> dense to (H/8)x(W/8)x512 -> 4x4 stride-2 transposed convolutions to 256, 128, 64 maps (each layer, the dense
   one included, followed by batch norm and ReLU; the dense layer's per output unit, as in their code, the others'
   per map) -> 3x3 stride-1 convolution to the image's channels -> sigmoid.
D  3x3 stride-1 and 4x4 stride-2 convolutions in turn, 64, 64, 128, 128, 256, 256, 512 channels, leaky ReLU 0.1
   after each, no batch norm -> dense to one logit. Features: the last convolution's output, flattened.

Config fields: generator.hidden are G's widths, widest first (the dense layer's maps, then each transposed
convolution's): the paper's 512, 256, 128, 64; the image side must be a multiple of 2^(len - 1), 8 for those four.
discriminator.units are D's convolution widths, an odd number of them: even positions (0, 2, ...) are 3x3 stride 1,
odd ones 4x4 stride 2 (padding 1: each halves the side exactly), so the side must be a multiple of 2^(len // 2),
8 for the paper's seven. init_scale is the standard deviation of every weight's N(0, s) init, 0.02 in their code
(chainer-gan-lib's DCGANGenerator and SNDCGANDiscriminator); biases start at 0, and a layer that batch norm follows
has none (batch norm cancels it). discriminator.pieces is unused; D has no dropout, batch norm or minibatch
discrimination, and G no dropout.

Pixels: gancli's images are in [0, 1], so G ends in a sigmoid where theirs ends in tanh for [-1, 1]: sigmoid(h) =
(tanh(h / 2) + 1) / 2, their output shifted and scaled (the same convention as dcgan). Every weight of D, the dense
one included, is a parameter named "kernel", so `--spectral-norm d` normalises all eight.

The convolutions are gancli.models.conv's CPU-friendly forms of XLA's (same parameters and outputs): PaddedConv for
the 3x3 ones, DownConv for the 4x4 stride-2 ones (SAME padding: 1 on each side for an even side, as their pad 1),
UpConv for G's 4x4 transposed ones (SAME: the output side doubles, as their pad 1 does).
"""

from __future__ import annotations

import flax.linen as nn

from gancli.config import DiscriminatorConfig, GeneratorConfig, RunConfig
from gancli.errors import GancliError
from gancli.models.conv import DownConv, PaddedConv, UpConv, _activate, _image_shape

LEAK = 0.1  # the paper's slope of every leaky ReLU in D (their chainer code used chainer's default, 0.2)
UP_KERNEL, DOWN_KERNEL, KERNEL = 4, 4, 3  # G's transposed convolutions, D's stride-2 ones, the stride-1 ones
BN_MOMENTUM, BN_EPSILON = 0.9, 2e-5  # chainer's BatchNormalization defaults (decay 0.9, eps 2e-5)
SAME_1 = ((1, 1), (1, 1))  # a 3x3 stride-1 convolution's padding, pad 1 as theirs


def g_scale(config: GeneratorConfig) -> int:
    """How many times G's side doubles from its dense layer's maps to the image: 2^(transposed convolutions)."""
    return 2 ** (len(config.hidden) - 1)


def d_scale(config: DiscriminatorConfig) -> int:
    """How many times D halves the side: 2^(stride-2 convolutions), the units at odd positions."""
    return 2 ** (len(config.units) // 2)


class Generator(nn.Module):
    """z -> dense to small maps -> 4x4 stride-2 transposed convolutions -> a 3x3 convolution to the image."""

    config: GeneratorConfig
    out_shape: tuple[int, ...]

    @nn.compact
    def __call__(self, z, label=None, train: bool = True):
        c = self.config
        init = nn.initializers.normal(c.init_scale)
        h_out, w_out, channels = self.out_shape
        scale = g_scale(c)

        def norm_relu(h):
            if c.batchnorm:
                h = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON)(h)
            return nn.relu(h)

        # Batch norm of each of the dense layer's outputs before the reshape, as their code's (one mean and variance per
        # unit of the 4x4x512, not per map)
        h = norm_relu(nn.Dense((h_out // scale) * (w_out // scale) * c.hidden[0], kernel_init=init, use_bias=not c.batchnorm)(z))
        h = h.reshape(z.shape[0], h_out // scale, w_out // scale, c.hidden[0])
        for i, width in enumerate(c.hidden[1:]):
            h = norm_relu(UpConv(width, UP_KERNEL, init, use_bias=not c.batchnorm, name=f"ConvTranspose_{i}")(h))
        h = PaddedConv(channels, KERNEL, SAME_1, init, name="to_image")(h)
        return _activate(h, c.output)


class Discriminator(nn.Module):
    """3x3 stride-1 and 4x4 stride-2 convolutions in turn with leaky ReLU 0.1, then a dense logit."""

    config: DiscriminatorConfig

    @nn.compact
    def __call__(self, x, label=None, dropout_key=None, train: bool = True):
        init = nn.initializers.normal(self.config.init_scale)
        h = x
        for i, width in enumerate(self.config.units):
            if i % 2:
                h = DownConv(width, DOWN_KERNEL, init, name=f"Conv_{i}")(h)
            else:
                h = PaddedConv(width, KERNEL, SAME_1, init, name=f"Conv_{i}")(h)
            h = nn.leaky_relu(h, LEAK)
        features = h.reshape(h.shape[0], -1)
        return {"logit": nn.Dense(1, kernel_init=init, name="Dense_0")(features)[:, 0], "features": features}


# ---- the family's builders and checks (registered in gancli.models.MODELS) -------------------------------------------


def _side_problem(shape: tuple[int, int, int], config: RunConfig) -> str | None:
    h, w, _ = shape
    g, d = g_scale(config.generator), d_scale(config.discriminator)
    side = max(g, d)  # both are powers of two: the larger is a multiple of the smaller
    if h % side or w % side:
        return (f"model sngan-cnn needs an image side that is a multiple of {side} (G doubles its maps "
                f"{len(config.generator.hidden) - 1} times, D halves them {len(config.discriminator.units) // 2} "
                f"times), not {h}x{w}")
    return None


def generator(config: RunConfig, shape: tuple[int, ...]) -> nn.Module:
    shape = _image_shape(shape, "sngan-cnn")
    if problem := _side_problem(shape, config):
        raise GancliError(problem)
    return Generator(config.generator, shape)


def discriminator(config: RunConfig, shape: tuple[int, ...]) -> nn.Module:
    shape = _image_shape(shape, "sngan-cnn")
    if problem := _side_problem(shape, config):
        raise GancliError(problem)
    return Discriminator(config.discriminator)


def problems(config: RunConfig) -> list[str]:
    """What sngan-cnn cannot build as asked, in words."""
    g, d = config.generator, config.discriminator
    out = []
    if not g.hidden:
        out.append("model sngan-cnn needs at least one generator width (the paper's 512,256,128,64)")
    if len(d.units) % 2 == 0:
        out.append(f"model sngan-cnn's discriminator.units are an odd number of conv widths, 3x3 stride 1 and 4x4 "
                   f"stride 2 in turn (the paper's 64,64,128,128,256,256,512), not {d.units}")
    if g.keep_hidden < 1:
        out.append("model sngan-cnn has no dropout in G: leave generator.keep_hidden at 1")
    if d.keep_input < 1 or d.keep_hidden < 1:
        out.append("model sngan-cnn has no dropout in D: set discriminator.keep_input=1 and discriminator.keep_hidden=1")
    if d.batchnorm:
        out.append("model sngan-cnn has no batch norm in D: set discriminator.batchnorm=false")
    if d.minibatch[0]:
        out.append("model sngan-cnn has no minibatch discrimination: set discriminator.minibatch=0,0")
    if g.output_bias_from_data:
        out.append("model sngan-cnn has no per-pixel output bias to set from the data: set generator.output_bias_from_data=false")
    return out
