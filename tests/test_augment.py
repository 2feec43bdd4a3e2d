"""Augmentation of what D sees (gancli.augment): each transform on hand-made images, the probability p, gradients
through it, ADA's rule for p, every D pass of the training step, a run that logs p and resumes it exactly, and the
config's one-line errors."""

from __future__ import annotations

import json
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import augment, sampling, steps, train
from gancli.cli import app
from gancli.config import TRANSFORMS, preset, with_overrides
from gancli.errors import GancliError
from helpers import TINY, leaves_equal, tiny

runner = CliRunner()
TINY_SET = [a for k, v in TINY.items() for a in ("--set", f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}")]


def dot(y: int, x: int, side: int = 8, batch: int = 1) -> jnp.ndarray:
    """Images [batch, side, side, 1] of zeros with one pixel 1 at (y, x)."""
    return jnp.zeros((batch, side, side, 1)).at[:, y, x, 0].set(1.0)


def where_ones(image) -> list[tuple[int, int]]:
    return [tuple(map(int, p)) for p in np.argwhere(np.asarray(image)[..., 0] == 1.0)]


def test_the_registry_implements_the_names_the_config_validates():
    assert tuple(augment.TRANSFORMS) == TRANSFORMS


def test_translation_moves_a_pixel_by_the_shift_and_lets_zeros_in():
    x = dot(3, 4, batch=3)
    moved = augment.translate(x, jnp.array([1, -2, 5]), jnp.array([-1, 3, 0]))
    assert where_ones(moved[0]) == [(4, 3)] and where_ones(moved[1]) == [(1, 7)]
    assert float(jnp.abs(moved[2]).sum()) == 0.0  # moved out of the image: nothing comes back round
    full = augment.translate(jnp.ones((1, 8, 8, 1)), jnp.array([2]), jnp.array([-1]))[0, ..., 0]
    assert np.all(np.asarray(full[:2]) == 0) and np.all(np.asarray(full[:, 7]) == 0) and float(full.sum()) == 6 * 7


def test_random_translation_shifts_each_example_by_up_to_an_eighth_of_the_side():
    assert augment.shift_of(8) == 1 and augment.shift_of(32) == 4 and augment.shift_of(28) == 4  # 3.5 rounds up
    x = dot(8, 8, side=16, batch=400)
    moved = augment.random_translation(jax.random.uniform(jax.random.PRNGKey(0), (400, 3)), x)
    shifts = {tuple(np.subtract(where_ones(m)[0], (8, 8))) for m in moved}
    assert shifts == {(dy, dx) for dy in (-2, -1, 0, 1, 2) for dx in (-2, -1, 0, 1, 2)}  # each example its own


def test_cutout_zeroes_exactly_the_square_and_what_of_it_lies_inside():
    out = augment.cut(jnp.ones((2, 8, 8, 1)), jnp.array([2, -1]), jnp.array([3, 6]), (4, 4))[..., 0]
    expected = np.ones((2, 8, 8))
    expected[0, 2:6, 3:7] = 0
    expected[1, 0:3, 6:8] = 0  # the square from (-1, 6) hangs over two edges
    np.testing.assert_array_equal(np.asarray(out), expected)


def test_random_cutout_is_a_square_of_half_the_side_centred_in_the_image():
    assert augment.cutout_size(8) == 4 and augment.cutout_size(28) == 14 and augment.cutout_size(5) == 3
    out = np.asarray(augment.random_cutout(jax.random.uniform(jax.random.PRNGKey(1), (300, 3)), jnp.ones((300, 8, 8, 1))))[..., 0]
    full = 0
    for image in out:
        rows, cols = np.nonzero(image == 0)
        assert len(rows) and (image == 0).sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)  # one rectangle
        assert np.ptp(rows) + 1 <= 4 and np.ptp(cols) + 1 <= 4
        full += (image == 0).sum() == 16
    assert 50 < full < 300  # whole inside the image often, over an edge sometimes


def test_brightness_saturation_and_contrast_on_known_pixels():
    rgb = jnp.array([[[[0.2, 0.4, 0.6], [0.0, 0.0, 0.3]]]])  # one 1x2 colour image
    np.testing.assert_allclose(augment.brightness(rgb, jnp.array([0.1])), rgb + 0.1)
    np.testing.assert_allclose(augment.saturation(rgb, jnp.array([2.0])), [[[[0.0, 0.4, 0.8], [-0.1, -0.1, 0.5]]]], atol=1e-6)
    np.testing.assert_allclose(augment.saturation(rgb, jnp.array([0.0])), [[[[0.4] * 3, [0.1] * 3]]], atol=1e-6)
    grey = jnp.array([[[[0.0], [1.0]], [[0.5], [0.5]]]])  # mean 0.5
    np.testing.assert_allclose(augment.contrast(grey, jnp.array([1.5])), [[[[-0.25], [1.25]], [[0.5], [0.5]]]], atol=1e-6)
    np.testing.assert_allclose(augment.saturation(grey, jnp.array([1.7])), grey)  # one channel: the identity


def test_random_color_stays_within_its_ranges():
    x = jnp.full((500, 4, 4, 1), 0.5)  # one channel, flat: contrast and saturation keep it, brightness moves it
    offsets = np.asarray(augment.random_color(jax.random.uniform(jax.random.PRNGKey(2), (500, 3)), x))[:, 0, 0, 0] - 0.5
    assert -augment.BRIGHTNESS <= offsets.min() < -0.2 and 0.2 < offsets.max() <= augment.BRIGHTNESS
    assert augment.BRIGHTNESS == 0.25  # DiffAugment's U(-0.5, 0.5) on [-1, 1], on gancli's [0, 1]


def test_p_zero_is_the_identity_and_p_one_always_transforms():
    x = jnp.ones((200, 8, 8, 1))
    policy = ("translation", "cutout", "color")
    key = jax.random.PRNGKey(3)
    apply = jax.jit(augment.augment, static_argnums=0)
    np.testing.assert_array_equal(np.asarray(apply(policy, x, key, 0.0)), np.asarray(x))
    cut = np.asarray(apply(("cutout",), x, key, 1.0))
    assert np.all((cut == 0).reshape(200, -1).any(axis=1))
    half = np.asarray(apply(("cutout",), x, key, 0.5))
    assert 70 < (half == 0).reshape(200, -1).any(axis=1).sum() < 130
    # Independently per transform and per example: with two at p = 1/2, about a quarter get both. On a flat grey image
    # color moves every pixel off 0.5 but never to 0, and cutout makes zeros.
    both = np.asarray(apply(("color", "cutout"), jnp.full((400, 8, 8, 1), 0.5), key, 0.5)).reshape(400, -1)
    cutout, coloured = (both == 0).any(axis=1), ((both != 0) & (both != 0.5)).any(axis=1)
    assert 160 < cutout.sum() < 240 and 160 < coloured.sum() < 240 and 70 < (cutout & coloured).sum() < 130


@pytest.mark.parametrize("name", TRANSFORMS)
def test_gradients_flow_through_each_transform_and_match_finite_differences(name):
    x = jax.random.uniform(jax.random.PRNGKey(4), (2, 8, 8, 3))
    w = jax.random.normal(jax.random.PRNGKey(5), x.shape)
    f = jax.jit(lambda x: jnp.sum(w * augment.augment((name,), x, jax.random.PRNGKey(6), 1.0)))
    grad = np.asarray(jax.jit(jax.grad(f))(x))
    assert np.abs(grad).sum() > 0
    h = 1e-2  # every transform is affine in x for fixed draws: central differences are exact up to rounding
    for i in [(0, 0, 0, 0), (0, 3, 4, 1), (1, 7, 2, 2), (1, 5, 5, 0)]:
        e = jnp.zeros_like(x).at[i].set(h)
        assert float((f(x + e) - f(x - e)) / (2 * h)) == pytest.approx(float(grad[i]), abs=2e-3)


def ada_config(**augment_fields):
    return with_overrides(preset("paper", "tiny"), **{f"augment.{k}": v for k, v in augment_fields.items()})


def test_ada_moves_p_by_the_step_at_each_interval_and_clips_it():
    c = ada_config(policy="cutout", ada_target=0.6, ada_interval=2, ada_kimg=0.5)  # batch 100: 100*2/500 = 0.4
    stride = 0.4
    ada = augment.start(c)
    assert float(ada["p"]) == 0.0
    ada, m = augment.update(c, ada, [jnp.float32(0.9)], 1)  # not due: accumulated only
    assert float(ada["p"]) == 0.0 and float(ada["sum"]) == pytest.approx(0.9) and int(ada["count"]) == 1
    ada, m = augment.update(c, ada, [jnp.float32(0.5)], 2)  # r_t = 0.7 > 0.6: up
    assert float(ada["p"]) == pytest.approx(stride) and float(ada["sum"]) == 0 and int(ada["count"]) == 0
    assert float(m["ada_p"]) == pytest.approx(stride) and float(m["ada_r"]) == pytest.approx(0.5)
    for step in (3, 4, 5, 6):
        ada, _ = augment.update(c, ada, [jnp.float32(1.0)], step)
    assert float(ada["p"]) == 1.0  # 0.4 + 0.4 + 0.4, clipped
    for step in (7, 8):
        ada, _ = augment.update(c, ada, [jnp.float32(0.1), jnp.float32(0.3)], step)  # k = 2 D steps: r_t = 0.2 < 0.6
    assert float(ada["p"]) == pytest.approx(1.0 - stride)
    down = augment.start(c)
    for step in (1, 2):
        down, _ = augment.update(c, down, [jnp.float32(-1.0)], step)
    assert float(down["p"]) == 0.0  # clipped at 0
    fixed = ada_config(policy="color")
    assert float(augment.update(fixed, augment.start(fixed), [jnp.float32(-1.0)], 4)[0]["p"]) == 1.0  # no ADA: p is 1


PATHS = {  # between them every D pass of steps.iteration: D's step fused and separate, the simultaneous fused pass, G's step
    "simultaneous-fused": {"k": 2},  # the first D step fused, then _simultaneous_fused
    "alternating-separate": {"update": "alternating", "discriminator.batchnorm": True, "k": 2},  # D's own passes, then G's
}


@pytest.mark.parametrize("path", PATHS)
def test_every_d_pass_sees_the_augmentation_and_p_zero_changes_nothing(path, tiny_images):
    """At p = 0 (ADA's start) an iteration is bit for bit the one without augmentation: its randomness is its own.
    At p = 1 D's and G's updates both differ: the augmentation is in D's passes of both steps."""
    base = tiny(**PATHS[path])
    k = base.k
    batches = {"image": jnp.asarray(tiny_images[: 10 * k]).reshape(k, 10, 4, 4, 1), "label": jnp.zeros((k, 10), jnp.int32)}
    compiled = {}  # one program per config: op by op takes far longer

    def run(config, p=None):
        game, state = _game_state(config)
        if p is not None:
            state["ada"]["p"] = jnp.float32(p)
        fn = compiled.setdefault(config, jax.jit(partial(steps.iteration, game)))
        return fn(state, batches)

    plain, _ = run(base)
    augmented = with_overrides(base, **{"augment.policy": "translation,cutout,color", "augment.ada_target": 0.6})
    zero, metrics = run(augmented)  # ADA's start: p = 0
    assert leaves_equal({k: zero[k] for k in plain}, plain)
    assert {"ada_p", "ada_r"} <= set(metrics) and float(metrics["ada_p"]) == 0.0
    one, _ = run(augmented, 1.0)  # the same program (jit's cache), p = 1
    for network in ("d", "g"):
        assert not leaves_equal(one[network], plain[network]), network


def _game_state(config):
    game = steps.Game(config, (4, 4, 1), 200)
    state = steps.init_state(game, 0)
    return game, state


def test_g_gradient_flows_through_the_augmentation(tiny_images):
    """G's gradient in G's step goes through the transform of its samples: with the samples cut out where D looks
    hardest, it changes, and stays nonzero."""
    config = tiny(**{"augment.policy": "translation,cutout,color"})
    game, state = _game_state(config)
    batch = {"image": jnp.asarray(tiny_images[:10]), "label": jnp.zeros((10,), jnp.int32)}
    ctx = steps.objectives.Context(config, 0)
    args = (game, ctx, state["g"], None, state["d"], None, batch, jax.random.PRNGKey(7))
    grads = jax.jit(lambda ada: steps._g_step_grads(*args, ada)[0])
    seen, unseen = grads(state["ada"]), grads(None)
    norm = lambda t: sum(float(jnp.sum(a**2)) for a in jax.tree.leaves(t))
    assert norm(seen) > 0 and not leaves_equal(seen, unseen)


def test_a_run_without_augmentation_keeps_its_state_tree():
    game, state = _game_state(tiny())
    assert "ada" not in state and not augment.on(game.config)


AUG = {"augment.policy": "translation,cutout,color", "augment.ada_target": 0.5, "augment.ada_interval": 3,
       "augment.ada_kimg": 0.3}  # batch 10: p moves 0.1 a time; 3 iterations do not divide 20 an epoch


def test_ada_resumes_bitwise_exactly(tmp_path, fake_data):
    config = tiny(epochs=2, **AUG)
    train.train(config, tmp_path / "straight")
    train.train(with_overrides(config, epochs=1), tmp_path / "split")
    train.train(config, tmp_path / "split", resume=True)
    restored = [sampling.restore(tmp_path / d).state for d in ("straight", "split")]
    assert set(restored[0]["ada"]) == {"p", "sum", "count"} and int(restored[0]["ada"]["count"]) == 40 % 3
    assert leaves_equal(restored[0], restored[1])
    assert float(restored[0]["ada"]["p"]) == float(restored[1]["ada"]["p"])
    logs = [[json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in ("straight", "split")]
    strip = lambda r: {k: v for k, v in r.items() if k != "it_per_s"}
    assert [strip(r) for r in logs[0]] == [strip(r) for r in logs[1]]


def test_cli_trains_with_augment_and_ada_logs_p_and_inspect_shows_it(tmp_path, fake_data):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--preset", "paper", "--epochs", "2", *TINY_SET, "--augment", "translation,cutout,color",
                                 "--ada", "0.6", "--set", "augment.ada_kimg=0.2", "--ckpt", str(run)])
    assert result.exit_code == 0, result.output
    assert "augmenting D's inputs (translation,cutout,color, ADA target 0.6)" in " ".join(result.output.split())
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(0.0 <= r["ada_p"] <= 1.0 and -1.0 <= r["ada_r"] <= 1.0 for r in records) and len(records) == 2
    info = json.loads(runner.invoke(app, ["inspect", str(run), "--json"]).output)
    p = float(sampling.restore(run).state["ada"]["p"])
    assert info["ada_p"] == p and info["config"]["augment"]["ada_target"] == 0.6
    text = " ".join(runner.invoke(app, ["inspect", str(run)], env={"COLUMNS": "300"}).output.split())
    assert f"each with probability p {p:.4g}; ADA moves p towards E[sign D(x)] = 0.6 every 4 iterations" in text


@pytest.mark.parametrize("args, message", [
    (["--augment", "translation,flip"], "--augment: unknown transform 'flip'; known: translation, cutout, color"),
    (["--augment", "color,color"], "--augment names a transform twice"),
    (["--augment", "color", "--ada", "1.5"], "--ada must be a target in [0, 1]"),
    (["--ada", "0.6"], "--ada needs --augment"),
    (["--augment", "color", "--set", "augment.ada_interval=0"], "augment ada_interval must be >= 1"),
    (["--augment", "color", "--set", "augment.ada_kimg=0"], "augment ada_kimg must be a finite number > 0"),
])
def test_bad_augment_settings_are_one_line_errors(tmp_path, args, message):
    result = runner.invoke(app, ["train", "--epochs", "1", *args, "--ckpt", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_augmenting_low_dimensional_data_is_a_one_line_error(tmp_path):
    result = runner.invoke(app, ["train", "ring8", "--epochs", "1", "--augment", "translation", "--ckpt", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert "error: --augment transforms images (height, width, channels); ring8's examples have shape (2,)" in result.output
    with pytest.raises(GancliError, match="transforms images"):
        augment.check(ada_config(policy="color"), (784,))
