"""BoxUpdater: background writes, flush, copies of caller buffers, errors surfacing, close, a 2-process gloo sync."""
import os
import socket
import sys
import subprocess
import textwrap
import threading

import numpy as np
import pytest
import torch

from ccrop_loaders import BoxTable, BoxUpdater, localize_boxes
from ccrop_loaders.trainer import updater as updater_module


def maps(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 8, 7, 7, generator=g) ** 4


def test_flush_makes_every_write_visible():
    with BoxTable.create(64) as table, BoxUpdater(table, threshold=0.3) as updater:
        for start in range(0, 64, 16):
            updater.update(maps(16, start), torch.arange(start, start + 16))
        updater.flush()
        expected = torch.cat([localize_boxes(maps(16, s), threshold=0.3, input_size=224) for s in range(0, 64, 16)])
        np.testing.assert_allclose(table.read(), expected.numpy(), atol=1 / 65535)
        assert table.writes == 4


def bounded(fn, seconds=10.0):
    """Run ``fn()`` in a thread; return what it raised (None if it returned). Fails if it is still blocked."""
    raised = []

    def run():
        try:
            fn()
        except BaseException as error:
            raised.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    return raised[0] if raised else None


@pytest.fixture
def gate(monkeypatch):
    """Holds the background thread before each localization until the test sets the returned event."""
    event, real = threading.Event(), updater_module.localize_boxes

    def gated(*args, **kwargs):
        if threading.current_thread().name == "ccrop-box-updater":
            assert event.wait(30), "the test never opened the gate"
        return real(*args, **kwargs)

    monkeypatch.setattr(updater_module, "localize_boxes", gated)
    return event


def refill(buffer, values):
    """Overwrite a numpy or CPU torch ``buffer`` in place, as a loader reusing its output buffers does."""
    (buffer.numpy() if isinstance(buffer, torch.Tensor) else buffer)[...] = np.reshape(values, buffer.shape)


@pytest.mark.parametrize("index_buffer", [
    lambda b: torch.zeros(b, 1, dtype=torch.int64),  # FFCV's index column
    lambda b: torch.zeros(b, dtype=torch.int64),
    lambda b: np.zeros(b, dtype=np.int64),
    lambda b: np.zeros((b, 1), dtype=np.uint32),
], ids=["torch-B1", "torch-B", "numpy-B", "numpy-B1-uint32"])
def test_caller_may_overwrite_its_buffers_right_after_update(gate, index_buffer):
    n, b, batches = 32, 4, 3
    with BoxTable.create(n) as table, BoxUpdater(table, threshold=0.3) as updater:
        before = table.read()
        indices, feature_maps = index_buffer(b), torch.empty(b, 8, 7, 7)
        for step in range(batches):  # as FFCV does: the same buffers refilled for every batch
            refill(indices, np.arange(step * b, (step + 1) * b))
            feature_maps.copy_(maps(b, step))
            updater.update(feature_maps, indices)
        refill(indices, np.full(b, n - 1))  # the loader's next batch lands in the buffers while the boxes are still queued
        feature_maps.fill_(1.0)
        gate.set()
        updater.flush()
        rows = table.read()
        expected = localize_boxes(torch.cat([maps(b, s) for s in range(batches)]), threshold=0.3, input_size=224)
        np.testing.assert_allclose(rows[: b * batches], expected.numpy(), atol=1 / 65535)
        np.testing.assert_array_equal(rows[b * batches:], before[b * batches:])  # no other row was touched
        assert table.writes == batches


@pytest.mark.parametrize("indices", [
    np.arange(4, 8, dtype=np.uint64), torch.arange(4, 8).to(torch.uint64), torch.arange(4, 8).to(torch.uint32),
    np.arange(4, 8, dtype=np.int16), torch.arange(4, 8, dtype=torch.uint8), torch.arange(4, 8, dtype=torch.int32).view(4, 1),
    [4, 5, 6, 7],
], ids=["np-uint64", "torch-uint64", "torch-uint32", "np-int16", "torch-uint8", "torch-int32-B1", "list"])
def test_any_integer_dtype_is_accepted(indices):
    with BoxTable.create(8) as table, BoxUpdater(table, threshold=0.3) as updater:
        before = table.read()
        updater.update(maps(4), indices)
        updater.flush()
        np.testing.assert_allclose(table.read()[4:], localize_boxes(maps(4), threshold=0.3, input_size=224).numpy(),
                                   atol=1 / 65535)
        np.testing.assert_array_equal(table.read()[:4], before[:4])


@pytest.mark.parametrize("feature_maps, indices, error, words", [
    (maps(2), np.array([0, 2**63 + 1], dtype=np.uint64), IndexError,
     "indices[1] = 9223372036854775809 is outside the box table of 8 samples (rows 0 to 7)"),
    (maps(2), torch.tensor([0, 2**64 - 1], dtype=torch.uint64), IndexError, "indices[1] = 18446744073709551615 is"),
    (maps(2), [0, 8], IndexError, "indices[1] = 8 is outside the box table of 8 samples"),
    (maps(2), torch.tensor([-1, 0]), IndexError, "indices[0] = -1 is outside"),
    (maps(2), torch.tensor([0.0, 1.0]), ValueError, "indices must be integers (any integer dtype), got torch.float32"),
    (maps(2), torch.zeros(2, dtype=torch.bool), ValueError, "indices must be integers (any integer dtype), got torch.bool"),
    (maps(2), np.array([True, False]), ValueError, "indices must be integers (any integer dtype), got dtype bool"),
    (maps(2), [2**64, 0], ValueError, "indices must be integers (any integer dtype), got dtype object"),
    (maps(2), torch.arange(4).view(2, 2), ValueError,
     "indices must have shape (2,) or (2, 1) to match the 2 feature maps, got (2, 2)"),
    (maps(3), [0, 1], ValueError, "indices must have shape (3,) or (3, 1) to match the 3 feature maps, got (2,)"),
    (torch.zeros(2, 0, 4, 4), [0, 1], ValueError, "feature_maps must have C >= 1 channels"),
    (torch.zeros(2, 3, 4, 4, dtype=torch.int32), [0, 1], ValueError, "feature_maps must be floating point"),
    (torch.zeros(2, 4, 4), [0, 1], ValueError, "feature_maps must have shape (N, C, h, w)"),
    (np.zeros((2, 3, 4, 4)), [0, 1], TypeError, "feature_maps must be a torch.Tensor (N, C, h, w), got ndarray"),
])
def test_bad_input_is_refused_at_once_and_changes_nothing(feature_maps, indices, error, words):
    with BoxTable.create(8) as table, BoxUpdater(table) as updater:
        before = table.read()
        with pytest.raises(error) as info:
            updater.update(feature_maps, indices)
        assert words in str(info.value)
        updater.flush()
        np.testing.assert_array_equal(table.read(), before)
        assert table.writes == 0


@pytest.mark.parametrize("kwargs, words", [
    ({"input_size": 2.5}, "input_size must be a positive int or a pair (H, W) of positive ints, got 2.5"),
    ({"threshold": "high"}, "threshold must be a number in [0, 1), got 'high'"),
    ({"max_pending": 0}, "max_pending must be an int >= 1, got 0"),
    ({"writer": "everyone"}, "writer must be one of"),
])
def test_bad_options_are_refused(kwargs, words):
    with BoxTable.create(4) as table, pytest.raises(ValueError) as info:
        BoxUpdater(table, **kwargs)
    assert words in str(info.value)


def fail_first_localization(monkeypatch, after=None):
    """The background thread's first localization raises ValueError("bad batch") (once the event ``after`` is
    set, if given); later ones work."""
    calls, real = [], updater_module.localize_boxes

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            assert after is None or after.wait(30), "the test never set the event"
            raise ValueError("bad batch")
        return real(*args, **kwargs)

    monkeypatch.setattr(updater_module, "localize_boxes", flaky)


def test_a_failure_in_the_background_surfaces(monkeypatch):
    with BoxTable.create(8) as table, BoxUpdater(table) as updater:
        queued = threading.Event()
        fail_first_localization(monkeypatch, after=queued)
        updater.update(maps(2), [0, 1])
        updater.update(maps(2), [2, 3])  # queued before the failure is reported: dropped with it
        queued.set()
        with pytest.raises(RuntimeError, match="background thread failed: bad batch"):
            updater.flush()
        updater.flush()
        assert table.writes == 0
        updater.update(maps(2), [0, 1])  # the updater goes on after reporting
        updater.flush()
        assert table.writes == 1


def test_use_after_close_raises_and_closing_twice_is_fine():
    with BoxTable.create(8) as table:
        updater = BoxUpdater(table, max_pending=1)
        updater.update(maps(2), [0, 1])
        updater.close()
        assert table.writes == 1
        updater.close()
        for call in (lambda: updater.update(maps(2), [2, 3]), updater.flush,
                     lambda: [updater.update(maps(2), [2, 3]) for _ in range(3)]):  # the last one: a full queue
            error = bounded(call)
            assert isinstance(error, RuntimeError) and "after close()" in str(error)
        assert table.writes == 1


def test_a_dead_background_thread_never_blocks_the_trainer(monkeypatch):
    monkeypatch.setattr(updater_module, "_work", lambda *args: None)  # the background thread dies at once
    with BoxTable.create(8) as table:
        updater = BoxUpdater(table, max_pending=1)
        updater.update(maps(2), [0, 1])  # fits in the queue
        for call in (lambda: updater.update(maps(2), [2, 3]), updater.flush, updater.close):
            error = bounded(call)
            assert isinstance(error, RuntimeError) and "background thread is gone with 1 batches pending" in str(error)
        assert table.writes == 0


def test_an_error_in_the_block_propagates_without_flushing(gate):
    with BoxTable.create(8) as table:
        updaters = []

        def block():
            with BoxUpdater(table) as updater:
                updaters.append(updater)
                updater.update(maps(2), [0, 1])  # held by the gate: still queued when the block fails
                raise KeyError("the training step failed")

        error = bounded(block)
        gate.set()
        assert isinstance(error, KeyError) and "the training step failed" in str(error)
        assert table.writes == 0  # the queued batch was dropped, not flushed
        with pytest.raises(RuntimeError, match="after close"):
            updaters[0].update(maps(2), [0, 1])


def test_an_error_in_the_block_wins_over_a_background_failure(monkeypatch):
    with BoxTable.create(8) as table, pytest.raises(KeyError, match="the training step failed"):
        with BoxUpdater(table) as updater:
            fail_first_localization(monkeypatch)
            updater.update(maps(2), [0, 1])
            raise KeyError("the training step failed")


def test_sync_needs_distributed():
    with BoxTable.create(4) as table, pytest.raises(ValueError, match="sync=True needs torch.distributed"):
        BoxUpdater(table, sync=True)


RANK_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, torch, torch.distributed as dist
    from ccrop_loaders import BoxTable, BoxUpdater, localize_boxes
    rank, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    n = 40
    with BoxTable.create(n) as table:                  # one table per rank: as on two nodes
        shard = torch.arange(rank, n, 2)               # each rank localizes its shard
        g = torch.Generator().manual_seed(100 + rank)
        feature_maps = torch.rand(len(shard), 8, 7, 7, generator=g) ** 4
        mine = localize_boxes(feature_maps, threshold=0.2, input_size=224)
        with BoxUpdater(table, threshold=0.2) as updater:
            for part in torch.split(torch.arange(len(shard)), 7):   # uneven batches
                updater.update(feature_maps[part], shard[part])
            updater.flush()
            np.savez(out, rows=table.read(), shard=shard.numpy(), mine=mine.numpy())
    dist.destroy_process_group()
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_end_with_identical_tables(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(port), str(tmp_path / f"r{r}.npz")], env=env)
             for r in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    r0, r1 = np.load(tmp_path / "r0.npz"), np.load(tmp_path / "r1.npz")
    np.testing.assert_array_equal(r0["rows"], r1["rows"])
    for r in (r0, r1):  # each rank's boxes, as that rank computed them, are in both tables
        np.testing.assert_allclose(r0["rows"][r["shard"]], r["mine"], atol=1 / 65535)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_maps_go_through_pinned_copies():
    with BoxTable.create(32) as table, BoxUpdater(table, threshold=0.3) as updater:
        feature_maps = maps(32).cuda()
        updater.update(feature_maps, torch.arange(32).cuda())
        updater.flush()
        np.testing.assert_allclose(table.read(), localize_boxes(maps(32), threshold=0.3, input_size=224).numpy(),
                                   atol=2 / 65535)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_buffers_may_be_overwritten_right_after_update():
    n, b = 64, 16
    with BoxTable.create(n) as table, BoxUpdater(table, threshold=0.3) as updater:
        before = table.read()
        indices, feature_maps = torch.arange(b).view(b, 1).cuda(), maps(b).cuda()
        torch.cuda._sleep(100_000_000)  # a busy GPU: the side stream's copies are still to come when update returns
        updater.update(feature_maps, indices)
        indices.fill_(n - 1)  # the loader's next batch, on the current stream
        feature_maps.fill_(1.0)
        updater.flush()
        rows = table.read()
        np.testing.assert_allclose(rows[:b], localize_boxes(maps(b), threshold=0.3, input_size=224).numpy(),
                                   atol=2 / 65535)
        np.testing.assert_array_equal(rows[b:], before[b:])


def test_local_leader_writer_leaves_the_table_to_local_rank_0(monkeypatch):
    with BoxTable.create(4) as table:
        monkeypatch.setenv("LOCAL_RANK", "1")
        with BoxUpdater(table, writer="local_leader") as follower:
            follower.update(maps(4), torch.arange(4))
            follower.flush()
        assert table.writes == 0
        monkeypatch.setenv("LOCAL_RANK", "0")
        with BoxUpdater(table, writer="local_leader") as leader:
            leader.update(maps(4), torch.arange(4))
            leader.flush()
        assert table.writes == 1


def test_an_updater_nobody_closed_is_collected_and_its_thread_ends():
    import gc
    import time

    threads = []
    with BoxTable.create(8) as table:
        for _ in range(5):
            updater = BoxUpdater(table)
            updater.update(maps(2), [0, 1])
            updater.flush()
            threads.append(updater._thread)
        del updater
        gc.collect()
        deadline = time.monotonic() + 10
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(t.is_alive() for t in threads)
        assert table.writes == 5


def test_health_reports_each_pass_and_warns_on_collapse():
    """Issue 24.4: after a pass the updater reports mean area, whole-image share and the change since the last."""
    with BoxTable.create(8) as table:
        table.write(np.arange(8), np.tile([0.25, 0.25, 0.75, 0.75], (8, 1)))
        with BoxUpdater(table, input_size=32) as updater:
            maps = torch.zeros(8, 4, 4, 4)  # all-zero maps: every box is the whole image
            updater.update(maps, torch.arange(8))
            updater.flush()
            health = updater.health()
            assert health.full_share == 1.0 and health.changed_share == 1.0
            assert health.area_change == pytest.approx(0.75, abs=1e-3) and health.warning() is not None
            assert updater.health().changed_share == 0.0  # nothing moved since
