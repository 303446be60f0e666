"""The windows op and the views, in hand-written pipelines over a file reader (CPU, device_id=None)."""
import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def, types
from PIL import Image

from ccrop_loaders import sample_crop
from ccrop_loaders.core import sample_flip
from ccrop_loaders.dali.gates import GATE_INDEX, GATE_VIEWS
from ccrop_loaders.dali import contrastive_crop_views, contrastive_crop_windows, crop_resize_views
from ccrop_loaders.dali.resize import resolve_resize

from .conftest import NUM_IMAGES, has_gpu, resize_reference

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
    with pytest.raises(RuntimeError, match=rf"input_shape={{{GATE_INDEX} x 1 x 0}}, slice_anchor={{{anchor} x 1 x 0}}"):
        p.run()


def test_missing_table_name_is_refused(folder):
    with pytest.raises(FileNotFoundError, match="no box table named 'no-such-table'"):
        windows_pipeline(folder.paths, "no-such-table")


def views_and_decoded(folder, table, decode, resize="auto"):
    """[{global index: view}] per view, and {global index: DALI's own CPU decode} (flip on)."""

    @pipeline_def(batch_size=len(folder), num_threads=2, device_id=None, prefetch_queue_depth=1)
    def pipe():
        jpegs, index = fn.readers.file(files=folder.paths, labels=list(range(len(folder))))
        views = contrastive_crop_views(jpegs, index, table, size=SIZE, num_views=2, flip=True, decode=decode,
                                       resize=resize)
        return (*views, fn.decoders.image(jpegs, output_type=types.RGB), index)

    p = pipe()
    p.build()
    *views, decoded, index = p.run()
    order = [int(np.array(index[s])[0]) for s in range(len(index))]
    assert all(v.layout() == "HWC" for v in views)
    return ([{i: np.array(v[s]) for s, i in enumerate(order)} for v in views],
            {i: np.array(decoded[s]) for s, i in enumerate(order)})


@pytest.mark.parametrize("decode", ["once", "union", "slice"])
def test_views_are_the_core_resize_of_the_decoded_image(folder, table, decode):
    """resize="auto" on the CPU: each view is the core's resize_crop of its window of DALI's own decode,
    mirrored where sample_flip says."""
    views, decoded = views_and_decoded(folder, table, decode)
    flips = 0
    for i, image in decoded.items():
        for v, window in enumerate(expected(folder, table, i)):
            mirrored = sample_flip(seed=table.seed, epoch=table.epoch, index=i, view=v)
            flips += mirrored
            ref, got = resize_reference(image, window, SIZE, mirrored), views[v][i]
            assert got.dtype == np.uint8 and got.shape == (*SIZE, 3)
            if decode == "slice":  # libjpeg-turbo decodes a slice's edge blocks slightly differently
                assert np.abs(got.astype(int) - ref).mean() < 3.0, (i, v)
            else:  # "union": libjpeg-turbo's crop decoding gives the whole decode's pixels; the resize reads no more
                np.testing.assert_array_equal(got, ref, err_msg=f"index {i} view {v}")
    assert 0 < flips < 2 * len(folder)


@pytest.mark.parametrize("decode", ["once", "slice"])
def test_dali_resize_is_kept_on_request(folder, table, decode):
    """resize="dali": DALI's antialiased linear resize, close to Pillow's BILINEAR crop-resize."""
    views, decoded = views_and_decoded(folder, table, decode, resize="dali")
    for i, image in decoded.items():
        for v, (top, left, h, w) in enumerate(expected(folder, table, i)):
            ref = np.asarray(Image.fromarray(image).resize(SIZE[::-1], Image.BILINEAR,
                                                           box=(left, top, left + w, top + h))).astype(int)
            if sample_flip(seed=table.seed, epoch=table.epoch, index=i, view=v):
                ref = ref[:, ::-1]
            diff = np.abs(views[v][i].astype(int) - ref)
            # "once": the same pixels, resampled by DALI vs Pillow; "slice": libjpeg-turbo decodes the slice's
            # edge blocks slightly differently from the whole image.
            assert diff.mean() < (1.0 if decode == "once" else 3.0), (i, v, diff.mean())


def test_resize_modes_are_checked():
    assert resolve_resize("auto", "cpu") == "ccrop" and resolve_resize("auto", "gpu") == "dali"
    assert resolve_resize("dali", "cpu") == "dali"
    with pytest.raises(ValueError, match=r"resize must be one of \('auto', 'ccrop', 'dali'\), got 'pil'"):
        resolve_resize("pil", "cpu")
    with pytest.raises(ValueError, match="resize='ccrop' .* runs on the CPU"):
        resolve_resize("ccrop", "gpu")


def test_roi_outside_its_image_fails_the_batch(folder, table):
    """crop_resize_views takes the caller's ROIs: one outside its image (or too few) fails the batch before the
    resampler reads a pixel."""
    rois = np.array([[0, 0, 20, 20], [10, 30, 10 + 20, 30 + 5000]], dtype=np.float32)  # view 1: far too wide

    @pipeline_def(batch_size=2, num_threads=1, device_id=None, prefetch_queue_depth=1)
    def pipe():
        jpegs, _ = fn.readers.file(files=folder.paths[:2], labels=[0, 1])
        given = fn.external_source(source=lambda: [rois, rois], batch=True, dtype=types.FLOAT)
        windows = fn.cast(given, dtype=types.INT32)
        return tuple(crop_resize_views(jpegs, windows, given, num_views=2, size=SIZE, decode="once"))

    p = pipe()
    p.build()
    with pytest.raises(RuntimeError, match=rf"input_shape={{{GATE_VIEWS} x 1 x 0}}, slice_anchor={{1 x 2 x 0}}"):
        p.run()


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
