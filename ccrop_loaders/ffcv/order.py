"""Distributed quasi-random order for FFCV: each rank a disjoint, page-contiguous share of every epoch.

FFCV 1.0.2's ``QUASI_RANDOM`` refuses ``distributed=True``, so a .beton read
from disk (``os_cache=False``) could not be trained on several GPUs. Here every
rank computes the same plan from (seed, epoch) alone: the .beton's pages in a
random order, each page's samples shuffled, padded to a multiple of the world
size as ``DistributedSampler(drop_last=False)`` pads (the first samples again);
rank r takes the r-th contiguous share, so each page is read by one rank (two at
a share's edges), and mixes it within windows of ``buffer_pages`` consecutive
pages, read once each. The Loader's own ``drop_last`` then applies per rank, as
with ``RANDOM``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from ffcv.traversal_order.base import TraversalOrder

from ..core.checks import check_int


def page_of_samples(page_to_samples: dict, num_samples: int) -> np.ndarray:
    """int64 (num_samples,): the page each sample's data starts on (FFCV's ``memory_manager.page_to_samples``,
    page -> samples; a sample on several pages gets its first), -1 for none."""
    page_of = np.full(num_samples, -1, dtype=np.int64)
    for page in sorted(page_to_samples, reverse=True):  # the first page wins
        samples = np.fromiter(page_to_samples[page], dtype=np.int64)
        page_of[samples[samples < num_samples]] = int(page)
    return page_of


def quasi_random_share(indices: np.ndarray, page_of: np.ndarray, *, seed: int, epoch: int, rank: int,
                       world_size: int, buffer_pages: int) -> np.ndarray:
    """Rank ``rank``'s samples for ``epoch``: int64 (ceil(len(indices) / world_size),), a pure function of
    (indices, pages, seed, epoch, world_size, buffer_pages); the ranks' shares are disjoint and, but for the
    padding (at most world_size - 1 samples taken again from the plan's start), cover ``indices``."""
    indices = np.asarray(indices, dtype=np.int64)
    n = indices.shape[0]
    rng = np.random.default_rng([seed, epoch])
    pages = page_of[indices]
    unique, dense = np.unique(pages, return_inverse=True)
    position = rng.permutation(unique.shape[0])[dense]  # each page's place in this epoch's plan
    plan = indices[np.lexsort((rng.random(n), position))]  # pages in plan order, samples shuffled inside
    per_rank = -(-n // world_size)
    plan = np.concatenate([plan, plan[: per_rank * world_size - n]])
    share = plan[rank * per_rank:(rank + 1) * per_rank]
    share_pages = page_of[share]
    run = np.cumsum(np.r_[True, share_pages[1:] != share_pages[:-1]]) - 1  # which run of one page
    return share[np.lexsort((rng.random(share.shape[0]), run // buffer_pages))]


class DistributedQuasiRandom(TraversalOrder):
    """``order=DistributedQuasiRandom()`` for an FFCV ``Loader`` (with or without ``distributed=True``).

    ``buffer_pages``: how many consecutive pages a rank mixes at a time (default
    ``2 * batch_size``, as FFCV's ``QUASI_RANDOM``); ``rank`` and ``world_size``
    default to torch.distributed's when the Loader is distributed (else 0 and 1).
    Every rank draws the same plan from (the Loader's seed, epoch).
    """

    def __init__(self, loader=None, *, buffer_pages: int | None = None, rank: int | None = None,
                 world_size: int | None = None):
        self._options = dict(buffer_pages=buffer_pages, rank=rank, world_size=world_size)
        if loader is None:  # FFCV calls the instance with the Loader: see __call__
            return
        super().__init__(loader)
        page_to_samples = loader.memory_manager.page_to_samples
        if not page_to_samples:
            raise ValueError("the .beton has no pages to order by: use OrderOption.RANDOM")
        self.page_of = page_of_samples(page_to_samples, len(loader.reader.metadata))
        self.indices = np.asarray(self.indices, dtype=np.int64)
        if (self.page_of[self.indices] < 0).any():
            raise ValueError("some samples lie on no page of the .beton: it is damaged")
        self.rank, self.world_size = self._placement(rank, world_size)
        self.buffer_pages = check_int("buffer_pages", 2 * loader.batch_size if buffer_pages is None else buffer_pages,
                                      1, 2**31 - 1)
        self.plan_seed = 0 if self.seed is None else check_int("seed", self.seed, 0, 2**63 - 1)

    def __call__(self, loader) -> "DistributedQuasiRandom":
        return DistributedQuasiRandom(loader, **self._options)

    def _placement(self, rank: int | None, world_size: int | None) -> tuple[int, int]:
        if rank is None and world_size is None and self.distributed:
            import torch.distributed as dist

            if not dist.is_initialized():
                raise RuntimeError("DistributedQuasiRandom with distributed=True needs torch.distributed "
                                   "initialized (init_process_group) or explicit rank and world_size")
            return dist.get_rank(), dist.get_world_size()
        world_size = check_int("world_size", 1 if world_size is None else world_size, 1, 2**31 - 1)
        return check_int("rank", 0 if rank is None else rank, 0, world_size - 1), world_size

    def sample_order(self, epoch: int) -> Sequence[int]:
        return quasi_random_share(self.indices, self.page_of, seed=self.plan_seed, epoch=epoch, rank=self.rank,
                                  world_size=self.world_size, buffer_pages=self.buffer_pages)
