"""BoxUpdater: feature maps in, boxes written to the shared table in the background."""
from __future__ import annotations

import os
import queue
import threading
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist

from ..core import BoxTable
from .localize import localize_boxes

WRITERS = ("every_rank", "local_leader")


class BoxUpdater:
    """Hands feature maps to a background thread that turns them into boxes and writes them to ``table``.

    ``update(feature_maps, indices)`` costs the training loop a few kernel
    launches: on CUDA the boxes are computed on the maps' device and copied into
    pinned host memory on a side stream, with an event the background thread waits
    on; on the CPU the background thread localizes. ``flush()`` waits for every
    pending batch; an error in the background is raised by the next call.

    Distributed (``sync=True``, default when torch.distributed is initialized with
    more than one rank): boxes are collected and, at ``flush()`` (a collective:
    every rank calls it), all-gathered so every rank writes every rank's boxes and
    all tables end identical. ``writer="local_leader"`` lets only LOCAL_RANK 0
    write, for one table shared by the processes of a node.
    """

    def __init__(self, table: BoxTable, *, threshold: float = 0.1, input_size: Sequence[int] | int | None = 224,
                 sync: bool | None = None, writer: str = "every_rank", max_pending: int = 64):
        if writer not in WRITERS:
            raise ValueError(f"writer must be one of {WRITERS}, got {writer!r}")
        self.table, self.threshold, self.input_size = table, float(threshold), input_size
        localize_boxes(torch.zeros(1, 1, 1, 1), threshold=self.threshold)  # checks threshold now
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.sync = distributed if sync is None else bool(sync)
        if self.sync and not distributed:
            raise ValueError("sync=True needs torch.distributed initialized with more than one rank")
        self.writes_here = writer == "every_rank" or int(os.environ.get("LOCAL_RANK", "0")) == 0
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._collected: list[tuple[np.ndarray, np.ndarray]] = []
        self._stream = None
        self._thread = threading.Thread(target=self._work, name="ccrop-box-updater", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------- trainer thread

    def update(self, feature_maps: torch.Tensor, indices) -> None:
        """Queue boxes for samples ``indices`` (int (N,), global) from ``feature_maps`` float (N, C, h, w)."""
        self._raise_error()
        if not isinstance(feature_maps, torch.Tensor) or feature_maps.dim() != 4:
            raise ValueError("feature_maps must be a float tensor (N, C, h, w), got "
                             f"{getattr(feature_maps, 'shape', type(feature_maps).__name__)}")
        indices = torch.as_tensor(indices)
        if indices.dim() != 1 or indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise ValueError(f"indices must be integers (N,), got {indices.dtype} {tuple(indices.shape)}")
        if indices.shape[0] != feature_maps.shape[0]:
            raise ValueError(f"feature_maps has {feature_maps.shape[0]} maps but indices has {indices.shape[0]}")
        if not indices.is_cuda:
            self._check_range(indices)
        feature_maps = feature_maps.detach()
        if feature_maps.is_cuda:
            boxes = localize_boxes(feature_maps, threshold=self.threshold, input_size=self.input_size)
            if self._stream is None:
                self._stream = torch.cuda.Stream(feature_maps.device)
            self._stream.wait_stream(torch.cuda.current_stream(feature_maps.device))
            with torch.cuda.stream(self._stream):
                host_boxes = torch.empty(boxes.shape, dtype=boxes.dtype, pin_memory=True)
                host_boxes.copy_(boxes, non_blocking=True)
                host_indices = torch.empty(indices.shape, dtype=torch.int64, pin_memory=True)
                host_indices.copy_(indices, non_blocking=True)
                done = torch.cuda.Event()
                done.record(self._stream)
            boxes.record_stream(self._stream)
            if indices.is_cuda:
                indices.record_stream(self._stream)
            self._queue.put((done, host_boxes, host_indices))
        else:
            self._queue.put((None, feature_maps, indices.to(torch.int64)))

    def flush(self) -> None:
        """Wait until every queued batch is written (distributed: gathered from all ranks and written)."""
        self._queue.join()
        self._raise_error()
        if self.sync:
            self._gather_and_write()

    def close(self) -> None:
        """Flush, then stop the background thread."""
        try:
            self.flush()
        finally:
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> BoxUpdater:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"the box updater's background thread failed: {error}") from error

    def _check_range(self, indices: torch.Tensor) -> None:
        n = len(self.table)
        bad = (indices < 0) | (indices >= n)
        if bool(bad.any()):
            i = int(bad.to(torch.uint8).argmax())
            raise IndexError(f"indices[{i}] = {int(indices[i])} is outside the box table of {n} samples")

    # ------------------------------------------------------------- background thread

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:  # after a failure, drop the rest until the trainer hears of it
                    self._handle(*item)
            except BaseException as error:  # surfaced by the trainer's next call
                self._error = error
            finally:
                self._queue.task_done()

    def _handle(self, done, payload: torch.Tensor, indices: torch.Tensor) -> None:
        if done is not None:
            done.synchronize()
            boxes = payload
        else:
            boxes = localize_boxes(payload, threshold=self.threshold, input_size=self.input_size)
        self._check_range(indices)
        boxes, indices = boxes.numpy(), indices.numpy()
        if self.sync:
            self._collected.append((indices.copy(), boxes.copy()))
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
