"""The gancli command line (the console script `gancli`, which runs main): the Typer commands, and everything Rich
draws. Importing this package is light: `app` (gancli.cli.commands, which imports Typer, Rich and numpy) is imported
on first use, so that main can watch for Ctrl-C before any of that is imported."""

from __future__ import annotations

import signal


def main() -> None:
    """The console script: a SIGINT from the first line on stops it in one line and exit 130. Before the command's
    own first line (while Python imports the CLI and Typer parses the options) nothing is running that could stop
    more cleanly, and Python would print a KeyboardInterrupt traceback (or Typer exit 130 without a word)."""
    from gancli.cli.early import before_the_command

    signal.signal(signal.SIGINT, before_the_command)
    from gancli.cli.commands import app

    app(prog_name="gancli")


def __getattr__(name: str):
    if name == "app":
        from gancli.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "main"]
