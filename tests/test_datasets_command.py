"""`gancli datasets` on data dirs a user may mistype: a file, a name with brackets."""

from __future__ import annotations

from typer.testing import CliRunner

from gancli.cli import app


def test_a_file_as_data_dir_is_refused_in_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    result = CliRunner().invoke(app, ["datasets", "--data-dir", str(tmp_path / "notes.txt")])
    assert result.exit_code == 1 and result.output == f"error: --data-dir {tmp_path / 'notes.txt'} is a file, not a folder\n"


def test_brackets_in_the_data_dir_are_shown(tmp_path):
    # Rich markup once ate "[x]" from the table's title.
    root = tmp_path / "data [x]"
    result = CliRunner().invoke(app, ["datasets", "--data-dir", str(root)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert f"Datasets in {root}" in result.output
