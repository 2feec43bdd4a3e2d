"""`gancli train path/to/folder` on folders the tests make: PNG, JPEG and WEBP, colour and grey, odd sizes, nested
class subfolders, one corrupt file and one non-image; the digest that notices a changed folder; and TFDS catalog
datasets by name (a prepared one made here, a missing one refused at once)."""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from gancli import checkpoint, data
from gancli.cli import app
from gancli.data import image_sets
from gancli.errors import GancliError

runner = CliRunner()
SIZES = [(9, 13), (17, 11), (12, 12), (31, 7), (8, 20), (15, 16)]
SMALL = ["--set", "generator.hidden=16,8", "--set", "discriminator.units=8,16", "--batch-size", "4"]
# The paper's MLP shrunk, which compiles in a fraction of dcgan's time on a CPU.
MLP = ["--preset", "paper", "--set", "generator.hidden=16", "--set", "discriminator.units=8", "--set", "discriminator.pieces=2",
       "--batch-size", "4"]


def make_folder(root: Path, per_class: int = 12, grey_every: int = 4) -> dict[str, int]:
    """cats/ and dogs/ (each with a nested subfolder) of PNG, JPEG and WEBP images of odd sizes, every grey_every-th
    one grey; cats/broken.png is a cut-off PNG, dogs/notes.txt no image. The readable images' class by path."""
    rng = np.random.default_rng(0)
    classes = {}
    for label, name in enumerate(("cats", "dogs")):
        for i in range(per_class):
            w, h = SIZES[i % len(SIZES)]
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            image = Image.fromarray(pixels[..., 0]) if i % grey_every == 0 else Image.fromarray(pixels)
            folder = root / name / ("indoor" if i % 2 else "")
            folder.mkdir(parents=True, exist_ok=True)
            suffix = (".png", ".jpg", ".webp")[i % 3]
            path = folder / f"{name}{i:02d}{suffix}"
            image.save(path, quality=90) if suffix != ".png" else image.save(path)
            classes[path.relative_to(root).as_posix()] = label
    good = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(good, "PNG")
    (root / "cats" / "broken.png").write_bytes(good.getvalue()[:40])  # its header, then nothing
    (root / "dogs" / "notes.txt").write_text("not an image")
    return classes


@pytest.fixture
def folder(tmp_path) -> tuple[Path, dict[str, int]]:
    root = tmp_path / "My Photos"
    return root, make_folder(root)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_a_folder_is_built_with_its_labels_splits_and_digest(folder, tmp_path, warnings_logged):
    root, classes = folder
    name = data.use_folder(root, tmp_path / "tfds", image_size=8)
    expected = {"train": [], "validation": [], "test": []}
    for rel in sorted(classes):
        expected[image_sets.split_of(rel)].append(classes[rel])
    total = 0
    for split, labels in expected.items():
        if not labels:
            continue
        images, got = data.load(name, split, tmp_path / "tfds")
        assert images.shape == (len(labels), 8, 8, 3) and images.dtype == np.float32 and 0 <= images.min() <= images.max() <= 1
        assert got.tolist() == labels, split
        total += len(labels)
    assert total == len(classes) == 24 and len(expected["train"]) >= 16
    assert len(warnings_logged) == 1
    assert warnings_logged[0].startswith(f"{root.absolute()}: skipped 1 unreadable image file (--strict refuses them): cats/broken.png (")
    files = sorted([*classes, "cats/broken.png"])
    lines = "".join(f"{rel}\t{(root / rel).stat().st_size}\t{hashlib.sha256((root / rel).read_bytes()).hexdigest()}\n" for rel in files)
    digest = hashlib.sha256(lines.encode()).hexdigest()
    assert name == f"folder_my_photos_8x8x3_{digest[:10]}"
    record = data.provenance(name, tmp_path / "tfds")
    assert list(record["sha256"].values()) == [digest] and "25 image files, 24 used" in record["source"]
    assert "LANCZOS" in record["preprocessing"] and record["pixel_scale"] == 255.0
    assert data.use_folder(root, tmp_path / "tfds", image_size=8) == name  # built once: found again, not rebuilt


def test_the_split_is_stable_and_near_five_percent_each():
    names = [f"class{i % 7}/img{i:05d}.png" for i in range(20_000)]
    splits = [image_sets.split_of(n) for n in names]
    assert splits == [image_sets.split_of(n) for n in names]
    for split in ("test", "validation"):
        assert 0.045 < splits.count(split) / len(names) < 0.055


def test_fit_crops_the_centre_square_and_converts():
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, 10:20] = 255  # only the centre square is white
    out = image_sets.fit(Image.fromarray(wide), 5, 3)
    assert out.shape == (5, 5, 3) and out.dtype == np.uint8 and (out == 255).all()
    tall = np.zeros((31, 10), np.uint8)
    tall[10:20] = 200  # rows 10-19 of 31: (31 - 10) // 2 = 10 rows cut above, 11 below
    grey = image_sets.fit(Image.fromarray(tall), 4, 1)
    assert grey.shape == (4, 4, 1) and (grey == 200).all()
    rgb = image_sets.fit(Image.fromarray(np.full((6, 6), 77, np.uint8)), 6, 3)
    assert rgb.shape == (6, 6, 3) and (rgb == 77).all()


def test_channels_follow_the_majority_unless_given(tmp_path):
    root = tmp_path / "grey"
    make_folder(root, per_class=6, grey_every=1)  # every image grey
    assert "_8x8x1_" in data.use_folder(root, tmp_path / "tfds", image_size=8)
    name = data.use_folder(root, tmp_path / "tfds", image_size=8, channels=3)
    assert "_8x8x3_" in name and data.load(name, "train", tmp_path / "tfds")[0].shape[-1] == 3
    assert image_sets.majority_channels(5, 5) == 3 and image_sets.majority_channels(6, 5) == 1


def test_strict_refuses_the_unreadable_file(folder, tmp_path):
    root, _ = folder
    with pytest.raises(GancliError, match=r"--strict refuses 1 unreadable image file: cats/broken.png \("):
        data.use_folder(root, tmp_path / "tfds", image_size=8, strict=True)
    data.use_folder(root, tmp_path / "tfds", image_size=8)  # built, skipping it
    with pytest.raises(GancliError, match="--strict refuses 1 unreadable image file: cats/broken.png"):
        data.use_folder(root, tmp_path / "tfds", image_size=8, strict=True)  # and refused again from the build's record


def test_empty_and_non_image_folders_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(invoke("train", tmp_path / "empty", "--data-dir", tmp_path / "tfds", "--ckpt", tmp_path / "a"),
                   "holds no images (.png, .jpg, .jpeg, .webp)")
    (tmp_path / "texts" / "sub").mkdir(parents=True)
    (tmp_path / "texts" / "a.txt").write_text("a")
    (tmp_path / "texts" / "sub" / "b.csv").write_text("b")
    one_line_error(invoke("train", tmp_path / "texts", "--data-dir", tmp_path / "tfds", "--ckpt", tmp_path / "b"),
                   "holds no images", "(it holds 2 other files)")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"no png at all")
    one_line_error(invoke("train", tmp_path / "bad", "--data-dir", tmp_path / "tfds", "--ckpt", tmp_path / "c"),
                   "no image could be read: 1 unreadable image file: x.png")
    one_line_error(invoke("train", tmp_path / "missing", "--ckpt", tmp_path / "d"), "missing: no such folder")
    assert not (tmp_path / "tfds").exists() or not any((tmp_path / "tfds").iterdir())


def test_a_changed_folder_is_noticed_and_built_anew(folder, tmp_path, capsys):
    root, _ = folder
    first = data.use_folder(root, tmp_path / "tfds", image_size=8)
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "dogs" / "added.png")
    added = data.use_folder(root, tmp_path / "tfds", image_size=8)
    assert added != first and f"has changed since it was built as {first} (25 image files" in capsys.readouterr().err
    assert sum(data.provenance(added, tmp_path / "tfds")["splits"].values()) == 25  # 24 readable and the new one
    path = root / "cats" / "cats00.png"
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")  # one byte changed in place, the size the same
    modified = data.use_folder(root, tmp_path / "tfds", image_size=8)
    assert modified not in (first, added) and "has changed since it was built as" in capsys.readouterr().err
    assert data.load(first, "train", tmp_path / "tfds")[0].shape[1:] == (8, 8, 3)  # the old build is kept


def test_one_tiny_conditional_epoch_on_a_folder(folder, tmp_path):
    root, classes = folder
    run = tmp_path / "run"
    result = invoke("train", root, "--image-size", 8, "--conditional", "--epochs", 1, "--data-dir", tmp_path / "tfds",
                    "--ckpt", run, *SMALL)
    assert result.exit_code == 0, result.output
    config = checkpoint.load_run(run).config
    assert config.dataset.startswith("folder_my_photos_8x8x3_") and config.preset == "dcgan"
    assert config.conditional and config.n_classes == 2
    meta = checkpoint.load_run(run).metadata
    assert meta["data_shape"] == [8, 8, 3] and meta["provenance"]["sha256"]
    again = invoke("train", root, "--image-size", 8, "--conditional", "--data-dir", tmp_path / "tfds", "--ckpt", run, "--epochs", 1, *SMALL)
    assert again.exit_code == 0 and "already trained to epoch 1" in " ".join(again.output.split())
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "dogs" / "added.png")
    changed = invoke("train", root, "--image-size", 8, "--conditional", "--data-dir", tmp_path / "tfds", "--ckpt", run, "--epochs", 2, *SMALL)
    assert changed.exit_code == 1 and "has changed since it was built as" in changed.stderr
    assert f"{run} trains {config.dataset!r}, built from the folder as it was; its files have changed since" in changed.stderr.splitlines()[-1]


def test_an_unlabelled_folder_refuses_conditional(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(20):
        Image.fromarray(np.full((5, 7, 3), i * 10, np.uint8)).save(root / f"{i}.png")
    result = invoke("train", root, "--image-size", 8, "--conditional", "--data-dir", tmp_path / "tfds", "--ckpt", tmp_path / "run", *MLP)
    assert result.exit_code == 1 and "Traceback" not in result.output  # the lines of its build come before the error
    assert result.stderr.splitlines()[-1].endswith("has no labels to condition on (an image folder's labels are its class subfolders)")


def test_image_options_need_a_folder_or_a_catalog_name(tmp_path):
    one_line_error(invoke("train", "mnist", "--image-size", 8, "--ckpt", tmp_path / "a"),
                   "--image-size applies to a folder of images or a TFDS catalog dataset, not to gancli's own 'mnist'")
    (tmp_path / "f").mkdir()
    one_line_error(invoke("train", tmp_path / "f", "--download", "--ckpt", tmp_path / "b"), "--download applies to a TFDS catalog dataset")


# ---- TFDS catalog datasets ---------------------------------------------------------------------------------------


def prepare_fake_beans(data_dir: Path) -> None:
    """A dataset named as the catalog's beans, prepared in data_dir: PNG-encoded Image features of varying sizes."""
    import tensorflow_datasets as tfds

    class Beans(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        name = "beans"
        VERSION = tfds.core.Version("0.1.0")

        def _info(self):
            features = tfds.features.FeaturesDict({"id": tfds.features.Text(), "image": tfds.features.Image(shape=(None, None, 3)),
                                                   "label": tfds.features.ClassLabel(names=["a", "b", "c"])})
            return tfds.core.DatasetInfo(builder=self, features=features)

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(24), "test": self._generate_examples(6)}

        def _generate_examples(self, n):
            rng = np.random.default_rng(n)
            for i in range(n):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (10 + i, 14, 3), dtype=np.uint8)).save(buf, "PNG")
                yield i, {"id": str(i), "image": buf.getvalue(), "label": i % 3}

    builder = Beans(data_dir=data_dir)
    builder.download_and_prepare(file_format="array_record", download_config=tfds.download.DownloadConfig(try_download_gcs=False))


def test_a_prepared_catalog_dataset_is_resized_and_trained_on(tmp_path):
    prepare_fake_beans(tmp_path / "tfds")
    one_line_error(invoke("train", "beans", "--data-dir", tmp_path / "tfds", "--ckpt", tmp_path / "a"),
                   "beans images vary in size: pass --image-size")
    result = invoke("train", "beans", "--image-size", 8, "--epochs", 1, "--data-dir", tmp_path / "tfds",
                    "--ckpt", tmp_path / "run", *MLP)
    assert result.exit_code == 0, result.output
    config = checkpoint.load_run(tmp_path / "run").config
    assert config.dataset == "tfds_beans_8x8x3" and config.preset == "paper"
    images, labels = data.load("tfds_beans_8x8x3", "test", tmp_path / "tfds")
    import tensorflow_datasets as tfds

    source = tfds.builder_from_directory(tmp_path / "tfds" / "beans" / "0.1.0").as_data_source("test")
    rows = [source[i] for i in range(len(source))]  # the catalog's rows in its order, each fitted as a folder's
    assert images.shape == (6, 8, 8, 3) and labels.tolist() == [int(r["label"]) for r in rows]
    fitted = np.stack([image_sets.fit(Image.fromarray(r["image"]), 8, 3) for r in rows])
    assert np.array_equal(images, fitted / np.float32(255))
    assert "TFDS beans 0.1.0" in data.provenance("tfds_beans_8x8x3", tmp_path / "tfds")["source"]


@pytest.mark.parametrize(("name", "says"), [("celeb_a", "celeb_a is in the TFDS catalog but not prepared"),
                                            ("tfds:cifar10", "cifar10 is in the TFDS catalog but not prepared"),
                                            ("no_such_set_here", "not in the TFDS catalog")])
def test_a_catalog_name_not_prepared_is_one_line_at_once(name, says, tmp_path):
    start = time.perf_counter()
    one_line_error(invoke("train", name, "--image-size", 8, "--data-dir", tmp_path / "tfds", "--ckpt", tmp_path / "a"), says)
    assert time.perf_counter() - start < 10
    if name != "no_such_set_here":
        assert "--download" in invoke("train", name, "--image-size", 8, "--data-dir", tmp_path / "tfds", "--ckpt", tmp_path / "a").stderr
