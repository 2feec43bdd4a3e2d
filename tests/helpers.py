"""What several test files share: the paper's model shrunk to seconds, 200 random 4x4 images to train it on, a
stand-in for the TFDS-backed loader, `gancli` in another process on them, a reporter that signals a run mid-way, and
comparisons of parameter trees."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import jax
import numpy as np

from gancli import data, train
from gancli.config import preset, with_overrides

# On the 200 images of random_images: 20 iterations (5 chunks) an epoch.
TINY = {"generator.z_dim": 4, "generator.hidden": (16,), "discriminator.units": (8,), "discriminator.pieces": 2,
        "batch_size": 10, "chunk": 4}

# The loader of random_images(256) for a `gancli` started in another process (prepend it to the program).
FAKE_DATA = """
import numpy as np
from gancli import data
images = (np.random.default_rng(0).integers(0, 256, (200, 4, 4, 1)) / 256).astype(np.float32)
data.load = lambda name, split, data_dir=None: (images, np.zeros(200, np.int64))
data.provenance = lambda name, data_dir=None: {"dataset": name, "source": "test"}
"""


def gancli_program(*hooks: str) -> str:
    """A stand-in for `gancli` in another process, on FAKE_DATA's 200 images; hooks: Python run before the command
    (wrapping a library function, say)."""
    return FAKE_DATA + "".join(hooks) + "from gancli.cli import app\napp(prog_name='gancli')\n"


def start_gancli(program: str, *args) -> subprocess.Popen:
    """`gancli *args` (by gancli_program) started in another process, its stdout and stderr piped as text."""
    return subprocess.Popen([sys.executable, "-c", program, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_until(proc: subprocess.Popen, condition, seconds: float = 120) -> None:
    """Poll condition() until it holds; fails the test with proc's output if proc ends or the time runs out first."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)


def tiny(**more):
    """The paper preset with TINY's sizes, and `more` over them."""
    return with_overrides(preset("paper", "tiny"), **{**TINY, **more})


def random_images(scale: int = 256) -> np.ndarray:
    """200 random 4x4 grey images, float32 pixels k / scale for whole k in [0, 255], always the same ones."""
    return (np.random.default_rng(0).integers(0, 256, (200, 4, 4, 1)) / scale).astype(np.float32)


def use_fake_data(mp, images: np.ndarray, labels: np.ndarray) -> None:
    """Make every dataset and split load as (images, labels), through the monkeypatch mp."""
    mp.setattr(data, "load", lambda name, split, data_dir=None: (images, labels))
    mp.setattr(data, "provenance", lambda name, data_dir=None: {"dataset": name, "source": "test"})


class SignalAt(train.Silent):
    """Sends a real signal to this process when the n-th chunk has ended (a chunk boundary)."""

    def __init__(self, signum, n):
        self.signum, self.n = signum, n

    def advance(self, done, epoch, metrics, it_per_s):
        self.n -= 1
        if self.n == 0:
            os.kill(os.getpid(), self.signum)


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def max_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
