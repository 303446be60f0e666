import shutil

import numba
import numpy as np
import pytest
import torch
from ffcv.fields.basics import IntDecoder
from ffcv.loader import OrderOption
from ffcv.pipeline import PipelineSpec
from ffcv.reader import Reader
from PIL import Image

from ccrop_loaders import BoxTable, sample_crop
from ccrop_loaders.core import sample_flip
from ccrop_loaders.ffcv import (ContrastiveCropRGBImageDecoder, FullImageRGBImageDecoder, Loader,
                                MultiViewContrastiveCropDecoder, SampleIndexDecoder, split_views)
from ccrop_loaders.core.resample import resize_crop, scratch_size
from .conftest import epoch_outputs

SIZE = (48, 40)


def expected_window(table, image, index, view=0, alpha=0.6):
    if not table.use_boxes:
        box, alpha = (0, 0, 1, 1), 1.0
    else:
        box = table.read([index])[0].astype(np.float64)
    return sample_crop(image.shape[0], image.shape[1], box, alpha=alpha, seed=table.seed, epoch=table.epoch,
                       index=index, view=view)


def crop_resize(image, window, size=SIZE, mirror=False):
    out = np.empty((*size, 3), np.uint8)
    resize_crop(image, *window, mirror, out, np.empty(scratch_size(*image.shape[:2], size), np.int64))
    return out


def test_view_is_crop_and_resize_at_the_sampled_window(raw_dataset, table):
    views = epoch_outputs(raw_dataset, ContrastiveCropRGBImageDecoder(table, SIZE))
    assert sorted(views) == list(range(len(raw_dataset)))
    for index, view in views.items():
        image = raw_dataset.images[index]
        top, left, h, w = expected_window(table, image, index)
        np.testing.assert_array_equal(view, crop_resize(image, (top, left, h, w)))
        # an independent resize (Pillow's antialiased bilinear) of the same window agrees closely
        pillow = np.asarray(Image.fromarray(image[top: top + h, left: left + w]).resize(SIZE[::-1], Image.BILINEAR))
        assert np.abs(view.astype(int) - pillow).max() <= 2


def test_jpeg_mode_matches_within_codec_tolerance(jpg_dataset, table):
    views = epoch_outputs(jpg_dataset, ContrastiveCropRGBImageDecoder(table, SIZE))
    for index, view in views.items():
        image = jpg_dataset.images[index]
        reference = crop_resize(image, expected_window(table, image, index))
        assert np.abs(view.astype(int) - reference).mean() < 3.0


def test_table_write_between_batches_changes_later_windows(raw_dataset, table):
    loader = Loader(str(raw_dataset.beton), batch_size=4, num_workers=1, order=OrderOption.SEQUENTIAL,
                    batches_ahead=1, pipelines={"image": [ContrastiveCropRGBImageDecoder(table, SIZE)],
                                                "label": None, "index": [IntDecoder()]})
    new_box = np.array([[0.9, 0.9, 1.0, 1.0]])
    old_windows = {}
    batches = iter(loader)
    next(batches)
    for index in range(len(raw_dataset)):
        old_windows[index] = expected_window(table, raw_dataset.images[index], index)
    table.write(np.arange(len(raw_dataset)), np.repeat(new_box, len(raw_dataset), axis=0))
    rest = list(batches)
    last_images, last_indices = rest[-1]
    for view, index in zip(np.array(last_images), np.array(last_indices)[:, 0]):
        image = raw_dataset.images[index]
        window = expected_window(table, image, index)
        np.testing.assert_array_equal(view, crop_resize(image, window))
    changed = [expected_window(table, raw_dataset.images[i], i) != old_windows[i] for i in range(len(raw_dataset))]
    assert sum(changed) > len(raw_dataset) // 2


def test_use_boxes_false_is_random_resized_crop_and_epoch_rekeys(raw_dataset, table):
    decoder = ContrastiveCropRGBImageDecoder(table, SIZE)
    table.use_boxes = False
    table.epoch = 5
    views = epoch_outputs(raw_dataset, decoder)
    for index, view in views.items():
        image = raw_dataset.images[index]
        window = sample_crop(*image.shape[:2], (0, 0, 1, 1), alpha=1.0, seed=77, epoch=5, index=index)
        np.testing.assert_array_equal(view, crop_resize(image, window))


def test_same_views_whatever_workers_order_and_rank(raw_dataset, table, monkeypatch):
    decoder = lambda: ContrastiveCropRGBImageDecoder(table, SIZE)  # noqa: E731
    reference = epoch_outputs(raw_dataset, decoder())
    for workers in (1, 2):
        for order in (OrderOption.SEQUENTIAL, OrderOption.RANDOM):
            got = epoch_outputs(raw_dataset, decoder(), workers=workers, order=order, batch_size=7, seed=3)
            assert got.keys() == reference.keys()
            for index in reference:
                np.testing.assert_array_equal(got[index], reference[index])
    # two distributed ranks: each sees its shard, with the views the index gives
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    seen = {}
    for rank in (0, 1):
        monkeypatch.setattr(dist, "get_rank", lambda group=None: rank)
        shard = epoch_outputs(raw_dataset, decoder(), batch_size=4, order=OrderOption.RANDOM, distributed=True, seed=0)
        assert set(shard).isdisjoint(seen)
        seen.update(shard)
    assert seen.keys() == reference.keys()
    for index in reference:
        np.testing.assert_array_equal(seen[index], reference[index])


def test_multi_view_equals_single_views_and_flip_mirrors(raw_dataset, table):
    multi = epoch_outputs(raw_dataset, MultiViewContrastiveCropDecoder(table, SIZE, num_views=3, flip=False))
    flipped = epoch_outputs(raw_dataset, MultiViewContrastiveCropDecoder(table, SIZE, num_views=3, flip=True))
    mirrored = 0
    for v in range(3):
        single = epoch_outputs(raw_dataset, ContrastiveCropRGBImageDecoder(table, SIZE, view=v))
        for index in single:
            assert multi[index].shape == (3, *SIZE, 3)
            np.testing.assert_array_equal(multi[index][v], single[index])
            flip = sample_flip(seed=table.seed, epoch=table.epoch, index=index, view=v)
            np.testing.assert_array_equal(flipped[index][v], single[index][:, ::-1] if flip else single[index])
            mirrored += flip
    assert 0 < mirrored < 3 * len(raw_dataset)


def test_full_image_decoder_and_sample_index_decoder(raw_dataset):
    loader = Loader(str(raw_dataset.beton), batch_size=6, num_workers=1, order=OrderOption.RANDOM, seed=1, drop_last=False,
                    pipelines={"image": [FullImageRGBImageDecoder((32, 32))], "label": [IntDecoder()],
                               "index": [IntDecoder()], "sample": PipelineSpec("label", SampleIndexDecoder())})
    for images, labels, indices, samples in loader:
        np.testing.assert_array_equal(indices, samples)
        for image, index in zip(images, indices[:, 0]):
            full = raw_dataset.images[index]
            np.testing.assert_array_equal(image, crop_resize(full, (0, 0, *full.shape[:2]), (32, 32)))


def test_split_views():
    batch = torch.arange(2 * 3 * 4 * 5 * 3, dtype=torch.uint8).reshape(2, 3, 4, 5, 3)
    views = split_views(batch)
    assert len(views) == 3 and views[1].shape == (2, 3, 4, 5)
    assert torch.equal(views[1][1, 2], batch[1, 1, :, :, 2])
    with pytest.raises(ValueError, match="B, V, H, W, 3"):
        split_views(batch[0])


def test_table_size_mismatch_refused_when_loader_is_built(raw_dataset):
    with BoxTable.create(len(raw_dataset) + 1) as wrong:
        with pytest.raises(ValueError, match=f"{len(raw_dataset) + 1} rows but the dataset has {len(raw_dataset)}"):
            Loader(str(raw_dataset.beton), batch_size=4, order=OrderOption.SEQUENTIAL,
                   pipelines={"image": [ContrastiveCropRGBImageDecoder(wrong, SIZE)]})


@pytest.mark.parametrize("kw, words", [
    ({"output_size": (0, 10)}, "output_size"), ({"output_size": (10.5, 10)}, "output_size"),
    ({"scale": (0.9, 0.1)}, "scale"), ({"ratio": (-1, 1)}, "ratio"), ({"alpha": 0}, "alpha"),
    ({"view": -1}, "view"),
])
def test_bad_parameters_refused_at_construction(table, kw, words):
    args = {"output_size": SIZE, **kw}
    with pytest.raises(ValueError, match=words):
        ContrastiveCropRGBImageDecoder(table, **args)


def test_table_must_be_a_box_table():
    with pytest.raises(TypeError, match="BoxTable"):
        MultiViewContrastiveCropDecoder(np.zeros((3, 4)), SIZE)


def corrupt_sample(beton, out, index):
    """Copy ``beton`` to ``out`` with the middle of sample ``index``'s JPEG overwritten by garbage."""
    shutil.copy(beton, out)
    reader = Reader(str(out))
    ptr = int(reader.metadata["f0"]["data_ptr"][index])
    size = int(reader.alloc_table["size"][reader.alloc_table["ptr"] == ptr][0])
    with open(out, "r+b") as f:
        f.seek(ptr + size // 3)
        f.write(np.random.default_rng(0).integers(0, 256, size // 3, dtype=np.uint8).tobytes())


@pytest.mark.parametrize("decoder_type", [ContrastiveCropRGBImageDecoder, MultiViewContrastiveCropDecoder])
def test_corrupt_jpeg_raises_naming_the_sample(jpg_dataset, tmp_path, decoder_type):
    bad = tmp_path / "bad.beton"
    corrupt_sample(jpg_dataset.beton, bad, 13)
    with BoxTable.create(len(jpg_dataset)) as table:
        loader = Loader(str(bad), batch_size=4, num_workers=2, order=OrderOption.SEQUENTIAL,
                        pipelines={"image": [decoder_type(table, (32, 32))], "label": None, "index": None})
        with pytest.raises(ValueError) as info:
            for _ in loader:
                pass
    assert "could not decode" in str(info.value) and "13" in str(info.value)
    # the dataset and the table are untouched
    assert jpg_dataset.beton.read_bytes() != bad.read_bytes()


def test_resize_compiles_again_after_a_loader_is_built(raw_dataset):
    # FFCV 1.0.2 sets ``mutable = False`` on numba's interned uint8[::1] type when a Loader is built
    # (OSCacheManager.state_type); code typed on such buffers after that must still compile
    image = np.full((20, 30, 3), 77, np.uint8)
    out = np.empty((10, 10, 3), np.uint8)
    scratch = np.empty(scratch_size(20, 30, (10, 10)), np.int64)
    numba.njit(resize_crop.py_func)(image, 1.0, 2.0, 15.0, 20.0, True, out, scratch)
    with BoxTable.create(len(raw_dataset)) as table:
        loader = Loader(str(raw_dataset.beton), batch_size=4, num_workers=1, order=OrderOption.SEQUENTIAL,
                        pipelines={"image": [ContrastiveCropRGBImageDecoder(table, (16, 16))], "label": None,
                                   "index": None})
        next(iter(loader))
        out[:] = 0
        numba.njit(resize_crop.py_func)(image, 1, 2, 15, 20, False, out, scratch)
        assert (out == 77).all()
