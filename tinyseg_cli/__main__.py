"""Allow ``python -m tinyseg_cli``."""

from tinyseg_cli.cli.main import run

run()
