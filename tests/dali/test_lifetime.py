"""Table lifetimes under a DALI pipeline: closing, unlinking or dropping the BoxTable while it prefetches."""
import gc

import numpy as np
from nvidia.dali import fn, pipeline_def

from ccrop_loaders import BoxTable, sample_crop
from ccrop_loaders.core.files import shm_dir
from ccrop_loaders.dali import contrastive_crop_windows


def windows_pipeline(folder, table):
    @pipeline_def(batch_size=4, num_threads=2, device_id=None, prefetch_queue_depth=3)
    def windows():
        jpegs, index = fn.readers.file(files=folder.paths, labels=list(range(len(folder))), random_shuffle=False)
        return contrastive_crop_windows(fn.peek_image_shape(jpegs), index, table, num_views=1), index

    pipe = windows()
    pipe.build()
    return pipe


def test_pipeline_reads_its_own_mapping_after_the_table_is_closed_unlinked_and_collected(folder):
    table = BoxTable.create(len(folder))
    table.write([0], [[0.2, 0.2, 0.8, 0.8]])
    table.seed, table.epoch = 4, 9
    pipe = windows_pipeline(folder, table)
    pipe.run()  # prefetching has started
    name = table.name
    with table:  # leaving the block closes and unlinks
        pass
    del table
    gc.collect()
    assert not (shm_dir() / name).exists()
    for _ in range(2 * len(folder) // 4):
        wins, index = (np.asarray(o.as_tensor()) for o in pipe.run())
        for window, i in zip(wins[:, 0], index[:, 0]):
            if i == 0:
                h, w = folder.images[0].shape[:2]
                assert tuple(window) == sample_crop(h, w, np.array([0.2, 0.2, 0.8, 0.8]), seed=4, epoch=9, index=0)
