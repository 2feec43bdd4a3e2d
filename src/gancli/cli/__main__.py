"""`python -m gancli.cli`: the same commands as the `gancli` script."""

from gancli.cli import main

main()
