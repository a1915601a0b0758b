"""The ``wmlab`` command. Thin: each module parses arguments for one area, calls library functions, prints results."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape

from wmlab.cli import analysis, data, dreamer, envs, latent, planning, report  # noqa: F401 - importing registers the commands
from wmlab.cli.app import app
from wmlab.errors import WmlabError

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: user mistakes are printed without a traceback and exit with status 2."""
    try:
        app()
    except WmlabError as e:
        Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False)
        sys.exit(2)
