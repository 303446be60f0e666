"""``ccrop clean``'s sweep: box tables (and temp files) in shared memory whose creator is gone."""
from __future__ import annotations

import os
import struct
from pathlib import Path

from .files import alive, creator_lock, shm_dir, stale_temps, unlink_quietly
from .table_layout import HEADER_WORDS, MAGIC, W_CREATOR


def orphaned_tables(directory: str | os.PathLike | None = None) -> list[Path]:
    """Tables (and their creators' temp files) in ``directory`` (default ``shm_dir()``) whose creator is gone.

    A table counts as orphaned only when no process holds its creator lock and its
    recorded creator pid is not alive on this host: a live table is never listed.
    """
    directory = Path(directory) if directory is not None else shm_dir()
    found = list(stale_temps(directory))
    for entry in sorted(os.listdir(directory)):
        path = directory / entry
        if entry.startswith(".") or not path.is_file() or path.is_symlink():
            continue
        with creator_lock(path) as fd:  # None while the creator (or a forked child of it) lives
            if fd is not None and _orphaned(fd):
                found.append(path)
    return found


def remove_orphaned(path: Path) -> bool:
    """Unlink ``path`` (from ``orphaned_tables``) if it is still orphaned: checked with its creator lock taken, on
    the very file the name points to, so a live table that took the name meanwhile is never removed."""
    if path.name.startswith("."):  # a stale temp file: its writer's pid is gone (see ``stale_temps``)
        unlink_quietly(path)
        return True
    with creator_lock(path) as fd:
        try:
            if fd is None or os.fstat(fd).st_ino != os.lstat(path).st_ino or not _orphaned(fd):
                return False
            os.unlink(path)
        except OSError:
            return False
        return True


def _orphaned(fd: int) -> bool:
    """Whether the open file ``fd`` is a table whose recorded creator pid is not alive on this host."""
    try:
        head = os.pread(fd, 8 * HEADER_WORDS, 0)
    except OSError:
        return False
    if len(head) < 8 * HEADER_WORDS or head[:8] != MAGIC:
        return False
    return not alive(struct.unpack_from("<Q", head, 8 * W_CREATOR)[0])
