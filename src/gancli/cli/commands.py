"""The gancli commands: parse options, call the library, print (through gancli.cli.render). Nothing outside
gancli.cli imports Typer or Rich."""

from __future__ import annotations

import functools
import logging
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from gancli import metrics as metric_registry  # numpy only: the options' help lists the registry's metrics
from gancli.cli.early import before_the_command
from gancli import stops  # no JAX: train watches the signals from its first line
from gancli.config import sections  # no JAX: the --config help lists the config's tables
from gancli.errors import GancliError
from gancli.files import check_count

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Train, sample, evaluate and inspect GANs.")
console = Console()
err_console = Console(stderr=True)


class WarningLines(logging.Handler):
    """Prints the library's warnings (e.g. a checkpoint it skipped, and why) as plain 'warning: ...' lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"warning: {record.getMessage()}", err=True)


_library_log = logging.getLogger("gancli")
if not any(isinstance(h, WarningLines) for h in _library_log.handlers):
    _library_log.addHandler(WarningLines(logging.WARNING))
_library_log.propagate = False  # a root handler (JAX's, absl's) would print each one again, in its own format

DataDir = Annotated[
    Optional[Path], typer.Option("--data-dir", help="TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).")
]
DataFile = Annotated[
    Optional[Path],
    typer.Option("--data-file", help="Your copy of a dataset gancli cannot fetch: cifar-10-python.tar.gz (or its folder "
                 "cifar-10-batches-py) for cifar10 / cifar10_gcn, TFD_48x48.mat for tfd, TFD_96x96.mat for tfd96. Built "
                 "once into the data dir; without it they are looked for in DATA_DIR/downloads/manual/."),
]


def _preset_help() -> str:
    """--preset's help, from the registry: every preset, with the datasets it is the default for."""
    from gancli.config import DATASET_PRESETS, PRESETS, TOY_DATASETS, default_preset

    defaults: dict[str, list[str]] = {}
    for dataset in (*TOY_DATASETS, *DATASET_PRESETS):
        defaults.setdefault(default_preset(dataset), []).append(dataset)
    fallback = default_preset("")  # what any other dataset gets
    words = []
    for name in PRESETS:
        if name == fallback:
            words.append(f"{name} (default for the other datasets)")
        elif name in defaults:
            words.append(f"{name} (default for {', '.join(defaults[name])})")
        else:
            words.append(name)
    return "Recipe (see 'gancli presets'): " + ", ".join(words) + "."


PRESET_HELP = _preset_help()
# Rich reads "[generator]" as markup: each table's bracket is escaped.
CONFIG_HELP = ("A TOML file of config fields (top-level keys and " + ", ".join(f"\\[{name}]" for name in sections())
               + " tables; 'gancli presets --fields' lists them) over the preset.")


def one_line_errors(fn):
    """Turn a GancliError into 'error: ...' on stderr and exit code 1, never a traceback; and from here on a SIGINT is
    the command's to answer (gancli.cli.early.before_the_command answers it until then)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if signal.getsignal(signal.SIGINT) is before_the_command:  # the command's first line: from here its own
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return fn(*args, **kwargs)
        except GancliError as e:
            err_console.print(f"error: {e}", style="bold red", markup=False, emoji=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1)

    return wrapper


def watching_signals(fn):
    """SIGINT and SIGTERM stop the command at its next safe point from its first line on (gancli.stops), not only
    once its loop runs: before JAX is imported, while data loads and while XLA compiles."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with stops.watch():
            return fn(*args, **kwargs)

    return wrapper
def _use_file(data_file: Path, data_dir, dataset: str | None = None) -> list[str]:
    """data.use_file with a bar on stderr while the file is read: a large (or hostile) archive takes a while."""
    from gancli import data
    from gancli.cli.progress import WorkBars

    with WorkBars(err_console) as bars:
        return data.use_file(data_file, data_dir, dataset, progress=bars)


@app.command()
@one_line_errors
def datasets(data_dir: DataDir = None, data_file: DataFile = None):
    """List datasets with their splits, sizes, state and provenance; --data-file builds the one that file holds."""
    # Imported here: TFDS takes about a second to import and other commands may not need it.
    from gancli import data
    from gancli.cli import render

    root = data.resolve_data_dir(data_dir)
    if root.exists() and not root.is_dir():
        raise GancliError(f"--data-dir {root} is a file, not a folder")
    if data_file is not None:
        _use_file(data_file, root)
    try:
        entries = data.describe(root)
    except OSError as e:  # e.g. a folder in it that cannot be read
        raise GancliError(f"cannot read the data dir {root}: {e.strerror or e}: {e.filename}") from None
    console.print(render.datasets_table(root, entries))
    for e in entries:
        if e["hint"]:
            console.print(f"{e['name']}: {e['hint']}", markup=False, highlight=False, soft_wrap=True)


@app.command()
@one_line_errors
@watching_signals
def train(
    dataset: Annotated[Optional[str], typer.Argument(help="Dataset name (default mnist; a resumed run keeps its own), or a folder of images (PNG, JPEG, WEBP; class subfolders are labels) written as a path: path/to/folder, ./photos, /data/faces (a bare word is always a name). Built once into the data dir.")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="A folder's images (or a TFDS catalog dataset's) are centre-cropped and resized to this side (default 64 for a folder).")] = None,
    channels: Annotated[Optional[int], typer.Option(help="1 (grey) or 3 (colour) for a folder's images; default: 1 when most of them are grey, else 3.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse a folder with an image file that cannot be read, instead of skipping it with a warning.")] = False,
    download: Annotated[bool, typer.Option("--download", help="Let TFDS download and prepare a catalog dataset (celeb_a, tfds:cifar10 ...) not yet prepared in the data dir (needs the network); without it such a name is refused at once.")] = False,
    preset: Annotated[Optional[str], typer.Option(help=PRESET_HELP)] = None,
    k: Annotated[Optional[int], typer.Option("--k", help="Discriminator steps per generator step (>= 1).")] = None,
    update: Annotated[Optional[str], typer.Option(help="simultaneous (the original code) or alternating (Algorithm 1).")] = None,
    loss: Annotated[Optional[str], typer.Option(help="Both players' losses: gan (the 2014 game, non-saturating G), hinge, least-squares, wgan-gp (with penalty.gp, default 10) or relativistic (RpGAN). --g-loss still picks G's.")] = None,
    g_loss: Annotated[Optional[str], typer.Option(help="nonsaturating, minimax, switch (nonsaturating, then minimax), feature-matching (Salimans et al. 2016), hinge, least-squares, wgan-gp or relativistic; any D loss takes any of them.")] = None,
    switch_epoch: Annotated[Optional[int], typer.Option(help="With --g-loss switch: epochs of nonsaturating loss.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Total epochs to train to.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Minibatch size.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of all randomness.")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="Train this many seeds at once in one compiled program.")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="sgd (classical momentum) or adam.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate.")] = None,
    lr_decay: Annotated[Optional[float], typer.Option(help="lr is divided by this every update (1 = constant).")] = None,
    momentum: Annotated[Optional[float], typer.Option(help="sgd: initial momentum.")] = None,
    momentum_final: Annotated[Optional[float], typer.Option(help="sgd: momentum reached at --momentum-saturate.")] = None,
    momentum_saturate: Annotated[Optional[int], typer.Option(help="sgd: epoch at which momentum is final.")] = None,
    b1: Annotated[Optional[float], typer.Option(help="adam: beta1.")] = None,
    b2: Annotated[Optional[float], typer.Option(help="adam: beta2.")] = None,
    r1: Annotated[Optional[float], typer.Option("--r1", help="R1 gradient penalty on D: gamma/2 mean ||grad_x D(x)||^2 on real data (Mescheder et al. 2018); 0 off.")] = None,
    r2: Annotated[Optional[float], typer.Option("--r2", help="R2: the same penalty on generated samples; 0 off.")] = None,
    lazy: Annotated[Optional[int], typer.Option("--lazy", help="Apply the gradient penalties every this many D updates, multiplied by it (StyleGAN2's lazy regularisation; 1: every update).")] = None,
    ema: Annotated[Optional[float], typer.Option(help="Keep a moving average of G's weights with this decay per update (e.g. 0.999); sample and evaluate use it.")] = None,
    spectral_norm: Annotated[Optional[str], typer.Option(help="Spectral normalisation (Miyato et al. 2018) of the weights of D (d), of D and G (both), or none (the default); one power iteration per update.")] = None,
    conditional: Annotated[bool, typer.Option("--conditional", help="Condition G and D on the class label (any model; the cgan preset always is): generated examples take the real batch's labels; sample --label draws one class.")] = False,
    labels: Annotated[Optional[int], typer.Option(help="Semi-supervised (preset semi-supervised, default 100): train D's classes on this many labelled training examples, as many of each class; the rest of training ignores the labels.")] = None,
    label_seed: Annotated[Optional[int], typer.Option(help="Semi-supervised: the seed that picks the labelled examples (default 0); with --seeds N, seed i takes label seed + i, a labelled subset of its own (the paper's protocol); stored in each seed's checkpoint.")] = None,
    same_labels: Annotated[bool, typer.Option("--same-labels", help="Semi-supervised with --seeds: every seed trains on the --label-seed's labelled subset, not one of its own.")] = False,
    augment: Annotated[Optional[str], typer.Option(help="Augment everything D sees, real and generated, in every D pass (DiffAugment, Zhao et al. 2020): a comma list of translation, cutout, color; 'none' for none.")] = None,
    ada: Annotated[Optional[float], typer.Option(help="With --augment: ADA (Karras et al. 2020) moves the probability p of each transform from 0 towards keeping the mean sign of D's logit on real data at this target (e.g. 0.6); 0: p fixed at 1.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override any config field: section.field=value, e.g. discriminator.minibatch=100,5 (repeatable).")] = None,
    config_file: Annotated[Optional[Path], typer.Option("--config", help=CONFIG_HELP)] = None,
    ckpt: Annotated[Path, typer.Option(help="Checkpoint folder; an existing one is resumed.")] = Path("ckpt"),
    resume: Annotated[bool, typer.Option(help="Require an existing checkpoint in --ckpt and continue it.")] = False,
    ckpt_every: Annotated[Optional[int], typer.Option(help="Save a checkpoint every this many epochs (default: every --ckpt-minutes). The end and Ctrl-C/SIGTERM always save.")] = None,
    ckpt_minutes: Annotated[Optional[float], typer.Option(help="Save a checkpoint every this many minutes of training (default 5), in the background.")] = None,
    keep: Annotated[Optional[int], typer.Option(help="Checkpoints kept.")] = None,
    chunk: Annotated[Optional[int], typer.Option(help="Iterations per compiled call (default: an epoch on a GPU, a few seconds of work on a CPU).")] = None,
    eval_every: Annotated[Optional[int], typer.Option(help=f"Every this many epochs, measure the cheap sample-quality metrics ({metric_registry.describe(metric_registry.CHEAP)} on {metric_registry.N_CHEAP:,} samples; mnist and fashion_mnist) into metrics.jsonl.")] = None,
    devices: Annotated[Optional[int], typer.Option(help="Devices to train on (default: all; with one process, the most that divide the work). --seeds are split over them; one seed's batch is split over them, the networks replicated. Counted over all processes of a --distributed run.")] = None,
    distributed: Annotated[bool, typer.Option("--distributed", help="Join a multi-process run (jax.distributed.initialize: coordinator and process ids from SLURM, Open MPI, a TPU pod or JAX_COORDINATOR_ADDRESS). Under srun or mpirun with several processes it is joined without the flag.")] = False,
    stream: Annotated[bool, typer.Option("--stream", help="Read the training set from disk as it trains (Grain), not from the device: what a prepared set larger than half the device's memory does anyway. One seed, one device, no extra batches (see docs/datasets.md).")] = False,
    data_dir: DataDir = None,
    data_file: DataFile = None,
):
    """Train a GAN with jit-compiled JAX steps and write checkpoints."""
    from gancli import parallel
    from gancli import train as training
    from gancli.config import from_toml, named_in_file, preset as preset_config, settings
    from gancli import data, objectives, penalties, per_epoch
    from gancli.cli.progress import RichReporter

    parallel.start(distributed)  # before anything touches a device

    # --ckpt-minutes also clears the epoch cadence a resumed run or --config may hold (ckpt_every 0)
    if ckpt_every is not None and ckpt_minutes is not None:
        raise GancliError("give --ckpt-every (epochs) or --ckpt-minutes, not both")
    overrides = {
        "k": k, "update": update, "g_loss": g_loss, "switch_epoch": switch_epoch, "epochs": epochs,
        "batch_size": batch_size, "seed": seed, "seeds": seeds, "ckpt_every": 0 if ckpt_minutes is not None else ckpt_every,
        "ckpt_minutes": ckpt_minutes, "keep": keep,
        "chunk": chunk, "optimizer.name": optimizer, "optimizer.lr": lr, "optimizer.lr_decay": lr_decay,
        "optimizer.momentum": momentum, "optimizer.momentum_final": momentum_final,
        "optimizer.momentum_saturate_epoch": momentum_saturate, "optimizer.b1": b1, "optimizer.b2": b2, "ema": ema,
        "spectral_norm": spectral_norm,
        "conditional": conditional or None, "labels": labels, "label_seed": label_seed, "same_labels": same_labels or None,
        "penalty.r1": r1, "penalty.r2": r2, "penalty.lazy": lazy,
        "augment.policy": "" if augment == "none" else augment, "augment.ada_target": ada,
    }
    if loss is not None:  # --g-loss, when given too, picks G's loss
        overrides["d_loss"], paired = objectives.pair(loss)
        overrides["g_loss"] = g_loss if g_loss is not None else paired
    if dataset is not None or image_size is not None or channels is not None or strict or download:
        dataset = data.dataset_argument(dataset, data_dir, image_size=image_size, channels=channels, strict=strict,
                                        download=download)
    # Layers, weakest first: the preset, then --config, then --set, then the named options.
    base = preset_config(preset, dataset or "mnist")
    from_file = from_toml(config_file, base) if config_file is not None else {}
    overrides = {**settings(base, set_ or []), **{k: v for k, v in overrides.items() if v is not None}}
    config, resuming = training.resolve_config(ckpt, dataset, preset, overrides, resume,
                                               (config_file, from_file) if from_file else None)
    reporter = RichReporter(console, config.epochs, config.optimizer.name)
    if data_file is not None:
        _use_file(data_file, data_dir, config.dataset)
    verb = "resuming" if resuming else "training"
    console.print(
        f"{verb} [bold]{config.dataset}[/] preset {config.preset}: k={config.k}, {config.update} updates, "
        + (f"{config.d_loss} D loss, " if config.d_loss != "gan" else "")
        + f"{config.g_loss} G loss, " + _penalty_words(config, penalties.active(config))
        + f"{config.optimizer.name}, batch {config.batch_size}, {config.epochs} epochs, "
        + (f"EMA of G {config.ema:g}, " if config.ema else "") + ("conditional on the labels, " if config.conditional else "")
        + (f"{config.labels} labelled examples ({_label_seed_words(config)}), " if config.labels else "")
        + (f"EMA of D {config.d_ema:g}, " if config.d_ema else "")
        + ({"d": "spectral norm in D, ", "both": "spectral norm in D and G, "}.get(config.spectral_norm, ""))
        + (f"augmenting D's inputs ({config.augment.policy}" + (f", ADA target {config.augment.ada_target:g}), " if config.augment.ada_target else "), ")
           if config.augment.policy else "") +
        f"seed {config.seed}" + (f" (+{config.seeds - 1} more)" if config.seeds > 1 else "") + f" -> {ckpt}/",
        highlight=False,
    )
    if objectives.INTERPOLATES in objectives.needs(config) and not config.penalty.gp:
        console.print("note: d_loss wgan-gp with penalty.gp 0 trains a critic without its gradient penalty, "
                      "nothing keeps it Lipschitz", highlight=False)
    try:
        with data.reporting_builds(reporter.work):  # a first use of the dataset builds it: its bars go through the reporter
            outcome = training.train(config, ckpt, data_dir, reporter, resume=resuming,
                                     evaluations=None if eval_every is None else per_epoch.Every(eval_every, reporter.work),
                                     devices=devices, stream=stream)
    except GancliError as e:  # a check that needed the data, of a value the --config file set
        raise (named_in_file(e, config_file, from_file, overrides) if from_file else e) from None
    if outcome.status == "up-to-date":
        console.print(f"{ckpt}/ is already trained to epoch {outcome.epoch}; raise --epochs to go on.")
    elif outcome.status == "interrupted":
        name = signal.Signals(outcome.signal).name
        if not outcome.saved:
            kept = f"{ckpt}/ holds the checkpoints it held; run the same command to resume." if resuming else (
                "nothing was saved; run the same command to start again.")
            line = f"interrupted by {name} before training began: {kept}"
        else:
            line = f"interrupted by {name}: saved step {outcome.step} (epoch {outcome.epoch}) in {ckpt}/; run the same command to resume."
        console.print(line, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(128 + outcome.signal)  # what a shell reports for a process ended by that signal
    else:
        console.print(f"done: epoch {outcome.epoch}, step {outcome.step}; checkpoints, metrics.jsonl and samples/ in {ckpt}/")


def _label_seed_words(config) -> str:
    """Which label seeds a semi-supervised run's seeds take, in words."""
    if config.seeds == 1:
        return f"label seed {config.label_seed}"
    if config.same_labels:
        return f"label seed {config.label_seed} for every seed"
    return f"label seeds {config.label_seed} to {config.label_seed + config.seeds - 1}, one subset per seed"


def _penalty_words(config, active: tuple[str, ...]) -> str:
    """The gradient penalties of the start-up line: 'r1 10, gp 10 every 16 D updates, ' (nothing when none)."""
    if not active:
        return ""
    words = ", ".join(f"{name} {getattr(config.penalty, name):g}" for name in active)
    return words + (f" every {config.penalty.lazy} D updates, " if config.penalty.lazy > 1 else ", ")


@app.command()
@one_line_errors
def sample(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint folder; a multi-seed folder is sampled seed by seed.")] = Path("ckpt"),
    n: Annotated[Optional[int], typer.Option("--n", help="Samples to draw (default 100); with --interpolate, rows (default 10). At most what fits in 80% of the free memory and on the output's disk; checked before drawing.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the latents: the same seed gives the same samples.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="The .npz to write, the PNG beside it (default: CKPT/samples/<kind>_step<S>_seed<SEED>_n<N>.npz).")] = None,
    nearest: Annotated[bool, typer.Option("--nearest", help="Pair each sample with its nearest training image by pixel L2 (the paper's Figure 2).")] = False,
    interpolate: Annotated[Optional[int], typer.Option(help="Rows of this many samples along a line between two latents (the paper's Figure 3).")] = None,
    label: Annotated[Optional[int], typer.Option(help="Conditional runs: draw this class. Without it the samples take the classes in turn (sample i of class i % classes), one PNG row per class; --interpolate rows too (default: one row per class).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite output files that already exist.")] = False,
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="Draw from the moving average of G's weights when the run keeps one (the default), or from G itself.")] = True,
    data_dir: DataDir = None,
    data_file: DataFile = None,
):
    """Draw samples from a checkpoint's generator: an .npz (samples, z, seed; labels for a conditional run) and a PNG grid beside it."""
    from gancli import conditional, rundir, sampling

    if interpolate is not None and interpolate < 2:
        raise GancliError(f"--interpolate needs at least 2 steps (got {interpolate})")
    if interpolate is not None and nearest:
        raise GancliError("--nearest and --interpolate cannot be combined: run them one at a time")
    count = n if n is not None else (10 if interpolate else 100)
    check_count(count, "--n")
    dirs = rundir.find_runs(ckpt)
    if data_file is not None and nearest:
        _use_file(data_file, data_dir)
    # Restore every seed, check every output path and load the training data before drawing anything.
    plan = []
    train_sets: dict[str, object] = {}
    for run_dir in dirs:
        run = sampling.restore(run_dir, ema)
        conditional.check_label(run.config, label, str(run_dir))
        if interpolate and n is None and label is None and run.config.conditional:
            count = run.config.n_classes  # one row per class (every seed of a folder has the same classes)
        step = run.metadata.get("step", 0)
        if out is None:
            kind = f"interp_step{step}_seed{seed}_rows{count}_steps{interpolate}" if interpolate else (
                f"{'nearest' if nearest else 'sample'}_step{step}_seed{seed}_n{count}")
            kind += "" if label is None else f"_label{label}"
            target = run_dir / "samples" / f"{kind}.npz"
        else:
            target = out if len(dirs) == 1 else out.with_name(f"{out.stem}.{run_dir.name}{out.suffix}")
        need = sampling.check_draw(run, count * (interpolate or 1), nearest)
        plan.append((run, sampling.output_paths(target, force, need)))
        if nearest and run.config.dataset not in train_sets:
            from gancli import data

            with err_console.status(f"loading the {run.config.dataset} training split"):
                train_sets[run.config.dataset] = data.load(run.config.dataset, "train", data_dir)[0]
    for run, (npz, png) in plan:
        if interpolate:
            drawn = sampling.draw_interpolation(run, count, interpolate, seed, label)
            what = f"{count} rows of {interpolate} interpolated samples"
        else:
            drawn = sampling.draw(run, count, seed, label)
            what = f"{count:,} samples"
        if run.config.conditional:
            what += f" of class {label}" if label is not None else f" taking the {run.config.n_classes} classes in turn"
        train = train_sets.get(run.config.dataset)
        if nearest:
            from gancli.cli.progress import WorkBars

            with WorkBars(err_console) as bars:
                what = f"nearest of {len(train):,} training images"
                drawn = sampling.with_nearest(drawn, train, lambda done, total: bars(what, done, total))
        sampling.save_npz(drawn, npz)
        sampling.save_picture(drawn, png, train)
        if bad := sampling.count_nonfinite(drawn["samples"]):  # written anyway: a diverged run is worth a look
            unit = "rows" if interpolate else "samples"
            err_console.print(f"warning: {bad:,} of the {count:,} {unit} hold NaN or inf: the generator has diverged",
                              style="yellow", markup=False, highlight=False, soft_wrap=True)
        # Paths are text, not Rich markup: a folder named "run [x]" must show as itself.
        console.print(f"{run.path}: {what} (seed {seed}) from step {run.metadata.get('step')}, {_generator_words(run)}",
                      markup=False, highlight=False, soft_wrap=True)
        console.print(f"  npz: {npz}", markup=False, highlight=False, soft_wrap=True)
        console.print(f"  png: {png}", markup=False, highlight=False, soft_wrap=True)
        shown = min(count, sampling.GRID_MAX)
        if nearest:
            d = sorted(drawn["nearest_distance"].tolist())
            console.print(
                f"  L2 distance to the nearest training example: min {d[0]:.3g}, median {d[len(d) // 2]:.3g}, max {d[-1]:.3g}"
                + ("; the PNG pairs each sample (left) with it (right)" if drawn["samples"].ndim == 4 else ""),
                highlight=False,
                soft_wrap=True,
            )
        if shown < count and drawn["samples"].ndim >= 4:
            console.print(f"  the PNG shows the first {shown} {'rows' if interpolate else 'samples'}", highlight=False)


@app.command()
@one_line_errors
def evaluate(
    ckpt: Annotated[Optional[Path], typer.Argument(help="Checkpoint folder: a run or a multi-seed run (default: ckpt).")] = None,
    parzen: Annotated[Optional[bool], typer.Option("--parzen/--no-parzen", help="Parzen-window log-likelihood (the paper's; the default unless --metrics is given).")] = None,
    metrics: Annotated[Optional[str], typer.Option("--metrics", help=f"Sample-quality metrics on the shipped feature network (mnist, fashion_mnist): 'all' or a comma list of {', '.join(metric_registry.METRICS)}. Report in metrics.json/.md/.png.")] = None,
    samples: Annotated[Optional[Path], typer.Option(help="Evaluate this .npz/.npy file instead of a checkpoint.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Reference data for --samples (default: mnist).")] = None,
    n_samples: Annotated[
        Optional[int], typer.Option(help="Samples to draw (default: 10000); with --samples, the file's first N (default: all). At most what fits in 80% of the free memory.")
    ] = None,
    sigmas: Annotated[
        Optional[str], typer.Option(help="Sigma grid: '0.1,0.2' or 'logspace:-1.0:0:10' (default: the paper's, the latter).")
    ] = None,
    n_valid: Annotated[Optional[int], typer.Option(help="Validation images (the first N) that choose sigma (default: 1,000 as the paper's MNIST protocol; for tfd all of them, as its TFD protocol).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generator's noise (and of the metrics' noise calibration row).")] = 0,
    data_dir: DataDir = None,
    data_file: DataFile = None,
    calibration: Annotated[bool, typer.Option(help="Also score real training images as the model, for scale (and, for --metrics, uniform noise).")] = True,
    out: Annotated[Optional[Path], typer.Option(help="Report folder (default: CKPT/reports, or the --samples file's).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a report in --out or beside --samples. A checkpoint's own reports/parzen.* are its latest evaluation and always rewritten.")] = False,
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="Evaluate the moving average of G's weights when the run keeps one (the default), or G itself; with --classify, D's.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout instead of the table ({\"parzen\", \"metrics\"} when both are asked); progress goes to stderr.")] = False,
    classify: Annotated[bool, typer.Option("--classify", help="A semi-supervised run's D (its moving average) as a classifier of the test split: error count and rate, confusion matrix. Report in classify.json/.md/.png; on its own, without Parzen or --metrics.")] = False,
):
    """Evaluate a generator with the paper's Parzen-window protocol (the default) and/or the sample-quality metrics
    (--metrics), or with --classify a semi-supervised run's D as a classifier, and write reports."""
    import json

    from gancli.cli.progress import WorkBars
    from gancli import evaluate as evaluation
    from gancli import metrics as quality_metrics
    from gancli import parzen as parzen_window
    from gancli.cli import render

    if classify and (samples is not None or metrics is not None or bool(parzen)):
        raise GancliError("--classify evaluates a run's D on its own: drop --samples, --metrics and --parzen")
    which = quality_metrics.parse(metrics) if metrics is not None else ()
    parzen = (not which and not classify) if parzen is None else parzen  # Parzen unless only --metrics was asked for
    if not (parzen or which or classify):
        raise GancliError("nothing to evaluate: ask for --parzen and/or --metrics")
    if samples is not None and ckpt is not None:
        raise GancliError("give a checkpoint or --samples, not both")
    evaluators = [evaluation.Parzen(parzen_window.parse_sigmas(sigmas) if sigmas is not None else parzen_window.PAPER_SIGMAS, n_valid)] if parzen else []
    evaluators += [evaluation.Metrics(metrics)] if which else []  # the words given: "all" is decided per dataset
    evaluators += [evaluation.Classify(ema)] if classify else []
    from gancli import data

    # With --json, stdout carries the report alone: progress goes to stderr.
    talk = err_console if as_json else console
    common = dict(data_dir=data_dir, calibration=calibration, out=out, force=force, seed=seed,
                  log=lambda line: talk.print(line, markup=False, highlight=False, soft_wrap=True))
    with WorkBars(talk) as bars, data.reporting_builds(bars):
        if data_file is not None:
            data.use_file(data_file, data_dir, None if classify else dataset, progress=bars)
        if samples is not None:
            results = evaluation.evaluate_samples(samples, evaluators, dataset="mnist" if dataset is None else dataset,
                                                  n_samples=n_samples, progress=bars, **common)
        else:
            n = evaluation.N_SAMPLES if n_samples is None else n_samples
            results = evaluation.evaluate_checkpoint(ckpt or Path("ckpt"), evaluators, dataset=dataset, n_samples=n,
                                                     ema=ema, progress=bars, **common)
    if as_json:
        reports = {kind: r.report for kind, r in results.items()}
        typer.echo(json.dumps(reports.popitem()[1] if len(reports) == 1 else reports, indent=2))
        return
    for kind, result in results.items():
        if kind == "parzen":
            console.print(render.parzen_table(result.report))
            if (coverage := render.coverage_table(result.report)) is not None:
                console.print(coverage)
        elif kind == "classify":
            for table in render.classify_tables(result.report):
                console.print(table)
        else:
            console.print(render.metrics_table(result.report))
        if (judged := render.conditional_table(result.report)) is not None:
            console.print(judged)
        for paths in (*result.seed_paths, result.paths):
            line = "report: " + ", ".join(str(p) for p in paths.values())
            console.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command()
@one_line_errors
def inspect(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint folder; a multi-seed folder is summarised seed by seed.")] = Path("ckpt"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON and nothing else (pipes into jq).")] = False,
    curves: Annotated[bool, typer.Option(help="Write the training curves to RUN/curves.png.")] = True,
):
    """Tell what a checkpoint holds and how its training went; plot its training curves."""
    import json

    from gancli import inspection
    from gancli.cli import render

    summary = inspection.summarize(ckpt, curves=curves)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    for part in render.summary_view(summary):
        console.print(part)


@app.command()
@one_line_errors
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (a multi-seed folder shows its seeds side by side).")],
    out: Annotated[Optional[Path], typer.Option(help="The HTML file to write (default: RUN/report.html for one run, report.html here for several).")] = None,
    grids: Annotated[int, typer.Option(help="Per-epoch sample grids shown per seed: the first, the last and evenly spaced between.")] = 12,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out (a run's own report.html is always rewritten).")] = False,
):
    """Write one self-contained HTML page of runs (images inline, no scripts, nothing fetched): each run's config,
    training curves, sample grids over epochs and evaluation reports with their protocols, seeds side by side."""
    from gancli import html_report

    path = html_report.write(runs, out, grids, force)
    console.print(f"report: {path}", markup=False, highlight=False, soft_wrap=True)


@app.command()
@one_line_errors
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Two run folders or more (a multi-seed folder is one run).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON and nothing else.")] = False,
    out: Annotated[Path, typer.Option(help="Where the PNG of the overlaid training curves goes.")] = Path("compare.png"),
    curves: Annotated[bool, typer.Option(help="Write the overlaid curves to --out.")] = True,
):
    """Compare runs: the config fields that differ, the latest metrics with standard errors over seeds, and the
    training curves overlaid in one PNG."""
    import json

    from gancli import compare as comparison
    from gancli.cli import render

    result = comparison.compare(runs, out if curves else None)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    for table in render.compare_tables(result):
        console.print(table)
    console.print(result["stderr"], markup=False, highlight=False)
    if result["curves"]:
        console.print(f"curves: {result['curves']}", markup=False, highlight=False, soft_wrap=True)


@app.command()
@one_line_errors
def presets(
    fields: Annotated[bool, typer.Option("--fields", help="List every config field instead: the names --set and --config take, with type, default and meaning.")] = False,
):
    """List the named recipes that train --preset takes, with what each sets; --fields, every config field."""
    from gancli.cli import render
    from gancli.config import PRESETS, RunConfig, changed_fields

    if fields:
        import typer.main

        from gancli.cli.fields import config_fields

        options = typer.main.get_command(app).commands["train"].params
        console.print(render.fields_table(config_fields({o.name: o.help for o in options if o.help})))
        return

    rows = []
    for name, p in PRESETS.items():
        changed = changed_fields(p.make("mnist"), RunConfig(), ignore=("preset",))
        rows.append((name, p.description, ", ".join(f"{field}={value!r}" for field, value, _ in changed) or "-"))
    console.print(render.presets_table(rows))


def _generator_words(run) -> str:
    """How a run's samples are drawn, in words: its moving average of G, or G itself."""
    from gancli import sampling

    decay = sampling.ema_decay(run)
    if decay is not None:
        return f"the moving average of G's weights (decay {decay:g}; --no-ema for G itself)"
    return "G's own weights" + (" (--no-ema)" if run.config.ema else "")

