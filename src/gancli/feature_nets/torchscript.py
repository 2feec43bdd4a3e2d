"""Read the parameters of a TorchScript archive (torch.jit.save's zip) as numpy arrays, without torch.

The archive's `<prefix>/data.pkl` is a pickle of the module tree; its tensors point, by persistent id, at raw
little-endian storages in `<prefix>/data/<key>`. It is unpickled here by an Unpickler that resolves only these
globals, and nothing else:

- ``torch._utils._rebuild_tensor_v2``: a tensor as (storage, offset, size, stride, ...); rebuilt as a numpy view.
- ``torch.<Type>Storage`` (Float, Double, Half, Long, Int, Short, Char, Byte, Bool): a storage's element type.
- ``collections.OrderedDict``: the (empty) backward-hooks argument of every tensor.
- ``torch.jit._pickle.build_intlist``: how a ``List[int]`` attribute (an asymmetric padding) is stored.
- ``__torch__.<module>.<Class>``: the scripted module classes. Each resolves to an inert record class made here
  that only keeps the pickled attributes; the archive's own code (its `code/` folder) is never read or run.

torch is never imported. Any other global, or a malformed pickle, is a GancliError.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import re
import zipfile

import numpy as np

from gancli.errors import GancliError

# Storage type -> numpy dtype; TorchScript writes storages in the machine's order, little-endian on every
# platform torch ships for.
STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}

_SCRIPT_CLASS = re.compile(r"__torch__(\.[A-Za-z_][A-Za-z0-9_]*)*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ScriptRecord:
    """A scripted module's pickled attributes (its submodules, tensors, ints, lists), and nothing callable."""

    type_name = "?"

    def __setstate__(self, state):
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise GancliError(f"{self.type_name}: the pickled state is not a dict of attributes")
        self.__dict__["attributes"] = dict(state)


@dataclasses.dataclass(frozen=True)
class _Storage:
    dtype: str


@dataclasses.dataclass(frozen=True)
class Archive:
    """What a TorchScript archive holds as data: its tensors and its other plain attributes, by module path."""

    arrays: dict[str, np.ndarray]
    attributes: dict[str, object]  # ints, floats, bools, strings, None and lists of ints, e.g. "...conv.stride"
    types: dict[str, str]  # module path ("" for the root) -> its scripted class name

    @property
    def n_parameters(self) -> int:
        return int(sum(a.size for a in self.arrays.values()))


def _build_intlist(values):
    if not isinstance(values, list) or not all(type(v) is int for v in values):
        raise GancliError("build_intlist got something other than a list of ints")
    return list(values)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names listed in this module's docstring; tensors read from the archive's storages."""

    def __init__(self, file, storages):
        super().__init__(file)
        self._storages = storages  # key -> bytes
        self._record_classes: dict[str, type] = {}

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return self._rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _Storage(STORAGE_DTYPES[name])
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch.jit._pickle" and name == "build_intlist":
            return _build_intlist
        if _SCRIPT_CLASS.fullmatch(module) and _IDENTIFIER.fullmatch(name):
            full = f"{module}.{name}"
            if full not in self._record_classes:
                self._record_classes[full] = type(name, (ScriptRecord,), {"type_name": full})
            return self._record_classes[full]
        raise GancliError(f"refusing to unpickle {module}.{name}: a TorchScript archive's data needs only tensors")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Storage)):
            raise GancliError(f"unexpected persistent id {pid!r:.80} in the archive")
        _, storage, key, _location, numel = pid
        if key not in self._storages:
            raise GancliError(f"the archive names storage {key!r}, which it does not hold")
        raw = self._storages[key]
        dtype = np.dtype(storage.dtype)
        if type(numel) is not int or numel * dtype.itemsize > len(raw):
            raise GancliError(f"storage {key!r} holds {len(raw)} bytes, fewer than {numel} x {dtype}")
        return np.frombuffer(raw, dtype, count=numel)

    @staticmethod
    def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, *metadata):
        if not isinstance(storage, np.ndarray):
            raise GancliError("a tensor's storage is not a storage")
        size, stride = tuple(size), tuple(stride)
        ints = (offset, *size, *stride)
        if len(size) != len(stride) or not all(type(v) is int and v >= 0 for v in ints):
            raise GancliError(f"a tensor has a malformed layout (size {size}, stride {stride}, offset {offset})")
        last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
        if last >= storage.size:
            raise GancliError(f"a tensor of size {size} reaches past its storage of {storage.size} elements")
        item = storage.itemsize
        view = np.lib.stride_tricks.as_strided(
            storage[offset:], shape=size, strides=[s * item for s in stride], writeable=False
        )
        return np.array(view, dtype=storage.dtype.newbyteorder("="))  # a native-order, contiguous copy


def _walk(obj, path: str, out: Archive) -> None:
    """Flatten the record tree into out's dicts, keyed by dotted attribute paths."""
    if isinstance(obj, ScriptRecord):
        out.types[path] = obj.type_name
        for key, value in obj.__dict__.get("attributes", {}).items():
            _walk(value, f"{path}.{key}" if path else key, out)
    elif isinstance(obj, np.ndarray):
        out.arrays[path] = obj
    elif obj is None or isinstance(obj, (bool, int, float, str)):
        out.attributes[path] = obj
    elif isinstance(obj, list) and all(type(v) is int for v in obj):
        out.attributes[path] = list(obj)
    else:
        raise GancliError(f"the archive's {path or 'root'} is a {type(obj).__name__}, not a module, tensor or number")


def read(blob: bytes, source: str = "the archive") -> Archive:
    """The tensors and plain attributes of a TorchScript archive's bytes; GancliError (one line) if it is not one."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            names = z.namelist()
            pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise GancliError(f"{source} is not a TorchScript archive (it has no single <name>/data.pkl)")
            prefix = pickles[0][: -len("data.pkl")]
            data_dir = f"{prefix}data/"
            storages = {n[len(data_dir) :]: z.read(n) for n in names if n.startswith(data_dir) and n != data_dir}
            pkl = z.read(pickles[0])
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise GancliError(f"{source} is not a readable zip archive ({e})") from None
    try:
        root = _RestrictedUnpickler(io.BytesIO(pkl), storages).load()
    except GancliError as e:
        raise GancliError(f"{source}: {e}") from None
    except Exception as e:  # a damaged pickle can fail in many ways; all mean the same to the user
        raise GancliError(f"{source}: cannot unpickle its data.pkl: {type(e).__name__}: {e}") from None
    out = Archive({}, {}, {})
    _walk(root, "", out)
    return out


def read_arrays(blob: bytes, source: str = "the archive") -> dict[str, np.ndarray]:
    """{module path: array}, e.g. "net.layers.conv.weight", of a TorchScript archive's bytes."""
    return read(blob, source).arrays
