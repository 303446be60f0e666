"""The box table's memory layout, and untorn atomic access to its words from Python and from numba code.

Memory layout (little-endian uint64 words, 8-byte aligned):

    word 0  magic  b"CCROPTBL"
    word 1  format version
    word 2  number of samples n
    word 3  epoch            (live control)
    word 4  seed             (live control)
    word 5  use_boxes        (live control: 0 = warm-up, every crop is RandomResizedCrop)
    word 6  writes           (number of ``write`` calls, counted atomically, for readers that want to know)
    word 7  creator pid      (0 in saved files)
    word 8 + i  row i: y0 | x0 << 16 | y1 << 32 | x1 << 48, each coordinate round(v * 65535)

A row is stored and loaded as one aligned 8-byte word, so a reader sees the old
box or the new one, never a mix.

Compiled code reads the live table through its address (``table.address``) with
``load_box`` and ``load_controls``: never through a captured array, which numba
would freeze into a stale copy.
"""
from __future__ import annotations

import struct

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .checks import check_boxes

MAGIC = b"CCROPTBL"
FILE_MAGIC = b"CCROPBOX"
FORMAT_VERSION = 1
HEADER_WORDS = 8
W_VERSION, W_COUNT, W_EPOCH, W_SEED, W_USE_BOXES, W_WRITES, W_CREATOR = 1, 2, 3, 4, 5, 6, 7
COORDINATE_SCALE = 65535.0
MAX_SAMPLES = 2**40  # 8 TiB of rows: anything larger is a forged or mistaken size


@intrinsic
def _words_at(typingctx, address):
    """uint64* from an integer address (numba intrinsic)."""
    sig = types.CPointer(types.uint64)(types.intp)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.uint64)))

    return sig, codegen


@intrinsic
def _atomic_add(typingctx, address, value):
    """``*(uint64*)address += value`` as one atomic read-modify-write (seq_cst); returns the old value."""
    sig = types.uint64(types.intp, types.uint64)

    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.PointerType(ir.IntType(64)))
        return builder.atomic_rmw("add", pointer, args[1], "seq_cst")

    return sig, codegen


@intrinsic
def _load_word(typingctx, address):
    """One untorn 8-byte load of ``*(uint64*)address`` (atomic, relaxed): LLVM may not split it into narrower loads
    of the fields it unpacks, which a plain load allows."""
    sig = types.uint64(types.intp)

    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.PointerType(ir.IntType(64)))
        return builder.load_atomic(pointer, "monotonic", 8)

    return sig, codegen


@intrinsic
def _store_word(typingctx, address, value):
    """One untorn 8-byte store to ``*(uint64*)address`` (atomic, relaxed)."""
    sig = types.void(types.intp, types.uint64)

    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.PointerType(ir.IntType(64)))
        builder.store_atomic(args[1], pointer, "monotonic", 8)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True, nogil=True)
def count_write(address):
    """Add one to the ``writes`` word of the table at ``address``, atomically across threads and processes."""
    _atomic_add(address + 8 * W_WRITES, np.uint64(1))


@numba.njit(inline="always", cache=True)
def words_at(address, count):
    """``count`` uint64 words at ``address`` as a live array, inside numba code (the caller keeps the memory alive)."""
    return numba.carray(_words_at(address), count)


@numba.njit(inline="always", cache=True)
def table_words(address, num_samples):
    """The table's words (header and rows) as a live uint64 array, inside numba code."""
    return words_at(address, HEADER_WORDS + num_samples)


@numba.njit(inline="always", cache=True)
def unpack_row(word):
    """A packed row -> float64 (y0, x0, y1, x1)."""
    s = 1.0 / 65535.0
    return (
        np.float64(word & np.uint64(0xFFFF)) * s,
        np.float64((word >> np.uint64(16)) & np.uint64(0xFFFF)) * s,
        np.float64((word >> np.uint64(32)) & np.uint64(0xFFFF)) * s,
        np.float64(word >> np.uint64(48)) * s,
    )


@numba.njit(inline="always", cache=True)
def load_box(address, num_samples, index):
    """Box of sample ``index`` as float64 (y0, x0, y1, x1), read from memory now (one atomic 8-byte load).

    ``index`` must lie in ``[0, num_samples)``: callers check it.
    """
    return unpack_row(_load_word(address + 8 * (HEADER_WORDS + index)))


@numba.njit(inline="always", cache=True)
def load_controls(address, num_samples):
    """Live controls ``(epoch, seed, use_boxes)`` as (int64, uint64, bool), read from memory now."""
    words = table_words(address, num_samples)
    return np.int64(words[W_EPOCH]), words[W_SEED], words[W_USE_BOXES] != 0


@numba.njit(cache=True, nogil=True)
def store_rows(address, indices, packed):
    for i in range(indices.shape[0]):
        _store_word(address + 8 * (HEADER_WORDS + indices[i]), packed[i])


@numba.njit(cache=True, nogil=True)
def load_words(address, count):
    """uint64 (count,): the first ``count`` words at ``address`` (header, then rows), each one atomic load."""
    out = np.empty(count, dtype=np.uint64)
    for i in range(count):
        out[i] = _load_word(address + 8 * i)
    return out


@numba.njit(cache=True, nogil=True)
def _pack_rows(boxes):
    out = np.empty(boxes.shape[0], dtype=np.uint64)
    for r in range(boxes.shape[0]):
        word = np.uint64(0)
        for c in range(4):
            word |= np.uint64(np.rint(np.float64(boxes[r, c]) * 65535.0)) << np.uint64(16 * c)
        out[r] = word
    return out


def pack_boxes(boxes) -> np.ndarray:
    """Checked float (n, 4) boxes -> uint64 (n,) packed rows."""
    return _pack_rows(check_boxes(boxes))


@numba.njit(inline="always", cache=True)
def _unpack_into(out, i, word):
    """Row ``i`` of float32 ``out``: the packed ``word``'s coordinates, each ``float32(q / 65535.0)``."""
    for c in range(4):
        out[i, c] = np.float32(np.float64((word >> np.uint64(16 * c)) & np.uint64(0xFFFF)) / COORDINATE_SCALE)


@numba.njit(cache=True, nogil=True)
def _unpack_rows(rows):
    out = np.empty((rows.shape[0], 4), dtype=np.float32)
    for i in range(rows.shape[0]):
        _unpack_into(out, i, np.uint64(rows[i]))
    return out


def unpack_boxes(rows: np.ndarray) -> np.ndarray:
    """uint64 (n,) packed rows -> float32 (n, 4) boxes, in one compiled pass (no temporary beyond the output)."""
    return _unpack_rows(np.asarray(rows, dtype=np.uint64))


@numba.njit(cache=True, nogil=True)
def load_boxes(address, indices):
    """float32 (n, 4) boxes of rows ``indices``, each row one atomic load: no array of words in between."""
    out = np.empty((indices.shape[0], 4), dtype=np.float32)
    for i in range(indices.shape[0]):
        _unpack_into(out, i, _load_word(address + 8 * (HEADER_WORDS + indices[i])))
    return out


@numba.njit(cache=True, nogil=True)
def load_all_boxes(address, num_samples):
    """float32 (num_samples, 4): every row's box, each row one atomic load (no index or word arrays)."""
    out = np.empty((num_samples, 4), dtype=np.float32)
    for i in range(num_samples):
        _unpack_into(out, i, _load_word(address + 8 * (HEADER_WORDS + i)))
    return out


@numba.njit(cache=True, nogil=True)
def first_bad_row(rows):
    """Index of the first packed row with y0 > y1 or x0 > x1 (-1 if none): checks rows without unpacking them all."""
    mask = np.uint64(0xFFFF)
    for i in range(rows.shape[0]):
        w = np.uint64(rows[i])
        if (w & mask) > ((w >> np.uint64(32)) & mask) or ((w >> np.uint64(16)) & mask) > (w >> np.uint64(48)):
            return i
    return -1


def controls_of(words: np.ndarray) -> tuple[int, int, bool]:
    """``(epoch, seed, use_boxes)`` from a table's words (``read_table_file``'s or ``BoxTable.words``)."""
    return int(words[W_EPOCH]), int(words[W_SEED]), bool(words[W_USE_BOXES])


def check_header(head: bytes, what: str, row_bytes: int, magic: bytes = MAGIC) -> None:
    """Check a header's magic, version and sample count against the bytes that follow it."""
    if len(head) < 8 * HEADER_WORDS:
        raise ValueError(f"{what} is truncated: {len(head)} bytes, shorter than its {8 * HEADER_WORDS}-byte header")
    words = struct.unpack(f"<{HEADER_WORDS}Q", head)
    if head[:8] != magic:
        raise ValueError(f"{what} is not a box table: magic {head[:8]!r}, expected {magic!r}")
    if words[W_VERSION] != FORMAT_VERSION:
        raise ValueError(f"{what} has format version {words[W_VERSION]}; this ccrop_loaders reads "
                         f"version {FORMAT_VERSION}")
    if not 1 <= words[W_COUNT] <= MAX_SAMPLES:
        raise ValueError(f"{what} is corrupt: its header declares {words[W_COUNT]} samples "
                         f"(expected 1 to {MAX_SAMPLES})")
    if row_bytes != 8 * words[W_COUNT]:
        raise ValueError(f"{what} is truncated or corrupt: header says {words[W_COUNT]} samples "
                         f"({8 * words[W_COUNT]} bytes of rows), found {row_bytes} bytes")
