"""What a newcomer meets first: the help of train's options, the list of config fields, where a config error is,
and what training prints while it runs."""

from __future__ import annotations

import dataclasses
import io

from rich.console import Console
from typer.testing import CliRunner

from gancli.cli import app
from gancli.cli.progress import RichReporter
from gancli.config import PRESETS, RunConfig

runner = CliRunner()
WIDE = {"COLUMNS": "300"}  # so that no help line or table cell is wrapped
# helpers.TINY as --set assignments: on the 200 fake images, 20 iterations (5 chunks) an epoch.
TINY_SET = ["--set", "generator.z_dim=4", "--set", "generator.hidden=16", "--set", "discriminator.units=8",
            "--set", "discriminator.pieces=2", "--set", "batch_size=10", "--set", "chunk=4"]


def flat(text: str) -> str:
    """Help text with the boxes and line breaks taken out."""
    return " ".join(text.replace("│", " ").split())


def test_train_help_shows_the_config_files_tables():
    # Rich markup once ate "[generator]" and the others, leaving "(top-level keys and , , tables)".
    result = runner.invoke(app, ["train", "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "top-level keys and [generator], [discriminator], [optimizer], [ssl_mlp], [augment] tables" in flat(result.output)


def test_preset_help_names_every_preset_of_the_registry():
    help_text = flat(runner.invoke(app, ["train", "--help"], env=WIDE).output)
    for name in PRESETS:
        assert f" {name}," in help_text or f" {name} (" in help_text or f" {name}." in help_text, name
    assert "toy (default for toy1d, ring8)" in help_text and "dcgan (default for cifar10)" in help_text


def leaves(cls=RunConfig, prefix=""):
    """(section.field, default) of every config field, walked here independently of the command."""
    for f in dataclasses.fields(cls):
        value = getattr(cls(), f.name)
        if dataclasses.is_dataclass(value):
            yield from leaves(type(value), f"{prefix}{f.name}.")
        else:
            yield prefix + f.name, value


def test_presets_fields_lists_every_config_field_with_its_default():
    result = runner.invoke(app, ["presets", "--fields"], env=WIDE)
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 4:
            rows[cells[0]] = cells[1:]
    expected = dict(leaves())
    assert set(expected) <= set(rows) and len(expected) > 40
    assert rows["discriminator.minibatch"][:2] == ["tuple[int, ...]", "0,0"]
    assert rows["optimizer.lr"][:2] == ["float", "0.1"] and rows["optimizer.lr"][2] == "Learning rate."  # train's --lr
    assert rows["keep"][2] == "Checkpoints kept."
    assert rows["generator.init_scale"][2] == "weights U(-s, s)"  # the field's comment in gancli/config.py
    assert rows["generator.batchnorm"][1] == "false"
    assert "[generator], [discriminator], [optimizer], [ssl_mlp], [augment] tables" in flat(result.output)


def test_a_config_file_error_names_the_file_not_set(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text("k = 2\n[generator]\nz_dimm = 3\n")
    result = runner.invoke(app, ["train", "tiny", "--config", str(toml), "--ckpt", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: --config {toml}: generator.z_dimm: no such config field (there: z_dim, ")
    assert "--set" not in result.output and len(result.output.strip().splitlines()) == 1
    toml.write_text("generator = 3\n")
    result = runner.invoke(app, ["train", "tiny", "--config", str(toml), "--ckpt", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.output == f"error: --config {toml}: generator: a section, not a field; set one of its fields, e.g. generator.z_dim\n"
    # --set's own errors still say --set
    result = runner.invoke(app, ["train", "tiny", "--set", "generator.z_dimm=3", "--ckpt", str(tmp_path / "run")])
    assert result.exit_code == 1 and result.output.startswith("error: --set generator.z_dimm: no such config field")


def record(epoch: int, momentum: float = 0.5) -> dict:
    return {"epoch": epoch, "step": 20 * epoch, "d_loss": 0.6, "g_loss": 0.9, "d_real": 0.55, "d_fake": 0.45,
            "it_per_s": 100.0, "lr": 0.1, "momentum": momentum}


def test_the_bar_counts_the_epoch_and_every_epoch_gets_its_line():
    out = io.StringIO()
    reporter = RichReporter(Console(file=out, width=200), epochs=100)
    reporter.start(total=100 * 20, done=0, epoch=0)
    metrics = {"d_loss": 0.6, "g_loss": 0.9}
    for epoch in range(4):
        for done in (20 * epoch + 10, 20 * epoch + 20):
            reporter.advance(done, epoch, metrics, 200.0)
        reporter.epoch_end(record(epoch + 1))
    reporter.advance(85, 4, metrics, 5.0)  # 5 of epoch 5's 20 iterations, 15 to go at 5 it/s
    reporter.stop()
    text = out.getvalue()
    assert [line.split(":")[0] for line in text.splitlines() if line.startswith("epoch ") and ": D " in line] == [
        "epoch 1", "epoch 2", "epoch 3", "epoch 4"]  # a long run once had a line every second epoch
    (bar,) = [line for line in text.splitlines() if line.startswith("epoch 5/100")]
    assert " 5/20 " in bar and "ETA 0:00:03" in bar


def test_a_run_resumed_mid_epoch_starts_its_bar_there():
    out = io.StringIO()
    reporter = RichReporter(Console(file=out, width=200), epochs=10)
    reporter.start(total=10 * 20, done=46, epoch=2)
    reporter.stop()
    assert "epoch 3/10" in out.getvalue() and " 6/20 " in out.getvalue()


def test_momentum_is_shown_for_sgd_alone():
    lines = {}
    for optimizer in ("sgd", "adam"):
        out = io.StringIO()
        reporter = RichReporter(Console(file=out, width=200), epochs=3, optimizer=optimizer)
        reporter.epoch_end(record(1, momentum=0.5))  # an Adam run's record holds b1 there
        lines[optimizer] = out.getvalue()
    assert lines["sgd"].rstrip().endswith("lr 0.10000  momentum 0.500")
    assert "momentum" not in lines["adam"] and lines["adam"].rstrip().endswith("lr 0.10000")


def test_an_adam_run_prints_no_momentum_and_a_bar_per_epoch(tmp_path, fake_data):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "tiny", *TINY_SET, "--epochs", "3", "--optimizer", "adam", "--lr", "0.001",
                                 "--ckpt", str(run)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert [line.split(":")[0] for line in result.output.splitlines() if ": D " in line and "/" not in line.split(":")[0]] == [
        "epoch 1", "epoch 2", "epoch 3"]
    assert "momentum" not in result.output
    (bar,) = [line for line in result.output.splitlines() if line.startswith("epoch 3/3")]
    assert " 20/20 " in bar  # the epoch's iterations, not the run's 60
    shown = runner.invoke(app, ["inspect", str(run), "--no-curves"], env=WIDE)
    assert shown.exit_code == 0, shown.output
    (optimizer,) = [line for line in shown.output.splitlines() if line.startswith("optimizer")]
    assert "name=adam" in optimizer and "b1=" in optimizer and "momentum" not in optimizer


def test_an_sgd_run_shows_its_momentum(tmp_path, fake_data):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "tiny", *TINY_SET, "--epochs", "1", "--ckpt", str(run)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "momentum 0.500" in result.output
    shown = runner.invoke(app, ["inspect", str(run), "--no-curves"], env=WIDE)
    (optimizer,) = [line for line in shown.output.splitlines() if line.startswith("optimizer")]
    assert "name=sgd" in optimizer and "momentum=0.5" in optimizer and "momentum_final=0.7" in optimizer
