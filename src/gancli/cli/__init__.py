"""The gancli command line (the console script `gancli`, which runs main): the Typer commands, and everything Rich
draws. Importing this package is light: `app` (gancli.cli.commands, which imports Typer, Rich and numpy) is imported
on first use, so that main can watch for Ctrl-C before any of that is imported."""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    """The console script: a SIGINT from the first line on stops it in one line and exit 130. Before the command's
    own first line (while Python imports the CLI and Typer parses the options) nothing is running that could stop
    more cleanly, and Python would print a KeyboardInterrupt traceback (or Typer exit 130 without a word)."""
    signal.signal(signal.SIGINT, before_the_command)
    from gancli.cli.commands import app

    app(prog_name="gancli")


def before_the_command(signum: int, frame) -> None:
    """SIGINT before a command's first line (gancli.cli.commands.one_line_errors puts Python's handler back there, or
    the command its own): one line, then exit 130 at once; nothing has been written."""
    command = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else ""
    what = "training" if command == "train" else f"gancli {command}".strip()
    lead = "\n" if os.isatty(1) else ""  # past the ^C the terminal echoed
    os.write(1, f"{lead}interrupted by SIGINT before {what} began: nothing was saved\n".encode())
    os._exit(128 + signum)  # what a shell reports for a process ended by that signal


def __getattr__(name: str):
    if name == "app":
        from gancli.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "before_the_command", "main"]
