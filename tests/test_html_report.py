"""`gancli report`: one self-contained HTML page of a tiny two-seed run (trained and evaluated once for the module),
read back as HTML here and opened in headless Chromium where it is installed."""

from __future__ import annotations

import base64
import html
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gancli import train
from gancli.cli import app
from helpers import tiny

pytestmark = pytest.mark.usefixtures("fake_data_for_module")
runner = CliRunner()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def ok(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """Two seeds, two epochs (a sample grid each), and a Parzen report across the seeds."""
    path = tmp_path_factory.mktemp("runs") / "run"
    train.train(tiny(epochs=2, seeds=2), path)
    ok("evaluate", path, "--n-samples", 100, "--n-valid", 50, "--sigmas", "0.1,0.2,0.4")
    return path


class Page(HTMLParser):
    """What a page holds: the ids, the images' sources, every attribute that names a resource, the scripts."""

    def __init__(self, text: str):
        super().__init__()
        self.ids, self.images, self.links, self.tags, self.text = [], [], [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        self.links += [v for k, v in attrs.items() if k in ("src", "href", "srcset", "action", "data") and v]

    def handle_data(self, data):
        self.text.append(data)


def test_the_page_holds_every_section_inline(run_dir, tmp_path):
    out = tmp_path / "new" / "page.html"  # its folder made
    assert ok("report", run_dir, "--out", out).output.strip() == f"report: {out}"
    text = out.read_text()
    page = Page(text)
    for key in ("config", "curves", "samples", "evaluations", "seeds"):
        assert f"run-0-{key}" in page.ids
    # Nothing but the page itself: every image inline, no script, no stylesheet or font fetched, and a policy
    # that makes the browser refuse anything else.
    assert "script" not in page.tags and "link" not in page.tags
    assert all(link.startswith(("data:image/png;base64,", "#")) for link in page.links), page.links
    assert "http://" not in text and "https://" not in text and "url(" not in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in html.unescape(text)
    for src in page.images:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    words = " ".join(page.text)
    # Two seeds' curves, their two epochs' grids side by side, the Parzen report's picture.
    assert sum("samples after epoch" in alt for alt in _alts(text)) == 4
    assert "seed-0" in words and "seed-1" in words
    assert "batch_size" in words and "Parzen-window log-likelihood" in words
    assert "n_valid" in words and "sigmas" in words  # the report's protocol
    assert "mean over 2 seeds" in words


def _alts(text: str) -> list[str]:
    found = []

    class Alts(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "img":
                found.append(dict(attrs).get("alt", ""))

    Alts().feed(text)
    return found


def test_a_runs_own_page_is_rewritten_and_grids_are_thinned(run_dir, tmp_path):
    run = Path(shutil.copytree(run_dir, tmp_path / "run"))
    ok("report", run)
    ok("report", run, "--grids", 1)  # its own report.html: rewritten without --force
    text = (run / "report.html").read_text()
    assert "1 of 2 epochs shown" in text
    assert sum("samples after epoch" in alt for alt in _alts(text)) == 2  # one per seed


def test_strings_from_the_run_are_escaped(run_dir, tmp_path):
    odd = Path(shutil.copytree(run_dir, tmp_path / 'run <b>&"x"'))
    (odd / "reports" / "parzen.json").write_text((odd / "reports" / "parzen.json").read_text()
                                                  .replace('"seed-0"', '"<script>alert(1)</script>"'))
    ok("report", odd)
    text = (odd / "report.html").read_text()
    assert "<b>" not in text and "<script>" not in text
    assert "run &lt;b&gt;&amp;&quot;x&quot;" in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_a_file_that_is_no_report_is_named_not_fatal(run_dir, tmp_path):
    run = Path(shutil.copytree(run_dir, tmp_path / "run"))
    (run / "reports" / "other.json").write_text("[1, 2]")
    ok("report", run)
    assert "other.json: cannot be shown (not a report written by gancli evaluate)" in (run / "report.html").read_text()


def one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    text = result.output.strip()
    assert text.startswith("error:") and "\n" not in text and "Traceback" not in text, text
    assert fragment in text, text


def test_bad_input_is_one_line(run_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "taken.html").write_text("mine")
    cases = [
        (["report", tmp_path / "missing"], "does not exist"),
        (["report", tmp_path / "empty"], "holds no gancli checkpoint"),
        (["report", run_dir, "--out", tmp_path / "taken.html"], "already exists: pass --force"),
        (["report", run_dir, "--out", tmp_path], "is a folder"),
        (["report", run_dir, "--grids", 0], "--grids must be >= 1"),
    ]
    for args, fragment in cases:
        one_line_error(runner.invoke(app, [str(a) for a in args]), fragment)
    assert (tmp_path / "taken.html").read_text() == "mine"


# --- in a real browser ---


def open_in_chromium(page: Path, profile: Path) -> tuple[str, list[str]]:
    """(the DOM Chromium built from page, the lines of its log about the page: console messages, errors)."""
    result = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                             "--dump-dom", page.absolute().as_uri()], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    # Chromium also logs its own complaints (no D-Bus in a container, say): only lines about the page count.
    problems = [line for line in result.stderr.splitlines()
                if ":CONSOLE" in line or (page.name in line and any(w in line for w in ("Uncaught", "ERR_", "Failed to load")))]
    return result.stdout, problems


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it as root: apt-get install chromium)")


@needs_chromium
def test_chromium_renders_the_page_without_console_errors(run_dir, tmp_path):
    out = tmp_path / "page.html"
    ok("report", run_dir, "--out", out)
    dom, problems = open_in_chromium(out, tmp_path / "profile")
    assert problems == []
    rendered = Page(dom)
    for key in ("config", "curves", "samples", "evaluations", "seeds"):
        assert f"run-0-{key}" in rendered.ids
    assert len(rendered.images) == len(Page(out.read_text()).images) >= 7
    assert "Parzen-window log-likelihood" in " ".join(rendered.text)


@needs_chromium
def test_chromium_check_catches_what_the_page_must_not_do(tmp_path):
    # The same check on a page that fetches an image and runs a failing script: both are reported, so a clean
    # result above means something.
    bad = tmp_path / "bad.html"
    policy = '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; script-src \'unsafe-inline\'">'
    bad.write_text(f'<!DOCTYPE html><html><head>{policy}</head><body><img src="elsewhere.png">'
                   "<script>missing()</script></body></html>")
    _, problems = open_in_chromium(bad, tmp_path / "profile")
    assert any("Uncaught ReferenceError" in line for line in problems), problems
    assert any("elsewhere.png" in line for line in problems), problems
