"""A ready DALI pipeline over WebDataset shards (``ccrop_loaders.shards``), sharded by global rank.

Each sample's global index comes from its own ``.idx`` member, never from its
position in a batch, so the views, the box lookups and the localization agree
with every other backend. Outputs as ``file_reader_pipeline``: ``view0 ..
view{V-1}`` (uint8 HWC), ``label`` and ``index`` (int64).
"""
from __future__ import annotations

from pathlib import Path

from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.pipeline import Pipeline

from ..core import BoxTable
from ..shards import ShardFiles
from .graph import check_device, describe, resolve_table
from .readers import READER_NAME, check_sharding
from .views import contrastive_crop_views

IMAGE_EXTENSIONS = "jpg;jpeg;png;bmp;tif;tiff;webp;ppm;pgm"


def webdataset_pipeline(shards: ShardFiles | str | Path, table: BoxTable | str, *, batch_size: int,
                        num_threads: int = 4, device: str = "cpu", device_id: int | None = None,
                        size: tuple[int, int] = (224, 224), num_views: int = 2,
                        scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        alpha: float = 0.6, flip: bool = True, shard_id: int = 0, num_shards: int = 1,
                        shuffle: bool = True, seed: int = 0, last_batch: str = "drop",
                        decode: str = "auto", resize: str = "auto") -> Pipeline:
    """A built pipeline reading the shards at ``shards`` with ``fn.readers.webdataset``; ``shard_id`` and
    ``num_shards`` (the global rank and world size) split the samples; the rest as ``file_reader_pipeline``.
    A damaged image member fails the batch; ``ContrastiveCropIterator`` names its shard and key."""
    if not isinstance(shards, ShardFiles):
        shards = ShardFiles.open(shards)
    table = resolve_table(table)
    table.check_dataset_size(shards.num_samples)
    check_sharding(shards.num_samples, shard_id, num_shards, last_batch)
    if check_device(device) == "gpu" and device_id is None:
        raise ValueError("device='gpu' needs device_id (the GPU's index, e.g. the local rank)")

    @pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=device_id if device == "gpu" else None,
                  seed=seed)
    def pipeline():
        jpegs, labels, indices = fn.readers.webdataset(
            paths=shards.tars, index_paths=shards.index_files, ext=[IMAGE_EXTENSIONS, "cls", "idx"],
            dtypes=[types.UINT8, types.INT64, types.INT64], missing_component_behavior="error",
            shard_id=shard_id, num_shards=num_shards, random_shuffle=shuffle, pad_last_batch=last_batch != "partial",
            stick_to_shard=True, dont_use_mmap=True, name=READER_NAME)  # a shard changed under it: an error, not SIGBUS
        views = contrastive_crop_views(jpegs, indices, table, size=size, num_views=num_views, scale=scale,
                                       ratio=ratio, alpha=alpha, flip=flip, device=device, decode=decode,
                                       resize=resize)
        return (*views, fn.reshape(labels, shape=[1]), fn.reshape(indices, shape=[1]))

    pipe = pipeline()
    pipe.build()
    describe(pipe, output_names=[*(f"view{v}" for v in range(num_views)), "label", "index"], files=shards,
             last_batch=last_batch)
    return pipe
