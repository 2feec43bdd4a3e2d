"""TensorBoard event files (TFEvents), written by hand: scalars and PNG images, readable by `tensorboard --logdir`.

Why a writer of our own: TensorFlow's tf.summary needs all of TensorFlow; the writers of the tensorboard and
tensorboardX packages would be a new dependency (with protobuf's runtime) of a tool that only writes files; a
hosted tracker such as W&B wants an account and a network. The format is small enough to own in a few dozen
lines, with nothing to install: a file is a sequence of records, each

    uint64 length (little-endian) | uint32 masked crc32c of those 8 bytes | the bytes | uint32 masked crc32c of them

and each record's bytes are one Event protobuf. Only the few fields gancli writes are encoded, with varints, here:

    Event    1 wall_time double, 2 step int64, 3 file_version string, 5 summary Summary
    Summary  1 value repeated Value
    Value    1 tag string, 2 simple_value float, 4 image Image
    Image    1 height int32, 2 width int32, 3 colorspace int32, 4 encoded_image_string bytes (a PNG)

Whoever wants to watch installs tensorboard wherever they like. `read` and
`cut_after` read the same records back (a resumed run cuts the epochs it trains again; the tests compare).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

PREFIX = "events.out.tfevents."  # TensorBoard reads the files in a folder whose names hold "tfevents"
VERSION = "brain.Event:2"  # version 2: TensorBoard detects restarts by session logs, not by out-of-order steps


def _table() -> list[int]:
    """crc32c (Castagnoli, reflected polynomial 0x82F63B78), one entry per byte value."""
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC = _table()


def crc32c(data: bytes) -> int:
    crc, table = 0xFFFFFFFF, _CRC
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """TFRecord's mask, so that a CRC of data holding CRCs is not itself a CRC of zeros."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


# --- protobuf, the few wire types used ---


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64s are ten bytes of two's complement
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, n: int) -> bytes:
    return _key(field, 0) + _varint(n)


def _bytes(field: int, data: bytes) -> bytes:
    return _key(field, 2) + _varint(len(data)) + data


def event(step: int, summary: bytes | None = None, file_version: str | None = None, wall_time: float | None = None) -> bytes:
    """One Event message: a summary (values already encoded) or a file version."""
    out = _key(1, 1) + struct.pack("<d", time.time() if wall_time is None else wall_time) + _int(2, step)
    if file_version is not None:
        out += _bytes(3, file_version.encode())
    if summary is not None:
        out += _bytes(5, summary)
    return out


def scalar_value(tag: str, value: float) -> bytes:
    return _bytes(1, _bytes(1, tag.encode()) + _key(2, 5) + struct.pack("<f", value))


def image_value(tag: str, png: bytes) -> bytes:
    height, width, colorspace = png_header(png)
    image = _int(1, height) + _int(2, width) + _int(3, colorspace) + _bytes(4, png)
    return _bytes(1, _bytes(1, tag.encode()) + _bytes(4, image))


# Colour type in a PNG header -> Summary.Image.colorspace (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA).
COLORSPACES = {0: 1, 4: 2, 2: 3, 3: 3, 6: 4}


def png_header(png: bytes) -> tuple[int, int, int]:
    """(height, width, colorspace) from a PNG's IHDR chunk; ValueError for anything else."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", png[16:24])
    return height, width, COLORSPACES[png[25]]


class Writer:
    """Appends events to a new file in folder, made at the first write (a process that writes nothing leaves no
    file). Callable from several threads: the training loop logs scalars, its picture thread the images."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path: Path | None = None
        self._file = None
        self._lock = threading.Lock()

    def _open(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        # TensorBoard reads a folder's files in name order: a name's time is later than every earlier file's.
        seconds = max([int(time.time())] + [_seconds(p) + 1 for p in files(self.folder)])
        self.path = self.folder / f"{PREFIX}{seconds:010d}.{socket.gethostname()}.{os.getpid()}.gancli"
        self._file = open(self.path, "ab")
        self._file.write(record(event(0, file_version=VERSION)))

    def write(self, step: int, values: list[bytes]) -> None:
        """One event of these encoded values at step, flushed: a live TensorBoard sees it at once."""
        if not values:
            return
        data = record(event(step, b"".join(values)))
        with self._lock:
            if self._file is None:
                self._open()
            self._file.write(data)
            self._file.flush()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.write(step, [scalar_value(tag, v) for tag, v in values.items()])

    def image(self, step: int, tag: str, png: bytes) -> None:
        self.write(step, [image_value(tag, png)])

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def files(folder: Path) -> list[Path]:
    """A folder's event files, in the order TensorBoard reads them."""
    folder = Path(folder)
    return sorted(p for p in folder.glob(PREFIX + "*") if p.is_file()) if folder.is_dir() else []


def _seconds(path: Path) -> int:
    part = path.name[len(PREFIX):].split(".", 1)[0]
    return int(part) if part.isdigit() else 0


# --- reading back ---


def records(data: bytes, check: bool = True) -> tuple[list[tuple[bytes, bytes]], int]:
    """(raw record, its Event bytes) of every whole record, and where they end: a record cut short by a killed
    writer ends the list. check: ValueError on a CRC that does not match."""
    out, at = [], 0
    while at + 12 <= len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        end = at + 12 + length + 4
        if end > len(data):
            break
        body = data[at + 12:at + 12 + length]
        if check and (struct.unpack("<I", data[at + 8:at + 12])[0] != masked_crc(header)
                      or struct.unpack("<I", data[end - 4:end])[0] != masked_crc(body)):
            raise ValueError(f"a record at byte {at} fails its CRC")
        out.append((data[at:end], body))
        at = end
    return out, at


def _fields(message: bytes) -> list[tuple[int, int, Any]]:
    """(field, wire type, value) of a protobuf message: ints for varints, bytes for fixed and length-delimited."""
    out, at = [], 0
    while at < len(message):
        key, at = _read_varint(message, at)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _read_varint(message, at)
        elif wire == 1:
            value, at = message[at:at + 8], at + 8
        elif wire == 5:
            value, at = message[at:at + 4], at + 4
        elif wire == 2:
            n, at = _read_varint(message, at)
            value, at = message[at:at + n], at + n
        else:
            raise ValueError(f"protobuf wire type {wire} is not one an event file holds")
        out.append((field, wire, value))
    return out


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    n, shift = 0, 0
    while True:
        byte = data[at]
        n |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return n, at


def _step(body: bytes) -> int:
    step = next((v for f, w, v in _fields(body) if f == 2 and w == 0), 0)
    return step - (1 << 64) if step >= 1 << 63 else step


def decode(body: bytes) -> dict[str, Any]:
    """One Event as {"wall_time", "step", "file_version"?, "scalars": {tag: value}, "images": {tag: {...}}}."""
    out: dict[str, Any] = {"wall_time": 0.0, "step": _step(body), "scalars": {}, "images": {}}
    for field, _, value in _fields(body):
        if field == 1:
            out["wall_time"] = struct.unpack("<d", value)[0]
        elif field == 3:
            out["file_version"] = value.decode()
        elif field == 5:
            for f, _, v in _fields(value):
                if f != 1:
                    continue
                parts = {f2: v2 for f2, _, v2 in _fields(v)}
                tag = parts[1].decode()
                if 2 in parts:
                    out["scalars"][tag] = struct.unpack("<f", parts[2])[0]
                if 4 in parts:
                    image = {f3: v3 for f3, _, v3 in _fields(parts[4])}
                    out["images"][tag] = {"height": image.get(1, 0), "width": image.get(2, 0),
                                          "colorspace": image.get(3, 0), "png": image.get(4, b"")}
    return out


def read(path: Path) -> list[dict[str, Any]]:
    """Every event of a file, CRCs checked (ValueError when one fails)."""
    found, _ = records(Path(path).read_bytes())
    return [decode(body) for _, body in found]


def cut_after(folder: Path, step: int) -> list[Path]:
    """Drop, from every event file in folder, the events after step (and a last record cut short): a resumed run
    writes those steps again, into a file of its own. The files changed are rewritten whole, then renamed."""
    changed = []
    for path in files(folder):
        data = path.read_bytes()
        found, end = records(data, check=False)  # a CRC check of every image would cost seconds per resume
        kept = [raw for raw, body in found if _step(body) <= step]
        if len(kept) == len(found) and end == len(data):
            continue
        tmp = path.with_name(f".gancli-events-cut.{os.getpid()}.tmp")  # no "tfevents": TensorBoard reads any such name
        tmp.write_bytes(b"".join(kept))
        os.replace(tmp, path)
        changed.append(path)
    return changed
