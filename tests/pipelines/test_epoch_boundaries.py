"""Epoch boundaries on DALI: the views of an epoch use the controls (epoch, boxes, warm-up flag) set before it
starts, not the previous epoch's, although the pipeline prefetches."""
import time

import numpy as np
import pytest

pytest.importorskip("nvidia.dali")

from ccrop_loaders import BoxTable  # noqa: E402
from ccrop_loaders.tools.sample_data import make_image_folder  # noqa: E402


def views_by_index(iterator) -> dict[int, bytes]:
    out = {}
    for batch in iterator:
        for s, i in enumerate(batch["index"].tolist()):
            out[i] = b"".join(view[s].numpy().tobytes() for view in batch["views"])
    return out


def set_controls(table: BoxTable, epoch: int) -> None:
    """Epoch 0: warm-up (RandomResizedCrop); epoch 1: ContrastiveCrop on small boxes."""
    table.epoch, table.use_boxes = epoch, epoch > 0
    n = len(table)
    table.write(np.arange(n), np.tile([0.1, 0.1, 0.3, 0.3] if epoch else [0.0, 0.0, 1.0, 1.0], (n, 1)))


def test_the_first_batches_of_an_epoch_use_its_controls(tmp_path):
    from ccrop_loaders.dali import ContrastiveCropIterator, file_reader_pipeline

    make_image_folder(tmp_path / "images", 14, shorter_side=(40, 60))
    with BoxTable.create(14) as table:
        # 4 runs per epoch (the last, padded, dropped), 2 prefetched: DALI made the next epoch's first batches at
        # the previous one's end
        options = dict(batch_size=4, num_threads=1, size=(16, 16), shuffle=False, last_batch="drop",
                       prefetch_queue_depth=2)
        set_controls(table, 0)
        it = ContrastiveCropIterator(file_reader_pipeline(tmp_path / "images", table, **options))
        assert len(it) == 3
        first = views_by_index(it)
        time.sleep(2)  # a training step or a localization pass: whatever the pipeline runs ahead has run by now
        set_controls(table, 1)  # between the epochs, as the recipe does
        second = views_by_index(it)
        fresh = ContrastiveCropIterator(file_reader_pipeline(tmp_path / "images", table, **options))
        expected = views_by_index(fresh)  # built and run under epoch 1's controls only
    assert sorted(second) == sorted(expected) == sorted(first) and len(expected) == 12
    stale = [i for i in expected if second[i] != expected[i]]
    assert not stale, f"samples {stale} of epoch 1 were made with epoch 0's controls"
    assert all(first[i] != expected[i] for i in expected)  # the controls do change every view
