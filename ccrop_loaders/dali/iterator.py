"""Torch side of the ready pipelines: batches as dicts of tensors, DALI's errors made specific."""
from __future__ import annotations

import math
import re
import signal
from collections.abc import Iterator, Sequence

import numpy as np
from nvidia.dali.backend import TensorListGPU
from nvidia.dali.pipeline import Pipeline

from ..core.encoded import REASONS, describe_status, encoded_image_status
from .gates import GATE_IMAGE, GATE_INDEX, GATE_VIEWS, VIEW_REASONS, gate_failure
from .graph import description_of, worker_processes
from .readers import READER_NAME

_FAILED_SAMPLE = re.compile(r"Failed to decode sample #(\d+) : (\S*)|File mapping failed: (\S+)")
_SKIP_ADVICE = "leave unreadable files out with FolderFiles.from_folder(root, check_images=True), or remove the file"


class ContrastiveCropIterator:
    """Iterate pipelines from ``file_reader_pipeline``, ``external_source_pipeline`` or ``full_image_pipeline``
    (one per GPU of this process).

    Each batch is a dict: ``views`` (list of V uint8 tensors (B, H, W, 3), on the
    pipeline's device), ``label`` and ``index`` (int64 (B,)); from ``full_image_pipeline``:
    ``image`` (uint8 (B, H, W, 3)) and ``index``. Epochs follow the pipeline's
    ``last_batch``; with ``auto_reset`` the next ``iter`` starts the next epoch (else ``reset()`` does). A damaged
    image file is a ``ValueError`` naming the file (or the external source's sample) and its global index.

    Epoch boundaries: an epoch's batches are made after its first ``next`` (nothing runs at construction, and
    no batch of the next epoch runs before that epoch's first ``next``), so they use the table's controls
    (epoch, boxes, warm-up flag) as set before the epoch starts. A file reader's pipeline must therefore not
    prefetch more batches than an epoch has (``file_reader_pipeline`` sees to it). ``checkpoints()`` between
    epochs gives the pipelines' states (order, random operators) to rebuild them where they stopped.
    """

    def __init__(self, pipelines: Pipeline | Sequence[Pipeline], *, auto_reset: bool = True):
        self.pipelines = [pipelines] if isinstance(pipelines, Pipeline) else list(pipelines)
        descriptions = [description_of(p) for p in self.pipelines]
        if not self.pipelines or any(d is None or not d.output_names for d in descriptions):
            raise TypeError("pass pipelines made by file_reader_pipeline, external_source_pipeline or "
                            "full_image_pipeline")
        self._description = descriptions[0]
        self._names = self._description.output_names
        self.num_views = sum(name.startswith("view") for name in self._names)
        self.auto_reset = bool(auto_reset)
        if self._description.files is not None:
            self._runs, self._batches, self._last_size = _reader_epoch(self.pipelines, self._description.last_batch)
        else:  # an external source ends its epochs itself (StopIteration), whole batches only
            self._runs = None
            self._batches = self._description.reader.batches_per_epoch
            self._last_size = None
        self._epoch, self._batch = 0, 0  # where the external source is: its failing sample's global index
        self._state = "new"  # new | running | ended
        self._issued = [0] * len(self.pipelines)  # runs scheduled / consumed in this epoch, per pipeline
        self._consumed = [0] * len(self.pipelines)

    def __len__(self) -> int:
        return self._batches

    def __iter__(self) -> Iterator[dict]:
        return self

    def reset(self) -> None:
        """Let the next ``next`` start the next epoch (what ``auto_reset`` does by itself)."""
        if self._state == "ended":
            self._state = "between"

    def checkpoints(self) -> list[bytes]:
        """The pipelines' serialized states after the last finished epoch (``Pipeline(checkpoint=...)`` rebuilds
        one there); only between epochs, for pipelines built with ``enable_checkpointing``."""
        if self._state == "running":
            raise RuntimeError("checkpoints() is only available between epochs (the prefetched batches of an "
                               "epoch in progress are not in the pipeline's state)")
        return [p.checkpoint() for p in self.pipelines]

    def __next__(self) -> dict:
        self._raise_if_workers_died(None)
        if self._state == "ended" and not self.auto_reset:
            raise StopIteration
        try:
            if self._state != "running":
                self._start_epoch()
            if self._runs is not None and self._batch == self._batches:
                self._finish_epoch()  # a file reader: drain the padded tail that last_batch="drop" drops
            outputs = self._next_outputs()
        except StopIteration:
            self._state, self._epoch, self._batch = "ended", self._epoch + 1, 0
            raise
        except RuntimeError as err:
            self._raise_if_workers_died(err)
            raise self._explain(err) from err
        self._batch += 1
        if len(outputs) > 1:
            import torch

            batch = {k: torch.cat([o[k] for o in outputs]) for k in outputs[0]}
        else:
            batch = outputs[0]  # one pipeline: this process usually drives one GPU
        if not self.num_views:  # full_image_pipeline
            return {**batch, "index": batch["index"].reshape(-1)}
        return {
            "views": [batch[f"view{v}"] for v in range(self.num_views)],
            "label": batch["label"].reshape(-1),
            "index": batch["index"].reshape(-1),
        }

    def _start_epoch(self) -> None:
        first = self._state == "new"
        for i, pipe in enumerate(self.pipelines):
            if not first:
                pipe.reset()  # an external source that ended its epoch starts the next one
            if self._runs is not None:  # runs a first prefetch deeper than an epoch made count for this one
                self._issued[i], self._consumed[i] = self._issued[i] - self._consumed[i], 0
            self._schedule(i, prefetch=first)
        self._state = "running"

    def _schedule(self, i: int, prefetch: bool = False) -> None:
        """Run pipeline ``i`` ahead up to its prefetch depth, never past this epoch's last run."""
        pipe = self.pipelines[i]
        if self._runs is None:
            pipe.schedule_run()  # the source stops at its epoch's end
            return
        depth = _prefetch_count(pipe)
        while self._issued[i] - self._consumed[i] < depth and self._issued[i] < self._runs[i]:
            pipe.schedule_run()
            self._issued[i] += depth if prefetch and pipe.exec_pipelined else 1  # the first call prefetches
            prefetch = False

    def _finish_epoch(self) -> None:
        for i, pipe in enumerate(self.pipelines):
            while self._consumed[i] < min(self._issued[i], self._runs[i]):
                pipe.share_outputs()
                pipe.release_outputs()
                self._consumed[i] += 1
        raise StopIteration

    def _next_outputs(self) -> list[dict]:
        outputs = []
        for i, pipe in enumerate(self.pipelines):
            tensors = pipe.share_outputs()  # StopIteration at an external source's epoch end
            try:
                size = None
                if self._last_size is not None and self._batch == self._batches - 1:
                    size = self._last_size[i]
                outputs.append({name: _to_torch(t, pipe.device_id, size) for name, t in zip(self._names, tensors)})
            finally:
                pipe.release_outputs()
            if self._runs is not None:
                self._consumed[i] += 1
            self._schedule(i)
        return outputs

    def _raise_if_workers_died(self, err: RuntimeError | None) -> None:
        """Raise naming the external-source worker processes that exited (DALI says only "receiving interrupted")."""
        dead = [f"pid {proc.pid} ({_exit_reason(proc.exitcode)})" for pipe in self.pipelines
                for proc in worker_processes(pipe)
                if proc.exitcode is not None]
        if dead:
            raise RuntimeError(f"DALI external-source worker process {', '.join(dead)} died; the pipeline cannot go "
                               "on: build a new one (a worker killed by the OOM killer: fewer py_num_workers or "
                               "a smaller prefetch_queue_depth)") from err

    def _explain(self, err: RuntimeError) -> Exception:
        gate, payload, reason = gate_failure(str(err)) or (0, 0, 0)
        if gate == GATE_INDEX:
            size = self._description.table_size
            return IndexError(f"sample index {payload} is outside the box table ({size} rows): the indices fed to "
                              f"the ContrastiveCrop op must be global indices in [0, {size})")
        if gate == GATE_VIEWS:
            return ValueError(f"a view's window cannot be cut (view {payload}): {VIEW_REASONS.get(reason, reason)}")
        files, reader = self._description.files, self._description.reader
        if gate == GATE_IMAGE:
            index = payload
            why = REASONS.get(reason, f"reason {reason}")
            if files is not None:
                path = _path_of(files, index)
                return ValueError(f"cannot decode {path} (sample index {index}): {_why(path, reason) or why}; "
                                  + _SKIP_ADVICE)
            if reader is not None:
                return ValueError(f"cannot decode sample index {index}: load({index}) returned a damaged image: {why}")
            return ValueError(f"cannot decode sample index {index}: {why}")
        match = _FAILED_SAMPLE.search(str(err))
        if match is None:
            return err
        position, path, unmapped = match.groups()
        if files is not None and (path or unmapped):
            path = path or unmapped
            return ValueError(f"cannot decode {path} (sample index {files.index_of(path)}); " + _SKIP_ADVICE)
        if reader is not None and position is not None and len(self.pipelines) == 1:
            index = reader.global_index(self._epoch, self._batch * reader.batch_size + int(position))
            return ValueError(f"cannot decode sample index {index}: load({index}) returned a damaged image")
        return err


def _shard_size(meta: dict) -> int:
    size, shards, shard = meta["epoch_size"], meta["number_of_shards"], meta["shard_id"]
    return size * (shard + 1) // shards - size * shard // shards


def _prefetch_count(pipe: Pipeline) -> int:
    """Runs the first ``schedule_run`` of a pipelined pipeline makes at once (its prefetch queue)."""
    if not pipe.exec_pipelined:
        return 1
    return max(pipe.cpu_queue_size, pipe.gpu_queue_size) if pipe.exec_separated else pipe.cpu_queue_size


def _reader_epoch(pipelines: list[Pipeline], last_batch: str) -> tuple[list[int], int, list[int] | None]:
    """A file reader's epoch: runs per pipeline (padded batches), batches handed out, the last batch's size per
    pipeline when ``partial`` trims it (else None)."""
    runs, whole, tails = [], [], []
    for pipe in pipelines:
        meta = pipe.reader_meta(READER_NAME)
        if not meta.get("stick_to_shard", True):
            raise ValueError("the file reader must stick to its shard (stick_to_shard=True)")
        size, batch = _shard_size(meta), pipe.max_batch_size
        runs.append(math.ceil(size / batch))
        whole.append(size // batch)
        tails.append(size - (runs[-1] - 1) * batch)
    if last_batch == "drop":
        return runs, min(whole), None
    if len(set(runs)) > 1:
        raise ValueError(f"the pipelines' shards have {sorted(set(runs))} batches per epoch: with "
                         f"last_batch={last_batch!r} every pipeline must have the same number")
    return runs, runs[0], tails if last_batch == "partial" else None


def _to_torch(tensors, device_id: int | None, size: int | None):
    """A copy of a DALI TensorList as a torch tensor (its first ``size`` samples), on the pipeline's device."""
    import torch
    from nvidia.dali.plugin.pytorch import feed_ndarray, to_torch_type

    dense = tensors.as_tensor()
    if isinstance(tensors, TensorListGPU):
        out = torch.empty(dense.shape(), dtype=to_torch_type[dense.dtype], device=torch.device("cuda", device_id))
        feed_ndarray(dense, out, cuda_stream=torch.cuda.current_stream(device=out.device))
    else:
        out = torch.from_numpy(np.array(dense))
    return out if size is None else out[:size]


def _path_of(files, index: int) -> str | None:
    where = np.flatnonzero(files.indices == index)
    return files.files[int(where[0])] if where.size else None


def _why(path: str | None, reason: int) -> str | None:
    """The file's own status in words (with its declared size), if it still reads as damaged for that reason."""
    try:
        with open(path, "rb") as f:
            status, height, width = encoded_image_status(np.frombuffer(f.read(), dtype=np.uint8))
    except (OSError, TypeError):
        return None
    return describe_status(status, height, width) if status == reason else None


def _exit_reason(code: int) -> str:
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:  # a real-time signal has no name
        return f"killed by signal {-code}"
