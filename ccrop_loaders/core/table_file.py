"""The saved box table file: magic ``CCROPBOX``, the table's words (header + rows) as little-endian uint64, then
a CRC-32 of all that as uint32. Written atomically, read checked against its declared sizes."""
from __future__ import annotations

import errno
import mmap
import os
import struct
import zlib

import numpy as np

from .checks import check_control, check_flag
from .files import free_bytes, no_room, open_regular, replace_atomically, shm_dir
from .table_layout import FILE_MAGIC, HEADER_WORDS, W_CREATOR, W_EPOCH, W_USE_BOXES, W_WRITES, check_header, first_bad_row


def write_table_file(path: str | os.PathLike, words: np.ndarray) -> None:
    """Write a snapshot of a table's words (uint64 (8 + n,), modified here) to ``path`` atomically.

    Written beside the target, fsynced, renamed over it, the folder fsynced: a
    crash at any point leaves the old file or the new. A symlink is written
    through (its target replaced, the link kept); a FIFO, device or folder at
    ``path`` is refused. Stale temp files of killed saves are removed.
    """
    words[0] = np.frombuffer(FILE_MAGIC, dtype=np.uint64)[0]
    words[W_WRITES] = words[W_CREATOR] = 0
    data = words.astype("<u8").tobytes()
    replace_atomically(path, data + struct.pack("<I", zlib.crc32(data)))


def read_table_file(path: str | os.PathLike, *, room_for_table: bool = False) -> np.ndarray:
    """The checked words (header, then rows) of the table file at ``path``, uint64 (8 + n,), read-only and mapped
    from the file (no shared table is made; ``BoxTable.load`` makes one from them).

    Reads the header first and then only the bytes it declares, after checking
    them against the file's size; refuses what is not a regular file (FIFO,
    device, folder). With ``room_for_table``, refuses before reading when
    ``shm_dir()`` has no room for the table these words would fill. A bad file
    raises ``ValueError`` naming it and what is wrong.
    """
    what = f"box table file {str(path)!r}"
    fd = open_regular(path, os.O_RDONLY, what)
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, 8 * HEADER_WORDS, 0)
        check_header(head, what, size - 4 - 8 * HEADER_WORDS, magic=FILE_MAGIC)
        count = (size - 4) // 8 - HEADER_WORDS
        need, free = 8 * (HEADER_WORDS + count), free_bytes(shm_dir())
        if room_for_table and free is not None and need > free:  # the table it would become cannot exist here
            raise OSError(errno.ENOSPC, no_room(f"the box table in {what}", need, shm_dir(), free))
        data = mmap.mmap(fd, size, prot=mmap.PROT_READ)  # read as needed, never copied whole
    finally:
        os.close(fd)
    body = memoryview(data)[: size - 4]  # the mapping goes with the last reference (no close: no BufferError)
    if zlib.crc32(body) != struct.unpack_from("<I", data, size - 4)[0]:
        raise ValueError(f"{what} is corrupt: checksum mismatch")
    words = np.frombuffer(body, dtype="<u8")
    bad = first_bad_row(words[HEADER_WORDS:])
    if bad >= 0:
        raise ValueError(f"{what} is corrupt, rows: row {bad} has y0 > y1 or x0 > x1")
    check_control(f"{what}: epoch", int(words[W_EPOCH]), 2**63 - 1)
    check_flag(f"{what}: use_boxes", int(words[W_USE_BOXES]), stored=True)
    return words
