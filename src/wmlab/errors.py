"""The one error type users see.

Every user mistake (unknown config key, context value outside physical bounds, missing dataset, corrupt
checkpoint, ...) raises :class:`WmlabError` with a message that says what is wrong and how to fix it. The
CLI prints it without a traceback and exits with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class WmlabError(Exception):
    """A mistake the user can fix; the message says how."""


class WmlabWarning(UserWarning):
    """Something the user should know that does not stop the work (a damaged checkpoint skipped, a file ignored).

    Library users filter it with :mod:`warnings`; the CLI prints each as one ``warning:`` line."""


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``name`` (for "did you mean" hints), or None if nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown_name_error(kind: str, name: str, valid: Iterable[str]) -> WmlabError:
    """A :class:`WmlabError` for an unknown name, listing the valid ones and the nearest."""
    valid = sorted(valid)
    hint = nearest(name, valid)
    msg = f"unknown {kind} {name!r}; valid: {', '.join(valid)}"
    if hint is not None:
        msg += f" (did you mean {hint!r}?)"
    return WmlabError(msg)
