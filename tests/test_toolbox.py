"""The post-2016 parts together: a loss, lazy R1, spectral norm and ADA in one run train, log each part's metric and
resume bit-exactly; and R1 is taken through the augmentation, at the images before it."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np

from gancli import checkpoint, steps, train
from gancli.config import preset, with_overrides
from helpers import leaves_equal, tiny

ALL = {"d_loss": "hinge", "g_loss": "hinge", "penalty.r1": 1.0, "penalty.lazy": 3, "spectral_norm": "d",
       "augment.policy": "translation,cutout", "augment.ada_target": 0.6, "augment.ada_interval": 3,
       "augment.ada_kimg": 0.3, "update": "alternating", "k": 2}


def test_every_part_at_once_trains_and_resumes_bit_exactly(tmp_path, fake_data):
    config = tiny(epochs=2, **ALL)
    whole = train.train(config, tmp_path / "whole")
    train.train(with_overrides(config, epochs=1), tmp_path / "parts")
    parts = train.train(config, tmp_path / "parts", resume=True)
    game = steps.Game(config, (4, 4, 1), 200)
    a, b = (checkpoint.load_run(tmp_path / d, lambda c, m: steps.abstract_state(game)).state for d in ("whole", "parts"))
    assert {"d_spectral", "ada"} <= set(a) and leaves_equal(a, b)
    logs = [[json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in ("whole", "parts")]
    strip = lambda r: {k: v for k, v in r.items() if k != "it_per_s"}
    assert [strip(r) for r in logs[0]] == [strip(r) for r in logs[1]]
    last = logs[0][-1]
    assert last["r1"] > 0 and 0 < last["ada_p"] <= 1 and np.isfinite(last["d_loss"])
    assert whole.step == parts.step == 2 * 10  # 200 images, batch 10, k 2: 10 iterations an epoch


def test_r1_is_taken_through_the_augmentation(fake_data, tiny_images):
    """With p = 1 the penalty's D sees augmented reals, so R1 differs from the same step without augmentation."""
    base = {"penalty.r1": 1.0, "update": "alternating"}
    r1 = []
    for policy in ("", "cutout"):
        game = steps.Game(tiny(**base, **{"augment.policy": policy}), (4, 4, 1), 200)
        state = steps.init_state(game, 0)
        batch = {"image": jnp.asarray(tiny_images[:10].reshape(10, -1)), "label": jnp.zeros(10, jnp.int32)}
        fake = jnp.zeros((10, 16))
        _, metrics = steps._penalized(game, jax.tree.map(jnp.zeros_like, state["d"]), {}, state["d"], None, batch,
                                      fake, jax.random.key(1), 0, state.get("ada"))
        r1.append(float(metrics["r1"]))
    assert r1[0] > 0 and r1[1] > 0 and r1[0] != r1[1]


def test_the_modern_preset_trains_with_its_parts(tmp_path, fake_data):
    config = with_overrides(preset("modern", "mnist"), epochs=1, batch_size=10, chunk=4)
    assert (config.model, config.penalty.r1, config.penalty.lazy, config.augment.policy) == ("dcgan", 1.0, 16, "translation,cutout")
    assert not config.discriminator.batchnorm and config.ema == 0.999  # R1 wants a per-example D
    outcome = train.train(config, tmp_path / "run")
    last = outcome.history[-1]
    assert np.isfinite(last["d_loss"]) and np.isfinite(last["g_loss"]) and last["r1"] > 0 and last["ada_p"] == 1.0
