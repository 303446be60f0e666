"""BoxTable: one ContrastiveCrop box per sample, in memory shared across processes (its lifecycle and rows).

The memory layout and the untorn word access are ``table_layout``'s; the saved
file format is ``table_file``'s; ``orphans`` sweeps tables whose creator died.
The memory is a file under ``/dev/shm`` named after the table, so other
processes (DALI workers, other loaders, other ranks on the node) attach by name;
only the creator unlinks it, and attaching registers nothing with Python's
resource tracker (``files.py``: space reserved first, a creator lock that tells
live tables from leftovers, cleanup on SIGTERM).
"""
from __future__ import annotations

import mmap
import os
import secrets
import weakref
from pathlib import Path
from typing import Sequence

import numpy as np

from .checks import check_control, check_flag, check_name
from .files import (forget_owned, lock_as_creator, make_temp, open_regular, register_owned, reserve, shm_dir,
                    unlink_quietly)
from .sampler import FULL_BOX
from .table_file import read_table_file, write_table_file
from .table_layout import (FORMAT_VERSION, HEADER_WORDS, MAGIC, MAX_SAMPLES, W_COUNT, W_CREATOR, W_EPOCH, W_SEED,
                           W_USE_BOXES, W_VERSION, W_WRITES, check_header, count_write, first_bad_row, load_all_boxes,
                           load_boxes, load_words, pack_boxes, store_rows)


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


def check_state(state: dict) -> tuple[np.ndarray, int, int, bool]:
    """``(rows uint64 (n,), epoch, seed, use_boxes)`` of a ``BoxTable.state_dict()`` (rows: int64/uint64 array or a
    tensor's numpy view), every field checked: keys, version, declared size, each row's box, the controls' types.
    A bad state raises naming the field."""
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
    declared = check_control("num_samples", state["num_samples"], 2**63 - 1)
    if declared != rows.shape[0]:
        raise ValueError(f"box table state is corrupt: it declares {declared} samples but holds "
                         f"{rows.shape[0]} rows")
    rows = np.ascontiguousarray(rows).view(np.uint64)
    bad = first_bad_row(rows)
    if bad >= 0:
        raise ValueError(f"box table state is corrupt, rows: row {bad} has y0 > y1 or x0 > x1")
    return (rows, check_control("epoch", state["epoch"], 2**63 - 1), check_control("seed", state["seed"], 2**64 - 1),
            check_flag("use_boxes", state["use_boxes"]))


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
        name = check_name(name) if name is not None else f"ccrop-{os.getpid()}-{secrets.token_hex(4)}"
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
            header[W_VERSION], header[W_COUNT], header[W_USE_BOXES] = FORMAT_VERSION, num_samples, 1
            header[W_CREATOR] = os.getpid()
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
        path = shm_dir() / check_name(name)
        what = f"shared table {name!r} ({path})"
        try:
            fd = open_regular(path, os.O_RDWR | os.O_NOFOLLOW, what)
        except FileNotFoundError:
            raise FileNotFoundError(f"no box table named {name!r} (looked for {path}); "
                                    "create it with BoxTable.create(...) first") from None
        try:
            size = os.fstat(fd).st_size
            check_header(os.pread(fd, 8 * HEADER_WORDS, 0), what, size - 8 * HEADER_WORDS)
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

    epoch = property(lambda self: self._control(W_EPOCH), doc="Epoch keying the crops' randomness.")
    seed = property(lambda self: self._control(W_SEED), doc="Seed keying the crops' randomness.")
    use_boxes = property(lambda self: bool(self._control(W_USE_BOXES)),
                         doc="False during warm-up: every crop is plain RandomResizedCrop.")

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.words[W_EPOCH] = check_control("epoch", value, 2**63 - 1)

    @seed.setter
    def seed(self, value: int) -> None:
        self.words[W_SEED] = check_control("seed", value, 2**64 - 1)

    @use_boxes.setter
    def use_boxes(self, value: bool) -> None:
        self.words[W_USE_BOXES] = int(check_flag("use_boxes", value))

    @property
    def writes(self) -> int:
        """How many ``write`` calls the table has seen (any process; counted atomically)."""
        return self._control(W_WRITES)

    @property
    def creator_pid(self) -> int:
        """Process id of the table's creator (on this host)."""
        return self._control(W_CREATOR)

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
        store_rows(mapping.address, idx, packed)
        count_write(mapping.address)

    def read(self, indices=None) -> np.ndarray:
        """Rows ``indices`` (all when None) as float32 (n, 4) ``(y0, x0, y1, x1)``; nothing but the output is
        allocated."""
        mapping = self.mapping()
        if indices is None:
            return load_all_boxes(mapping.address, mapping.num_samples)
        return load_boxes(mapping.address, self._check_indices(indices))

    def packed_rows(self) -> np.ndarray:
        """uint64 (n,): every row as its packed word (``table_layout``), read whole while writers may write."""
        return self._snapshot()[HEADER_WORDS:]

    def _snapshot(self) -> np.ndarray:
        """A copy of the words (header, then every row read whole while writers may be writing), in one pass."""
        mapping = self.mapping()
        return load_words(mapping.address, HEADER_WORDS + mapping.num_samples)

    # ------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict:
        """Rows and controls: ``rows`` int64 (n,) (the packed words), ``epoch``, ``seed``, ``use_boxes``,
        ``num_samples``, ``version``. For a torch checkpoint (``weights_only=True`` loads) use
        ``ccrop_loaders.table_state``, which holds the rows as a tensor."""
        words = self._snapshot()
        return {"version": FORMAT_VERSION, "num_samples": int(words[W_COUNT]), "epoch": int(words[W_EPOCH]),
                "seed": int(words[W_SEED]), "use_boxes": bool(words[W_USE_BOXES]),
                "rows": words[HEADER_WORDS:].view(np.int64)}

    def load_state_dict(self, state: dict) -> None:
        """Restore rows and controls from ``state_dict()`` output (rows: int64/uint64 array or tensor).

        Everything is checked first (keys, version, the table's size, every row's
        box, the controls' types): a bad state changes nothing.
        """
        rows, epoch, seed, use_boxes = check_state(state)
        n = len(self)
        if rows.shape[0] != n:
            raise ValueError(f"the checkpoint's box table has {rows.shape[0]} rows but this table has {n}: "
                             "it belongs to a different dataset")
        words = self.words
        store_rows(self.address, np.arange(n, dtype=np.int64), rows)
        words[W_EPOCH], words[W_SEED], words[W_USE_BOXES] = epoch, seed, int(use_boxes)
        count_write(self.address)

    # ------------------------------------------------------------- files

    def save(self, path: str | os.PathLike) -> None:
        """Write the rows and controls to ``path`` atomically: a crash at any point leaves the old file or the new.

        The format and the atomic write: ``table_file.write_table_file``.
        """
        write_table_file(path, self._snapshot())

    @classmethod
    def load(cls, path: str | os.PathLike, *, name: str | None = None) -> "BoxTable":
        """A new shared table holding the rows and controls saved at ``path`` (checked by ``read_table_file``)."""
        words = read_table_file(path, room_for_table=True)
        table = cls.create(len(words) - HEADER_WORDS, name=name)
        table.words[HEADER_WORDS:] = words[HEADER_WORDS:]
        table.words[W_EPOCH], table.words[W_SEED] = words[W_EPOCH], words[W_SEED]
        table.words[W_USE_BOXES] = words[W_USE_BOXES]
        return table
