"""BoxTable: one ContrastiveCrop box per sample, in memory shared across processes.

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
box or the new one, never a mix. The memory is a file under ``/dev/shm`` named
after the table, so other processes (DALI workers, other loaders, other ranks on
the node) attach by name; only the creator unlinks it, and attaching registers
nothing with Python's resource tracker (``files.py``: space reserved first, a
creator lock that tells live tables from leftovers, cleanup on SIGTERM).

Compiled code reads the live table through its address (``table.address``) with
``load_box`` and ``load_controls``: never through a captured array, which numba
would freeze into a stale copy.
"""
from __future__ import annotations

import errno
import mmap
import os
import secrets
import struct
import weakref
import zlib
from pathlib import Path
from typing import Sequence

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .files import (alive, creator_lock, forget_owned, free_bytes, lock_as_creator, make_temp, no_room, open_regular,
                    register_owned, replace_atomically, reserve, shm_dir, stale_temps, unlink_quietly)
from .random import flip_draw, stream_key
from .sampler import FULL_BOX, UNIFORM_QUANTILES, check_boxes, crop_window

MAGIC = b"CCROPTBL"
FILE_MAGIC = b"CCROPBOX"
FORMAT_VERSION = 1
HEADER_WORDS = 8
_W_VERSION, _W_COUNT, _W_EPOCH, _W_SEED, _W_USE_BOXES, _W_WRITES, _W_CREATOR = 1, 2, 3, 4, 5, 6, 7
_SCALE = 65535.0
MAX_SAMPLES = 2**40  # 8 TiB of rows: anything larger is a forged or mistaken size


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or not name.isprintable() or name.startswith(".") \
            or len(name.encode()) > 200:
        raise ValueError(f"table name must be a non-empty string of at most 200 bytes, printable, without '/' and "
                         f"not starting with '.', got {name!r}")
    return name


# ----------------------------------------------------------------- compiled access


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
    _atomic_add(address + 8 * _W_WRITES, np.uint64(1))


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
    return np.int64(words[_W_EPOCH]), words[_W_SEED], words[_W_USE_BOXES] != 0


@numba.njit(cache=True, nogil=True)
def table_crop_window(address, num_samples, index, view, height, width,
                      scale_lo, scale_hi, log_ratio_lo, log_ratio_hi, quantiles, boxed=True):
    """``crop_window`` for sample ``index``, view ``view``, keyed and boxed by the live table.

    Reads ``epoch``, ``seed`` and ``use_boxes`` now; with ``use_boxes`` False (or
    ``boxed`` False: a view group that never uses the box) the box is (0, 0, 1, 1)
    and the Beta draw uniform: plain RandomResizedCrop, keyed like the boxed view.
    """
    epoch, seed, use_boxes = load_controls(address, num_samples)
    key = stream_key(seed, epoch, index, view)
    if use_boxes and boxed:
        y0, x0, y1, x1 = load_box(address, num_samples, index)
        return crop_window(height, width, y0, x0, y1, x1, scale_lo, scale_hi,
                           log_ratio_lo, log_ratio_hi, quantiles, key)
    return crop_window(height, width, 0.0, 0.0, 1.0, 1.0, scale_lo, scale_hi,
                       log_ratio_lo, log_ratio_hi, UNIFORM_QUANTILES, key)


@numba.njit(cache=True, nogil=True)
def table_flip(address, num_samples, index, view):
    """The horizontal flip (p = 1/2) of sample ``index``, view ``view``, keyed by the live table's controls."""
    epoch, seed, _ = load_controls(address, num_samples)
    return flip_draw(stream_key(seed, epoch, index, view))


@numba.njit(cache=True, nogil=True)
def _store_rows(address, indices, packed):
    for i in range(indices.shape[0]):
        _store_word(address + 8 * (HEADER_WORDS + indices[i]), packed[i])


@numba.njit(cache=True, nogil=True)
def _load_rows(address, indices):
    out = np.empty(indices.shape[0], dtype=np.uint64)
    for i in range(indices.shape[0]):
        out[i] = _load_word(address + 8 * (HEADER_WORDS + indices[i]))
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


def unpack_boxes(rows: np.ndarray) -> np.ndarray:
    """uint64 (n,) packed rows -> float32 (n, 4) boxes."""
    shifts = np.array([0, 16, 32, 48], dtype=np.uint64)
    q = (rows[:, None] >> shifts) & np.uint64(0xFFFF)
    return (q.astype(np.float64) / _SCALE).astype(np.float32)


# ----------------------------------------------------------------- the table


class TableMapping:
    """One process's mapping of a table: ``words`` uint64 (8 + n,) and its ``address``.

    Unmapped only when the last reference to it (or to ``words``) goes away, so a
    loader that keeps this object can go on reading after the user closed or
    unlinked the ``BoxTable``: compiled code holding ``address`` never faults.
    """

    __slots__ = ("words", "num_samples", "__weakref__")

    def __init__(self, fd: int, size: int):
        self.words = np.frombuffer(mmap.mmap(fd, size), dtype=np.uint64)
        self.num_samples = size // 8 - HEADER_WORDS

    @property
    def address(self) -> int:
        """Address of the mapped words in this process; valid while this object lives."""
        return self.words.ctypes.data


def _release(path: str, creator_pid: int, lock_fd: int, inode: int) -> None:
    """Finalizer of an owner: unlink the table's name (only in the creating process) and drop its creator lock."""
    if os.getpid() == creator_pid:
        unlink_quietly(path)
        forget_owned(path, inode)
    try:
        os.close(lock_fd)
    except OSError:
        pass


class BoxTable:
    """Shared-memory table of one box per sample, indexed by global sample index.

    Make one with ``BoxTable.create(n)`` (the owner, which unlinks it) and open it
    elsewhere with ``BoxTable.attach(table.name)``. Rows are ``(y0, x0, y1, x1)``
    in [0, 1] at 1/65535 resolution. ``epoch``, ``seed`` and ``use_boxes`` are live
    controls that every loader reading the table follows.

    Lifetimes: ``close()`` drops this object's hold on the mapping; loaders that
    read the table keep their own (``mapping()``), so no order of close, unlink or
    garbage collection unmaps memory a loader still reads. The owner unlinks the
    name on ``unlink()``, on leaving its ``with`` block and at exit; a tracker
    process unlinks it when the creator dies any other way (SIGTERM, SIGKILL);
    ``ccrop clean`` removes what is left when both died.
    """

    def __init__(self, path: Path, mapping: TableMapping, *, owner_lock_fd: int | None = None):
        self._path = str(path)
        self._mapping: TableMapping | None = mapping
        self._num_samples = mapping.num_samples
        self._owner = owner_lock_fd is not None
        self._finalizer = None
        if self._owner:
            inode = os.fstat(owner_lock_fd).st_ino
            register_owned(self._path, inode)
            self._finalizer = weakref.finalize(self, _release, self._path, os.getpid(), owner_lock_fd, inode)

    # ------------------------------------------------------------- lifetime

    @classmethod
    def create(cls, num_samples: int, *, name: str | None = None,
               init_box: Sequence[float] = FULL_BOX) -> "BoxTable":
        """A new table of ``num_samples`` rows, each ``init_box``; controls epoch 0, seed 0, use_boxes True.

        The file is reserved in full (``posix_fallocate``), filled under a temp name
        and linked to its name only when complete; a full filesystem raises an
        ``OSError`` naming the bytes needed and leaves nothing behind.
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        num_samples = int(num_samples)
        if num_samples > MAX_SAMPLES:
            raise ValueError(f"num_samples must be at most {MAX_SAMPLES:,}, got {num_samples:,}")
        init = np.asarray(init_box, dtype=np.float64)
        if init.shape != (4,):
            raise ValueError(f"init_box must be (y0, x0, y1, x1), got shape {init.shape}")
        row = pack_boxes(init[None])[0]
        name = _check_name(name) if name is not None else f"ccrop-{os.getpid()}-{secrets.token_hex(4)}"
        directory = shm_dir()
        path = directory / name
        if os.path.lexists(path):
            raise FileExistsError(f"a box table named {name!r} already exists at {path}")
        size = 8 * (HEADER_WORDS + num_samples)
        fd, tmp = make_temp(directory, name)
        try:
            lock_as_creator(fd)
            reserve(fd, size, directory, f"a box table of {num_samples:,} samples")
            mapping = TableMapping(fd, size)
            mapping.words[HEADER_WORDS:] = row
            header = mapping.words[:HEADER_WORDS]
            header[_W_VERSION], header[_W_COUNT], header[_W_USE_BOXES] = FORMAT_VERSION, num_samples, 1
            header[_W_CREATOR] = os.getpid()
            header[0] = np.frombuffer(MAGIC, dtype=np.uint64)[0]
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"a box table named {name!r} already exists at {path}") from None
        except BaseException:
            os.close(fd)
            raise
        finally:
            unlink_quietly(tmp)
        return cls(path, mapping, owner_lock_fd=fd)

    @classmethod
    def attach(cls, name: str) -> "BoxTable":
        """Open the table another process created, by name (the same memory, not a copy)."""
        path = shm_dir() / _check_name(name)
        what = f"shared table {name!r} ({path})"
        try:
            fd = open_regular(path, os.O_RDWR | os.O_NOFOLLOW, what)
        except FileNotFoundError:
            raise FileNotFoundError(f"no box table named {name!r} (looked for {path}); "
                                    "create it with BoxTable.create(...) first") from None
        try:
            size = os.fstat(fd).st_size
            _check_header(os.pread(fd, 8 * HEADER_WORDS, 0), what, size - 8 * HEADER_WORDS)
            mapping = TableMapping(fd, size)
        finally:
            os.close(fd)
        return cls(path, mapping)

    def mapping(self) -> TableMapping:
        """This process's mapping of the table, for code that reads ``address`` later (loaders): keep the
        returned object as long as that code may run; it stays valid after ``close()`` and ``unlink()``."""
        if self._mapping is None:
            raise ValueError(f"box table {self.name!r} is closed")
        return self._mapping

    def close(self) -> None:
        """Drop this object's hold on the table's memory (unmapped once loaders holding ``mapping()`` let go too).

        The table lives on for other processes until ``unlink``. Idempotent.
        """
        self._mapping = None

    def unlink(self) -> None:
        """Remove the table's name (owner only, idempotent); processes that have it open keep their mapping."""
        if not self._owner:
            raise PermissionError(f"box table {self.name!r} was attached, not created, by this process: only its "
                                  "creator unlinks it")
        self._finalizer()

    def __enter__(self) -> "BoxTable":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.close()
        finally:
            if self._owner:
                self.unlink()

    def __reduce__(self):
        return (BoxTable.attach, (self.name,))

    def __repr__(self) -> str:
        state = "closed" if self._mapping is None else f"{len(self)} samples, epoch {self.epoch}, " \
            f"seed {self.seed}, use_boxes {self.use_boxes}"
        return f"BoxTable({self.name!r}, {state})"

    # ------------------------------------------------------------- identity

    @property
    def name(self) -> str:
        return os.path.basename(self._path)

    @property
    def words(self) -> np.ndarray:
        """The whole mapped table as uint64 (8 + n,): header then packed rows."""
        return self.mapping().words

    @property
    def address(self) -> int:
        """Address of the mapped table in this process, for ``load_box``/``load_controls`` in numba code.

        Valid while this object stays open; code that runs later (a loader) keeps
        ``mapping()`` instead and reads its ``address``.
        """
        return self.mapping().address

    def __len__(self) -> int:
        return self._num_samples

    def check_dataset_size(self, num_samples: int) -> None:
        """Refuse a dataset of another size than the table (one row per global sample index)."""
        if len(self) != num_samples:
            raise ValueError(f"the box table {self.name!r} has {len(self)} rows but the dataset has {num_samples} "
                             f"samples: create the table with BoxTable.create({num_samples})")

    # ------------------------------------------------------------- live controls

    def _control(self, word: int) -> int:
        return int(self.words[word])

    epoch = property(lambda self: self._control(_W_EPOCH), doc="Epoch keying the crops' randomness.")
    seed = property(lambda self: self._control(_W_SEED), doc="Seed keying the crops' randomness.")
    use_boxes = property(lambda self: bool(self._control(_W_USE_BOXES)),
                         doc="False during warm-up: every crop is plain RandomResizedCrop.")

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.words[_W_EPOCH] = _check_control("epoch", value, 2**63 - 1)

    @seed.setter
    def seed(self, value: int) -> None:
        self.words[_W_SEED] = _check_control("seed", value, 2**64 - 1)

    @use_boxes.setter
    def use_boxes(self, value: bool) -> None:
        self.words[_W_USE_BOXES] = int(_check_flag("use_boxes", value))

    @property
    def writes(self) -> int:
        """How many ``write`` calls the table has seen (any process; counted atomically)."""
        return self._control(_W_WRITES)

    @property
    def creator_pid(self) -> int:
        """Process id of the table's creator (on this host)."""
        return self._control(_W_CREATOR)

    # ------------------------------------------------------------- rows

    def _check_indices(self, indices, what: str = "indices") -> np.ndarray:
        arr = np.asarray(indices)
        if arr.ndim != 1:
            raise ValueError(f"{what} must be 1-D, got shape {arr.shape}")
        if arr.size == 0:  # [] is float64 to numpy: nothing to check
            return np.zeros(0, dtype=np.int64)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{what} must be integers, got dtype {arr.dtype}")
        n = len(self)
        bad = (arr < 0) | (arr >= n)
        if bad.any():
            i = int(np.argmax(bad))
            raise IndexError(f"{what}[{i}] = {arr[i]} is out of range for a table of {n} samples")
        return arr.astype(np.int64)

    def write(self, indices, boxes) -> None:
        """Set rows ``indices`` (int (n,)) to ``boxes`` (float (n, 4) as (y0, x0, y1, x1) in [0, 1]).

        Everything is checked before the first row is written: bad input changes nothing.
        """
        idx = self._check_indices(indices)
        arr = np.asarray(boxes)
        if arr.ndim != 2 or arr.shape[0] != idx.shape[0]:
            raise ValueError(f"boxes must have shape ({idx.shape[0]}, 4) to match indices, got {arr.shape}")
        packed = pack_boxes(arr)
        mapping = self.mapping()
        _store_rows(mapping.address, idx, packed)
        count_write(mapping.address)

    def read(self, indices=None) -> np.ndarray:
        """Rows ``indices`` (all when None) as float32 (n, 4) ``(y0, x0, y1, x1)``."""
        idx = np.arange(len(self)) if indices is None else self._check_indices(indices)
        return unpack_boxes(_load_rows(self.mapping().address, idx))

    def _snapshot(self) -> np.ndarray:
        """A copy of the words (header, then every row read whole while writers may be writing)."""
        mapping = self.mapping()
        return np.concatenate([mapping.words[:HEADER_WORDS],
                               _load_rows(mapping.address, np.arange(mapping.num_samples, dtype=np.int64))])

    # ------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict:
        """Rows and controls: ``rows`` int64 (n,) (the packed words), ``epoch``, ``seed``, ``use_boxes``,
        ``num_samples``, ``version``. For a torch checkpoint (``weights_only=True`` loads) use
        ``ccrop_loaders.table_state``, which holds the rows as a tensor."""
        words = self._snapshot()
        return {"version": FORMAT_VERSION, "num_samples": int(words[_W_COUNT]), "epoch": int(words[_W_EPOCH]),
                "seed": int(words[_W_SEED]), "use_boxes": bool(words[_W_USE_BOXES]),
                "rows": words[HEADER_WORDS:].view(np.int64)}

    def load_state_dict(self, state: dict) -> None:
        """Restore rows and controls from ``state_dict()`` output (rows: int64/uint64 array or tensor).

        Everything is checked first (keys, version, the table's size, every row's
        box, the controls' types): a bad state changes nothing.
        """
        missing = {"version", "num_samples", "epoch", "seed", "use_boxes", "rows"} - set(state)
        if missing:
            raise KeyError(f"box table state lacks {sorted(missing)}")
        version = state["version"]
        if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)) \
                or version != FORMAT_VERSION:
            raise ValueError(f"box table state has format version {version!r} ({type(version).__name__}); "
                             f"this ccrop_loaders reads version {FORMAT_VERSION} (int)")
        rows = np.asarray(state["rows"])
        if rows.dtype not in (np.int64, np.uint64) or rows.ndim != 1:
            raise ValueError(f"box table state rows must be int64 (n,), got {rows.dtype} {rows.shape}")
        n = len(self)
        declared = _check_control("num_samples", state["num_samples"], 2**63 - 1)
        if declared != rows.shape[0]:
            raise ValueError(f"box table state is corrupt: it declares {declared} samples but holds "
                             f"{rows.shape[0]} rows")
        if declared != n:
            raise ValueError(f"the checkpoint's box table has {declared} rows but this table has {n}: "
                             "it belongs to a different dataset")
        rows = rows.view(np.uint64)
        bad = _first_bad_row(rows)
        if bad >= 0:
            raise ValueError(f"box table state is corrupt, rows: row {bad} has y0 > y1 or x0 > x1")
        epoch = _check_control("epoch", state["epoch"], 2**63 - 1)
        seed = _check_control("seed", state["seed"], 2**64 - 1)
        use_boxes = _check_flag("use_boxes", state["use_boxes"])
        words = self.words
        _store_rows(self.address, np.arange(n, dtype=np.int64), rows)
        words[_W_EPOCH], words[_W_SEED], words[_W_USE_BOXES] = epoch, seed, int(use_boxes)
        count_write(self.address)

    # ------------------------------------------------------------- files

    def save(self, path: str | os.PathLike) -> None:
        """Write the rows and controls to ``path`` atomically: a crash at any point leaves the old file or the new.

        Format: magic ``CCROPBOX``, then the table's words (header + rows) as
        little-endian uint64, then a CRC-32 of all that as uint32. Written beside
        the target, fsynced, renamed over it, the folder fsynced. A symlink is
        written through (its target replaced, the link kept); a FIFO, device or
        folder at ``path`` is refused. Stale temp files of killed saves are removed.
        """
        snapshot = self._snapshot()
        snapshot[0] = np.frombuffer(FILE_MAGIC, dtype=np.uint64)[0]
        snapshot[_W_WRITES] = snapshot[_W_CREATOR] = 0
        data = snapshot.astype("<u8").tobytes()
        replace_atomically(path, data + struct.pack("<I", zlib.crc32(data)))

    @classmethod
    def load(cls, path: str | os.PathLike, *, name: str | None = None) -> "BoxTable":
        """A new shared table holding the rows and controls saved at ``path`` (checked by ``read_table_file``)."""
        words = read_table_file(path, room_for_table=True)
        table = cls.create(len(words) - HEADER_WORDS, name=name)
        table.words[HEADER_WORDS:] = words[HEADER_WORDS:]
        table.words[_W_EPOCH], table.words[_W_SEED] = words[_W_EPOCH], words[_W_SEED]
        table.words[_W_USE_BOXES] = words[_W_USE_BOXES]
        return table


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
        _check_header(head, what, size - 4 - 8 * HEADER_WORDS, magic=FILE_MAGIC)
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
    bad = _first_bad_row(words[HEADER_WORDS:])
    if bad >= 0:
        raise ValueError(f"{what} is corrupt, rows: row {bad} has y0 > y1 or x0 > x1")
    _check_control(f"{what}: epoch", int(words[_W_EPOCH]), 2**63 - 1)
    _check_flag(f"{what}: use_boxes", int(words[_W_USE_BOXES]), stored=True)
    return words


def controls_of(words: np.ndarray) -> tuple[int, int, bool]:
    """``(epoch, seed, use_boxes)`` from a table's words (``read_table_file``'s or ``BoxTable.words``)."""
    return int(words[_W_EPOCH]), int(words[_W_SEED]), bool(words[_W_USE_BOXES])


@numba.njit(cache=True, nogil=True)
def _first_bad_row(rows):
    """Index of the first packed row with y0 > y1 or x0 > x1 (-1 if none): checks rows without unpacking them all."""
    mask = np.uint64(0xFFFF)
    for i in range(rows.shape[0]):
        w = np.uint64(rows[i])
        if (w & mask) > ((w >> np.uint64(32)) & mask) or ((w >> np.uint64(16)) & mask) > (w >> np.uint64(48)):
            return i
    return -1


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
    return not alive(struct.unpack_from("<Q", head, 8 * _W_CREATOR)[0])


def _check_flag(name: str, value, *, stored: bool = False) -> bool:
    """A bool (numpy's too), or with ``stored`` the integer 0 or 1 a file holds; nothing else (not "False")."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if stored and isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return bool(value)
    expected = "0 or 1" if stored else "a bool"
    raise (ValueError if stored else TypeError)(f"{name} must be {expected}, got {type(value).__name__} {value!r}")


def _check_control(name: str, value, hi: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if not 0 <= int(value) <= hi:
        raise ValueError(f"{name} must be in [0, {hi}], got {value}")
    return int(value)


def _check_header(head: bytes, what: str, row_bytes: int, magic: bytes = MAGIC) -> None:
    """Check a header's magic, version and sample count against the bytes that follow it."""
    if len(head) < 8 * HEADER_WORDS:
        raise ValueError(f"{what} is truncated: {len(head)} bytes, shorter than its {8 * HEADER_WORDS}-byte header")
    words = struct.unpack(f"<{HEADER_WORDS}Q", head)
    if head[:8] != magic:
        raise ValueError(f"{what} is not a box table: magic {head[:8]!r}, expected {magic!r}")
    if words[_W_VERSION] != FORMAT_VERSION:
        raise ValueError(f"{what} has format version {words[_W_VERSION]}; this ccrop_loaders reads "
                         f"version {FORMAT_VERSION}")
    if not 1 <= words[_W_COUNT] <= MAX_SAMPLES:
        raise ValueError(f"{what} is corrupt: its header declares {words[_W_COUNT]} samples "
                         f"(expected 1 to {MAX_SAMPLES})")
    if row_bytes != 8 * words[_W_COUNT]:
        raise ValueError(f"{what} is truncated or corrupt: header says {words[_W_COUNT]} samples "
                         f"({8 * words[_W_COUNT]} bytes of rows), found {row_bytes} bytes")
