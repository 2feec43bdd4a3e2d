"""A stop at any moment stops (issue 35, items 7, 8 and 10a): SIGINT during start-up, a second SIGINT during the
stopping save, and a run folder claimed by a start-up that then failed. Signals go to a real `gancli train` in
another process (helpers.start_gancli), which is what a terminal's Ctrl-C reaches."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gancli import checkpoint, rundir, steps, train
from gancli.cli import app
import helpers

TINY = {**helpers.TINY, "ckpt_every": 1}
# TINY as `gancli train` options, for a run started afresh in another process.
TINY_ARGS = [a for k, v in TINY.items() for a in ("--set", f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}")]
GAME = steps.Game(helpers.tiny(**TINY), (4, 4, 1), 200)
STOPPED = 130  # 128 + SIGINT, what a shell reports
BOUND_S = 60  # a stop that takes longer than this hangs (the base code hung for minutes)

# Hooks for the process (helpers.gancli_program): where in start-up its SIGINT comes.
SLOW_LOAD = """
import time
_load = data.load
def load(*a, **k):  # a slow dataset: the test signals while it reads
    print("loading", flush=True)
    time.sleep(3)
    return _load(*a, **k)
data.load = load
"""
# The moment the issue met by chance (Ctrl-C typed during compilation): a signal whose handler runs inside a
# garbage-collection callback, where Python prints "Exception ignored" for what the handler raises and goes on.
IN_A_GC_CALLBACK = """
import gc, os, signal
_load = data.load
def load(*a, **k):
    fired = []
    def callback(phase, info):
        if not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGINT)
    gc.callbacks.append(callback)
    gc.collect()
    gc.callbacks.remove(callback)
    return _load(*a, **k)
data.load = load
"""
AFTER_COMPILING = """
import os, signal
from gancli import steps
_compiled, fired = steps.compiled_chunk, []
def compiled_chunk(*a, **k):  # between the first compilation and the first step
    fn = _compiled(*a, **k)
    if not fired:
        fired.append(True)
        os.kill(os.getpid(), signal.SIGINT)
    return fn
steps.compiled_chunk = compiled_chunk
"""
# Every save holds the main thread for half a second while Orbax writes: a second signal 50 ms after the first
# lands inside the stopping save.
SLOW_SAVE = """
import time
from gancli import checkpoint
_save = checkpoint.Writer.save
def save(self, *a, **k):
    _save(self, *a, **k)
    time.sleep(0.5)
checkpoint.Writer.save = save
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A two-epoch run (checkpoints at steps 20 and 40), trained once; copy it before changing it."""
    path = tmp_path_factory.mktemp("trained") / "run"
    with pytest.MonkeyPatch.context() as mp:  # the images the other process's stand-in loader gives
        helpers.use_fake_data(mp, helpers.random_images(), np.zeros(200, np.int64))
        train.train(helpers.tiny(**TINY, epochs=2), path)
    return path


@pytest.fixture
def copy_of(trained, tmp_path):
    return lambda name="run": Path(shutil.copytree(trained, tmp_path / name))


def files_of(folder: Path) -> dict[Path, bytes]:
    """Every file under folder but the lock (a claim writes its pid into it)."""
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != rundir.LOCK}


def finish(proc, started: float | None = None) -> tuple[str, str, float]:
    """proc's stdout, stderr and the seconds it took to end from `started` (by default now); fails past BOUND_S."""
    started = time.monotonic() if started is None else started
    try:
        out, err = proc.communicate(timeout=BOUND_S)
    except Exception:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running {BOUND_S} s after the signal:\n{out}\n{err}")
    return out, err, time.monotonic() - started


def restores_at(run: Path, step: int, scratch: Path) -> bool:
    """Whether step `step` of run restores whole, on its own (a copy without the newer steps)."""
    alone = Path(shutil.copytree(run, scratch / f"alone-{step}"))
    for s in rundir.checkpoint_steps(alone):
        if s > step:
            shutil.rmtree(alone / rundir.CHECKPOINTS / str(s))
    restored = checkpoint.load_run(alone, lambda c, m: steps.abstract_state(GAME))
    return not restored.skipped and int(restored.state["step"]) == restored.metadata["step"] == step


# --- 7. a signal during start-up stops the run there ---


@pytest.mark.parametrize("when", ["while-loading", "in-a-gc-callback"])
def test_sigint_during_start_up_stops_with_one_line_and_takes_back_the_new_folder(tmp_path, when):
    # Once: a KeyboardInterrupt traceback out of the loader; the run going on to the end and exit 0 after
    # "Exception ignored in: <function ...> KeyboardInterrupt".
    hook = {"while-loading": SLOW_LOAD, "in-a-gc-callback": IN_A_GC_CALLBACK}[when]
    run = tmp_path / "new" / "run"
    proc = helpers.start_gancli(helpers.gancli_program(hook), "train", "tiny", "--ckpt", run, "--epochs", 2, *TINY_ARGS)
    if when == "while-loading":
        helpers.wait_until(proc, lambda: proc.stdout.readline() == "loading\n")
        proc.send_signal(signal.SIGINT)
    out, err, _ = finish(proc)
    assert proc.returncode == STOPPED, (out, err)
    assert out.splitlines()[-1:] == ["interrupted by SIGINT before training began: nothing was saved; run the same command to start again."]
    assert err == "", err
    assert not (tmp_path / "new").exists()  # the claim made both folders, and takes both back


def test_sigint_after_compiling_a_resumed_run_leaves_its_checkpoints_as_they_were(copy_of):
    # Once: one chunk trained, and saved as step 44, before it stopped.
    run = copy_of()
    before = files_of(run)
    proc = helpers.start_gancli(helpers.gancli_program(AFTER_COMPILING), "train", "--ckpt", run, "--epochs", 3)
    out, err, _ = finish(proc)
    assert proc.returncode == STOPPED and err == "", (out, err)
    assert out.splitlines()[-1:] == [(f"interrupted by SIGINT before training began: {run}/ holds the checkpoints it held; "
                                     "run the same command to resume.")]
    assert files_of(run) == before and (run / rundir.LOCK).exists()


def test_a_second_sigint_during_start_up_stops_at_once(tmp_path):
    run = tmp_path / "run"
    proc = helpers.start_gancli(helpers.gancli_program(SLOW_LOAD), "train", "tiny", "--ckpt", run, "--epochs", 2, *TINY_ARGS)
    helpers.wait_until(proc, lambda: proc.stdout.readline() == "loading\n")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err, seconds = finish(proc)
    assert proc.returncode == STOPPED, (out, err)
    assert err == ("SIGINT again: stopping at once; training had not begun, nothing was saved and the checkpoints "
                   "are as they were\n"), err
    assert seconds < 2.5  # the loader still had most of its 3 s to sleep
    assert not run.exists()


# The console script (gancli.cli.main), held up where a SIGINT comes before the command's first line: while Python
# imports the CLI's commands (Typer, Rich, numpy), or while Typer builds the command line; each says when it is there.
WHILE_IMPORTING = """
import sys, time
class Slow:
    def find_spec(self, name, path=None, target=None):
        if name == "gancli.cli.commands":
            print("importing", flush=True)
            time.sleep(30)
        return None
sys.meta_path.insert(0, Slow())
"""
WHILE_PARSING = """
import time, typer.main
_get_command = typer.main.get_command
def get_command(app):
    print("parsing", flush=True)
    time.sleep(30)
    return _get_command(app)
typer.main.get_command = get_command
"""


@pytest.mark.parametrize("hook, says", [(WHILE_IMPORTING, "importing"), (WHILE_PARSING, "parsing")],
                         ids=["while-importing", "while-parsing"])
def test_sigint_before_the_commands_first_line_is_one_line_and_exit_130(tmp_path, hook, says):
    """A Ctrl-C while `gancli train` was still importing ended in a KeyboardInterrupt traceback; just after, while
    Typer parsed, in exit 130 without a word."""
    run = tmp_path / "run"
    proc = helpers.start_gancli(hook + "from gancli.cli import main\nmain()\n", "train", "tiny", "--ckpt", run)
    helpers.wait_until(proc, lambda: proc.stdout.readline() == f"{says}\n")
    proc.send_signal(signal.SIGINT)
    out, err, seconds = finish(proc)
    assert proc.returncode == STOPPED, (out, err)
    assert out == "interrupted by SIGINT before training began: nothing was saved\n" and err == "", (out, err)
    assert seconds < 5 and not run.exists()


def test_the_console_script_and_python_m_run_main():
    from importlib import metadata

    import gancli.cli

    (script,) = metadata.entry_points(group="console_scripts", name="gancli")
    assert script.load() is gancli.cli.main  # the installed `gancli` is main, which watches Ctrl-C from its first line
    done = subprocess.run([sys.executable, "-m", "gancli.cli", "--help"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0 and "train" in done.stdout, done.stderr


# --- 8. a second signal during the stopping save waits for it ---


def test_two_sigints_50_ms_apart_mid_epoch_wait_for_the_save_and_leave_every_checkpoint_whole(copy_of, tmp_path):
    # Once: a KeyboardInterrupt traceback out of Orbax's wait ("Save Finalize thread failed"), no line saying
    # what was saved, the state the stop was for not saved, or a hang for minutes with a half-written step.
    run = copy_of()
    proc = helpers.start_gancli(helpers.gancli_program(SLOW_SAVE), "train", "--ckpt", run, "--epochs", 100000)
    helpers.wait_until(proc, lambda: len((run / "metrics.jsonl").read_text().splitlines()) >= 4)  # in its loop
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err, _ = finish(proc)
    assert proc.returncode == STOPPED, (out, err)
    saved = checkpoint.latest_step(run)
    assert err == (f"SIGINT again: waiting for the checkpoint of step {saved} to be complete on disk, then stopping "
                   "(kill -9 stops at once, keeping the previous checkpoints)\n"), err
    epoch = saved // 20
    assert out.splitlines()[-1:] == [f"interrupted by SIGINT: saved step {saved} (epoch {epoch}) in {run}/; run the same command to resume."]
    found = rundir.checkpoint_steps(run)
    assert saved > 80 and len(found) == 3, found  # --keep 3: the stopping save and the two before it
    assert sorted(p.name for p in (run / rundir.CHECKPOINTS).iterdir()) == sorted(map(str, found))  # no unfinished save
    assert all(restores_at(run, step, tmp_path) for step in found)


# --- 10a. a start-up that fails takes back the folder its claim made, never one that was there ---


def rejected(tmp_path, monkeypatch, option: str, run: Path):
    """`gancli train` with one option that is refused once the data is known, into run."""
    args = {"--devices 0": ["tiny", "--devices", "0", *TINY_ARGS],
            "--labels 7": ["tiny", "--preset", "semi-supervised", "--labels", "7"],
            "an unknown dataset": ["nosuchset", "--data-dir", tmp_path / "no-data", *TINY_ARGS]}[option]
    if option != "an unknown dataset":  # (the real loader refuses that one) ten classes, which 7 labels cannot split over
        helpers.use_fake_data(monkeypatch, helpers.random_images(), np.arange(200) % 10)
    result = CliRunner().invoke(app, ["train", *map(str, args), "--ckpt", str(run), "--epochs", "1"])
    assert result.exit_code == 1 and result.stderr.startswith("error: "), result.output
    assert ("--devices", "--labels 7", "nosuchset")[OPTIONS.index(option)] in result.stderr, result.stderr
    return result


OPTIONS = ["--devices 0", "--labels 7", "an unknown dataset"]


@pytest.mark.parametrize("option", OPTIONS)
def test_a_rejected_option_leaves_no_folder_behind(tmp_path, monkeypatch, option):
    # Once: tmp_path/new/run holding only .gancli.lock.
    rejected(tmp_path, monkeypatch, option, tmp_path / "new" / "run")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("option", OPTIONS)
def test_a_rejected_option_leaves_an_empty_folder_that_was_there_empty(tmp_path, monkeypatch, option):
    empty = tmp_path / "empty"
    empty.mkdir()
    rejected(tmp_path, monkeypatch, option, empty)
    assert empty.is_dir() and list(empty.iterdir()) == []  # the lock it made is gone, the folder stays


def test_a_rejected_option_leaves_a_run_folder_as_it_was(tmp_path, monkeypatch, copy_of):
    run = copy_of()
    before = files_of(run)
    rejected(tmp_path, monkeypatch, "--devices 0", run)
    assert files_of(run) == before and (run / rundir.LOCK).exists()
