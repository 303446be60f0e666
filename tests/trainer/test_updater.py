"""BoxUpdater: background writes, flush, errors surfacing, and a 2-process gloo sync."""
import os
import socket
import sys
import subprocess
import textwrap

import numpy as np
import pytest
import torch

from ccrop_loaders import BoxTable, BoxUpdater, localize_boxes


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


def test_bad_input_is_refused_and_changes_nothing():
    with BoxTable.create(8) as table, BoxUpdater(table) as updater:
        before = table.read()
        with pytest.raises(ValueError, match="feature_maps has 3 maps but indices has 2"):
            updater.update(maps(3), [0, 1])
        with pytest.raises(IndexError, match="indices\\[1\\] = 8 is outside the box table of 8 samples"):
            updater.update(maps(2), [0, 8])
        with pytest.raises(ValueError, match="indices must be integers"):
            updater.update(maps(2), torch.tensor([0.0, 1.0]))
        updater.flush()
        np.testing.assert_array_equal(table.read(), before)


def test_a_failure_in_the_background_surfaces():
    with BoxTable.create(8) as table, BoxUpdater(table) as updater:
        updater.update(torch.zeros(2, 0, 4, 4), [0, 1])  # no channels: localization fails in the background
        with pytest.raises(RuntimeError, match="background thread failed: feature_maps has no channels"):
            updater.flush()
        updater.update(maps(2), [0, 1])  # the updater goes on after reporting
        updater.flush()
        assert table.writes == 1


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
