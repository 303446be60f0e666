"""BoxTable: one ContrastiveCrop box per sample, in memory shared across processes.

Memory layout (little-endian uint64 words, 8-byte aligned):

    word 0  magic  b"CCROPTBL"
    word 1  format version
    word 2  number of samples n
    word 3  epoch            (live control)
    word 4  seed             (live control)
    word 5  use_boxes        (live control: 0 = warm-up, every crop is RandomResizedCrop)
    word 6  writes           (number of ``write`` calls, for readers that want to know)
    word 7  reserved
    word 8 + i  row i: y0 | x0 << 16 | y1 << 32 | x1 << 48, each coordinate round(v * 65535)

A row is stored and loaded as one aligned 8-byte word, so a reader sees the old
box or the new one, never a mix. The memory is a file under ``/dev/shm`` named
after the table, so other processes (DALI workers, other loaders, other ranks on
the node) attach by name; only the creator unlinks it, and attaching registers
nothing with Python's resource tracker.

Compiled code reads the live table through its address (``table.address``) with
``load_box`` and ``load_controls``: never through a captured array, which numba
would freeze into a stale copy.
"""
from __future__ import annotations

import mmap
import os
import secrets
import struct
import tempfile
import weakref
import zlib
from pathlib import Path
from typing import Sequence

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from .random import flip_draw, stream_key
from .sampler import FULL_BOX, UNIFORM_QUANTILES, check_boxes, crop_window

MAGIC = b"CCROPTBL"
FILE_MAGIC = b"CCROPBOX"
FORMAT_VERSION = 1
HEADER_WORDS = 8
_W_VERSION, _W_COUNT, _W_EPOCH, _W_SEED, _W_USE_BOXES, _W_WRITES = 1, 2, 3, 4, 5, 6
_SCALE = 65535.0


def shm_dir() -> Path:
    """Where tables live: ``$CCROP_SHM_DIR``, else ``/dev/shm``, else the temp folder."""
    env = os.environ.get("CCROP_SHM_DIR")
    if env:
        return Path(env)
    return Path("/dev/shm") if os.path.isdir("/dev/shm") else Path(tempfile.gettempdir())


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"table name must be a non-empty string without '/', got {name!r}")
    return name


# ----------------------------------------------------------------- compiled access


@intrinsic
def _words_at(typingctx, address):
    """uint64* from an integer address (numba intrinsic)."""
    sig = types.CPointer(types.uint64)(types.intp)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.uint64)))

    return sig, codegen


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
    """Box of sample ``index`` as float64 (y0, x0, y1, x1), read from memory now (one 8-byte load)."""
    return unpack_row(table_words(address, num_samples)[HEADER_WORDS + index])


@numba.njit(inline="always", cache=True)
def load_controls(address, num_samples):
    """Live controls ``(epoch, seed, use_boxes)`` as (int64, uint64, bool), read from memory now."""
    words = table_words(address, num_samples)
    return np.int64(words[_W_EPOCH]), words[_W_SEED], words[_W_USE_BOXES] != 0


@numba.njit(cache=True, nogil=True)
def table_crop_window(address, num_samples, index, view, height, width,
                      scale_lo, scale_hi, log_ratio_lo, log_ratio_hi, quantiles):
    """``crop_window`` for sample ``index``, view ``view``, keyed and boxed by the live table.

    Reads ``epoch``, ``seed`` and ``use_boxes`` now; with ``use_boxes`` False the
    box is (0, 0, 1, 1) and the Beta draw uniform: plain RandomResizedCrop.
    """
    epoch, seed, use_boxes = load_controls(address, num_samples)
    key = stream_key(seed, epoch, index, view)
    if use_boxes:
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
def _store_rows(words, indices, packed):
    for i in range(indices.shape[0]):
        words[HEADER_WORDS + indices[i]] = packed[i]


@numba.njit(cache=True, nogil=True)
def _load_rows(words, indices):
    out = np.empty(indices.shape[0], dtype=np.uint64)
    for i in range(indices.shape[0]):
        out[i] = words[HEADER_WORDS + indices[i]]
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


def _unlink_file(path: str, creator_pid: int | None = None) -> None:
    """Remove ``path``; with ``creator_pid``, only from that process (not from a forked child at exit)."""
    if creator_pid is not None and os.getpid() != creator_pid:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class BoxTable:
    """Shared-memory table of one box per sample, indexed by global sample index.

    Make one with ``BoxTable.create(n)`` (the owner, which unlinks it) and open it
    elsewhere with ``BoxTable.attach(table.name)``. Rows are ``(y0, x0, y1, x1)``
    in [0, 1] at 1/65535 resolution. ``epoch``, ``seed`` and ``use_boxes`` are live
    controls that every loader reading the table follows.
    """

    def __init__(self, path: Path, *, owner: bool):
        self._path = str(path)
        self._owner = owner
        with open(path, "r+b") as f:
            self._mmap = mmap.mmap(f.fileno(), 0)
        self._words = np.frombuffer(self._mmap, dtype=np.uint64)
        self._finalizer = weakref.finalize(self, _unlink_file, self._path, os.getpid()) if owner else None

    # ------------------------------------------------------------- lifetime

    @classmethod
    def create(cls, num_samples: int, *, name: str | None = None,
               init_box: Sequence[float] = FULL_BOX) -> "BoxTable":
        """A new table of ``num_samples`` rows, each ``init_box``; controls epoch 0, seed 0, use_boxes True."""
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        num_samples = int(num_samples)
        init = np.asarray(init_box, dtype=np.float64)
        if init.shape != (4,):
            raise ValueError(f"init_box must be (y0, x0, y1, x1), got shape {init.shape}")
        row = pack_boxes(init[None])[0]
        name = _check_name(name) if name is not None else f"ccrop-{os.getpid()}-{secrets.token_hex(4)}"
        path = shm_dir() / name
        header = np.zeros(HEADER_WORDS, dtype=np.uint64)
        header[0] = np.frombuffer(MAGIC, dtype=np.uint64)[0]
        header[_W_VERSION], header[_W_COUNT], header[_W_USE_BOXES] = FORMAT_VERSION, num_samples, 1
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise FileExistsError(f"a box table named {name!r} already exists at {path}") from None
        try:
            os.ftruncate(fd, 8 * (HEADER_WORDS + num_samples))
            with mmap.mmap(fd, 0) as mm:
                words = np.frombuffer(mm, dtype=np.uint64)
                words[HEADER_WORDS:] = row
                words[:HEADER_WORDS] = header
                del words
        except BaseException:
            os.unlink(path)
            raise
        finally:
            os.close(fd)
        return cls(path, owner=True)

    @classmethod
    def attach(cls, name: str) -> "BoxTable":
        """Open the table another process created, by name (the same memory, not a copy)."""
        path = shm_dir() / _check_name(name)
        if not path.exists():
            raise FileNotFoundError(f"no box table named {name!r} (looked for {path}); "
                                    "create it with BoxTable.create(...) first")
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8 * HEADER_WORDS)
        _check_header(head, f"shared table {name!r}", size - 8 * HEADER_WORDS)
        return cls(path, owner=False)

    def close(self) -> None:
        """Unmap this process's view; the table lives on for others until ``unlink``."""
        if self._mmap is not None:
            self._words = None
            try:
                self._mmap.close()
            except BufferError:
                raise BufferError("the table's memory is still in use by an array obtained from it; "
                                  "delete that array before closing") from None
            self._mmap = None

    def unlink(self) -> None:
        """Remove the table's name; processes that have it open keep their mapping."""
        _unlink_file(self._path)
        if self._finalizer is not None:
            self._finalizer.detach()

    def __enter__(self) -> "BoxTable":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        if self._owner:
            self.unlink()

    def __reduce__(self):
        return (BoxTable.attach, (self.name,))

    def __repr__(self) -> str:
        state = "closed" if self._mmap is None else f"{len(self)} samples, epoch {self.epoch}, " \
            f"seed {self.seed}, use_boxes {self.use_boxes}"
        return f"BoxTable({self.name!r}, {state})"

    # ------------------------------------------------------------- identity

    @property
    def name(self) -> str:
        return os.path.basename(self._path)

    @property
    def words(self) -> np.ndarray:
        """The whole mapped table as uint64 (8 + n,): header then packed rows."""
        if self._words is None:
            raise ValueError(f"box table {self.name!r} is closed")
        return self._words

    @property
    def address(self) -> int:
        """Address of the mapped table in this process, for ``load_box``/``load_controls`` in numba code.

        Valid while this object stays open.
        """
        return self.words.ctypes.data

    def __len__(self) -> int:
        return int(self.words[_W_COUNT])

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
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"use_boxes must be a bool, got {type(value).__name__} {value!r}")
        self.words[_W_USE_BOXES] = int(value)

    @property
    def writes(self) -> int:
        """How many ``write`` calls the table has seen (any process)."""
        return self._control(_W_WRITES)

    # ------------------------------------------------------------- rows

    def _check_indices(self, indices, what: str = "indices") -> np.ndarray:
        arr = np.asarray(indices)
        if arr.ndim != 1:
            raise ValueError(f"{what} must be 1-D, got shape {arr.shape}")
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
        _store_rows(self.words, idx, packed)
        self.words[_W_WRITES] += np.uint64(1)

    def read(self, indices=None) -> np.ndarray:
        """Rows ``indices`` (all when None) as float32 (n, 4) ``(y0, x0, y1, x1)``."""
        idx = np.arange(len(self)) if indices is None else self._check_indices(indices)
        return unpack_boxes(_load_rows(self.words, idx))

    # ------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict:
        """Rows and controls for a trainer's checkpoint: ``rows`` int64 (n,) (the packed words), ``epoch``,
        ``seed``, ``use_boxes``, ``num_samples``, ``version``."""
        words = self.words.copy()
        return {"version": FORMAT_VERSION, "num_samples": int(words[_W_COUNT]), "epoch": int(words[_W_EPOCH]),
                "seed": int(words[_W_SEED]), "use_boxes": bool(words[_W_USE_BOXES]),
                "rows": words[HEADER_WORDS:].view(np.int64)}

    def load_state_dict(self, state: dict) -> None:
        """Restore rows and controls from ``state_dict()`` output (rows: int64/uint64 array or tensor).

        Everything is checked first (keys, version, the table's size, every row's
        box): a bad state changes nothing.
        """
        missing = {"version", "num_samples", "epoch", "seed", "use_boxes", "rows"} - set(state)
        if missing:
            raise KeyError(f"box table state lacks {sorted(missing)}")
        if state["version"] != FORMAT_VERSION:
            raise ValueError(f"box table state has format version {state['version']}, expected {FORMAT_VERSION}")
        rows = np.asarray(state["rows"])
        if rows.dtype not in (np.int64, np.uint64) or rows.ndim != 1:
            raise ValueError(f"box table state rows must be int64 (n,), got {rows.dtype} {rows.shape}")
        n = len(self)
        if state["num_samples"] != n or rows.shape[0] != n:
            raise ValueError(f"the checkpoint's box table has {state['num_samples']} rows but this table has {n}: "
                             "it belongs to a different dataset")
        rows = rows.view(np.uint64)
        check_boxes(unpack_boxes(rows), "box table state is corrupt:")
        epoch = _check_control("epoch", state["epoch"], 2**63 - 1)
        seed = _check_control("seed", state["seed"], 2**64 - 1)
        self.words[HEADER_WORDS:] = rows
        self.words[_W_EPOCH], self.words[_W_SEED] = epoch, seed
        self.words[_W_USE_BOXES] = bool(state["use_boxes"])
        self.words[_W_WRITES] += np.uint64(1)

    # ------------------------------------------------------------- files

    def save(self, path: str | os.PathLike) -> None:
        """Write the rows and controls to ``path`` atomically (temp file + rename).

        Format: magic ``CCROPBOX``, then the table's words (header + rows) as
        little-endian uint64, then a CRC-32 of all that as uint32.
        """
        path = Path(path)
        snapshot = self.words.copy()
        snapshot[0] = np.frombuffer(FILE_MAGIC, dtype=np.uint64)[0]
        data = snapshot.astype("<u8").tobytes()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.write(struct.pack("<I", zlib.crc32(data)))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            _unlink_file(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike, *, name: str | None = None) -> "BoxTable":
        """A new shared table holding the rows and controls saved at ``path``."""
        path = Path(path)
        data = path.read_bytes()
        body = data[:-4]
        _check_header(body[: 8 * HEADER_WORDS], f"box table file {str(path)!r}", len(data) - 4 - 8 * HEADER_WORDS,
                      magic=FILE_MAGIC)
        (crc,) = struct.unpack("<I", data[-4:])
        if zlib.crc32(body) != crc:
            raise ValueError(f"box table file {str(path)!r} is corrupt: checksum mismatch")
        words = np.frombuffer(body, dtype="<u8").astype(np.uint64)
        rows = words[HEADER_WORDS:]
        check_boxes(unpack_boxes(rows), f"box table file {str(path)!r} is corrupt:")
        table = cls.create(len(rows), name=name)
        table.words[HEADER_WORDS:] = rows
        table.words[_W_EPOCH] = words[_W_EPOCH]
        table.words[_W_SEED] = words[_W_SEED]
        table.words[_W_USE_BOXES] = words[_W_USE_BOXES] != 0
        return table


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
    if row_bytes != 8 * words[_W_COUNT]:
        raise ValueError(f"{what} is truncated or corrupt: header says {words[_W_COUNT]} samples "
                         f"({8 * words[_W_COUNT]} bytes of rows), found {row_bytes} bytes")
