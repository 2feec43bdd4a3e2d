"""What one training iteration of the paper and toy presets computes, checked against an independent float64 model.

gancli's own compiled training program (steps.compiled_chunk, what `gancli train` runs) takes ITERATIONS iterations
from its own initial state (seed 0) on the real training data, from the first update and from one mid-run;
tests/gan_reference.py, plain numpy with hand-written gradients and the recipes' constants written out, takes the
same iterations from the same state with the same random draws. Any change to what an iteration computes -- a
random stream, the batch order, a loss, an optimiser step, the update order, the lr decay or the momentum ramp, a
preset's constant -- sets the two apart by far more than the tolerance. The init, which the model takes from
gancli, is checked on its own (test_initial_parameters). The paper preset (MNIST) and the toy preset (ring8) are
checked; toy1d trains with the toy preset too, the same program on one coordinate instead of two.

Why this holds on every x86-64 CPU: over a few iterations nothing is chaotic yet, so gancli's float32 state stays
within float32 rounding of the float64 one, whatever order or vector width a processor's code sums in. Figures
after whole epochs are not pinned: over thousands of updates a summation order of another processor flips some
maxout winner, training amplifies it, and the epoch means move by far more than rounding (the paper preset's
second-epoch d_loss by over ten percent), so only a band too loose to guard anything would hold on every CPU.
What ties `gancli train` to the program checked here is instead a check on one machine against itself: the
epoch means train logs for ring8 are those of the same program run chunk by chunk from the same state.

The tolerance, TOL, is relative, in the L2 norm of each layer (kernel and bias as one vector): of every optimiser
slot after the iterations (SGD's velocity, Adam's moments), of each layer's displacement (parameters after minus
before, with half a unit in the last place of float32 per parameter besides: G's first updates are smaller than
its weights' spacing, so where the reference lands by a rounding boundary gancli may round the other way), and
of each logged loss. Norms, not elements: float32 and float64 may pick different winners in a few near-tied
maxout units or ReLUs, which moves single weights by far more than rounding but a whole layer by less. TOL sits
well above what float32 rounding over a few iterations amounts to and below what a change of 0.1% in a constant
of the recipe does; test_a_small_change_of_the_recipe_is_noticed holds it to the second.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gan_reference as ref
from gancli import data, steps, train
from gancli.config import preset, with_overrides

ITERATIONS = 3  # the second and third take the momentum term too
# Far enough into a run that the lr decay (0.1 / 1.000004^t) and the momentum ramp (0.5 -> 0.7 over epochs 1-250)
# are well away from their starting values, and not on an epoch boundary.
MID_RUN = 137 * 500 + 17
TOL = 1e-4
G_LAYERS, D_LAYERS = ("Dense_0", "Dense_1", "out"), ("Dense_0", "Dense_1", "Dense_2")


def layers(tree: dict, names) -> list:
    return [(np.asarray(tree[n]["kernel"], np.float64), np.asarray(tree[n]["bias"], np.float64)) for n in names]


def slots(opt, names) -> dict[str, list]:
    """An optimiser state's slots as the reference names them: SGD's velocity "v"; Adam's moments "m" and "v"."""
    if hasattr(opt, "velocity"):
        return {"v": layers(opt.velocity, names)}
    return {"m": layers(opt[0].mu, names), "v": layers(opt[0].nu, names)}


def flat(layer) -> np.ndarray:
    """A layer's kernel and bias as one vector: a single bias (D's output) is a sum over the batch that nearly
    cancels at first (D(x) ~ D(G(z))), so its own relative error is ill-conditioned; next to its kernel it is not."""
    return np.concatenate([np.ravel(a) for a in layer])


def norm(a) -> float:
    return float(np.linalg.norm(a))


def recipe_for(dataset: str) -> ref.Recipe:
    return {"mnist": ref.PAPER, "ring8": ref.toy(z_dim=2)}[dataset]


class Run:
    """A preset's training set and gancli's initial state for it (seed 0), as `gancli train` makes them."""

    def __init__(self, dataset: str, data_dir):
        config = preset(None, dataset)
        self.images, labels = data.load(dataset, config.train_split, data_dir)
        self.data = {"image": jnp.asarray(self.images), "label": jnp.asarray(labels, jnp.int32)}
        self.game = steps.Game(config, tuple(self.images.shape[1:]), len(self.images))
        self.seed = config.seed
        self.state = jax.tree.map(np.asarray, steps.init_state(self.game, self.seed, self.images))


class Case:
    """gancli's state and metrics after ITERATIONS iterations of its compiled training program from update `start`
    (a state mid-run: the initial parameters, the optimisers' slots zero, their counts and the step at `start`)."""

    def __init__(self, run: Run, start: int = 0):
        state = jax.tree.map(jnp.array, run.state)  # a copy of its own: the program donates it
        if start:
            state = dict(state, step=jnp.int32(start), g_opt=state["g_opt"]._replace(count=jnp.int32(start)),
                         d_opt=state["d_opt"]._replace(count=jnp.int32(start)))
        self.start, self.seed, self.images = start, run.seed, run.images
        self.g0, self.d0 = layers(run.state["g"], G_LAYERS), layers(run.state["d"], D_LAYERS)
        new, metrics = steps.compiled_chunk(run.game, 1, ITERATIONS)(state, run.data)
        self.g, self.d = layers(new["g"], G_LAYERS), layers(new["d"], D_LAYERS)
        self.g_slots, self.d_slots = slots(new["g_opt"], G_LAYERS), slots(new["d_opt"], D_LAYERS)
        self.metrics = {k: np.asarray(v, np.float64) for k, v in metrics.items()}

    def reference(self, recipe: ref.Recipe):
        return ref.run(recipe, self.g0, self.d0, self.images, self.seed, self.start, ITERATIONS)

    def errors(self, recipe: ref.Recipe) -> dict[str, float]:
        """How far gancli is from the reference, in units of the tolerance (<= 1: within it), by name: each layer's
        parameters ("g.out"), each optimiser slot ("g.out.v") and each logged loss over the iterations."""
        g, d, g_opt, d_opt, history = self.reference(recipe)
        out = {}
        nets = (("g", G_LAYERS, self.g0, self.g, g, self.g_slots, g_opt), ("d", D_LAYERS, self.d0, self.d, d, self.d_slots, d_opt))
        for net, names, before, got, want, got_slots, want_opt in nets:
            for i, name in enumerate(names):
                b0, x, y = flat(before[i]), flat(got[i]), flat(want[i])
                # Each stored update may round to a neighbouring float32 where the reference's lands a hair away
                # from a rounding boundary: half a unit in the last place per parameter is allowed besides TOL.
                ulp = np.spacing(np.abs(y).astype(np.float32)).astype(np.float64)
                out[f"{net}.{name}"] = norm(x - y) / (TOL * norm(y - b0) + 0.5 * norm(ulp))
                for slot, values in got_slots.items():
                    want_slot = flat(want_opt[slot][i])
                    out[f"{net}.{name}.{slot}"] = norm(flat(values[i]) - want_slot) / (TOL * norm(want_slot))
        for key in ("d_loss", "g_loss", "d_real", "d_fake"):
            want = np.array([h[key] for h in history])
            out[key] = float(np.max(np.abs(self.metrics[key] - want) / (TOL * np.abs(want))))
        return out


@pytest.fixture(scope="module")
def runs(request):
    """Run(dataset), each made once for the module: the real MNIST only for mnist."""
    made = {}

    def get(dataset: str) -> Run:
        if dataset not in made:
            made[dataset] = Run(dataset, request.getfixturevalue("mnist_data_dir") if dataset == "mnist" else None)
        return made[dataset]

    return get


@pytest.fixture(scope="module")
def cases(runs):
    """Case(dataset, start), each made once for the module."""
    made = {}

    def get(dataset: str, start: int = 0) -> Case:
        if (dataset, start) not in made:
            made[dataset, start] = Case(runs(dataset), start)
        return made[dataset, start]

    return get


@pytest.mark.parametrize(("dataset", "start"), [("mnist", 0), ("mnist", MID_RUN), ("ring8", 0)])
def test_first_iterations_match_the_float64_reference(cases, dataset, start):
    errors = cases(dataset, start).errors(recipe_for(dataset))
    bad = {k: round(v, 2) for k, v in errors.items() if v > 1}
    assert not bad, f"{dataset} from update {start}: off the float64 reference by more than the tolerance (x1): {bad}"


# Each changes one constant of the recipe by a little (0.1% of the lr, a thousandth of momentum or of a keep
# probability, 0.1% of the noise's range, a 251st instead of a 250th of the momentum ramp per epoch); the reference
# so changed must be told apart from gancli, or TOL would be too loose to guard anything that small.
SMALL_CHANGES = [
    ("mnist", 0, {"lr": 0.1001}),
    ("mnist", 0, {"momentum": 0.501}),
    ("mnist", 0, {"keep_input": 0.801}),
    ("mnist", 0, {"noise_half_width": math.sqrt(3.0) * 1.001}),
    ("mnist", MID_RUN, {"lr_decay": 1.0000041}),
    ("mnist", MID_RUN, {"momentum_saturate": 251}),
    ("ring8", 0, {"b1": 0.501}),
]


@pytest.mark.parametrize(("dataset", "start", "change"), SMALL_CHANGES, ids=[str(c[2]) for c in SMALL_CHANGES])
def test_a_small_change_of_the_recipe_is_noticed(cases, dataset, start, change):
    errors = cases(dataset, start).errors(ref.perturbed(recipe_for(dataset), **change))
    assert max(errors.values()) > 1, f"the reference with {change} still agrees with gancli: TOL is too loose"


# The first three weights of every layer at seed 0, in units of the layer's init scale (its weights are U(-s, s)):
# the same bits scaled in every preset. An elementwise draw, so the same on every CPU to a unit in the last place.
FIRST_WEIGHTS = {
    ("g", "Dense_0"): (-0.40748453, 0.70444202, 0.54080009),
    ("g", "Dense_1"): (0.94818497, 0.54596806, -0.28823233),
    ("g", "out"): (-0.02391410, 0.91530561, 0.57118225),
    ("d", "Dense_0"): (-0.83647084, 0.96203160, -0.75062037),
    ("d", "Dense_1"): (-0.54820943, -0.97603083, -0.11484933),
    ("d", "Dense_2"): (-0.30530334, 0.59687614, 0.63781714),
}
# pylearn2's irange of the original MNIST yaml (G 0.05, D 0.005); the toy preset's 0.5 in both.
INIT_SCALE = {"mnist": {"g": 0.05, "d": 0.005}, "ring8": {"g": 0.5, "d": 0.5}}


@pytest.mark.parametrize("dataset", ["mnist", "ring8"])
def test_initial_parameters(runs, dataset):
    """What the reference starts from: weights U(-s, s) from the init stream, biases 0, and for the paper G's output
    bias the logit of the training set's pixel means, clipped to [1e-7, 1 - 1e-7], as the original code set it."""
    run = runs(dataset)
    for net, names, tree in (("g", G_LAYERS, run.state["g"]), ("d", D_LAYERS, run.state["d"])):
        scale = INIT_SCALE[dataset][net]
        for name, (w, b) in zip(names, layers(tree, names)):
            assert np.abs(w).max() <= scale, (net, name)
            assert w.ravel()[:3] / scale == pytest.approx(FIRST_WEIGHTS[net, name], rel=1e-6, abs=1e-7), (net, name)
            if net == "g" and name == "out" and dataset == "mnist":
                p = np.clip(run.images.reshape(len(run.images), -1).astype(np.float64).mean(axis=0), 1e-7, 1 - 1e-7)
                np.testing.assert_allclose(b, np.log(p / (1 - p)), rtol=1e-6)
            else:
                assert not np.any(b), (net, name)


def test_train_logs_the_epoch_means_of_the_checked_program(runs, tmp_path):
    """train.train's first epoch of ring8 runs the program the reference checks, from the same state, over the
    whole epoch in its chunks: its logged means are those of that program's iterations (rounded to 6 places as
    logged). Both sides run on this machine, so the check holds on any CPU."""
    run = runs("ring8")
    train.train(with_overrides(preset(None, "ring8"), epochs=1), tmp_path / "ring8")
    logged = json.loads((tmp_path / "ring8" / "metrics.jsonl").read_text().splitlines()[0])
    state, chunk, done, history = jax.tree.map(jnp.array, run.state), train.auto_chunk(run.game), 0, []
    while done < run.game.iters_per_epoch:
        length = min(chunk, run.game.iters_per_epoch - done)
        state, metrics = steps.compiled_chunk(run.game, 1, length)(state, run.data)
        history.append({k: np.asarray(v, np.float64) for k, v in metrics.items()})
        done += length
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert logged[key] == pytest.approx(np.concatenate([h[key] for h in history]).mean(), abs=1.5e-6), key
