"""TensorBoard events beside metrics.jsonl: read back by a decoder of this file's own (bit-by-bit CRC, its own
protobuf walk), every scalar equal to the metrics log's, every picture the epoch's PNG; a resume writes no step twice."""

from __future__ import annotations

import io
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from gancli import events, images, rundir, train
from helpers import random_images, tiny, use_fake_data


@pytest.fixture
def fake_data(monkeypatch):
    use_fake_data(monkeypatch, random_images(256), np.zeros(200, np.int64))


def crc32c_bitwise(data: bytes) -> int:
    """crc32c one bit at a time: no table, so a wrong table in gancli.events cannot agree with it."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def masked(data: bytes) -> int:
    crc = crc32c_bitwise(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(data: bytes, at: int):
    n = shift = 0
    while True:
        n |= (data[at] & 0x7F) << shift
        shift += 7
        at += 1
        if data[at - 1] < 0x80:
            return n, at


def fields(message: bytes) -> dict[int, list]:
    out: dict[int, list] = {}
    at = 0
    while at < len(message):
        key, at = varint(message, at)
        size = {0: None, 1: 8, 5: 4}.get(key & 7)
        if key & 7 == 0:
            value, at = varint(message, at)
        elif key & 7 == 2:
            n, at = varint(message, at)
            value, at = message[at:at + n], at + n
        else:
            value, at = message[at:at + size], at + size
        out.setdefault(key >> 3, []).append(value)
    return out


def read_events(path: Path) -> list[dict]:
    """Every event of a TFEvents file as {"step", "version", "scalars", "images"}, each record's CRCs checked."""
    data, at, out = path.read_bytes(), 0, []
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[at + 8:at + 12])[0] == masked(header)
        body = data[at + 12:at + 12 + length]
        assert struct.unpack("<I", data[at + 12 + length:at + 16 + length])[0] == masked(body)
        at += 16 + length
        event = fields(body)
        found = {"step": event.get(2, [0])[0], "version": event.get(3, [b""])[0].decode(), "scalars": {}, "images": {}}
        assert struct.unpack("<d", event[1][0])[0] > 1.7e9  # wall time: seconds since 1970
        for value in fields(event[5][0]).get(1, []) if 5 in event else []:
            v = fields(value)
            tag = v[1][0].decode()
            if 2 in v:
                found["scalars"][tag] = struct.unpack("<f", v[2][0])[0]
            if 4 in v:
                img = fields(v[4][0])
                found["images"][tag] = {"height": img[1][0], "width": img[2][0], "colorspace": img[3][0], "png": img[4][0]}
        out.append(found)
    assert at == len(data)
    return out


def scalars_by_step(run: Path) -> dict[int, dict[str, float]]:
    """{step: {tag: value}} over every events file of a run folder, failing on a (step, tag) written twice."""
    out: dict[int, dict[str, float]] = {}
    for path in events.files(run):
        for e in read_events(path):
            for tag, value in e["scalars"].items():
                assert tag not in out.setdefault(e["step"], {}), f"step {e['step']} {tag} written twice"
                out[e["step"]][tag] = value
    return out


def expected(run: Path) -> dict[int, dict[str, float]]:
    """metrics.jsonl's numbers as events hold them: float32, by step, the step itself not a tag."""
    records = [json.loads(line) for line in (run / rundir.METRICS).read_text().splitlines()]
    return {r["step"]: {k: float(np.float32(v)) for k, v in r.items() if k != "step" and isinstance(v, (int, float))}
            for r in records}


def test_crc32c_and_the_record_frame():
    assert events.crc32c(b"123456789") == 0xE3069283  # the check value of CRC-32C
    data = bytes(range(256)) * 3
    assert events.crc32c(data) == crc32c_bitwise(data)
    framed = events.record(b"abc")
    assert framed[:8] == struct.pack("<Q", 3) and framed[12:15] == b"abc"
    assert struct.unpack("<I", framed[-4:])[0] == masked(b"abc")


def test_a_run_writes_its_metrics_and_pictures_as_events(tmp_path, fake_data):
    run = tmp_path / "run"
    train.train(tiny(epochs=2), run)
    [path] = events.files(run)
    found = read_events(path)
    assert found[0]["version"] == "brain.Event:2"
    assert scalars_by_step(run) == expected(run)
    assert set(expected(run)[20]) >= {"epoch", "d_loss", "g_loss", "d_real", "d_fake", "it_per_s", "lr", "momentum"}
    pictures = {e["step"]: e["images"]["samples"] for e in found if e["images"]}
    assert sorted(pictures) == [20, 40]
    side = 10 * (4 + 1) + 1  # 100 samples of 4x4 in a 10 x 10 grid, a pixel between
    side *= images.MIN_WIDTH // side
    for epoch, (step, picture) in enumerate(sorted(pictures.items()), 1):
        assert picture["png"] == (run / "samples" / f"epoch_{epoch:04d}.png").read_bytes()
        decoded = mpimg.imread(io.BytesIO(picture["png"]), format="png")
        assert decoded.shape[:2] == (picture["height"], picture["width"]) == (side, side)
        assert picture["colorspace"] == {1: 1, 2: 2, 3: 3, 4: 4}[decoded.shape[2]]


class Measured:
    """An --eval-every stand-in: a figure per seed and epoch, as per_epoch.Every's would be merged into the record."""

    def check(self, config):
        return ["fake"]

    def build(self, config, game, data_dir):
        return self

    def run(self, state, epoch, epoch_seconds, reporter):
        return [{"fake_score": epoch + 0.25 * s, "eval_s": 0.5} for s in range(2)]


def test_every_evaluation_and_every_seed_has_its_events(tmp_path, fake_data):
    run = tmp_path / "run"
    train.train(tiny(epochs=2, seeds=2), run, evaluations=Measured())
    assert not events.files(run)  # the seeds' folders have them
    for s in range(2):
        seed = run / f"seed-{s}"
        assert scalars_by_step(seed) == expected(seed)
        assert [scalars_by_step(seed)[step]["fake_score"] for step in (20, 40)] == [1 + 0.25 * s, 2 + 0.25 * s]


def test_a_resumed_run_writes_no_step_twice(tmp_path, fake_data):
    run = tmp_path / "run"
    train.train(tiny(epochs=3, ckpt_every=1), run)
    # The last checkpoint lost: the resume goes on from step 40, and trains epoch 3 (step 60) again.
    shutil.rmtree(run / rundir.CHECKPOINTS / "60")
    (first,) = events.files(run)
    assert 60 in {e["step"] for e in read_events(first)}
    config, resuming = train.resolve_config(run, None, None, {"epochs": 4}, resume=True)
    train.train(config, run, resume=resuming)
    old, new = events.files(run)
    assert old == first
    assert {e["step"] for e in read_events(old)} == {0, 20, 40}  # the file-version event is step 0
    assert {e["step"] for e in read_events(new) if e["scalars"]} == {60, 80}
    assert {e["step"] for e in read_events(new) if e["images"]} == {60, 80}
    assert scalars_by_step(run) == expected(run) and sorted(expected(run)) == [20, 40, 60, 80]


def test_a_resume_that_is_up_to_date_cuts_the_events_with_the_metrics_log(tmp_path, fake_data):
    run = tmp_path / "run"
    train.train(tiny(epochs=3, ckpt_every=1), run)
    shutil.rmtree(run / rundir.CHECKPOINTS / "60")
    config, resuming = train.resolve_config(run, None, None, {"epochs": 2}, resume=True)
    assert train.train(config, run, resume=resuming).status == "up-to-date"
    assert len(events.files(run)) == 1 and sorted(scalars_by_step(run)) == [20, 40]
    assert scalars_by_step(run) == expected(run)


def test_a_record_cut_short_by_a_kill_is_dropped(tmp_path):
    with events.Writer(tmp_path) as w:
        w.scalars(10, {"a": 1.0})
        w.scalars(20, {"a": 2.0})
    path = w.path
    path.write_bytes(path.read_bytes() + events.record(events.event(30, events.scalar_value("a", 3.0)))[:-3])
    assert events.cut_after(tmp_path, 100) == [path]
    assert [(e["step"], e["scalars"]) for e in read_events(path)] == [(0, {}), (10, {"a": 1.0}), (20, {"a": 2.0})]
    assert [e["scalars"] for e in events.read(path)] == [{}, {"a": 1.0}, {"a": 2.0}]
    assert events.cut_after(tmp_path, 100) == []  # nothing more to cut: the file is left alone
