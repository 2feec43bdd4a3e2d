"""When checkpoints are written (every few minutes by default, at the end, on a signal; --ckpt-every N epochs) and
that Orbax's background saves never hold the loop back, lose a checkpoint, or change what a resume restores."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gancli import checkpoint, rundir, steps, train
from gancli.cli import app
from helpers import FAKE_DATA, TINY, SignalAt, leaves_equal, tiny

GAME = steps.Game(tiny(), (4, 4, 1), 200)
SET_TINY = ["--set", "generator.z_dim=4", "--set", "generator.hidden=16", "--set", "discriminator.units=8",
            "--set", "discriminator.pieces=2", "--batch-size", "10", "--chunk", "4"]


# The same 200 images as FAKE_DATA, in place of the TFDS-backed loader.
pytestmark = pytest.mark.usefixtures("fake_data_for_module")


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """Uninterrupted runs of the default cadence to compare with: {epochs: run folder}."""
    root, runs = tmp_path_factory.mktemp("whole"), {}

    def get(epochs: int) -> Path:
        if epochs not in runs:
            runs[epochs] = root / f"e{epochs}"
            train.train(tiny(epochs=epochs), runs[epochs])
        return runs[epochs]

    return get


def state_at(run_dir: Path, step: int | None = None):
    """The state of the newest checkpoint, or of the one at `step`."""
    abstract = lambda c, m: steps.abstract_state(GAME)
    return (checkpoint.load_run(run_dir, abstract) if step is None else checkpoint._load(run_dir, step, abstract)).state


def unfinished(run_dir: Path) -> list[str]:
    return [p.name for p in (run_dir / "checkpoints").iterdir() if rundir.UNFINISHED in p.name]


# --- the decision, as a pure function of the clock ---


def test_the_default_cadence_is_wall_time_and_ckpt_every_overrides_it():
    default = tiny()  # 5 minutes, no epoch cadence
    due = lambda config, step, since, epoch_done=True, stopping=False: train._time_to_save(
        config, step, 20, 100, epoch_done, stopping, since)
    assert (default.ckpt_every, default.ckpt_minutes) == (0, 5.0)
    assert not due(default, 20, 299.9) and due(default, 20, 300.0)
    assert due(default, 24, 301.0, epoch_done=False)  # the first chunk boundary after the interval, mid-epoch too
    assert due(default, 100, 0.0) and due(default, 24, 0.0, epoch_done=False, stopping=True)  # the end; a signal
    assert due(tiny(ckpt_minutes=0.5), 20, 30.0) and not due(tiny(ckpt_minutes=0.5), 20, 29.0)
    every2 = tiny(ckpt_every=2)
    assert due(every2, 40, 0.0) and not due(every2, 20, 1e9) and not due(every2, 44, 1e9, epoch_done=False)
    assert due(every2, 100, 0.0) and due(every2, 24, 0.0, epoch_done=False, stopping=True)


def test_the_loop_saves_when_the_clock_says(tmp_path, monkeypatch):
    """A fake clock moving a minute per chunk, a save due every 2.5 minutes: at steps 12, 24, 36 and the end."""
    clock = [0.0]

    class MinutePerChunk(train.Silent):
        def advance(self, done, epoch, metrics, it_per_s):
            clock[0] += 60.0

    fake_time = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("_")})
    fake_time.monotonic = lambda: clock[0]
    monkeypatch.setattr(train, "time", fake_time)
    out = train.train(tiny(epochs=2, ckpt_minutes=2.5, keep=10), tmp_path / "run", reporter=MinutePerChunk())
    assert out.status == "done" and rundir.checkpoint_steps(tmp_path / "run") == [12, 24, 36, 40]


# --- what the default cadence writes, and exact resumes from background saves ---


def test_the_default_cadence_saves_once_at_the_end_and_waits_for_it(whole):
    run = whole(3)
    assert rundir.checkpoint_steps(run) == [60] and unfinished(run) == []  # complete on disk when train() returned
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    assert sorted(p.name for p in (run / "samples").iterdir()) == [f"epoch_000{i}.png" for i in (1, 2, 3)]


def test_sigterm_with_the_default_cadence_saves_and_an_immediate_resume_is_exact(tmp_path, whole):
    run = tmp_path / "run"
    out = train.train(tiny(epochs=2), run, reporter=SignalAt(signal.SIGTERM, 7))  # mid-epoch 2, no save due
    assert (out.status, out.step, out.signal) == ("interrupted", 28, signal.SIGTERM)
    assert rundir.checkpoint_steps(run) == [28] and unfinished(run) == []
    config, resuming = train.resolve_config(run, None, None, {}, resume=True)
    done = train.train(config, run, resume=resuming)
    assert done.status == "done" and rundir.checkpoint_steps(run) == [28, 40]
    assert leaves_equal(state_at(run), state_at(whole(2)))


def test_background_saves_hold_the_state_of_their_step(tmp_path, whole):
    """Saves at steps 20 and 40 are written while the next chunks run on the (donated) state: each checkpoint
    still holds exactly the state of its own step."""
    run = tmp_path / "run"
    train.train(tiny(epochs=3, ckpt_every=1), run)
    assert rundir.checkpoint_steps(run) == [20, 40, 60]
    for epochs in (1, 2, 3):
        assert leaves_equal(state_at(run, 20 * epochs), state_at(whole(epochs)))


def test_a_kill_during_a_background_save_leaves_the_previous_checkpoint(tmp_path, whole):
    """SIGKILL as soon as the save of step 40 is handed to Orbax, keeping 1: step 20 is deleted only once 40 is
    complete, so one of them restores, and the resume from it ends where an uninterrupted run does."""
    run = tmp_path / "run"
    script = FAKE_DATA + (
        "import os, signal, sys\nfrom gancli import checkpoint, train\nfrom gancli.config import preset, with_overrides\n"
        "save = checkpoint.Writer.save\n"
        "def save_then_die(self, step, *args):\n"
        "    save(self, step, *args)\n"
        "    if step == 40:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "checkpoint.Writer.save = save_then_die\n"
        f"config = with_overrides(preset('paper', 'tiny'), **{ {**TINY, 'epochs': 3, 'ckpt_every': 1, 'keep': 1}!r})\n"
        "train.train(config, sys.argv[1])\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(run)], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    saved = rundir.checkpoint_steps(run)
    assert saved in ([20], [40]), saved
    if saved == [20]:  # killed mid-write: what Orbax had written is a temporary folder, not a checkpoint
        assert unfinished(run)
    config, resuming = train.resolve_config(run, None, None, {}, resume=True)
    assert train.train(config, run, resume=resuming).status == "done"
    assert leaves_equal(state_at(run), state_at(whole(3)))


# --- the command line ---


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_ckpt_every_still_saves_every_n_epochs_and_ckpt_minutes_takes_over_on_resume(tmp_path):
    run = tmp_path / "run"
    result = invoke("train", "tiny", "--ckpt", run, "--epochs", 2, "--ckpt-every", 1, *SET_TINY)
    assert result.exit_code == 0, result.output
    assert rundir.checkpoint_steps(run) == [20, 40]
    result = invoke("train", "--ckpt", run, "--epochs", 4, "--ckpt-minutes", 10)
    assert result.exit_code == 0, result.output
    assert rundir.checkpoint_steps(run) == [20, 40, 80]  # the epoch cadence the run stored gave way to the clock
    stored = checkpoint.load_run(run).config
    assert (stored.ckpt_every, stored.ckpt_minutes) == (0, 10.0)


def test_both_cadences_at_once_or_a_bad_interval_is_one_line(tmp_path):
    for args, message in ((["--ckpt-every", 1, "--ckpt-minutes", 3], "give --ckpt-every (epochs) or --ckpt-minutes, not both"),
                          (["--ckpt-minutes", 0], "--ckpt-minutes must be a finite number > 0 (got 0.0)")):
        result = invoke("train", "tiny", "--ckpt", tmp_path / "run", *args)
        assert result.exit_code == 1 and result.stderr == f"error: {message}\n", result.output
