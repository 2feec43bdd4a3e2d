"""A run's typed, frozen configuration: the dataclasses stored in every checkpoint, their JSON round-trip and the
schema's validation. A leaf: no registry, no JAX; the model family and objectives check their own names
(gancli.models.check)."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from gancli.errors import GancliError

UPDATES = ("simultaneous", "alternating")
# Objectives and model families are registries that check their own names (gancli.objectives.problems,
# gancli.models.check): this module is a leaf, free of JAX, below everything that reads a config.
OPTIMIZERS = ("sgd", "adam")
NOISES = ("uniform", "gaussian", "uniform01")  # uniform: U(-sqrt3, sqrt3); uniform01: U[0, 1)
OUTPUTS = ("sigmoid", "linear")
SPECTRAL_NORMS = ("none", "d", "both")  # which networks' kernels spectral normalisation divides by sigma (gancli.spectral)
SEEDS = 2**32  # distinct seeds: a JAX key holds 32 bits of one
# DiffAugment's transforms (gancli.augment.TRANSFORMS implements them; its test checks the two lists agree). Named
# here so that validate, run wherever a config is made or restored, can refuse an unknown one.
TRANSFORMS = ("translation", "cutout", "color")


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


@dataclass(frozen=True)
class SslMlpConfig:
    """What only model ssl-mlp has (Salimans et al.'s semi-supervised D): Gaussian noise in D, in training."""

    input_noise: float = 0.0  # std of Gaussian noise added to D's input
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
    # A linear tail on top of the decay: lr held until epoch lr_linear_from, then falling linearly to 0 at epoch
    # lr_linear_to, one value per epoch (improved-gan's 2016-06-08 MNIST script: 200 and 300); 0 and 0: none
    lr_linear_from: int = 0
    lr_linear_to: int = 0


@dataclass(frozen=True)
class PenaltyConfig:
    """Gradient penalties on D (gancli.penalties), each added to D's loss; all off by default."""

    r1: float = 0.0  # gamma of R1, gamma/2 mean ||grad_x D(x)||^2 on real data (Mescheder et al. 2018); 0: off
    r2: float = 0.0  # gamma of R2, the same on generated samples; 0: off
    gp: float = 10.0  # lambda of wgan-gp's penalty on random interpolates (used only by d_loss wgan-gp)
    lazy: int = 1  # apply the penalties every this many D updates, scaled by it (StyleGAN2's lazy regularisation)


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation of everything D sees in training (gancli.augment): DiffAugment's transforms, each applied to each
    example with probability p; ADA moves p towards a target, else p is 1."""

    policy: str = ""  # comma list of translation, cutout, color, applied in that order as written; "" for none
    ada_target: float = 0.0  # ADA's target of E[sign(D(x))] on real data; 0: no ADA, p fixed at 1
    ada_interval: int = 4  # iterations between ADA's adjustments of p
    ada_kimg: float = 500.0  # thousands of images (batch_size per iteration) for p to move from 0 to 1 at most


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
    ssl_mlp: SslMlpConfig = field(default_factory=SslMlpConfig)  # model ssl-mlp's own knobs
    penalty: PenaltyConfig = field(default_factory=PenaltyConfig)  # gradient penalties on D (gancli.penalties)
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # DiffAugment / ADA (gancli.augment); off by default
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
    # With --seeds N, seed i's labelled subset is label_seed + i's (the paper's protocol: a random subset per run),
    # unless same_labels, which gives every seed label_seed's
    same_labels: bool = False
    # Spectral normalisation (Miyato et al. 2018) of the kernels of D ("d"), of D and G ("both"), or none; one power
    # iteration per update of each network normalised
    spectral_norm: str = "none"
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
        return _from_dict(cls, migrated(d))

    def validate(self) -> "RunConfig":
        """Raise GancliError naming the first bad field; return self when all is well. What a registry knows (the
        model family, the objectives and what they need) is checked by gancli.models.check."""
        wrong = type_problem(self)
        if wrong:
            raise GancliError(wrong)
        o, g, d, p, a = self.optimizer, self.generator, self.discriminator, self.penalty, self.augment
        transforms = augment_transforms(a.policy)
        checks = [
            (all(t in TRANSFORMS for t in transforms),
             f"--augment: unknown transform {next((t for t in transforms if t not in TRANSFORMS), '')!r}; "
             f"known: {', '.join(TRANSFORMS)}"),
            (len(set(transforms)) == len(transforms), f"--augment names a transform twice (got {a.policy!r})"),
            (_finite(a.ada_target) and 0 <= a.ada_target <= 1, f"--ada must be a target in [0, 1], 0 for none (got {a.ada_target})"),
            (a.ada_target == 0 or transforms, "--ada needs --augment: the transforms whose probability it adapts"),
            (a.ada_interval >= 1, f"augment ada_interval must be >= 1 iteration (got {a.ada_interval})"),
            (_finite(a.ada_kimg) and a.ada_kimg > 0, f"augment ada_kimg must be a finite number > 0 (got {a.ada_kimg})"),
            (0 <= self.ema < 1, f"--ema must be in [0, 1) (got {self.ema})"),
            (0 <= self.d_ema < 1, f"d_ema must be in [0, 1) (got {self.d_ema})"),
            (self.labels >= 0, f"--labels must be >= 0 (got {self.labels})"),
            (0 <= self.label_seed < SEEDS, f"--label-seed must be in [0, {SEEDS - 1:,}] (got {self.label_seed})"),
            (self.same_labels or self.labels == 0 or self.label_seed + self.seeds <= SEEDS,
             f"--label-seed must be in [0, {SEEDS - self.seeds:,}] with --seeds {self.seeds}, each seed taking the next "
             f"label seed (got {self.label_seed}); or give --same-labels"),
            (self.g_batch in ("same", "own"), f"g_batch must be same or own (got {self.g_batch!r})"),
            (self.g_batch == "same" or self.update == "alternating",
             "g_batch own needs alternating updates (simultaneous ones take both gradients from one batch)"),
            (all(_finite(v) and v >= 0 for v in (self.ssl_mlp.input_noise, self.ssl_mlp.hidden_noise)),
             f"ssl_mlp input_noise and hidden_noise must be finite numbers >= 0 (got {self.ssl_mlp.input_noise} and "
             f"{self.ssl_mlp.hidden_noise})"),
            (all(_finite(v) and v >= 0 for v in (o.eps, o.eps_root)) and o.eps + o.eps_root > 0,
             f"optimizer eps and eps_root must be finite numbers >= 0, not both 0 (got {o.eps} and {o.eps_root})"),
            (all(_finite(v) and v >= 0 for v in (p.r1, p.r2, p.gp)),
             f"penalty r1, r2 and gp must be finite numbers >= 0, 0 for off (got {p.r1}, {p.r2} and {p.gp})"),
            (isinstance(p.lazy, int) and not isinstance(p.lazy, bool) and p.lazy >= 1,
             f"--lazy must be a whole number >= 1, 1 for every D update (got {p.lazy})"),
            (self.ema_start >= 0, f"ema_start must be an epoch >= 0 (got {self.ema_start})"),
            (len(d.minibatch) == 2 and (all(v >= 1 for v in d.minibatch) or tuple(d.minibatch) == (0, 0)),
             f"discriminator.minibatch must be two numbers B,C >= 1 (kernels, dims), or 0,0 for none (got {d.minibatch})"),
            (self.spectral_norm in SPECTRAL_NORMS,
             f"--spectral-norm must be one of {', '.join(SPECTRAL_NORMS)} (got {self.spectral_norm!r})"),
            (self.k >= 1, f"--k must be >= 1 (got {self.k})"),
            (self.update in UPDATES, f"--update must be one of {', '.join(UPDATES)} (got {self.update!r})"),
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
            ((o.lr_linear_from, o.lr_linear_to) == (0, 0) or 0 <= o.lr_linear_from < o.lr_linear_to,
             f"optimizer lr_linear_from and lr_linear_to must be epochs 0 <= from < to, or 0 and 0 for none (got "
             f"{o.lr_linear_from} and {o.lr_linear_to})"),
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
        return self


def type_problem(config, prefix: str = "") -> str | None:
    """Which field of a config (or of one of its sections) holds a value of another kind than its declared type,
    element by element, in words; None when every one is of its type. The range checks of validate assume this."""
    hints = typing.get_type_hints(type(config))
    for f in fields(config):
        value, hint = getattr(config, f.name), hints[f.name]
        if dataclasses.is_dataclass(hint):
            problem = (type_problem(value, f"{prefix}{f.name}.") if isinstance(value, hint)
                       else f"{prefix}{f.name} must be a [{f.name}] section (got {value!r})")
        else:
            problem = value_problem(f"{prefix}{f.name}", value, hint)
        if problem:
            return problem
    return None


def declared_type(name: str):
    """The declared type of a dotted RunConfig field (generator.hidden: tuple[int, ...])."""
    cls, *parts = (RunConfig, *name.split("."))
    for part in parts:
        cls = typing.get_type_hints(cls)[part]
    return cls


def value_problem(name: str, value: Any, hint) -> str | None:
    """Why value is not of the declared type hint (int, float, bool, str or tuple[int, ...]), naming the field and
    the first element that is not; None when it is."""
    if typing.get_origin(hint) is tuple:
        (kind, _) = typing.get_args(hint)
        if not isinstance(value, tuple):
            return f"{name} must be a list of {_KINDS[kind][1]} (got {_shown(value)})"
        bad = [v for v in value if not _is(v, kind)]
        return f"{name} must be a list of {_KINDS[kind][1]} (got {_shown(value)}: {_shown(bad[0])} is not one)" if bad else None
    return None if _is(value, hint) else f"{name} must be {_KINDS[hint][0]} (got {_shown(value)})"


_KINDS = {int: ("a whole number", "whole numbers"), float: ("a number", "numbers"), bool: ("true or false", "trues and falses"),
          str: ("text", "texts")}


def _is(value: Any, kind) -> bool:
    """Whether value is of kind; a whole number is a number too, true and false are neither."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _shown(value: Any) -> str:
    """A value as a user wrote it: lists as lists, not as the tuples they became."""
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return repr(value)


def augment_transforms(policy: str) -> tuple[str, ...]:
    """The transform names of an augment policy ("translation,cutout" -> ("translation", "cutout")), in order."""
    return tuple(t.strip() for t in policy.split(",") if t.strip())


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
    (RunConfig, "ssl_mlp"): SslMlpConfig,
    (RunConfig, "penalty"): PenaltyConfig,
    (RunConfig, "augment"): AugmentConfig,
}


def sections() -> list[str]:
    """The names of RunConfig's sections (its nested configs), in order: the tables a --config file may hold."""
    return [name for (cls, name) in _NESTED if cls is RunConfig]

# Fields that moved from the shared schema into a model family's own section: (old dotted name, new one). Configs
# stored by earlier versions, --set and --config files that use the old names keep working.
MOVED = (("discriminator.input_noise", "ssl_mlp.input_noise"), ("discriminator.hidden_noise", "ssl_mlp.hidden_noise"))


def migrated(d: dict[str, Any]) -> dict[str, Any]:
    """A stored config dict in today's layout: fields MOVED since it was written go to their new sections; a config
    written before same_labels existed gets True, what its seeds trained with (one labelled subset for all)."""
    d = {k: dict(v) if isinstance(v, dict) else v for k, v in d.items()}
    d.setdefault("same_labels", True)
    for old, new in MOVED:
        (old_section, name), (new_section, new_name) = old.split("."), new.split(".")
        if isinstance(d.get(old_section), dict) and name in d[old_section]:
            value = d[old_section].pop(name)
            section = d.setdefault(new_section, {})
            if isinstance(section, dict):
                section.setdefault(new_name, value)
    return d
