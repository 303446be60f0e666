import multiprocessing as mp
import os
import threading
import time

import numba
import numpy as np
import pytest

from ccrop_loaders import BoxTable, sample_crop
from ccrop_loaders.core import load_box, load_controls, table_crop_window
from ccrop_loaders.core.sampler import beta_quantiles
from ccrop_loaders.core.files import shm_dir

BOX_A = np.array([0.1, 0.2, 0.3, 0.4])
BOX_B = np.array([0.6, 0.7, 0.8, 0.9])
A_ROW = tuple(np.float64(np.uint16(round(v * 65535))) / 65535 for v in BOX_A)
B_ROW = tuple(np.float64(np.uint16(round(v * 65535))) / 65535 for v in BOX_B)


@pytest.fixture
def table():
    with BoxTable.create(64) as t:
        yield t


@numba.njit(nogil=True)
def count_torn_reads(address, num_samples, reads, a, b):
    """Read rows round-robin; return (torn, seen_a, seen_b)."""
    torn = seen_a = seen_b = 0
    for r in range(reads):
        box = load_box(address, num_samples, r % num_samples)
        if box == a:
            seen_a += 1
        elif box == b:
            seen_b += 1
        else:
            torn += 1
    return torn, seen_a, seen_b


def test_create_defaults_and_read(table):
    assert len(table) == 64
    np.testing.assert_array_equal(table.read(), np.tile([0, 0, 1, 1], (64, 1)))
    assert (table.epoch, table.seed, table.use_boxes) == (0, 0, True)
    assert table.read().dtype == np.float32


def test_write_read_roundtrip_at_16_bit_resolution(table):
    rng = np.random.default_rng(0)
    lo, hi = np.sort(rng.random((10, 2, 2)), axis=2).transpose(2, 0, 1)
    boxes = np.stack([lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]], axis=1)
    idx = rng.choice(64, 10, replace=False)
    table.write(idx, boxes)
    np.testing.assert_allclose(table.read(idx), boxes, atol=0.5 / 65535 + 1e-7)
    assert table.writes == 1


def test_zero_area_box_is_legal(table):
    table.write([3], [[0.5, 0.5, 0.5, 0.5]])
    assert sample_crop(100, 100, table.read([3])[0]) is not None


def test_controls_are_live_in_compiled_code(table):
    @numba.njit
    def controls(address, n):
        return load_controls(address, n)

    assert controls(table.address, len(table)) == (0, 0, True)
    table.epoch, table.seed, table.use_boxes = 7, 2**64 - 1, False
    assert controls(table.address, len(table)) == (7, 2**64 - 1, False)


def test_compiled_code_sees_writes_made_after_compilation(table):
    @numba.njit
    def box_of(address, n, i):
        return load_box(address, n, i)

    assert box_of(table.address, len(table), 5) == (0.0, 0.0, 1.0, 1.0)
    table.write([5], [BOX_A])
    assert box_of(table.address, len(table), 5) == A_ROW


def test_table_crop_window_follows_rows_and_controls(table):
    q = beta_quantiles(0.6)
    args = (0.2, 1.0, np.log(3 / 4), np.log(4 / 3), q)
    table.write([9], [BOX_B])
    table.epoch, table.seed = 3, 11
    got = table_crop_window(table.address, len(table), 9, 1, 375, 500, *args)
    assert got == sample_crop(375, 500, B_ROW, seed=11, epoch=3, index=9, view=1)
    table.use_boxes = False  # warm-up: RandomResizedCrop
    got = table_crop_window(table.address, len(table), 9, 1, 375, 500, *args)
    assert got == sample_crop(375, 500, (0, 0, 1, 1), alpha=1.0, seed=11, epoch=3, index=9, view=1)


def test_no_torn_rows_with_threads(table):
    n = len(table)
    idx = np.arange(n)
    done = threading.Event()

    def writer():
        flip = False
        while not done.is_set():
            table.write(idx, np.tile(BOX_B if flip else BOX_A, (n, 1)))
            flip = not flip

    table.write(idx, np.tile(BOX_A, (n, 1)))
    count_torn_reads(table.address, n, 10, A_ROW, B_ROW)  # compile before the writer competes for the GIL
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while table.writes < 4 and time.monotonic() < deadline:  # the writer runs (a loaded machine is slow)
            time.sleep(0.001)
        # read until both boxes were seen (at least twice 2M reads): on a loaded machine the writer thread may
        # not run during a whole round
        results = []
        while len(results) < 2 or (time.monotonic() < deadline
                                   and not (sum(r[1] for r in results) and sum(r[2] for r in results))):
            results.append(count_torn_reads(table.address, n, 2_000_000, A_ROW, B_ROW))
    finally:
        done.set()
        thread.join()
    torn = sum(r[0] for r in results)
    assert torn == 0
    assert sum(r[1] for r in results) > 0 and sum(r[2] for r in results) > 0, "writer and reader never overlapped"


def _reader_process(name, reads, queue):
    table = BoxTable.attach(name)
    totals, deadline = np.zeros(3, dtype=np.int64), time.monotonic() + 60
    while totals.sum() < reads or (min(totals[1:]) == 0 and time.monotonic() < deadline):  # a loaded machine
        totals += count_torn_reads(table.address, len(table), 100_000, A_ROW, B_ROW)
    queue.put(tuple(int(t) for t in totals))
    table.close()


def test_no_torn_rows_across_processes(table):
    n = len(table)
    idx = np.arange(n)
    table.write(idx, np.tile(BOX_A, (n, 1)))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_reader_process, args=(table.name, 3_000_000, queue))
    proc.start()
    flip = False
    while proc.is_alive() and queue.empty():
        table.write(idx, np.tile(BOX_B if flip else BOX_A, (n, 1)))
        flip = not flip
    torn, seen_a, seen_b = queue.get(timeout=120)
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert torn == 0 and seen_a + seen_b >= 3_000_000
    assert seen_a > 0 and seen_b > 0, "the reader never saw a write from the parent"
    # the attaching process exited: the table must still exist (no resource-tracker unlink)
    assert (shm_dir() / table.name).exists()
    assert BoxTable.attach(table.name).read([0]).shape == (1, 4)


def _write_in_child(name):
    table = BoxTable.attach(name)
    table.write([1], [BOX_B])
    table.epoch = 42


def test_attach_by_name_shares_memory(table):
    proc = mp.get_context("spawn").Process(target=_write_in_child, args=(table.name,))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0
    np.testing.assert_allclose(table.read([1])[0], BOX_B, atol=1e-4)
    assert table.epoch == 42


def test_pickles_as_attach(table):
    import pickle

    other = pickle.loads(pickle.dumps(table))
    other.write([2], [BOX_A])
    np.testing.assert_allclose(table.read([2])[0], BOX_A, atol=1e-4)
    other.close()


def test_owner_unlinks_on_exit_and_attach_of_missing_name_fails():
    with BoxTable.create(4, name="ccrop-test-exit") as t:
        assert (shm_dir() / t.name).exists()
    assert not (shm_dir() / "ccrop-test-exit").exists()
    with pytest.raises(FileNotFoundError, match="ccrop-test-exit"):
        BoxTable.attach("ccrop-test-exit")


def test_create_refuses_existing_name(table):
    with pytest.raises(FileExistsError, match=table.name):
        BoxTable.create(4, name=table.name)


def test_save_load_roundtrip(table, tmp_path):
    table.write([0, 63], [BOX_A, BOX_B])
    table.epoch, table.seed, table.use_boxes = 12, 99, False
    path = tmp_path / "boxes.ccrop"
    table.save(path)
    assert os.listdir(tmp_path) == ["boxes.ccrop"]  # no temp file left behind
    with BoxTable.load(path) as loaded:
        np.testing.assert_array_equal(loaded.read(), table.read())
        assert (loaded.epoch, loaded.seed, loaded.use_boxes) == (12, 99, False)
        assert loaded.name != table.name


def _corrupt(data: bytes, kind: str) -> bytes:
    if kind == "truncated":
        return data[:-12]
    if kind == "flipped byte":
        return data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
    if kind == "wrong version":
        return data[:8] + (99).to_bytes(8, "little") + data[16:]
    if kind == "wrong magic":
        return b"NOTABOX!" + data[8:]
    if kind == "empty":
        return b""
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, words", [
    ("truncated", "truncated"), ("flipped byte", "checksum"), ("wrong version", "version 99"),
    ("wrong magic", "not a box table"), ("empty", "truncated"),
])
def test_load_rejects_bad_files_and_leaves_them(table, tmp_path, kind, words):
    path = tmp_path / "boxes.ccrop"
    table.save(path)
    bad = _corrupt(path.read_bytes(), kind)
    path.write_bytes(bad)
    before = set(os.listdir(shm_dir()))
    with pytest.raises(ValueError, match=words):
        BoxTable.load(path)
    assert path.read_bytes() == bad
    assert set(os.listdir(shm_dir())) == before  # no half-made table


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        BoxTable.load(tmp_path / "nope.ccrop")


def test_failed_save_keeps_the_old_file(table, tmp_path, monkeypatch):
    path = tmp_path / "boxes.ccrop"
    table.save(path)
    old = path.read_bytes()
    table.write([0], [BOX_B])

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        table.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["boxes.ccrop"]
    with pytest.raises(FileNotFoundError):
        table.save(tmp_path / "missing-dir" / "boxes.ccrop")


@pytest.mark.parametrize("indices, boxes, error, words", [
    ([0, 1], [[0, 0, 1, 1]], ValueError, "shape (2, 4)"),
    ([0], [[0, 0, 1]], ValueError, "(n, 4)"),
    ([0], [[0, 0, float("nan"), 1]], ValueError, "row 0, field y1"),
    ([0, 1], [[0, 0, 1, 1], [0, 0, 1, np.inf]], ValueError, "row 1, field x1"),
    ([0], [[-0.1, 0, 1, 1]], ValueError, "row 0, field y0"),
    ([0, 1], [[0, 0, 1, 1], [0.7, 0, 0.2, 1]], ValueError, "row 1 has y0"),
    ([0], [[0, 0.9, 1, 0.1]], ValueError, "x0"),
    ([0, 64], [[0, 0, 1, 1]] * 2, IndexError, "indices[1] = 64"),
    ([-1], [[0, 0, 1, 1]], IndexError, "indices[0] = -1"),
    ([0.0], [[0, 0, 1, 1]], ValueError, "integers"),
    ([[0]], [[0, 0, 1, 1]], ValueError, "1-D"),
])
def test_bad_writes_are_named_and_change_nothing(table, indices, boxes, error, words):
    table.write([0, 1], [BOX_A, BOX_B])
    before = table.words.copy()
    with pytest.raises(error) as info:
        table.write(indices, boxes)
    assert words in str(info.value)
    np.testing.assert_array_equal(table.words, before)


def test_bad_controls_and_names(table):
    with pytest.raises(ValueError, match="epoch"):
        table.epoch = -1
    with pytest.raises(TypeError, match="use_boxes"):
        table.use_boxes = 1
    with pytest.raises(TypeError, match="seed"):
        table.seed = 1.5
    with pytest.raises(ValueError, match="num_samples"):
        BoxTable.create(0)
    with pytest.raises(ValueError, match="name"):
        BoxTable.attach("a/b")
    with pytest.raises(ValueError, match="init_box"):
        BoxTable.create(3, init_box=(0, 1))
    with pytest.raises(IndexError, match="out of range"):
        table.read([64])


# ----------------------------------------------------------------- lifetimes and checked states


def test_a_mapping_outlives_close_and_unlink_in_any_order():
    @numba.njit
    def box_of(address, n, i):
        return load_box(address, n, i)

    for order in (("close", "unlink", "gc"), ("unlink", "close", "gc"), ("gc",)):
        table = BoxTable.create(8)
        table.write([3], [BOX_A])
        mapping, name = table.mapping(), table.name
        for step in order:
            if step == "close":
                table.close()
                table.close()  # idempotent
            elif step == "unlink":
                table.unlink()
            else:
                del table
        assert not (shm_dir() / name).exists()
        assert box_of(mapping.address, mapping.num_samples, 3) == A_ROW  # still mapped: no fault


def test_closed_table_refuses_use_and_only_the_creator_unlinks(table):
    other = BoxTable.attach(table.name)
    with pytest.raises(PermissionError, match="only its creator"):
        other.unlink()
    other.close()
    with pytest.raises(ValueError, match="is closed"):
        other.read()
    assert "closed" in repr(other)
    assert table.creator_pid == os.getpid()


def test_leaving_with_by_an_exception_unlinks(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with BoxTable.create(4) as t:
            name = t.name
            raise RuntimeError("boom")
    assert not (shm_dir() / name).exists()


@pytest.mark.parametrize("change, error, words", [
    ({"use_boxes": "False"}, TypeError, "use_boxes must be a bool, got str 'False'"),
    ({"use_boxes": 1}, TypeError, "use_boxes must be a bool"),
    ({"version": "1"}, ValueError, "format version '1' (str)"),
    ({"num_samples": 10}, ValueError, "declares 10 samples but holds 64 rows"),
    ({"num_samples": 10, "rows": np.zeros(10, np.int64)}, ValueError, "has 10 rows but this table has 64"),
    ({"epoch": 2**63}, ValueError, "epoch must be in"),
])
def test_bad_states_are_named_and_change_nothing(table, change, error, words):
    table.write([0], [BOX_A])
    state = {**table.state_dict(), **change}
    before = table.words.copy()
    with pytest.raises(error) as info:
        table.load_state_dict(state)
    assert words in str(info.value)
    assert "::" not in str(info.value)
    np.testing.assert_array_equal(table.words, before)


def test_corrupt_state_rows_are_named(table):
    state = table.state_dict()
    state["rows"] = state["rows"].copy()
    state["rows"][5] = np.int64(0x0000_0000_0000_FFFF)  # y0 = 1 > y1 = 0
    with pytest.raises(ValueError, match=r"^box table state is corrupt, rows: row 5 has y0"):
        table.load_state_dict(state)


def test_too_many_samples_are_refused_before_allocating():
    with pytest.raises(ValueError, match="at most"):
        BoxTable.create(2**62)
