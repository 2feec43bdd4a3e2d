"""The gancli command line (the console script `gancli`): the Typer commands, and everything Rich draws."""

from gancli.cli.commands import app

__all__ = ["app"]
