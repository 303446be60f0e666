"""Torch side of the ready pipelines: batches as dicts of tensors, DALI's errors made specific."""
from __future__ import annotations

import re
import signal
from collections.abc import Iterator, Sequence

import numpy as np
from nvidia.dali.pipeline import Pipeline
from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

from ..core.encoded import REASONS, describe_status, encoded_image_status
from .readers import READER_NAME

_POLICIES = {"drop": LastBatchPolicy.DROP, "fill": LastBatchPolicy.FILL, "partial": LastBatchPolicy.PARTIAL}
_FAILED_SAMPLE = re.compile(r"Failed to decode sample #(\d+) : (\S*)|File mapping failed: (\S+)")
_OUTSIDE_TABLE = re.compile(r"sample index outside box table\?.*input_shape=\{(\d+) x 0\}, slice_anchor=\{(-?\d+) x 0\}",
                            re.S)
_DAMAGED = re.compile(r"damaged image file\?.*?slice_anchor=\{(-?\d+) x (\d+) x 0\}", re.S)
_SKIP_ADVICE = "leave unreadable files out with FolderFiles.from_folder(root, check_images=True), or remove the file"


class ContrastiveCropIterator:
    """Iterate pipelines from ``file_reader_pipeline``, ``external_source_pipeline`` or ``full_image_pipeline``
    (one per GPU of this process).

    Each batch is a dict: ``views`` (list of V uint8 tensors (B, H, W, 3), on the
    pipeline's device), ``label`` and ``index`` (int64 (B,)); from ``full_image_pipeline``:
    ``image`` (uint8 (B, H, W, 3)) and ``index``. Epochs follow the pipeline's
    ``last_batch``; with ``auto_reset`` the next ``iter`` starts the next epoch. A damaged image file
    is a ``ValueError`` naming the file (or the external source's sample) and its global index.
    """

    def __init__(self, pipelines: Pipeline | Sequence[Pipeline], *, auto_reset: bool = True):
        self.pipelines = [pipelines] if isinstance(pipelines, Pipeline) else list(pipelines)
        if not self.pipelines or not all(hasattr(p, "_ccrop_output_names") for p in self.pipelines):
            raise TypeError("pass pipelines made by file_reader_pipeline, external_source_pipeline or "
                            "full_image_pipeline")
        names = self.pipelines[0]._ccrop_output_names
        self.num_views = sum(name.startswith("view") for name in names)
        last_batch = getattr(self.pipelines[0], "_ccrop_last_batch", "drop")
        if getattr(self.pipelines[0], "_ccrop_files", None) is not None:
            options = dict(reader_name=READER_NAME, last_batch_policy=_POLICIES[last_batch])
        else:
            options = dict(last_batch_policy=LastBatchPolicy.PARTIAL)
        self._epoch, self._batch = 0, 0  # where the external source is: its failing sample's global index
        try:  # DALI's iterator runs the first batches here already
            self._inner = DALIGenericIterator(self.pipelines, names, auto_reset=auto_reset, **options)
        except RuntimeError as err:
            raise self._explain(err) from err

    def __len__(self) -> int:
        return len(self._inner)

    def __iter__(self) -> Iterator[dict]:
        return self

    def __next__(self) -> dict:
        self._raise_if_workers_died(None)
        try:
            outputs = next(self._inner)
        except StopIteration:
            self._epoch, self._batch = self._epoch + 1, 0
            raise
        except RuntimeError as err:
            self._raise_if_workers_died(err)
            raise self._explain(err) from err
        self._batch += 1
        batch = outputs[0]  # one dict per pipeline; this process usually drives one GPU
        if len(outputs) > 1:
            import torch

            batch = {k: torch.cat([o[k] for o in outputs]) for k in outputs[0]}
        if not self.num_views:  # full_image_pipeline
            return {**batch, "index": batch["index"].reshape(-1)}
        return {
            "views": [batch[f"view{v}"] for v in range(self.num_views)],
            "label": batch["label"].reshape(-1),
            "index": batch["index"].reshape(-1),
        }

    def _raise_if_workers_died(self, err: RuntimeError | None) -> None:
        """Raise naming the external-source worker processes that exited (DALI says only "receiving interrupted")."""
        dead = [f"pid {proc.pid} ({_exit_reason(proc.exitcode)})" for pipe in self.pipelines
                for proc in getattr(getattr(getattr(pipe, "_py_pool", None), "pool", None), "_processes", ())
                if proc.exitcode is not None]
        if dead:
            raise RuntimeError(f"DALI external-source worker process {', '.join(dead)} died; the pipeline cannot go "
                               "on: build a new one (a worker killed by the OOM killer: fewer py_num_workers or "
                               "a smaller prefetch_queue_depth)") from err

    def _explain(self, err: RuntimeError) -> Exception:
        outside = _OUTSIDE_TABLE.search(str(err))
        if outside is not None:
            size, index = outside.groups()
            return IndexError(f"sample index {index} is outside the box table ({size} rows): the indices fed to the "
                              f"ContrastiveCrop op must be global indices in [0, {size})")
        files = getattr(self.pipelines[0], "_ccrop_files", None)
        reader = getattr(self.pipelines[0], "_ccrop_reader", None)
        damaged = _DAMAGED.search(str(err))
        if damaged is not None:
            index, reason = int(damaged.group(1)), int(damaged.group(2))
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
