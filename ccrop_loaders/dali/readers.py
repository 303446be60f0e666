"""Ready DALI pipelines: a sharded file reader over an image folder, and a parallel external source.

Both output ``view0 .. view{V-1}`` (uint8 HWC), ``label`` and ``index`` (int64,
the global sample index the box table is keyed by).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.data_node import DataNode
from nvidia.dali.pipeline import Pipeline
from nvidia.dali.plugin.numba.fn.experimental import numba_function

from ..core import BoxTable
from ..core.encoded import IMAGE_CORRUPT, IMAGE_OK, IMAGE_TRUNCATED, MAX_IMAGE_PIXELS, describe_status, encoded_image_status
from ..core.windows import view_params
from ..core.checks import check_count
from ..core.table_layout import words_at
from ..folder import FolderFiles
from .gates import checked_images
from .graph import check_device, describe, keep_alive, resolve_table
from .views import contrastive_crop_views, crop_resize_views
from .windows import one_group, views_windows

LAST_BATCH = ("drop", "fill", "partial")
ViewAugment = Callable[[DataNode], DataNode]
READER_NAME = "Reader"


def check_sharding(num_samples: int, shard_id: int, num_shards: int, last_batch: str) -> None:
    """Refuse a shard layout that cannot work, with what to change."""
    if last_batch not in LAST_BATCH:
        raise ValueError(f"last_batch must be one of {LAST_BATCH}, got {last_batch!r}")
    check_count("num_shards", num_shards)
    if not (isinstance(shard_id, (int, np.integer)) and 0 <= shard_id < num_shards):
        raise ValueError(f"shard_id must be in [0, {num_shards}) for num_shards={num_shards}, got {shard_id!r}")
    if num_shards > num_samples:
        raise ValueError(f"{num_shards} shards for {num_samples} samples leaves shards empty: use fewer shards")
    if last_batch == "partial" and num_samples % num_shards:
        lo = num_samples // num_shards
        raise ValueError(
            f"{num_samples} samples do not split evenly over {num_shards} shards (sizes {lo} and {lo + 1}): with "
            "last_batch='partial' ranks could run different numbers of steps and a distributed run would hang; "
            "use last_batch='drop' (drops each shard's tail) or 'fill' (pads with repeated samples)")


def _class_labels(indices, labels: np.ndarray):
    """int64 class labels looked up by global index in ``labels`` (read through its address, kept alive)."""
    table = np.ascontiguousarray(labels, dtype=np.int64).view(np.uint64)
    keep_alive(table)
    address, count = np.int64(table.ctypes.data), np.int64(table.shape[0])  # int64, not literals (windows.py)

    def run(label, index):
        label[0] = np.int64(words_at(address, count)[index[0]])

    return numba_function(fn.reshape(fn.cast(indices, dtype=types.INT64), shape=[1]), run_fn=run,
                          out_types=[types.INT64], in_types=[types.INT64], outs_ndim=[1], ins_ndim=[1], device="cpu")


def _device_id_for(device: str, device_id: int | None) -> int | None:
    if check_device(device) == "gpu" and device_id is None:
        raise ValueError("device='gpu' needs device_id (the GPU's index, e.g. the local rank)")
    return device_id if device == "gpu" else None


def file_reader_pipeline(dataset: FolderFiles | str | Path, table: BoxTable | str, *, batch_size: int,
                         num_threads: int = 4, device: str = "cpu", device_id: int | None = None,
                         size: tuple[int, int] = (224, 224), num_views: int = 2,
                         scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                         alpha: float = 0.6, flip: bool = True, shard_id: int = 0, num_shards: int = 1,
                         shuffle: bool = True, seed: int = 0, last_batch: str = "drop",
                         prefetch_queue_depth: int = 2, decode: str = "auto", resize: str = "auto",
                         view_augment: ViewAugment | Sequence[ViewAugment] | None = None,
                         checkpointing: bool = False, checkpoint: bytes | None = None) -> Pipeline:
    """A built pipeline reading ``dataset`` (or an image folder) with ``fn.readers.file``, sharded.

    The reader carries each file's global index through its label channel; the
    class label is looked up from it. ``shard_id``/``num_shards`` split the data
    for multi-node runs (e.g. the global rank and world size); ``shuffle`` reshuffles
    every epoch. ``view_augment``: DALI ops applied to each view (one callable, or
    one per view, e.g. ``ssl_view_augment`` with BYOL's asymmetric settings).
    ``decode``, ``resize``: see ``crop_resize_views``. Iterate with ``ContrastiveCropIterator``.
    ``prefetch_queue_depth`` is capped at the batches of an epoch (no batch is made before its epoch starts).
    ``checkpointing``: DALI checkpoints (``ContrastiveCropIterator.checkpoints``); ``checkpoint``: one to go on from.
    """
    augments = _per_view(view_augment, num_views)
    if not isinstance(dataset, FolderFiles):
        dataset = FolderFiles.from_folder(dataset)
    table = resolve_table(table)
    table.check_dataset_size(dataset.num_samples)
    check_sharding(len(dataset.files), shard_id, num_shards, last_batch)
    device_id = _device_id_for(device, device_id)
    shard_size = len(dataset.files) * (shard_id + 1) // num_shards - len(dataset.files) * shard_id // num_shards
    prefetch_queue_depth = max(1, min(prefetch_queue_depth, -(-shard_size // batch_size)))

    @pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=device_id, seed=seed,
                  prefetch_queue_depth=prefetch_queue_depth,
                  enable_checkpointing=checkpointing or checkpoint is not None, checkpoint=checkpoint)
    def pipeline():
        jpegs, indices = fn.readers.file(
            files=dataset.files, labels=[int(i) for i in dataset.indices], shard_id=shard_id, num_shards=num_shards,
            random_shuffle=shuffle, pad_last_batch=last_batch != "partial", stick_to_shard=True, name=READER_NAME)
        views = contrastive_crop_views(jpegs, indices, table, size=size, num_views=num_views, scale=scale,
                                       ratio=ratio, alpha=alpha, flip=flip, device=device, decode=decode,
                                       resize=resize)
        views = [augment(view) if augment else view for augment, view in zip(augments, views)]
        return (*views, _class_labels(indices, _labels_by_index(dataset)), fn.cast(indices, dtype=types.INT64))

    pipe = pipeline()
    pipe.build()
    describe(pipe, output_names=[*(f"view{v}" for v in range(num_views)), "label", "index"], files=dataset,
             last_batch=last_batch)
    return pipe


def _per_view(view_augment, num_views: int) -> list:
    if view_augment is None or callable(view_augment):
        return [view_augment] * num_views
    augments = list(view_augment)
    if len(augments) != num_views:
        raise ValueError(f"view_augment has {len(augments)} entries for {num_views} views")
    return augments


def full_image_pipeline(dataset: FolderFiles | str | Path, *, batch_size: int, num_threads: int = 4,
                        device: str = "cpu", device_id: int | None = None, size: tuple[int, int] = (224, 224),
                        shard_id: int = 0, num_shards: int = 1) -> Pipeline:
    """A built pipeline for the localization pass: every image of this shard once per epoch, in order,
    resized whole to ``size`` (antialiased). Outputs ``image`` (uint8 HWC), ``index``.

    Iterate with ``ContrastiveCropIterator(pipe)`` (batches ``{"image", "index"}``, the last one partial): a
    damaged file (``checked_images``) is a ``ValueError`` naming it and its global index.
    """
    if not isinstance(dataset, FolderFiles):
        dataset = FolderFiles.from_folder(dataset)
    check_sharding(len(dataset.files), shard_id, num_shards, "drop")
    device_id = _device_id_for(device, device_id)

    @pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=device_id)
    def pipeline():
        jpegs, indices = fn.readers.file(files=dataset.files, labels=[int(i) for i in dataset.indices],
                                         shard_id=shard_id, num_shards=num_shards, random_shuffle=False,
                                         pad_last_batch=True, stick_to_shard=True, name=READER_NAME)  # epochs start at 0
        images = fn.decoders.image(checked_images(jpegs, indices), device="cpu" if device == "cpu" else "mixed",
                                   output_type=types.RGB)
        return fn.resize(images, size=list(size), antialias=True), fn.cast(indices, dtype=types.INT64)

    pipe = pipeline()
    pipe.build()
    describe(pipe, output_names=["image", "index"], files=dataset, last_batch="partial")
    return pipe


def _labels_by_index(dataset: FolderFiles) -> np.ndarray:
    labels = np.full(dataset.num_samples, -1, dtype=np.int64)
    labels[dataset.indices] = dataset.labels
    return labels


# ----------------------------------------------------------------- external source


class ExternalSourceReader:
    """A per-sample callback for ``fn.external_source(parallel=True)`` over data that is not files.

    ``load(index) -> encoded image`` (bytes or uint8 array) is called for global
    index ``index``; it and this object are pickled to DALI's worker processes,
    where the table is attached by name, so workers see the parent's writes.
    Each call returns ``(encoded uint8 (n,), index int64 (1,), label int64 (1,),
    windows int32 (V, 4), rois float32 (V, 4))``. Epochs: this shard's slice of a
    (seed, epoch)-keyed permutation, whole batches only (the tail is dropped).
    """

    def __init__(self, load: Callable[[int], bytes | np.ndarray], num_samples: int, table: BoxTable | str, *,
                 batch_size: int, labels: Sequence[int] | None = None, num_views: int = 2,
                 scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 alpha: float = 0.6, flip: bool = True, shard_id: int = 0, num_shards: int = 1,
                 shuffle: bool = True, seed: int = 0):
        table = resolve_table(table)
        table.check_dataset_size(num_samples)
        check_sharding(num_samples, shard_id, num_shards, "drop")
        if labels is not None and len(labels) != num_samples:
            raise ValueError(f"labels has {len(labels)} entries but num_samples is {num_samples}")
        self.load, self.num_samples, self.table_name = load, int(num_samples), table.name
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.batch_size, self.num_views = check_count("batch_size", batch_size), check_count("num_views", num_views)
        self.block = view_params([one_group(num_views, scale, ratio)], alpha, flip)
        self.shuffle, self.seed = bool(shuffle), int(seed)
        self.shard_start = num_samples * shard_id // num_shards
        shard_size = num_samples * (shard_id + 1) // num_shards - self.shard_start
        self.batches_per_epoch = shard_size // self.batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(f"a shard of {shard_size} samples holds no whole batch of {batch_size}")
        self._table: BoxTable | None = None
        self._order: tuple[int, np.ndarray] | None = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_table"], state["_order"] = None, None
        return state

    def global_index(self, epoch: int, position: int) -> int:
        """The global index of this shard's ``position``-th sample in ``epoch`` (a (seed, epoch)-keyed shuffle)."""
        i = self.shard_start + position
        if not self.shuffle:
            return i
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.num_samples))
        return int(self._order[1][i])

    def __call__(self, sample_info):
        if sample_info.iteration >= self.batches_per_epoch:
            raise StopIteration
        if self._table is None:
            self._table = BoxTable.attach(self.table_name)
        index = self.global_index(sample_info.epoch_idx, sample_info.idx_in_epoch)
        data = self.load(index)
        encoded = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else np.asarray(data)
        if encoded.dtype != np.uint8 or encoded.ndim != 1:
            raise TypeError(f"load({index}) must return encoded bytes (or uint8 1-D), got {encoded.dtype} "
                            f"{encoded.shape}")
        height, width = _declared_size(encoded, index)
        windows = np.empty((self.num_views, 4), dtype=np.int32)
        rois = np.empty((self.num_views, 4), dtype=np.float32)
        views_windows(self._table.address, self.num_samples, np.int64(index), np.int64(height), np.int64(width),
                      self.block, windows, rois)
        label = -1 if self.labels is None else int(self.labels[index])
        return (encoded, np.array([index], dtype=np.int64), np.array([label], dtype=np.int64), windows, rois)


def _declared_size(encoded: np.ndarray, index: int) -> tuple[int, int]:
    """``(height, width)`` an encoded image declares, checked by ``core.encoded`` (which reads JPEG, PNG and BMP
    sizes); Pillow reads the header of the other formats DALI decodes."""
    status, height, width = encoded_image_status(encoded)
    if status not in (IMAGE_OK, IMAGE_CORRUPT, IMAGE_TRUNCATED):  # no header to trust; damaged data: the graph's gate
        raise ValueError(f"sample {index}: load({index}) returned a damaged image: "
                         f"{describe_status(status, height, width)}")
    if height and width:
        return height, width
    from PIL import Image

    try:
        with Image.open(BytesIO(encoded.tobytes())) as img:
            width, height = img.size
    except Exception as err:
        raise ValueError(f"sample {index}: cannot read the image header ({err})") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(f"sample {index}: its header declares {width}x{height} pixels, more than MAX_IMAGE_PIXELS "
                         f"({MAX_IMAGE_PIXELS})")
    return height, width


def external_source_pipeline(reader: ExternalSourceReader, *, num_threads: int = 4, py_num_workers: int = 2,
                             device: str = "cpu", device_id: int | None = None, size: tuple[int, int] = (224, 224),
                             prefetch_queue_depth: int = 2, decode: str = "auto", resize: str = "auto") -> Pipeline:
    """A built pipeline whose samples come from ``reader`` in ``py_num_workers`` worker processes.

    Windows are computed in the workers (from the live table); decoding and
    resizing run in the pipeline, on ``device`` (``decode``, ``resize``: see ``crop_resize_views``).
    """
    device_id = _device_id_for(device, device_id)

    @pipeline_def(batch_size=reader.batch_size, num_threads=num_threads, device_id=device_id,
                  py_num_workers=py_num_workers, py_start_method="spawn", prefetch_queue_depth=prefetch_queue_depth)
    def pipeline():
        encoded, index, label, windows, rois = fn.external_source(
            source=reader, num_outputs=5, batch=False, parallel=True,
            dtype=[types.UINT8, types.INT64, types.INT64, types.INT32, types.FLOAT])
        views = crop_resize_views(checked_images(encoded, index), windows, rois, num_views=reader.num_views,
                                  size=size, device=device, decode=decode, resize=resize)
        return (*views, label, index)

    pipe = pipeline()
    with warnings.catch_warnings():  # decode="once" reads the ROIs, not the windows: DALI warns about those
        warnings.filterwarnings("ignore", message="The external source node", category=Warning)
        pipe.build()
    describe(pipe, output_names=[*(f"view{v}" for v in range(reader.num_views)), "label", "index"], reader=reader)
    return pipe
