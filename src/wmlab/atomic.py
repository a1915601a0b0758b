"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Write to a temporary file in the same folder, flush, fsync, rename over the target, fsync the folder. A crash
(Ctrl-C, SIGKILL, power loss) at any point leaves the previous version intact.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def default_file_mode() -> int:
    """The mode a plain ``open()`` would give a new file (0o666 minus the umask); mkstemp's 0o600 is too private."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a temporary binary file, then atomically move it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)  # the rename itself reaches the disk


def fsync_path(path: str | Path) -> None:
    """Flush a file written through other means (a memory map, numpy's header writes), or a folder's entries."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: str | Path, prefix: str = "") -> list[Path]:
    """Delete the temporary files that :func:`atomic_write` calls for targets named ``prefix*`` left in ``folder``
    when a kill stopped them before their rename (``.<name>.<random>.tmp``). Returns the deleted paths.

    Call it only where no other process is writing the same targets at the same time (resume, a single writer)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(f".{prefix}*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_torch_save(obj: object, path: str | Path) -> None:
    """``torch.save`` with the atomic protocol (a failing pickle removes the temporary file and writes nothing)."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))
