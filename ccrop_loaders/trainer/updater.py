"""BoxUpdater: feature maps in, boxes written to the shared table in the background."""
from __future__ import annotations

import collections
import numbers
import os
import threading
import warnings
import weakref
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist

from ..core import BoxTable
from ..core.health import BoxHealth, box_health
from .localize import check_feature_maps, localize_boxes

WRITERS = ("every_rank", "local_leader")
_POLL_S = 0.5  # a trainer waiting on the background thread checks this often that it is alive and has not failed
_STOP_TIMEOUT_S = 60.0  # how long stopping waits for the batch in hand
_CUDA_INDEX_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)  # copied to int64 on the GPU


def _flat(indices, n: int):
    """Numpy or torch ``indices`` (n,) or (n, 1) as (n,); any other shape is refused."""
    if indices.ndim == 2 and indices.shape[1] == 1:
        indices = indices.reshape(-1)
    if indices.ndim != 1 or indices.shape[0] != n:
        raise ValueError(f"indices must have shape ({n},) or ({n}, 1) to match the {n} feature maps, "
                         f"got {tuple(indices.shape)}")
    return indices


class BoxUpdater:
    """Hands feature maps to a background thread that turns them into boxes and writes them to ``table``.

    ``update(feature_maps, indices)`` costs the training loop a copy or a few
    kernel launches, and copies what it queues: the caller may overwrite both
    arguments as soon as it returns (FFCV and DALI reuse their batch buffers).
    On CUDA the boxes are computed on the maps' device and copied into pinned
    host memory on a side stream, with an event the background thread waits on;
    on the CPU ``update`` keeps the maps' channel sum (localization's first step)
    and the background thread localizes. ``flush()`` waits for every pending
    batch; an error in the background is raised by the next call, and the
    batches queued before that call are dropped.

    Distributed (``sync=True``, default when torch.distributed is initialized with
    more than one rank): boxes are collected and, at ``flush()`` (a collective:
    every rank calls it), all-gathered so every rank writes every rank's boxes and
    all tables end identical. ``writer="local_leader"`` lets only LOCAL_RANK 0
    write, for one table shared by the processes of a node.

    ``close()`` (or leaving a ``with`` block normally) flushes, then stops the
    thread; a closed updater refuses ``update`` and ``flush``. Leaving a ``with``
    block by an exception runs nothing collective: it drops what is queued, stops
    the thread and lets the exception go on (the other ranks fail on their next
    collective or on the process group's timeout).
    """

    def __init__(self, table: BoxTable, *, threshold: float = 0.1, input_size: Sequence[int] | int | None = 224,
                 sync: bool | None = None, writer: str = "every_rank", max_pending: int = 64):
        if writer not in WRITERS:
            raise ValueError(f"writer must be one of {WRITERS}, got {writer!r}")
        if isinstance(max_pending, bool) or not isinstance(max_pending, numbers.Integral) or max_pending < 1:
            raise ValueError(f"max_pending must be an int >= 1, got {max_pending!r}")
        localize_boxes(torch.zeros(1, 1, 1, 1), threshold=threshold, input_size=input_size)  # checks both now
        self.table, self.threshold, self.input_size = table, float(threshold), input_size
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.sync = distributed if sync is None else bool(sync)
        if self.sync and not distributed:
            raise ValueError("sync=True needs torch.distributed initialized with more than one rank")
        if writer == "local_leader" and distributed and not self.sync:
            raise ValueError("writer='local_leader' needs sync=True: without the all-gather, only the leader's own "
                             "boxes would be written and the other ranks' dropped")
        self.writes_here = writer == "every_rank" or int(os.environ.get("LOCAL_RANK", "0")) == 0
        self.max_pending = int(max_pending)
        self._lock = threading.Condition()  # guards everything below that both threads touch
        self._items: collections.deque = collections.deque()  # queued batches, oldest first
        self._pending = 0  # batches queued or in the background thread's hands
        self._error: BaseException | None = None
        self._closed = False
        self._collected: list[tuple[np.ndarray, np.ndarray]] = []
        self._stream = None
        self._previous_rows = table.packed_rows()
        self._thread = threading.Thread(target=_work, args=(weakref.ref(self), self._lock), name="ccrop-box-updater",
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------- trainer thread

    def update(self, feature_maps: torch.Tensor, indices) -> None:
        """Queue boxes from ``feature_maps`` float (N, C, h, w) (CPU or CUDA) for global samples ``indices``.

        ``indices``: any integer dtype, shape (N,) or (N, 1) (FFCV's index
        column, flattened), as a torch tensor (CPU or CUDA), numpy array or
        sequence; every value must be a row of the table (checked here for CPU
        indices, in the background for CUDA ones; unsigned CUDA indices wider than
        8 bits are moved to the host first, a sync). Both arguments are copied
        before returning. Waits while ``max_pending`` batches are queued.
        """
        self._check_open("update")
        self._raise_error()
        check_feature_maps(feature_maps)
        feature_maps = feature_maps.detach()
        indices = self._own_indices(indices, len(feature_maps), keep_cuda=feature_maps.is_cuda)
        if feature_maps.is_cuda:
            item = self._cuda_item(feature_maps, indices)
        else:  # the channel sum is a copy, and localize_boxes gives the same boxes from it
            item = (None, feature_maps.float().sum(dim=1, keepdim=True), indices)
        with self._lock:
            while self._pending >= self.max_pending:
                self._wait("update")
            self._items.append(item)
            self._pending += 1
            self._lock.notify_all()

    def flush(self) -> None:
        """Wait until every queued batch is written (distributed: gathered from all ranks and written)."""
        self._check_open("flush")
        with self._lock:
            while self._pending:
                self._wait("flush")
        self._raise_error()
        if self.sync:
            self._gather_and_write()

    def health(self) -> BoxHealth:
        """``BoxHealth`` of the table now (call it after ``flush()``, at the end of a localization pass), with the
        change since the previous call (or since the updater was made). Keeps a copy of the packed rows (8 bytes a
        sample) for the next call. Prints nothing: ``BoxHealth.warning()`` says when the boxes collapse."""
        self._check_open("health")
        rows = self.table.packed_rows()
        health = box_health(rows, self._previous_rows)
        self._previous_rows = rows
        return health

    def close(self) -> None:
        """Flush, then stop the background thread (it stops even if the flush fails). Closing again does nothing."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._stop()

    def __enter__(self) -> BoxUpdater:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # an error path: nothing collective, no flush; the exception goes on
            self._stop()

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise RuntimeError(f"BoxUpdater.{what}() after close(): this updater's background thread has stopped; "
                               "create a new BoxUpdater")

    def _raise_error(self) -> None:
        """Raise the background thread's failure, if any, dropping the batches queued before it is reported."""
        with self._lock:
            error, self._error = self._error, None
            if error is None:
                return
            dropped = len(self._items)
            self._items.clear()
            self._pending -= dropped
        raise RuntimeError(f"the box updater's background thread failed: {error}"
                           + (f" ({dropped} queued batches dropped)" if dropped else "")) from error

    def _wait(self, what: str) -> None:
        """With the lock held: wait a while for the background thread, raising if it failed or is gone."""
        self._raise_error()
        if not self._thread.is_alive():
            raise RuntimeError(f"BoxUpdater.{what}(): the background thread is gone with {self._pending} batches "
                               "pending")
        self._lock.wait(_POLL_S)

    def _stop(self) -> None:
        """Drop what is queued and stop the background thread (waits for the batch in hand)."""
        with self._lock:
            self._closed = True
            self._pending -= len(self._items)
            self._items.clear()
            self._lock.notify_all()
        self._thread.join(_STOP_TIMEOUT_S)
        if self._thread.is_alive():
            warnings.warn(f"the box updater's background thread is still busy after {_STOP_TIMEOUT_S:.0f} s; "
                          "leaving it behind", RuntimeWarning, stacklevel=3)

    def _own_indices(self, indices, n: int, keep_cuda: bool) -> torch.Tensor:
        """A fresh int64 (n,) tensor holding ``indices``: on the host and range-checked, or (``keep_cuda``)
        copied on the current CUDA stream, checked in the background."""
        if isinstance(indices, torch.Tensor):
            if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
                raise ValueError(f"indices must be integers (any integer dtype), got {indices.dtype}")
            if keep_cuda and indices.is_cuda and indices.dtype in _CUDA_INDEX_DTYPES:
                return _flat(indices.detach(), n).to(torch.int64, copy=True)
            indices = indices.detach().cpu().numpy()
        array = _flat(np.asarray(indices), n)
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"indices must be integers (any integer dtype), got dtype {array.dtype}")
        self._check_range(array)
        return torch.from_numpy(array.astype(np.int64))

    def _check_range(self, indices: np.ndarray) -> None:
        n = len(self.table)
        bad = (indices < 0) | (indices >= n)
        if bad.any():
            i = int(np.argmax(bad))
            raise IndexError(f"indices[{i}] = {indices[i]} is outside the box table of {n} samples (rows 0 to {n - 1})")

    def _cuda_item(self, feature_maps: torch.Tensor, indices: torch.Tensor):
        """(event, pinned boxes float32 (N, 4), int64 indices (N,) on the host once the event is done)."""
        boxes = localize_boxes(feature_maps, threshold=self.threshold, input_size=self.input_size)
        device = feature_maps.device
        if self._stream is None:
            self._stream = torch.cuda.Stream(device)
        self._stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(self._stream):
            host_boxes = torch.empty(boxes.shape, dtype=boxes.dtype, pin_memory=True)
            host_boxes.copy_(boxes, non_blocking=True)
            if indices.is_cuda:
                host_indices = torch.empty(indices.shape, dtype=torch.int64, pin_memory=True)
                host_indices.copy_(indices, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self._stream)
        boxes.record_stream(self._stream)
        if indices.is_cuda:  # our own copy, made on the current stream: the caller cannot change it
            indices.record_stream(self._stream)
            indices = host_indices
        return done, host_boxes, indices

    # ------------------------------------------------------------- background thread

    def _handle(self, done, payload: torch.Tensor, indices: torch.Tensor) -> None:
        if done is not None:
            done.synchronize()
            boxes = payload
        else:
            boxes = localize_boxes(payload, threshold=self.threshold, input_size=self.input_size)
        indices, boxes = indices.numpy(), boxes.numpy()
        self._check_range(indices)
        if self.sync:
            self._collected.append((indices, boxes))
        elif self.writes_here:
            self.table.write(indices, boxes)

    # ------------------------------------------------------------- distributed

    def _gather_and_write(self) -> None:
        indices = np.concatenate([i for i, _ in self._collected]) if self._collected else np.zeros(0, np.int64)
        boxes = np.concatenate([b for _, b in self._collected]) if self._collected else np.zeros((0, 4), np.float32)
        self._collected = []
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        world = dist.get_world_size()
        count = torch.tensor([len(indices)], device=device)
        counts = [torch.zeros_like(count) for _ in range(world)]
        dist.all_gather(counts, count)
        longest = int(max(c.item() for c in counts))
        padded_idx = torch.zeros(longest, dtype=torch.int64, device=device)
        padded_idx[: len(indices)] = torch.from_numpy(indices)
        padded_box = torch.zeros(longest, 4, dtype=torch.float32, device=device)
        padded_box[: len(boxes)] = torch.from_numpy(boxes)
        all_idx = [torch.zeros_like(padded_idx) for _ in range(world)]
        all_box = [torch.zeros_like(padded_box) for _ in range(world)]
        dist.all_gather(all_idx, padded_idx)
        dist.all_gather(all_box, padded_box)
        if self.writes_here:
            gathered_idx = torch.cat([t[: int(c.item())] for t, c in zip(all_idx, counts)]).cpu().numpy()
            gathered_box = torch.cat([t[: int(c.item())] for t, c in zip(all_box, counts)]).cpu().numpy()
            if len(gathered_idx):
                self.table.write(gathered_idx, gathered_box)
        dist.barrier()  # every node's table is written before anyone trains on it


def _work(updater_ref: weakref.ref, lock: threading.Condition) -> None:
    """The background thread. It holds the updater only while taking or handling a batch, so an updater that was
    never closed is still garbage-collected, and the thread then ends within ``_POLL_S``."""
    while True:
        with lock:
            updater = updater_ref()
            while updater is not None and not updater._items and not updater._closed:
                updater = None
                lock.wait(_POLL_S)
                updater = updater_ref()
            if updater is None or updater._closed:
                return
            item = updater._items.popleft()
            skip = updater._error is not None  # after a failure, drop the rest until the trainer hears of it
        try:
            if not skip:
                updater._handle(*item)
        except BaseException as error:  # surfaced by the trainer's next call
            with lock:
                updater._error = error
        finally:
            with lock:
                updater._pending -= 1
                lock.notify_all()
        del updater, item
