"""A run's typed, frozen configuration, its presets, JSON round-trip and validation."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

from gancli.errors import GancliError

UPDATES = ("simultaneous", "alternating")
# Objectives and model families are registries (gancli.objectives, gancli.models), read when validating so that
# this module stays free of JAX.
OPTIMIZERS = ("sgd", "adam")
NOISES = ("uniform", "gaussian", "uniform01")  # uniform: U(-sqrt3, sqrt3); uniform01: U[0, 1)
OUTPUTS = ("sigmoid", "linear")
SEEDS = 2**32  # distinct seeds: a JAX key holds 32 bits of one


@dataclass(frozen=True)
class GeneratorConfig:
    """MLP generator: z -> ReLU hidden layers -> output activation."""

    z_dim: int = 100
    hidden: tuple[int, ...] = (1200, 1200)
    noise: str = "uniform"  # uniform U(-sqrt3, sqrt3) has unit variance, as in the final mnist.yaml
    output: str = "sigmoid"
    init_scale: float = 0.05  # weights U(-s, s)
    output_bias_from_data: bool = True  # logit of the training pixel means
    batchnorm: bool = False  # before each hidden ReLU; its statistics live beside the parameters, not in them
    keep_hidden: float = 1.0  # inverted dropout on the input of every layer above the first, in training only
    max_col_norm: float = 0.0  # after each update, cap the L2 norm of the weights into each unit (pylearn2); 0: none


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Maxout discriminator with dropout on the input of every layer."""

    units: tuple[int, ...] = (240, 240)
    pieces: int = 5
    keep_input: float = 0.8
    keep_hidden: float = 0.5
    init_scale: float = 0.005  # weights U(-s, s); N(0, s^2) in model ssl-mlp
    batchnorm: bool = False  # before each maxout
    minibatch: tuple[int, ...] = (0, 0)  # minibatch discrimination: (B kernels, C dims); (0, 0) is off
    max_col_norm: float = 0.0  # after each update, cap the L2 norm of the weights into each unit (pylearn2); 0: none
    input_noise: float = 0.0  # std of Gaussian noise added to D's input in training (model ssl-mlp)
    hidden_noise: float = 0.0  # ... and to each hidden layer's output


@dataclass(frozen=True)
class OptimizerConfig:
    """One optimiser for each network (same settings for both)."""

    name: str = "sgd"
    lr: float = 0.1
    lr_decay: float = 1.000004  # lr_t = lr / decay^t per update, floored at lr_min
    lr_min: float = 1e-6
    momentum: float = 0.5  # sgd: classical momentum at the start...
    momentum_final: float = 0.7  # ...rising linearly to this...
    momentum_saturate_epoch: int = 250  # ...by this epoch
    b1: float = 0.5  # adam
    b2: float = 0.999
    eps: float = 1e-8  # adam: added to sqrt(v)...
    eps_root: float = 0.0  # ...and to v inside the square root (improved-gan's Adam: 1e-8 there, none outside)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run; stored in every checkpoint."""

    dataset: str = "mnist"
    train_split: str = "train"  # the split training draws from (mnist's train_full: train + validation, 60,000)
    preset: str = "paper"
    model: str = "mlp"  # the model family (gancli.models.MODELS)
    conditional: bool = False  # G and D take the class label (gancli.models.conditioning); fakes get the real batch's
    n_classes: int = 0  # of a conditional run; 0: from the training labels (max + 1) when training starts
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    k: int = 1
    update: str = "simultaneous"
    d_loss: str = "gan"  # gancli.objectives.D_LOSSES
    g_loss: str = "nonsaturating"  # gancli.objectives.G_LOSSES
    switch_epoch: int = 10
    epochs: int = 100
    batch_size: int = 100
    seed: int = 0
    seeds: int = 1
    ema: float = 0.0  # decay of an exponential moving average of G's weights per G update (0: none kept)
    d_ema: float = 0.0  # decay of a moving average of D's weights per D update, from zero (0: none kept)
    ema_start: int = 0  # epoch from which the averages move; before it, each equals its network
    labels: int = 0  # semi-supervised: labelled training examples, as many of each class (0: none)
    label_seed: int = 0  # which ones: the first labels/K of each class in this seed's permutation of the training set
    g_batch: str = "same"  # the real batch G's step compares with: "same" as the D step's, or "own" (its own pass)
    chunk: int = 0  # iterations per compiled call (0: chosen for the device); bounds the time between refreshes
    ckpt_every: int = 0  # epochs between checkpoints; 0: every ckpt_minutes of training instead
    # A save costs ~0.2 s (the paper model): one per 5 minutes is < 0.1% of the run, and a crash that no signal
    # announces (power, OOM killer) loses at most 5 minutes. The end and SIGINT/SIGTERM always save.
    ckpt_minutes: float = 5.0
    keep: int = 3  # checkpoints kept

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        return _from_dict(cls, d)

    def validate(self) -> "RunConfig":
        """Raise GancliError naming the first bad field; return self when all is well."""
        from gancli import models, objectives

        o, g, d = self.optimizer, self.generator, self.discriminator
        G_LOSSES, D_LOSSES = tuple(objectives.G_LOSSES), tuple(objectives.D_LOSSES)
        checks = [
            (self.model in models.MODELS, f"model must be one of {', '.join(models.MODELS)} (got {self.model!r})"),
            (self.d_loss in D_LOSSES, f"d_loss must be one of {', '.join(D_LOSSES)} (got {self.d_loss!r})"),
            (0 <= self.ema < 1, f"--ema must be in [0, 1) (got {self.ema})"),
            (0 <= self.d_ema < 1, f"d_ema must be in [0, 1) (got {self.d_ema})"),
            (self.labels >= 0, f"--labels must be >= 0 (got {self.labels})"),
            (0 <= self.label_seed < SEEDS, f"--label-seed must be in [0, {SEEDS - 1:,}] (got {self.label_seed})"),
            (self.labels == 0 or objectives.LABELLED in objectives.needs(self),
             f"--labels is for semi-supervised training (d_loss {' or '.join(objectives.needing(objectives.D_LOSSES, objectives.LABELLED))}; "
             "preset semi-supervised)"),
            (self.labels > 0 or objectives.LABELLED not in objectives.needs(self),
             f"d_loss {self.d_loss} trains on labelled examples: give --labels N"),
            (self.g_batch in ("same", "own"), f"g_batch must be same or own (got {self.g_batch!r})"),
            (self.g_batch == "same" or self.update == "alternating",
             "g_batch own needs alternating updates (simultaneous ones take both gradients from one batch)"),
            (all(_finite(v) and v >= 0 for v in (d.input_noise, d.hidden_noise)),
             f"discriminator input_noise and hidden_noise must be finite numbers >= 0 (got {d.input_noise} and {d.hidden_noise})"),
            (all(_finite(v) and v >= 0 for v in (o.eps, o.eps_root)) and o.eps + o.eps_root > 0,
             f"optimizer eps and eps_root must be finite numbers >= 0, not both 0 (got {o.eps} and {o.eps_root})"),
            (self.ema_start >= 0, f"ema_start must be an epoch >= 0 (got {self.ema_start})"),
            (len(d.minibatch) == 2 and (all(v >= 1 for v in d.minibatch) or tuple(d.minibatch) == (0, 0)),
             f"discriminator.minibatch must be two numbers B,C >= 1 (kernels, dims), or 0,0 for none (got {d.minibatch})"),
            (self.k >= 1, f"--k must be >= 1 (got {self.k})"),
            (self.update in UPDATES, f"--update must be one of {', '.join(UPDATES)} (got {self.update!r})"),
            (self.g_loss in G_LOSSES, f"--g-loss must be one of {', '.join(G_LOSSES)} (got {self.g_loss!r})"),
            (self.switch_epoch >= 0, f"--switch-epoch must be >= 0 (got {self.switch_epoch})"),
            (self.epochs >= 1, f"--epochs must be >= 1 (got {self.epochs})"),
            (self.batch_size >= 1, f"--batch-size must be >= 1 (got {self.batch_size})"),
            (self.seeds >= 1, f"--seeds must be >= 1 (got {self.seeds})"),
            # JAX keys hold 32 bits: seed 2**32 would silently repeat seed 0.
            (0 <= self.seed and self.seed + self.seeds <= SEEDS,
             f"--seed must be in [0, {SEEDS - self.seeds:,}]" + (f" with --seeds {self.seeds}" if self.seeds > 1 else "")
             + f" (got {self.seed})"),
            (self.chunk >= 0, f"--chunk must be >= 0 (got {self.chunk})"),
            (self.ckpt_every >= 0, f"--ckpt-every must be >= 0, 0 for every --ckpt-minutes (got {self.ckpt_every})"),
            (_finite(self.ckpt_minutes) and self.ckpt_minutes > 0,
             f"--ckpt-minutes must be a finite number > 0 (got {self.ckpt_minutes})"),
            (self.keep >= 1, f"--keep must be >= 1 (got {self.keep})"),
            (o.name in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)} (got {o.name!r})"),
            # Every schedule constant, NaN and inf included: a bad one only shows as a broken run hours later.
            (_finite(o.lr) and o.lr > 0, f"--lr must be a finite number > 0 (got {o.lr})"),
            (_finite(o.lr_decay) and o.lr_decay >= 1.0, f"--lr-decay must be a finite number >= 1 (got {o.lr_decay})"),
            (_finite(o.lr_min) and 0 <= o.lr_min <= o.lr, f"optimizer lr_min must be in [0, lr {o.lr}] (got {o.lr_min})"),
            (0 <= o.momentum < 1, f"--momentum must be in [0, 1) (got {o.momentum})"),
            (0 <= o.momentum_final < 1, f"--momentum-final must be in [0, 1) (got {o.momentum_final})"),
            (o.momentum_saturate_epoch >= 1, f"--momentum-saturate must be an epoch >= 1 (got {o.momentum_saturate_epoch})"),
            (0 <= o.b1 < 1 and 0 <= o.b2 < 1, f"--b1 and --b2 must be in [0, 1) (got {o.b1} and {o.b2})"),
            (g.z_dim >= 1, f"generator z_dim must be >= 1 (got {g.z_dim})"),
            (all(h >= 1 for h in g.hidden), f"generator hidden layers must have >= 1 unit each (got {g.hidden})"),
            (g.noise in NOISES, f"generator noise must be one of {', '.join(NOISES)} (got {g.noise!r})"),
            (g.output in OUTPUTS, f"generator output must be one of {', '.join(OUTPUTS)} (got {g.output!r})"),
            (_finite(g.init_scale) and g.init_scale > 0, f"generator init_scale must be a finite number > 0 (got {g.init_scale})"),
            (all(u >= 1 for u in d.units), f"discriminator layers must have >= 1 unit each (got {d.units})"),
            (d.pieces >= 1, f"discriminator pieces must be >= 1 (got {d.pieces})"),
            (0 < d.keep_input <= 1 and 0 < d.keep_hidden <= 1 and 0 < g.keep_hidden <= 1, "dropout keep probabilities must be in (0, 1]"),
            (_finite(d.init_scale) and d.init_scale > 0, f"discriminator init_scale must be a finite number > 0 (got {d.init_scale})"),
            (all(_finite(v) and v >= 0 for v in (g.max_col_norm, d.max_col_norm)),
             f"max_col_norm must be a finite number >= 0, 0 for none (got {g.max_col_norm} and {d.max_col_norm})"),
        ]
        for ok, message in checks:
            if not ok:
                raise GancliError(message)
        for message in models.problems(self):
            raise GancliError(message)
        return self


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _from_dict(cls, d: dict[str, Any]):
    known = {f.name: f for f in fields(cls)}
    unknown = set(d) - set(known)
    if unknown:
        raise GancliError(f"unknown config field(s) for {cls.__name__}: {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in d.items():
        sub = _NESTED.get((cls, name))
        if sub is not None:
            kwargs[name] = _from_dict(sub, value)
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


_NESTED = {
    (RunConfig, "generator"): GeneratorConfig,
    (RunConfig, "discriminator"): DiscriminatorConfig,
    (RunConfig, "optimizer"): OptimizerConfig,
}

# A preset is a function of the dataset: the paper's MNIST model, and small MLPs for toy sets.
@dataclass(frozen=True)
class Preset:
    """A named recipe: what `gancli presets` says of it, and its config for a dataset."""

    description: str
    make: Callable[[str], RunConfig]


PRESETS = {
    "paper": Preset(
        "Goodfellow et al. (2014), as the original code trained MNIST: maxout D with dropout, SGD with momentum",
        lambda dataset: RunConfig(dataset=dataset, preset="paper"),
    ),
    # lr reaches at epoch 250 the 0.0018 the paper's decay reaches at epoch 2,000, and momentum reaches 0.7 at
    # epoch 31 instead of 250.
    "fast": Preset(
        "the paper's recipe with its lr decay and momentum ramp 8x shorter (250 epochs)",
        lambda dataset: RunConfig(
            dataset=dataset,
            preset="fast",
            optimizer=OptimizerConfig(lr_decay=1.000032, momentum_saturate_epoch=31),
            epochs=250,
        ),
    ),
    # The fast recipe with an EMA of G for issue 13's "the paper's number in an eighth of the updates". Our choices:
    # decay 0.9999 (a 10,000-update horizon, 20 epochs), because the project's plain-JAX reference measured 0.999 a
    # few points short of it; and the average starts at epoch 25, not from the initial weights: an average begun at
    # initialisation still holds 0.9999^12,500 = 29% of the random weights at epoch 25, which drew blurry, ghosted
    # digits there (while scoring higher Parzen: the estimate rewards blur). Before epoch 25 the EMA is G itself.
    "paper-ema": Preset(
        "the fast recipe (the paper's lr decay and momentum ramp 8x shorter, 250 epochs) with an EMA of G, decay "
        "0.9999, averaging from epoch 25",
        lambda dataset: replace(PRESETS["fast"].make(dataset), preset="paper-ema", ema=0.9999, ema_start=25),
    ),
    # An EMA of G on the paper's own schedule, for issue 13.2: paper-ema's average stopped gaining at about epoch 100
    # while fast's lr decay was slowing G. Our choices: paper-ema's start (epoch 25) and 250 epochs; decay 0.99995
    # (a 20,000-update horizon, 40 epochs). At decay 0.9999 it reached only 219.6 / 220.6 at epoch 250 (CPU, seeds
    # 0 / 1). On one H200 (seed 0, epoch 250, k/255), Parzen / FD / precision of the average against G's own FD /
    # precision: 0.9999: 218.3 / 12.6 / 0.829 (G 21.1 / 0.828); 0.99995: 225.1 / 11.9 / 0.825 (G 20.6 / 0.824);
    # 0.99998: 238.4 / 15.4 / 0.842 (G 19.0 / 0.818), but its samples sit nearer the training images than test
    # images do (median nearest distance 4.11 against 4.38); 0.99999: 218.5 / 36.7, blurrier than G (23.7).
    "paper-lr-ema": Preset(
        "the paper's recipe (its own lr decay and momentum ramp) stopped at 250 epochs, with an EMA of G: "
        "decay 0.99995, averaging from epoch 25",
        lambda dataset: replace(PRESETS["paper"].make(dataset), preset="paper-lr-ema", epochs=250, ema=0.99995, ema_start=25),
    ),
    "adam": Preset(
        "the paper's architecture with Adam (lr 2e-4, beta1 0.5) and alternating updates, as DCGAN trains",
        lambda dataset: RunConfig(
            dataset=dataset,
            preset="adam",
            optimizer=OptimizerConfig(name="adam", lr=2e-4, lr_decay=1.0, b1=0.5),
            update="alternating",
        ),
    ),
    # Mirza & Osindero (2014), section 4.1; they published no code. Where their text is silent we chose, as the 2014
    # GAN code (the pylearn2 code base theirs grew from) did: uniform noise U(-sqrt3, sqrt3) (unit variance; they
    # say only "uniform"); U(-0.05, 0.05) init in G and U(-0.005, 0.005) in D; G's output bias the logit of the
    # pixel means; k = 1 with simultaneous updates; the non-saturating G loss; momentum 0.5 rising linearly to 0.7
    # by epoch 250. Dropout ("0.5 in G and D") on the input of every layer above the branches in both nets, and
    # keep 0.8 on D's pixels as the 2014 D had; never on the label. Their lr 0.1 / 1.00004 per update reaches the
    # 1e-6 floor after ~288,000 updates (~575 epochs of 500); they stopped at the best validation Parzen estimate,
    # which `gancli evaluate` run per epoch finds (examples/conditional.sh).
    "cgan": Preset(
        "Mirza & Osindero (2014) conditional MNIST GAN: label through its own ReLU 1000 (G) / maxout 50x5 (D) branch, "
        "SGD lr 0.1 / 1.00004 per update, momentum 0.5 -> 0.7 (by epoch 250: our choice), dropout 0.5 above the "
        "branches in G and D and 0.8 keep on D's pixels (our choice), simultaneous updates, uniform noise",
        lambda dataset: RunConfig(
            dataset=dataset,
            preset="cgan",
            model="cgan",
            conditional=True,
            generator=GeneratorConfig(hidden=(200, 1000, 1200), keep_hidden=0.5),
            discriminator=DiscriminatorConfig(units=(240, 50, 240), pieces=5, keep_input=0.8, keep_hidden=0.5),
            optimizer=OptimizerConfig(lr=0.1, lr_decay=1.00004, lr_min=1e-6, momentum=0.5, momentum_final=0.7,
                                      momentum_saturate_epoch=250),
        ),
    ),
    # The 2014 paper's CIFAR-10 and TFD models, from goodfeli/adversarial's cifar10_fully_connected.yaml,
    # cifar10_convolutional.yaml and tfd_pretrain/*.yaml (architectures in gancli.models.conv). As there: Gaussian
    # N(0, 1) noise of 100 dimensions; dropout in D (keep 0.8 on its input, 0.5 elsewhere, also when computing G's
    # loss); simultaneous updates, k = 1; SGD with momentum 0.5 -> 0.7 by epoch 250 and lr / 1.000004 per update,
    # floored at 1e-6; U(-irange, irange) init. The paper trained CIFAR-10 on pylearn2's gcn=55 data: dataset
    # cifar10_gcn (the default preset picks these for it). Ours where the yamls are silent: 100 epochs for CIFAR-10
    # (they set no termination), 50 for TFD (the pretraining stage's count); G's output bias 0 for CIFAR-10 (the
    # yamls comment out init_sigmoid_bias_from_marginals) and the logit of the pixel means for TFD (as pretrain.yaml).
    "cifar-fc": Preset(
        "the paper's fully connected CIFAR-10 model (cifar10_fully_connected.yaml): G ReLU 8000 -> sigmoid 8000 -> "
        "linear 3072, D maxout 1600x5 x2 with dropout, SGD lr 0.025, batch 100; train it on cifar10_gcn as the paper",
        lambda dataset: RunConfig(
            dataset=dataset,
            preset="cifar-fc",
            model="cifar-fc",
            generator=GeneratorConfig(hidden=(8000, 8000), noise="gaussian", output="linear", init_scale=0.05,
                                      output_bias_from_data=False),
            discriminator=DiscriminatorConfig(units=(1600, 1600), pieces=5, init_scale=0.005),
            optimizer=OptimizerConfig(lr=0.025),
        ),
    ),
    # The convolutional yaml's D comments say 192 channels in its second layer "ran out of memory": it has 32.
    "cifar-conv": Preset(
        "the paper's convolutional CIFAR-10 model (cifar10_convolutional.yaml): G ReLU 8000 -> sigmoid 8000 -> "
        "80x10x10 -> 5x5 stride-3 transposed conv to 32x32x3; D conv-maxout 32x2, 32x2, 192x2 -> maxout 500x5, "
        "with dropout; SGD lr 0.004, batch 128; train it on cifar10_gcn as the paper",
        lambda dataset: RunConfig(
            dataset=dataset,
            preset="cifar-conv",
            model="cifar-conv",
            generator=GeneratorConfig(hidden=(8000, 8000), noise="gaussian", output="linear", init_scale=0.05,
                                      output_bias_from_data=False),
            discriminator=DiscriminatorConfig(units=(32, 32, 192, 500), pieces=5, init_scale=0.005),
            optimizer=OptimizerConfig(lr=0.004),
            batch_size=128,
        ),
    ),
    # The original TFD G was pretrained in two stages (pretrain.yaml: ReLU 8000 -> sigmoid 8000 -> sigmoid 2304 for
    # 50 epochs; train.yaml: ReLU 8000 -> sigmoid 100 put in front of it, 22 more epochs). Here the pretraining
    # stage's G is trained from scratch, once. Max column norm 1.9365 on every layer of both nets, as both yamls.
    "tfd": Preset(
        "the paper's TFD model, its G trained from scratch (the original pretrained G in two stages): G ReLU 8000 -> "
        "sigmoid 8000 -> sigmoid 2304; D maxout 1200x5 x2 with dropout; max column norm 1.9365; SGD lr 0.05, batch 100",
        lambda dataset: RunConfig(
            dataset=dataset,
            preset="tfd",
            model="tfd",
            generator=GeneratorConfig(hidden=(8000, 8000), noise="gaussian", output="sigmoid", init_scale=0.05,
                                      output_bias_from_data=True, max_col_norm=1.9365),
            discriminator=DiscriminatorConfig(units=(1200, 1200), pieces=5, init_scale=0.005, max_col_norm=1.9365),
            optimizer=OptimizerConfig(lr=0.05),
            epochs=50,
        ),
    ),
    # Radford et al. (2016) as the modern baseline: batch norm, Adam 2e-4 / 0.5, alternating updates, batch 128,
    # weights N(0, 0.02), leaky ReLU 0.2 in D, no dropout. Ours: a sigmoid output for pixels in [0, 1] (theirs: tanh
    # for [-1, 1]); unit-variance uniform noise (theirs U(-1, 1)); 5x5 kernels as their code; 100 epochs.
    "dcgan": Preset(
        "a DCGAN-style conv model for 32x32 (or any 8k x 8k) images: batch norm, Adam lr 2e-4 beta1 0.5, alternating "
        "updates, batch 128, N(0, 0.02) init; for pixels in [0, 1] (cifar10)",
        lambda dataset: RunConfig(
            dataset=dataset,
            preset="dcgan",
            model="dcgan",
            generator=GeneratorConfig(hidden=(512, 256, 128), noise="uniform", output="sigmoid", init_scale=0.02,
                                      output_bias_from_data=False, batchnorm=True),
            discriminator=DiscriminatorConfig(units=(64, 128, 256), keep_input=1.0, keep_hidden=1.0, init_scale=0.02,
                                              batchnorm=True),
            optimizer=OptimizerConfig(name="adam", lr=2e-4, lr_decay=1.0, b1=0.5),
            update="alternating",
            batch_size=128,
        ),
    ),
    # Salimans et al. (2016), semi-supervised permutation-invariant MNIST, as their released code trains it
    # (openai/improved-gan, mnist_svhn_cifar10/train_mnist_feature_matching.py and nn.py; model ssl-mlp). Where the
    # code and the paper differ, or the paper is silent, this follows the code: Adam lr 0.003 held constant, beta1
    # 0.5, its epsilon 1e-8 inside the square root; z 100-d U[0, 1); D's weights N(0, 0.1) with weight norm, its
    # scales and biases from an init pass over 500 training images with the noise on, the hidden layers' scales
    # then fixed; testing uses a moving average of D's weights, a <- a + 1e-4 (p - a) after each D update, started
    # from zero; each iteration one D step on a labelled batch (a fresh permutation of the labelled set: all 100
    # with 100 labels) and an unlabelled one, then one G step whose real batch is a second, independently shuffled
    # pass (g_batch own); the unlabelled data are all 60,000 training images (mnist's train_full: the code joins
    # mnist.pkl.gz's train and validation sets, as that split does), the labelled ones included; an epoch is one
    # pass over them, 600 iterations. The labelled loss and the unlabelled one weigh the same (the code's
    # unlabeled_weight 1). Label seed 1 is the code's default data seed: the same labelled images and init batch
    # if its mnist.npz holds the images in mnist.pkl.gz's order, which we could not check (our copy of the
    # repository lacks that file).
    "semi-supervised": Preset(
        "Salimans et al. (2016) semi-supervised MNIST as their code: K+1-class D 784-1000-500-250-250-250-10 with "
        "weight norm and Gaussian noise (0.3 input, 0.5 hidden), G softplus 500-500 with batch norm, feature matching, "
        "Adam lr 0.003 beta1 0.5, batch 100, 300 epochs, --labels 100 (10 per class), an average of D for testing",
        lambda dataset: RunConfig(
            dataset=dataset,
            preset="semi-supervised",
            model="ssl-mlp",
            generator=GeneratorConfig(z_dim=100, hidden=(500, 500), noise="uniform01", output="sigmoid",
                                      output_bias_from_data=False, batchnorm=True),
            discriminator=DiscriminatorConfig(units=(1000, 500, 250, 250, 250), keep_input=1.0, keep_hidden=1.0,
                                              init_scale=0.1, input_noise=0.3, hidden_noise=0.5),
            optimizer=OptimizerConfig(name="adam", lr=0.003, lr_decay=1.0, b1=0.5, b2=0.999, eps=0.0, eps_root=1e-8),
            update="alternating",
            d_loss="semi-supervised",
            g_loss="feature-matching",
            epochs=300,
            batch_size=100,
            d_ema=0.9999,
            labels=100,
            label_seed=1,
            g_batch="own",
            train_split="train_full" if dataset in ("mnist", "fashion_mnist") else "train",
        ),
    ),
    "toy": Preset(
        "small MLPs for toy1d and ring8: z as wide as the data, linear output, no dropout, Adam",
        lambda dataset: RunConfig(
            dataset=dataset,
            preset="toy",
            generator=GeneratorConfig(z_dim=1 if dataset == "toy1d" else 2, hidden=(128, 128), noise="uniform",
                                      output="linear", init_scale=0.5, output_bias_from_data=False),
            discriminator=DiscriminatorConfig(units=(64, 64), pieces=2, keep_input=1.0, keep_hidden=1.0, init_scale=0.5),
            optimizer=OptimizerConfig(name="adam", lr=1e-3, lr_decay=1.0, b1=0.5),
            update="alternating",
            batch_size=100,
            epochs=10,
        ),
    ),
}
TOY_DATASETS = ("toy1d", "ring8")


# The paper's model for each of its datasets; dcgan for CIFAR-10's plain pixels, which the paper's models never saw.
DATASET_PRESETS = {"cifar10_gcn": "cifar-conv", "cifar10": "dcgan", "tfd": "tfd", "tfd96": "tfd"}


def default_preset(dataset: str) -> str:
    """toy for the toy sets, the paper's model for CIFAR-10 and TFD (DATASET_PRESETS), paper for everything else."""
    return "toy" if dataset in TOY_DATASETS else DATASET_PRESETS.get(dataset, "paper")


def preset(name: str | None, dataset: str) -> RunConfig:
    """The preset's config for a dataset (its default preset when name is None)."""
    name = name or default_preset(dataset)
    if name not in PRESETS:
        raise GancliError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name].make(dataset)


def with_overrides(config: RunConfig, **overrides: Any) -> RunConfig:
    """Apply CLI overrides (None means 'keep the preset's value'); dotted names reach nested configs."""
    top, nested = {}, {}
    for key, value in overrides.items():
        if value is None:
            continue
        if "." in key:
            section, name = key.split(".", 1)
            nested.setdefault(section, {})[name] = value
        else:
            top[key] = value
    for section, values in nested.items():
        top[section] = replace(getattr(config, section), **values)
    return replace(config, **top).validate()


def changed_fields(a: RunConfig, b: RunConfig, ignore: tuple[str, ...] = ()) -> list[tuple[str, Any, Any]]:
    """(dotted name, value in a, value in b) of every field that differs between two configs."""
    out = []

    def walk(x, y, prefix):
        for f in fields(x):
            name = prefix + f.name
            if name in ignore:
                continue
            vx, vy = getattr(x, f.name), getattr(y, f.name)
            if dataclasses.is_dataclass(vx):
                walk(vx, vy, name + ".")
            elif vx != vy:
                out.append((name, vx, vy))

    walk(a, b, "")
    return out


def differences(a: RunConfig, b: RunConfig, ignore: tuple[str, ...] = ("epochs",)) -> list[str]:
    """The fields where an asked config (a) differs from a checkpoint's (b), in words."""
    return [f"{name} ({vb!r} in the checkpoint, {va!r} asked)" for name, va, vb in changed_fields(a, b, ignore)]


def _parse_value(text: str, current: Any, name: str):
    """A --set value parsed as the type of the field's current value (ints, floats, bools, strings, tuples)."""
    text = text.strip()
    try:
        if isinstance(current, bool):
            if text.lower() in ("true", "yes", "on", "1"):
                return True
            if text.lower() in ("false", "no", "off", "0"):
                return False
            raise ValueError
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, tuple):
            items = [t for t in text.replace("(", "").replace(")", "").split(",") if t.strip()]
            kind = type(current[0]) if current else int
            return tuple(kind(t.strip()) for t in items)
    except ValueError:
        raise GancliError(f"--set {name}={text}: expected {_kind(current)}") from None
    return text


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, tuple):
        return "a comma-separated list of " + ("numbers" if value and isinstance(value[0], float) else "whole numbers")
    return {int: "a whole number", float: "a number"}.get(type(value), "text")


def settings(config: RunConfig, assignments: list[str]) -> dict[str, Any]:
    """--set section.field=value assignments as typed overrides for with_overrides."""
    out = {}
    for text in assignments:
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or not name:
            raise GancliError(f"--set {text!r}: write it as section.field=value, e.g. discriminator.minibatch=100,5")
        out[name] = _parse_value(value, _field_value(config, name), name)
    return out


def _field_value(config: RunConfig, name: str) -> Any:
    """The current value of a dotted config field, or GancliError listing the fields there are."""
    node: Any = config
    for part in name.split("."):
        if not dataclasses.is_dataclass(node) or part not in {f.name for f in fields(node)}:
            known = ", ".join(f.name for f in fields(node)) if dataclasses.is_dataclass(node) else ""
            raise GancliError(f"--set {name}: no such config field" + (f" (there: {known})" if known else ""))
        node = getattr(node, part)
    if dataclasses.is_dataclass(node):
        raise GancliError(f"--set {name}: a section, not a field; set one of its fields, e.g. {name}.{fields(node)[0].name}")
    return node


def from_toml(path: Path, base: RunConfig) -> dict[str, Any]:
    """A TOML config file as overrides of base: top-level fields, and [generator], [discriminator], [optimizer]."""
    import tomllib

    try:
        table = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GancliError(f"--config {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GancliError(f"--config {path} cannot be read ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise GancliError(f"--config {path} is not valid TOML ({e})") from None
    out = {}
    for key, value in table.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            name = key if sub is None else f"{key}.{sub}"
            current = _field_value(base, name)
            out[name] = tuple(v) if isinstance(v, list) else v
            if type(out[name]) is not type(current) and not (isinstance(current, float) and isinstance(v, int)):
                raise GancliError(f"--config {path}: {name} must be {_kind(current)} (got {v!r})")
    return out
