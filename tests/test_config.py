"""config.validate: every field a run's schedule and models read, NaN and inf included."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gancli.cli import app
from gancli.config import preset, with_overrides
from gancli.errors import GancliError

BAD = [
    ({"optimizer.momentum_saturate_epoch": -5}, "--momentum-saturate must be an epoch >= 1"),
    ({"optimizer.momentum_saturate_epoch": 0}, "--momentum-saturate must be an epoch >= 1"),
    ({"optimizer.lr_min": -1e-6}, "lr_min must be in [0, lr 0.1]"),
    ({"optimizer.lr_min": 0.5}, "lr_min must be in [0, lr 0.1]"),
    ({"optimizer.lr_min": float("nan")}, "lr_min"),
    ({"optimizer.lr": float("nan")}, "--lr must be a finite number > 0"),
    ({"optimizer.lr": float("inf")}, "--lr must be a finite number > 0"),
    ({"optimizer.lr_decay": float("inf")}, "--lr-decay must be a finite number >= 1"),
    ({"optimizer.lr_decay": float("nan")}, "--lr-decay"),
    ({"optimizer.momentum": float("nan")}, "--momentum must be in [0, 1)"),
    ({"optimizer.momentum_final": 1.0}, "--momentum-final must be in [0, 1)"),
    ({"optimizer.b2": float("nan")}, "--b1 and --b2"),
    ({"seed": -1}, "--seed must be in [0, 4,294,967,295]"),
    ({"seed": 2**32}, "--seed must be in [0, 4,294,967,295]"),
    ({"seed": 2**32 - 1, "seeds": 2}, "--seed must be in [0, 4,294,967,294] with --seeds 2"),
    ({"generator.hidden": (16, 0)}, "generator hidden layers"),
    ({"generator.init_scale": 0.0}, "generator init_scale"),
    ({"discriminator.units": (0,)}, "discriminator layers"),
    ({"discriminator.init_scale": float("inf")}, "discriminator init_scale"),
]


@pytest.mark.parametrize("overrides, message", BAD, ids=[next(iter(b[0])) + "=" + str(next(iter(b[0].values()))) for b in BAD])
def test_bad_fields_are_named(overrides, message):
    with pytest.raises(GancliError) as e:
        with_overrides(preset("paper", "mnist"), **overrides)
    assert message in str(e.value)


def test_edges_that_are_valid():
    with_overrides(preset("paper", "mnist"), **{"optimizer.lr_min": 0.0, "optimizer.momentum_saturate_epoch": 1,
                                                "seed": 2**32 - 1, "discriminator.units": ()})
    for name in ("paper", "fast", "adam", "toy"):
        preset(name, "ring8").validate()


def test_train_refuses_a_negative_momentum_saturate_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["train", "ring8", "--momentum-saturate", "-5", "--ckpt", str(tmp_path / "run")])
    assert result.exit_code == 1 and result.output.strip() == "error: --momentum-saturate must be an epoch >= 1 (got -5)"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("toml, says", [
    ("k = 0\n", "k = 0: --k must be >= 1 (got 0)"),
    ("[optimizer]\nlr = -1.0\n", "optimizer.lr = -1.0: --lr must be a finite number > 0 (got -1.0)"),
    ("epochs = 3\n[augment]\nada_target = 0.6\n",
     "augment.ada_target = 0.6: --ada needs --augment: the transforms whose probability it adapts"),
    ('g_batch = "own"\nupdate = "simultaneous"\n',
     "its keys g_batch, update together: g_batch own needs alternating updates"),
])
def test_a_config_file_value_out_of_range_names_the_file_and_the_key(tmp_path, toml, says):
    """Issue 35, 10: validate's messages name the command-line option; from a --config file they once came out bare
    (error: --k must be >= 1), as if an option or a --set had been given."""
    path = tmp_path / "run.toml"
    path.write_text(toml)
    result = CliRunner().invoke(app, ["train", "ring8", "--config", str(path), "--ckpt", str(tmp_path / "run")])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith(f"error: --config {path}: {says}"), result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("toml, says", [
    ('model = "nosuch"\n', "model = 'nosuch': model must be one of mlp, cgan, "),
    ('model = "cgan"\n', "model = 'cgan': model cgan is conditional by design: set conditional (train --conditional)"),
    ('d_loss = "ssl"\n', "d_loss = 'ssl': d_loss must be one of gan, "),
    ("[ssl_mlp]\nhidden_noise = 0.5\n", "ssl_mlp.hidden_noise = 0.5: the ssl_mlp settings are model ssl-mlp's own"),
    ('model = "cifar-conv"\n[generator]\nhidden = [8]\n',
     "model = 'cifar-conv': model cifar-conv's discriminator.units are its 3 conv layers' channels"),
    ('[augment]\npolicy = "translation"\n', "augment.policy = 'translation': --augment transforms images"),
    ("batch_size = 100000\n", "batch_size = 100000: ring8 has 50000 training examples, fewer than one iteration"),
])
def test_a_config_file_value_the_model_registry_or_the_data_refuse_names_the_file_and_the_key(tmp_path, toml, says):
    """Issue 35, 10b: values that pass validate but not models.check (or a check that needs the data) came out
    bare (error: model cgan is conditional by design ...), as if given on the command line."""
    path = tmp_path / "run.toml"
    path.write_text(toml)
    result = CliRunner().invoke(app, ["train", "ring8", "--config", str(path), "--ckpt", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"error: --config {path}: {says}"), result.output


def test_a_registry_error_the_command_line_causes_is_not_blamed_on_the_config_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('model = "cgan"\n')
    given = CliRunner().invoke(app, ["train", "ring8", "--config", str(path), "--set", "model=nosuch", "--ckpt", str(tmp_path / "a")])
    assert given.exit_code == 1 and given.output.startswith("error: model must be one of "), given.output
    over = CliRunner().invoke(app, ["train", "ring8", "--config", str(path), "--set", "model=mlp", "--k", "0",
                                    "--ckpt", str(tmp_path / "b")])  # the file's model is overridden: not its doing
    assert over.exit_code == 1 and over.output == "error: --k must be >= 1 (got 0)\n", over.output
