"""Read whole splits of a prepared TFDS dataset into numpy arrays through TFDS data sources."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import decode
from tensorflow_datasets.proto import tf_example_pb2

from gancli.data.prepared import one_line
from gancli.pixels import PIXEL_SCALE, to_unit  # noqa: F401  (data's names for them)
from gancli.errors import GancliError

_CHUNK = 8192


def _is_raw_uint8_images(features) -> bool:
    """True for the layout gancli's builders write: a bytes-encoded uint8 image Tensor and a class label."""
    if "image" not in features or "label" not in features:
        return False
    image, label = features["image"], features["label"]
    return (
        type(image) is tfds.features.Tensor
        and image.np_dtype == np.uint8
        and None not in image.shape
        and image.to_json_content().encoding == tfds.features.Encoding.BYTES.value
        and isinstance(label, tfds.features.ClassLabel)
    )


def _read_raw(builder, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse records ourselves: TFDS's per-example decoding costs ~100 us a row, this ~20 us."""
    shape = builder.info.features["image"].shape
    source = builder.as_data_source(split, deserialize_method=decode.DeserializeMethod.RAW_BYTES)
    n = len(source)
    images = np.empty((n, *shape), np.uint8)
    labels = np.empty(n, np.int64)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        records = source.__getitems__(list(range(start, stop)))
        feats = [tf_example_pb2.Example.FromString(r).features.feature for r in records]
        pixels = b"".join(f["image"].bytes_list.value[0] for f in feats)
        images[start:stop] = np.frombuffer(pixels, np.uint8).reshape(stop - start, *shape)
        labels[start:stop] = [f["label"].int64_list.value[0] for f in feats]
    return images, labels


def image_and_label_keys(builder) -> tuple[str, str | None]:
    """The image feature's key (the first Image feature; else "image" or the supervised input) and the label's (the
    supervised label or "label" when a ClassLabel, else the first ClassLabel; None when the dataset has none)."""
    features = builder.info.features
    supervised = builder.info.supervised_keys or ()
    named = [k for k in features.keys()]
    image = next((k for k in named if isinstance(features[k], tfds.features.Image)), None)
    if image is None:
        candidates = ["image", *[k for k in supervised[:1] if isinstance(k, str)]]
        image = next((k for k in candidates if k in features), None)
    if image is None:
        raise GancliError(f"{builder.name} has no image feature (features: {', '.join(named)})")
    preferred = [k for k in [*supervised[1:2], "label"] if isinstance(k, str) and k in features]
    labels = [k for k in [*preferred, *named] if isinstance(features[k], tfds.features.ClassLabel)]
    fallback = next(iter(preferred), None)  # a label that is not a ClassLabel, as before
    return image, labels[0] if labels else fallback


def _read_decoded(builder, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read through TFDS's own decoding, for datasets gancli did not build (e.g. encoded Image features)."""
    image_key, label_key = image_and_label_keys(builder)
    if None in builder.info.features[image_key].shape:
        raise GancliError(f"{builder.name} images vary in size: pass --image-size to train on them centre-cropped and resized")
    source = builder.as_data_source(split)
    n = len(source)
    images, labels = [], []
    for start in range(0, n, _CHUNK):
        rows = source.__getitems__(list(range(start, min(n, start + _CHUNK))))
        images.extend(np.asarray(r[image_key]) for r in rows)
        if label_key is not None:
            labels.extend(int(r[label_key]) for r in rows)
    if images and images[0].dtype != np.uint8:
        raise GancliError(f"{builder.name} images are {images[0].dtype}; gancli reads uint8 images only")
    stacked = np.stack(images) if images else np.zeros((0, *builder.info.features[image_key].shape), np.uint8)
    if stacked.ndim == 3:  # grayscale stored without a channel axis
        stacked = stacked[..., None]
    if stacked.ndim != 4:
        raise GancliError(f"{builder.name} images have shape {stacked.shape[1:]}; gancli reads (H, W) or (H, W, C)")
    ys = np.asarray(labels, np.int64) if label_key is not None else np.full(n, -1, np.int64)
    return stacked, ys


def format_problem(builder) -> str | None:
    """Why TFDS data sources cannot read this prepared dataset, or None when they can."""
    formats = builder.info.available_file_formats()
    if formats & tfds.core.FileFormat.with_random_access():
        return None
    stored = ", ".join(sorted(f.value for f in formats)) or "no recorded format"
    return (
        f"{builder.name} is prepared as {stored}, which gancli cannot read without TensorFlow; "
        f"rebuild it with `tfds build {builder.name} --file_format=array_record`"
    )


def read_split(builder, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, C) images and int64 labels (-1 when unlabelled) of one split, in stored order."""
    if problem := format_problem(builder):
        raise GancliError(problem)
    reader = _read_raw if _is_raw_uint8_images(builder.info.features) else _read_decoded
    try:
        return reader(builder, split)
    except GancliError:
        raise
    except ImportError as e:
        msg = f"decoding {builder.name} images needs a missing package ({one_line(e)}): pip install pillow"
        raise GancliError(msg) from None
    except Exception as e:  # array_record, protobuf and numpy each fail differently on damaged files
        raise GancliError(
            f"reading {builder.name} split {split!r} from {builder.data_dir} failed ({type(e).__name__}: "
            f"{one_line(e)}); the prepared files look damaged: delete that folder to rebuild it"
        ) from None


class SplitSource:
    """Random access to one split's rows as stored, for a loader that streams them (gancli.streaming): len(), shape,
    and take(indices) -> (uint8 images [n, H, W, C], int64 labels [n]) in the order asked. Reads nothing at creation
    beyond the split's metadata; safe to call from several threads (array_record reads are)."""

    def __init__(self, builder, split: str):
        if problem := format_problem(builder):
            raise GancliError(problem)
        self.name, self.split = builder.name, split
        self._raw = _is_raw_uint8_images(builder.info.features)
        if self._raw:
            self._image_key, self._label_key = "image", "label"
            self._source = builder.as_data_source(split, deserialize_method=decode.DeserializeMethod.RAW_BYTES)
        else:
            self._image_key, self._label_key = image_and_label_keys(builder)
            self._source = builder.as_data_source(split)
        shape = tuple(builder.info.features[self._image_key].shape)
        if None in shape:
            raise GancliError(f"{builder.name} images vary in size: pass --image-size to train on them centre-cropped and resized")
        self.shape = shape if len(shape) == 3 else shape + (1,)

    def __len__(self) -> int:
        return len(self._source)

    @property
    def nbytes(self) -> int:
        """The split's images as uint8 bytes: what the in-memory path would put on the device."""
        return len(self) * int(np.prod(self.shape))

    def take(self, indices) -> tuple[np.ndarray, np.ndarray]:
        records = self._source.__getitems__([int(i) for i in indices])
        if self._raw:
            feats = [tf_example_pb2.Example.FromString(r).features.feature for r in records]
            pixels = b"".join(f["image"].bytes_list.value[0] for f in feats)
            images = np.frombuffer(pixels, np.uint8).reshape((len(feats),) + self.shape)
            return images, np.asarray([f["label"].int64_list.value[0] for f in feats], np.int64)
        images = np.stack([np.asarray(r[self._image_key]) for r in records]).reshape((len(records),) + self.shape)
        if images.dtype != np.uint8:
            raise GancliError(f"{self.name} images are {images.dtype}; gancli streams uint8 images only")
        if self._label_key is None:
            return images, np.full(len(records), -1, np.int64)
        return images, np.asarray([int(r[self._label_key]) for r in records], np.int64)

    def labels(self) -> np.ndarray:
        """Every row's label, read a chunk at a time (a conditional run's classes)."""
        n = len(self)
        return np.concatenate([self.take(range(s, min(n, s + _CHUNK)))[1] for s in range(0, n, _CHUNK)] or [np.zeros(0, np.int64)])
