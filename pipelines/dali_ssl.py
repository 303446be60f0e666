"""DALI recipe for a multi-node run (``torchrun --nnodes N --nproc-per-node G ...``): two ContrastiveCrop views
with the SSL augmentations on the GPU, and the localization pipeline; the same outputs as the FFCV recipe."""
from __future__ import annotations

import os

from ccrop_loaders import BoxTable
from ccrop_loaders.dali import (ContrastiveCropIterator, FolderFiles, file_reader_pipeline, full_image_pipeline,
                                ssl_view_augment)


def distributed_layout() -> dict:
    """shard_id / num_shards / device_id from torchrun's environment (one process per GPU)."""
    return {"shard_id": int(os.environ.get("RANK", 0)), "num_shards": int(os.environ.get("WORLD_SIZE", 1)),
            "local_rank": int(os.environ.get("LOCAL_RANK", 0))}


def ssl_iterator(files: FolderFiles, table: BoxTable, *, batch_size: int, num_threads: int = 8,
                 device: str = "gpu", size: int = 224, alpha: float = 0.6, method: str = "simclr",
                 seed: int = 0, checkpointing: bool = False,
                 checkpoint: bytes | None = None) -> ContrastiveCropIterator:
    """Batches ``{"views": [2 x uint8 (B, size, size, 3)], "label", "index"}``, augmented on ``device``.

    ``method="byol"`` uses BYOL's asymmetric blur/solarize; the others the paper's ImageNet recipe.
    ``checkpointing``: the iterator's ``checkpoints()`` between epochs hold the reader's order and the
    augmentations' random state; ``checkpoint``: one of those, to go on where it was taken (a resume).
    """
    layout = distributed_layout()
    if method == "byol":
        augment = [lambda v: ssl_view_augment(v, blur_p=1.0), lambda v: ssl_view_augment(v, blur_p=0.1,
                                                                                        solarize_p=0.2)]
    else:
        augment = ssl_view_augment
    pipe = file_reader_pipeline(files, table, batch_size=batch_size, num_threads=num_threads, device=device,
                                device_id=layout["local_rank"] if device == "gpu" else None,
                                size=(size, size), alpha=alpha, flip=True, shard_id=layout["shard_id"],
                                num_shards=layout["num_shards"], seed=seed + layout["shard_id"],
                                last_batch="drop", view_augment=augment, checkpointing=checkpointing,
                                checkpoint=checkpoint)
    return ContrastiveCropIterator(pipe)


def localization_iterator(files: FolderFiles, *, batch_size: int, num_threads: int = 8, device: str = "gpu",
                          size: int = 224):
    """Batches ``{"image": uint8 (B, size, size, 3), "index": int64 (B,)}`` of this rank's shard, in order (the last
    one partial); a damaged file is a ``ValueError`` naming it and its global index."""
    layout = distributed_layout()
    pipe = full_image_pipeline(files, batch_size=batch_size, num_threads=num_threads, device=device,
                               device_id=layout["local_rank"] if device == "gpu" else None, size=(size, size),
                               shard_id=layout["shard_id"], num_shards=layout["num_shards"])
    return ContrastiveCropIterator(pipe)
