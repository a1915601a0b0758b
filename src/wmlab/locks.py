"""One writer per folder: an advisory lock that a second process writing the same run, dataset or cache meets.

Two writers on one folder would interleave their writes and delete each other's temporary files (a cluster that
retries a job while the first attempt still runs does exactly that). Every wmlab writer (training, collection,
import, encoding) holds :func:`exclusive_writer` on its folder while it writes; readers (evaluation, planning,
reports) take no lock and may run beside it.

The lock is ``flock`` on a hidden file beside the folder (``.<name>.wmlab-lock``: inside, it would make a new run
folder non-empty). The kernel releases it when the holder dies, even by SIGKILL, so a stale lock cannot block a
re-run. It is re-entrant within a process (a trainer calling a writer of the same folder), and not enforced on
filesystems without ``flock`` support (some network mounts), where it degrades to no lock.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wmlab.errors import WmlabError

_held: dict[Path, tuple[int, int]] = {}  # lock path -> (file descriptor, depth) of the locks this process holds


def lock_path(folder: str | Path, part: str | None = None) -> Path:
    """The lock file of ``folder`` (or of one ``part`` of it): a hidden sibling, ``.<name>[.<part>].wmlab-lock``."""
    folder = Path(folder).absolute()
    return folder.parent / f".{folder.name}{'.' + part if part else ''}.wmlab-lock"


@contextmanager
def exclusive_writer(folder: str | Path, what: str = "folder", part: str | None = None) -> Iterator[None]:
    """Hold the writer lock of ``folder`` (a run, a dataset), or of one ``part`` of it (a feature cache of a dataset,
    so that two caches of one dataset can be encoded at once), for the ``with`` block.

    Raises :class:`WmlabError` naming the process that holds it when another process is writing there."""
    path = lock_path(folder, part)
    if path in _held:  # this process holds it already
        fd, depth = _held[path]
        _held[path] = (fd, depth + 1)
        try:
            yield
        finally:
            fd, depth = _held[path]
            _held[path] = (fd, depth - 1)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise WmlabError(
            f"the {what} {Path(folder)} is being written by {holder}; wait for it to end (or stop it), then run "
            "this again"
        ) from None
    except OSError:  # no flock on this filesystem: proceed unlocked rather than refuse all work
        pass
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"process {os.getpid()}".encode(), 0)
    _held[path] = (fd, 1)
    try:
        yield
    finally:
        fd, depth = _held[path]
        if depth > 1:
            _held[path] = (fd, depth - 1)
        else:
            del _held[path]
            os.ftruncate(fd, 0)
            os.close(fd)  # releases the lock
