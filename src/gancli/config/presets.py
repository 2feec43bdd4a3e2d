"""The named recipes: each a function of the dataset giving a RunConfig. A preset named after a paper follows that
paper's code; where the code or text is silent, the comment says what was chosen (docs/ says it too). Measured
results of the presets are in docs/results.md."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from gancli.config.schema import (
    AugmentConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    OptimizerConfig,
    PenaltyConfig,
    RunConfig,
    SslMlpConfig,
)
from gancli.errors import GancliError

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
    # The fast recipe with an EMA of G, to reach the paper's number in an eighth of the updates. Our choices: decay
    # 0.9999 (a 10,000-update horizon, 20 epochs), where 0.999 fell a few points short; and the average starts at
    # epoch 25, not from the initial weights: an average begun at initialisation still holds 0.9999^12,500 = 29%
    # of the random weights at epoch 25, which draws blurry, ghosted digits (while scoring higher Parzen: the
    # estimate rewards blur). Before epoch 25 the EMA is G itself. Measurements: docs/goodfellow2014.md.
    "paper-ema": Preset(
        "the fast recipe (the paper's lr decay and momentum ramp 8x shorter, 250 epochs) with an EMA of G, decay "
        "0.9999, averaging from epoch 25",
        lambda dataset: replace(PRESETS["fast"].make(dataset), preset="paper-ema", ema=0.9999, ema_start=25),
    ),
    # An EMA of G on the paper's own schedule: paper-ema's average stops gaining once fast's lr decay slows G.
    # Our choices: paper-ema's start (epoch 25) and 250 epochs; decay 0.99995 (a 20,000-update horizon, 40 epochs).
    # A slower average draws samples nearer the training images than test images are, a faster one gains less;
    # the decays measured are in docs/goodfellow2014.md and docs/results.md.
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
    # Our design, not a paper's: the post-2016 parts that make a small GAN train reliably, on a model small enough for
    # a 2-core CPU. A DCGAN-style pair at MNIST's size (G: dense to 7x7x64, 5x5 stride-2 transposed convolutions to 32
    # channels and then the image, batch norm in G only; D: 5x5 stride-2 convolutions 32 and 64, leaky ReLU 0.2, no
    # batch norm, since R1 penalises each example's own gradient), the non-saturating loss with R1 (gamma 1, every
    # 16th D update as StyleGAN2's lazy R1: R1's double backward through the convolutions costs ~6 plain updates on
    # the CPU), DiffAugment's translation and cutout on everything D sees, Adam 2e-4 with beta1 0.5, alternating
    # updates, batch 64, 64-d Gaussian z and an EMA of G (0.999, from epoch 1) to sample from. Twice these widths
    # trained ~7x slower on the CPU, which is why they are this narrow.
    "modern": Preset(
        "a small modern GAN for 28x28 images (mnist, fashion_mnist): a DCGAN-style pair without batch norm in D, "
        "R1 (gamma 1, lazy 16), DiffAugment translation and cutout, Adam 2e-4 beta1 0.5, an EMA of G 0.999; our design",
        lambda dataset: RunConfig(
            dataset=dataset,
            preset="modern",
            model="dcgan",
            generator=GeneratorConfig(z_dim=64, hidden=(64, 32), noise="gaussian", output="sigmoid", init_scale=0.02,
                                      output_bias_from_data=False, batchnorm=True),
            discriminator=DiscriminatorConfig(units=(32, 64), keep_input=1.0, keep_hidden=1.0, init_scale=0.02),
            optimizer=OptimizerConfig(name="adam", lr=2e-4, lr_decay=1.0, b1=0.5),
            penalty=PenaltyConfig(r1=1.0, lazy=16),
            augment=AugmentConfig(policy="translation,cutout"),
            update="alternating",
            batch_size=64,
            epochs=20,
            ema=0.999,
            ema_start=1,  # the first epoch's weights are too far from the rest to be worth averaging
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
    # Miyato et al. (2018), the standard CNN of their Table 3 (model sngan-cnn) with spectral normalisation of D and
    # the hinge loss, trained as their released CIFAR-10 code (pfnet-research/sngan_projection: train.py and
    # configs/sn_cifar10*.yml) trains: Adam lr 2e-4, beta1 0, beta2 0.9, 5 D updates per G update, batch 64, z
    # 128-d N(0, 1); the paper's runs took 100k G updates. Ours where they differ or are silent: all 50,000 training
    # images (cifar10's train_full; 156 iterations an epoch at 5 x 64 images each), so 641 epochs = 99,996 G
    # updates; G's batch in its update is 64, the D batch (sngan_projection's ResNet configs draw 128 samples,
    # n_gen_samples; chainer-gan-lib's standard-CNN updater draws a batch's worth, 64); no lr schedule (their code
    # decays lr linearly to 0 only in sngan_projection's ResNet runs; chainer-gan-lib's CNN keeps it constant);
    # no EMA; weights N(0, 0.02) (chainer-gan-lib's init); the paper's D widths and leaky ReLU 0.1 (chainer-gan-lib's
    # SNDCGANDiscriminator doubles the channels at each stride-2 layer and uses chainer's slope 0.2); a sigmoid
    # output for pixels in [0, 1] (theirs: tanh for [-1, 1]); D steps first in each iteration, then G's (their
    # updater updates G before the first of its 5 D steps: the same sequence, shifted by one G update).
    "sngan": Preset(
        "Miyato et al. (2018) standard CNN for 32x32 (or any 8k x 8k) images: spectral norm on D, hinge loss, Adam "
        "lr 2e-4 beta1 0 beta2 0.9, 5 D steps per G step (alternating), batch 64, z 128-d Gaussian, 641 epochs of "
        "cifar10's 50,000 training images (~100k G updates); for pixels in [0, 1] (cifar10)",
        lambda dataset: RunConfig(
            dataset=dataset,
            preset="sngan",
            model="sngan-cnn",
            generator=GeneratorConfig(z_dim=128, hidden=(512, 256, 128, 64), noise="gaussian", output="sigmoid",
                                      init_scale=0.02, output_bias_from_data=False, batchnorm=True),
            discriminator=DiscriminatorConfig(units=(64, 64, 128, 128, 256, 256, 512), keep_input=1.0, keep_hidden=1.0,
                                              init_scale=0.02),
            optimizer=OptimizerConfig(name="adam", lr=2e-4, lr_decay=1.0, b1=0.0, b2=0.9),
            spectral_norm="d",
            d_loss="hinge",
            g_loss="hinge",
            k=5,
            update="alternating",
            batch_size=64,
            epochs=641,
            train_split="train_full" if dataset in ("cifar10", "cifar10_gcn") else "train",
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
                                              init_scale=0.1),
            ssl_mlp=SslMlpConfig(input_noise=0.3, hidden_noise=0.5),
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
    # The same, as the script openai/improved-gan released on 2016-06-08, two days before the paper (first commit
    # bb3d27b, last 27f970c "clean up + comment", train_mnist_feature_matching.py at the repository's root; moved to
    # mnist_svhn_cifar10/ on 06-09; the 0.003 lr and the average of D came on 2016-06-14, 30d4beb and 0fa06b5): Adam
    # lr 0.001, set each epoch to 0.001 * min(3 - epoch / 100, 1), held to epoch 200 then linear to 0 at epoch 300
    # (optimizer lr_linear_from / lr_linear_to; lr_min 0 so the floor does not stop the fall); no average of D,
    # so the per-epoch and the final test errors are D's own. Its loop ran 301 epochs, the last at lr 0, which
    # changes no weight: 300 here. One difference this preset does not reproduce: that script's G output layer was
    # nn.weight_norm with a trained gain (a data-dependent init of its gain and bias); the later script's, which
    # model ssl-mlp follows, is l2normalize with a trained scale starting at 1. Which script produced the paper's
    # Table 2 is not recorded.
    "semi-supervised-2016-06-08": Preset(
        "Salimans et al. (2016) semi-supervised MNIST as their code of 2016-06-08: the semi-supervised preset with "
        "Adam lr 0.001 held to epoch 200, then linear to 0 at epoch 300, and no average of D (D itself is tested)",
        lambda dataset: replace(
            PRESETS["semi-supervised"].make(dataset),
            preset="semi-supervised-2016-06-08",
            optimizer=replace(PRESETS["semi-supervised"].make(dataset).optimizer, lr=0.001, lr_min=0.0,
                              lr_linear_from=200, lr_linear_to=300),
            d_ema=0.0,
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


# Datasets gancli builds from images of any size (gancli.data.image_sets), named with these prefixes: colour or grey
# photos at a side of the user's choosing, which the conv dcgan takes and the paper's 28x28 MLP was never meant for.
IMAGE_SET_PREFIXES = ("folder_", "tfds_")


def default_preset(dataset: str) -> str:
    """toy for the toy sets, the paper's model for CIFAR-10 and TFD (DATASET_PRESETS), dcgan for image folders and
    resized catalog sets, paper for everything else."""
    if dataset.startswith(IMAGE_SET_PREFIXES):
        return "dcgan"
    return "toy" if dataset in TOY_DATASETS else DATASET_PRESETS.get(dataset, "paper")


def preset(name: str | None, dataset: str) -> RunConfig:
    """The preset's config for a dataset (its default preset when name is None)."""
    name = name or default_preset(dataset)
    if name not in PRESETS:
        raise GancliError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name].make(dataset)
