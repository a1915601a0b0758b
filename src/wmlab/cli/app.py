"""The ``wmlab`` application object, its console and small argument parsers shared by the command modules."""

from __future__ import annotations

import typer
from rich.console import Console

from wmlab.errors import WmlabError

app = typer.Typer(
    help="wmlab: world models that generalize.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)  # a line stays one line in a log file (no wrap at 80 columns)
train_app = typer.Typer(help="Train agents and world models.", no_args_is_help=True)
app.add_typer(train_app, name="train")


def parse_assignments(items: list[str]) -> dict[str, float]:
    """``["gravity=4", "actuator_strength=0.5"]`` -> ``{"gravity": 4.0, "actuator_strength": 0.5}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise WmlabError(f"context values look like feature=value (for example gravity=4.0), got {item!r}")
        try:
            out[key] = float(value)
        except ValueError:
            raise WmlabError(f"context value for {key!r} must be a number, got {value!r}") from None
    return out


def config_overrides(args: list[str], command: str, hints: dict[str, str] | None = None) -> list[str]:
    """The extra ``KEY=VALUE`` arguments of ``command``; an option it does not know is refused in one line (typer
    passes unknown options through with the overrides), with a hint where one is known (``hints``: option -> hint)."""
    for arg in args:
        if arg.startswith("-"):
            option = arg.split("=", 1)[0]
            hint = (hints or {}).get(option)
            raise WmlabError(
                f"`{command}` has no option {option}; "
                + (hint or f"see `{command} --help`, and give config keys as KEY=VALUE (model.deter=256)")
            )
    return args
