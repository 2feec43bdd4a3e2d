"""What answers a SIGINT before a command's first line: its own module, so that the package's main and the
commands both use it without importing each other."""

from __future__ import annotations

import os
import sys


def before_the_command(signum: int, frame) -> None:
    """SIGINT before a command's first line (gancli.cli.commands.one_line_errors puts Python's handler back there, or
    the command its own): one line, then exit 130 at once; nothing has been written."""
    command = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else ""
    what = "training" if command == "train" else f"gancli {command}".strip()
    lead = "\n" if os.isatty(1) else ""  # past the ^C the terminal echoed
    os.write(1, f"{lead}interrupted by SIGINT before {what} began: nothing was saved\n".encode())
    os._exit(128 + signum)  # what a shell reports for a process ended by that signal
