"""DistributedQuasiRandom: each rank a disjoint, page-contiguous share of every epoch, the same plan on every rank."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from ffcv.fields import IntField, NDArrayField
from ffcv.writer import DatasetWriter

from ccrop_loaders.ffcv.order import DistributedQuasiRandom, page_of_samples, quasi_random_share

SAMPLES, SAMPLE_BYTES = 100, 200_000  # FFCV's smallest page (2 MiB) holds 10 of them


class _Arrays:
    def __len__(self):
        return SAMPLES

    def __getitem__(self, i):
        return np.full(SAMPLE_BYTES, i % 251, np.uint8), i


@pytest.fixture(scope="module")
def beton(tmp_path_factory):
    path = tmp_path_factory.mktemp("order") / "pages.beton"
    DatasetWriter(str(path), {"data": NDArrayField(np.dtype("u1"), (SAMPLE_BYTES,)), "idx": IntField()},
                  page_size=1 << 21, num_workers=1).from_indexed_dataset(_Arrays())
    return path


def _pages(sizes):
    return np.repeat(np.arange(len(sizes)), sizes).astype(np.int64)


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shares_are_disjoint_cover_the_data_and_keep_pages_together(world):
    rng = np.random.default_rng(0)
    page_of = _pages(rng.integers(1, 30, size=41))
    indices = np.arange(page_of.shape[0])
    n, buffer = indices.shape[0], 3
    for epoch in (0, 1):
        shares = [quasi_random_share(indices, page_of, seed=7, epoch=epoch, rank=r, world_size=world,
                                     buffer_pages=buffer) for r in range(world)]
        assert {s.shape[0] for s in shares} == {-(-n // world)}
        taken = np.concatenate(shares)
        assert set(taken) == set(indices) and taken.shape[0] - n < world  # all, and only padding twice
        for share in shares:
            assert np.unique(share).shape[0] == share.shape[0]
        # a page lies in at most two ranks' shares (a share's edges), and within a share in one window
        owners = {p: {r for r, s in enumerate(shares) if (page_of[s] == p).any()} for p in np.unique(page_of)}
        assert max(len(o) for o in owners.values()) <= 2
        for share in shares:
            for page in np.unique(page_of[share]):
                at = np.flatnonzero(page_of[share] == page)
                window = np.unique(page_of[share[at.min():at.max() + 1]]).shape[0]
                assert window <= 2 * buffer, (page, window)
    again = quasi_random_share(indices, page_of, seed=7, epoch=1, rank=0, world_size=world, buffer_pages=buffer)
    assert np.array_equal(again, shares[0])  # a pure function of its key: every rank sees one plan
    other = quasi_random_share(indices, page_of, seed=7, epoch=2, rank=0, world_size=world, buffer_pages=buffer)
    assert not np.array_equal(other, shares[0])


def test_page_of_samples_takes_each_samples_first_page():
    page_of = page_of_samples({np.uint64(3): {np.uint64(0), np.uint64(1)}, np.uint64(4): {np.uint64(1)}}, 3)
    assert page_of.tolist() == [3, 3, -1]


def test_a_single_loader_reads_every_sample_once(beton):
    from ffcv.fields.decoders import IntDecoder, NDArrayDecoder
    from ffcv.loader import Loader

    loader = Loader(str(beton), batch_size=8, num_workers=1, order=DistributedQuasiRandom(), os_cache=False,
                    seed=3, drop_last=False, pipelines={"data": [NDArrayDecoder()], "idx": [IntDecoder()]})
    for _ in range(2):
        seen = np.concatenate([np.array(idx).ravel() for data, idx in loader])  # FFCV reuses its buffers
        assert sorted(seen.tolist()) == list(range(SAMPLES))
    with pytest.raises(ValueError, match="rank"):
        Loader(str(beton), batch_size=8, num_workers=1, order=DistributedQuasiRandom(rank=2, world_size=2),
               pipelines={"idx": [IntDecoder()]})


_RANK = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import torch.distributed as dist
    from ffcv.fields.decoders import IntDecoder, NDArrayDecoder
    from ffcv.loader import Loader
    from ccrop_loaders.ffcv.order import DistributedQuasiRandom

    rank, world, beton, out, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    loader = Loader(beton, batch_size=4, num_workers=1, order=DistributedQuasiRandom(), os_cache=False,
                    distributed=True, seed=5, drop_last=False,
                    pipelines={"data": [NDArrayDecoder()], "idx": [IntDecoder()]})
    epochs = [[int(i) for data, idx in loader for i in np.asarray(idx).ravel()] for _ in range(2)]
    json.dump(epochs, open(out, "w"))
    dist.barrier()
    dist.destroy_process_group()
""")


@pytest.mark.parametrize("world", [2, 3])
def test_gloo_ranks_split_every_epoch(beton, tmp_path, world):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, "-c", _RANK, str(r), str(world), str(beton),
                               str(tmp_path / f"rank{r}.json"), str(port)], stderr=subprocess.PIPE, text=True)
             for r in range(world)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    per_rank = -(-SAMPLES // world)
    for epoch in range(2):
        shares = [r[epoch] for r in ranks]
        assert all(len(s) == per_rank for s in shares)
        assert set().union(*map(set, shares)) == set(range(SAMPLES))
        assert sum(map(len, shares)) - SAMPLES < world
    assert ranks[0][0] != ranks[0][1]  # a new order each epoch
