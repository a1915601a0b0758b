"""The ``wmlab`` command. Thin: each module parses arguments for one area, calls library functions, prints results."""

from __future__ import annotations

import sys
import warnings

import typer
from rich.console import Console
from rich.markup import escape

from wmlab.cli import analysis, data, dreamer, envs, latent, planning, report  # noqa: F401 - importing registers the commands
from wmlab.cli.app import app
from wmlab.errors import WmlabError

__all__ = ["app", "main"]


def one_line(text: str) -> str:
    """A message as a single line: a log file or a terminal shows one error, one line."""
    return " ".join(str(text).split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 - stdlib hook
    """Warnings as one ``warning:`` line on stderr, without the source line Python prints by default."""
    Console(stderr=True, soft_wrap=True).print(
        f"[yellow]warning:[/yellow] {escape(one_line(message))}", highlight=False
    )


def _error(text: str) -> None:
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/bold red] {escape(one_line(text))}", highlight=False)


def main() -> None:
    """Entry point: user mistakes (a wrong file, a missing or unknown option) are printed as one line without a
    traceback and exit with status 2."""
    try:  # recent typer releases carry their own copy of click
        from typer._click import exceptions as click
    except ImportError:  # older ones use click itself
        from click import exceptions as click

    warnings.showwarning = _show_warning
    try:
        status = app(standalone_mode=False)
    except WmlabError as e:
        _error(str(e))
        sys.exit(2)
    except click.NoArgsIsHelpError as e:  # `wmlab train`: the help, as click shows it
        e.show()
        sys.exit(e.exit_code)
    except click.ClickException as e:  # a missing or unknown option, a bad value: click's message, in one line
        context = getattr(e, "ctx", None)
        hint = f" (see `{context.command_path} --help`)" if context is not None else ""
        _error(e.format_message() + hint)
        sys.exit(e.exit_code)
    except typer.Abort:
        Console(stderr=True).print("aborted")
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)
