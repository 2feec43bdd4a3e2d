"""The fixed feature networks that gancli's sample-quality metrics are measured with, one per dataset.

Each is a small convolutional classifier trained once by scripts/train_feature_net.py; its weights ship in
this folder as an .npz (read with allow_pickle=False) whose sha256 is pinned below, so every number a report
gives was measured with exactly these weights. Metrics use the penultimate layer ("features", 128 ReLU
units) and the 10 logits.

Inputs are gancli's images: float32 in [0, 1] (bytes / 255), shaped (N, 28, 28, 1) or (N, 28, 28).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import zipfile
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gancli.errors import GancliError

FOLDER = Path(__file__).parent
IMAGE_SHAPE = (28, 28, 1)
PIXEL_SCALE = "[0, 1] (bytes / 255), gancli's data.load scale"
BATCH = 1000  # images per compiled call: one shape, so one compilation for any number of images


@dataclasses.dataclass(frozen=True)
class Spec:
    """A shipped network: its name, weights file and pinned sha256."""

    dataset: str
    name: str
    file: str
    sha256: str
    arch: tuple[tuple[str, object], ...] = ()  # FeatureNet fields that differ from its defaults

    @property
    def version(self) -> str:
        """Name plus sha256 prefix: what reports record."""
        return f"{self.name}@{self.sha256[:12]}"


# Pinned from the files scripts/train_feature_net.py wrote; retraining changes them on purpose only.
SPECS: dict[str, Spec] = {
    s.dataset: s
    for s in (
        Spec("mnist", "gancli-mnist-cnn-v1", "mnist.npz",
             "3eb9be407f5069476d42269917a873d83316289028890e5de802a3dc10f3f0f5"),
        # SAME pooling keeps the 7x7 map's last row and column (a garment's edges); it and 20 epochs took the
        # test accuracy from 91.7% to 92.0% (scripts/train_feature_net.py, RECIPES).
        Spec("fashion_mnist", "gancli-fashion_mnist-cnn-v1", "fashion_mnist.npz",
             "bdbb049edda6bf988e39218aaadb09b8b9ed02326cf53172fa0095fc73699fbe",
             arch=(("pool_padding", "SAME"),)),
    )
}


def space_to_depth(x):
    """(N, H, W, C) -> (N, H/2, W/2, 4C): the first conv then runs at half resolution, 4x cheaper on a CPU."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // 2, w // 2, 4 * c)


class FeatureNet(nn.Module):
    """s2d -> 2 x conv3x3(32) -> pool -> 2 x conv3x3(64) -> pool -> dense(128) "features" -> dense(10) "logits"."""

    widths: tuple[tuple[int, ...], ...] = ((32, 32), (64, 64))
    n_features: int = 128
    n_classes: int = 10
    dropout: float = 0.3
    pool_padding: str = "VALID"  # VALID: 7x7 -> 3x3, dropping the last row and column; SAME: 7x7 -> 4x4

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = space_to_depth(x.reshape(x.shape[0], *IMAGE_SHAPE))
        for i, stage in enumerate(self.widths):
            for j, width in enumerate(stage):
                h = nn.relu(nn.Conv(width, (3, 3), name=f"conv{i + 1}_{j + 1}")(h))
            h = nn.max_pool(h, (2, 2), (2, 2), padding=self.pool_padding)
        h = nn.Dropout(self.dropout, deterministic=not train)(h.reshape(h.shape[0], -1))
        features = nn.relu(nn.Dense(self.n_features, name="features")(h))
        logits = nn.Dense(self.n_classes, name="logits")(nn.Dropout(self.dropout, deterministic=not train)(features))
        return features, logits


def abstract_params(arch=()):
    """The parameter tree's shapes and dtypes, without computing anything."""
    net = FeatureNet(**dict(arch))
    return jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), jnp.zeros((1, *IMAGE_SHAPE))))["params"]


def _flatten(tree, prefix: str = "") -> dict[str, np.ndarray]:
    """{"conv1_1/kernel": array, ...} from a nested dict."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def params_to_bytes(params) -> bytes:
    """The parameters as .npz bytes that depend on the values only (fixed zip dates), so the sha256 reproduces."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for key, value in sorted(_flatten(jax.device_get(params)).items()):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w") as f:
                np.lib.format.write_array(f, np.asarray(value, np.float32), allow_pickle=False)
    return buf.getvalue()


def params_from_bytes(blob: bytes, source: str, arch=()):
    """The parameter tree from .npz bytes, checked against the architecture's shapes."""
    expected = _flatten(abstract_params(arch))
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            flat = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise GancliError(f"{source} is not a readable weights file ({str(e).splitlines()[0]})") from None
    shapes = {k: tuple(v.shape) for k, v in flat.items()}
    if shapes != {k: tuple(v.shape) for k, v in expected.items()}:
        raise GancliError(f"{source} does not hold this feature network's parameters (got {sorted(shapes)})")
    params: dict = {}
    for key, value in flat.items():
        *path, leaf = key.split("/")
        node = params
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = jnp.asarray(value, jnp.float32)
    return params


@functools.lru_cache(maxsize=4)
def _apply_fn(arch):
    """The network's forward pass, compiled once per process and architecture."""
    net = FeatureNet(**dict(arch))
    return jax.jit(lambda params, x: net.apply({"params": params}, x))


@dataclasses.dataclass(frozen=True, eq=False)
class Network:
    """A loaded, verified feature network."""

    spec: Spec
    params: dict

    @property
    def info(self) -> dict:
        """What a report records about the network."""
        s = self.spec
        return {"name": s.name, "version": s.version, "sha256": s.sha256, "file": s.file, "input": PIXEL_SCALE,
                "features": f"penultimate layer, {FeatureNet.n_features} ReLU units", "logits": FeatureNet.n_classes}

    def features_and_logits(self, images, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """float32 (N, 128) penultimate-layer features and (N, 10) logits of images in [0, 1]; progress(done,
        total) after each batch."""
        return features_and_logits(self.params, images, self.spec.arch, progress)


def features_and_logits(params, images, arch=(), progress=None) -> tuple[np.ndarray, np.ndarray]:
    """float32 (N, 128) features and (N, 10) logits of images in [0, 1] under params, in fixed-size batches;
    progress(done, total) after each batch."""
    x = np.asarray(images, np.float32)
    n = x.shape[0]
    if x.size != n * int(np.prod(IMAGE_SHAPE)):
        raise GancliError(f"the feature network takes 28x28 images, got shape {x.shape[1:]}")
    x = x.reshape(n, *IMAGE_SHAPE)
    apply = _apply_fn(tuple(arch))
    feats = [np.zeros((0, FeatureNet.n_features), np.float32)]
    logits = [np.zeros((0, FeatureNet.n_classes), np.float32)]
    for start in range(0, n, BATCH):
        batch = x[start : start + BATCH]
        pad = BATCH - len(batch)
        f, lg = apply(params, np.pad(batch, ((0, pad), (0, 0), (0, 0), (0, 0))) if pad else batch)
        feats.append(np.asarray(f)[: len(batch)])
        logits.append(np.asarray(lg)[: len(batch)])
        if progress is not None:
            progress(start + len(batch), n)
    return np.concatenate(feats), np.concatenate(logits)


def spec(dataset: str) -> Spec:
    """The shipped network's spec for dataset, or GancliError naming those that have one."""
    if dataset not in SPECS:
        raise GancliError(f"no feature network for {dataset!r}: gancli ships them for {', '.join(SPECS)}")
    return SPECS[dataset]


def load(dataset: str, folder: Path | None = None) -> Network:
    """The dataset's feature network, its weights file checked against the pinned sha256."""
    s = spec(dataset)
    path = Path(folder or FOLDER) / s.file
    try:
        blob = path.read_bytes()
    except OSError:
        raise GancliError(f"the feature network weights {path} are missing: reinstall gancli") from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != s.sha256:
        raise GancliError(
            f"the feature network weights {path} have sha256 {digest[:12]}..., not the pinned "
            f"{s.sha256[:12]}... of {s.name}: the file was altered; reinstall gancli"
        )
    return Network(s, params_from_bytes(blob, str(path), s.arch))


@functools.lru_cache(maxsize=4)
def shipped(dataset: str) -> Network:
    """load(dataset), read and verified once per process."""
    return load(dataset)
