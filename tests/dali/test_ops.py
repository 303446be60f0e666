"""The windows op and the views, in hand-written pipelines over a file reader (CPU, device_id=None)."""
import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def, types
from PIL import Image

from ccrop_loaders import sample_crop
from ccrop_loaders.core import sample_flip
from ccrop_loaders.dali import contrastive_crop_views, contrastive_crop_windows

from .conftest import NUM_IMAGES, has_gpu

SIZE = (40, 48)


def windows_pipeline(paths, table, indices=None, **kwargs):
    @pipeline_def(batch_size=len(paths), num_threads=2, device_id=None, prefetch_queue_depth=1)
    def pipe():
        labels = list(range(len(paths))) if indices is None else indices
        jpegs, index = fn.readers.file(files=paths, labels=labels)
        return contrastive_crop_windows(fn.peek_image_shape(jpegs), index, table, **kwargs), index

    p = pipe()
    p.build()
    return p


def run_windows(p):
    windows, index = p.run()
    return {int(np.array(index[i])[0]): np.array(windows[i]) for i in range(len(index))}


def expected(folder, table, i, views=2, **kwargs):
    h, w = folder.images[i].shape[:2]
    box = table.read([i])[0] if table.use_boxes else (0.0, 0.0, 1.0, 1.0)
    if not table.use_boxes:
        kwargs["alpha"] = 1.0
    return np.array([sample_crop(h, w, box, index=i, view=v, seed=table.seed, epoch=table.epoch, **kwargs)
                     for v in range(views)])


def test_windows_equal_sample_crop(folder, table):
    got = run_windows(windows_pipeline(folder.paths, table, num_views=3, scale=(0.1, 0.9), alpha=0.3))
    assert sorted(got) == list(range(len(folder)))
    for i, windows in got.items():
        assert windows.dtype == np.int32 and windows.shape == (3, 4)
        np.testing.assert_array_equal(windows, expected(folder, table, i, 3, scale=(0.1, 0.9), alpha=0.3))


def test_table_writes_and_controls_are_live(folder, table):
    p = windows_pipeline(folder.paths, table)
    before = run_windows(p)
    table.write(np.arange(len(folder)), np.tile([0.6, 0.6, 0.9, 0.9], (len(folder), 1)))
    table.epoch = 9
    for _ in range(2):  # past the prefetch queue
        after = run_windows(p)
    assert any((before[i] != after[i]).any() for i in before)
    for i, windows in after.items():
        np.testing.assert_array_equal(windows, expected(folder, table, i))
    table.use_boxes = False
    for _ in range(2):
        rrc = run_windows(p)
    for i, windows in rrc.items():
        np.testing.assert_array_equal(windows, expected(folder, table, i))


@pytest.mark.parametrize("bad", [NUM_IMAGES + 5, -1, 2**40])
@pytest.mark.parametrize("op", ["windows", "views"])
def test_index_outside_table_fails_the_batch(folder, table, op, bad):
    @pipeline_def(batch_size=2, num_threads=1, device_id=None, prefetch_queue_depth=1)
    def pipe():
        jpegs, _ = fn.readers.file(files=folder.paths[:2], labels=[0, 1])
        index = fn.cast(fn.external_source(source=lambda: [np.array([0]), np.array([bad])], batch=True),
                        dtype=types.INT64)
        if op == "windows":
            return contrastive_crop_windows(fn.peek_image_shape(jpegs), index, table)
        return tuple(contrastive_crop_views(jpegs, index, table, size=SIZE))

    p = pipe()
    p.build()
    anchor = min(bad, 2**31 - 1)  # DALI's slice takes int32 starts; the cast saturates
    with pytest.raises(RuntimeError, match=rf"sample index outside box table(.|\n)*input_shape={{{NUM_IMAGES} x 0}}, "
                                           rf"slice_anchor={{{anchor} x 0}}"):
        p.run()


def test_missing_table_name_is_refused(folder):
    with pytest.raises(FileNotFoundError, match="no box table named 'no-such-table'"):
        windows_pipeline(folder.paths, "no-such-table")


@pytest.mark.parametrize("decode", ["once", "slice"])
def test_views_are_crop_resize_of_the_decoded_image(folder, table, decode):
    @pipeline_def(batch_size=len(folder), num_threads=2, device_id=None, prefetch_queue_depth=1)
    def pipe():
        jpegs, index = fn.readers.file(files=folder.paths, labels=list(range(len(folder))))
        views = contrastive_crop_views(jpegs, index, table, size=SIZE, num_views=2, flip=True, decode=decode)
        return (*views, fn.decoders.image(jpegs), index)

    p = pipe()
    p.build()
    *views, decoded, index = p.run()
    flips = 0
    for s in range(len(folder)):
        i = int(np.array(index[s])[0])
        image = np.array(decoded[s])
        for v, (top, left, h, w) in enumerate(expected(folder, table, i)):
            ref = np.asarray(Image.fromarray(image).resize(SIZE[::-1], Image.BILINEAR,
                                                           box=(left, top, left + w, top + h))).astype(int)
            if sample_flip(seed=table.seed, epoch=table.epoch, index=i, view=v):
                ref, flips = ref[:, ::-1], flips + 1
            got = np.array(views[v][s]).astype(int)
            assert got.shape == (*SIZE, 3)
            diff = np.abs(got - ref)
            # "once": the same pixels, resampled by DALI vs Pillow; "slice": libjpeg-turbo decodes the slice's
            # edge blocks slightly differently from the whole image.
            assert diff.mean() < (1.0 if decode == "once" else 3.0), (i, v, diff.mean())
    assert 0 < flips < 2 * len(folder)


@pytest.mark.skipif(not has_gpu(), reason="needs a GPU")
def test_gpu_views_match_cpu_views(folder, table):
    def build(device):
        @pipeline_def(batch_size=len(folder), num_threads=2, device_id=0 if device == "gpu" else None,
                      prefetch_queue_depth=1)
        def pipe():
            jpegs, index = fn.readers.file(files=folder.paths, labels=list(range(len(folder))))
            return (*contrastive_crop_views(jpegs, index, table, size=SIZE, flip=True, device=device), index)

        p = pipe()
        p.build()
        return p.run()

    cpu, gpu = build("cpu"), build("gpu")
    for v in range(2):
        for s in range(len(folder)):
            a = np.array(cpu[v][s]).astype(int)
            b = np.array(gpu[v].as_cpu()[s]).astype(int)
            assert np.abs(a - b).mean() < 3.0  # nvJPEG vs libjpeg-turbo, GPU vs CPU resampling


def test_gpu_without_device_id_is_refused(folder, table):
    @pipeline_def(batch_size=2, num_threads=1, device_id=None)
    def pipe():
        jpegs, index = fn.readers.file(files=folder.paths, labels=list(range(len(folder))))
        return tuple(contrastive_crop_views(jpegs, index, table, device="gpu"))

    with pytest.raises(ValueError, match="needs a pipeline with a device_id"):
        pipe().build()
