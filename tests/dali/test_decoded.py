"""contrastive_crop_decoded in a pipeline shaped like solo-learn's: reader (labels = global indices), decode first,
our call, their augmentations (CPU, device_id=None; the mixed-decode variant under the GPU skip)."""
import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.pipeline import Pipeline

from ccrop_loaders import sample_crop
from ccrop_loaders.core import sample_flip
from ccrop_loaders.dali.gates import GATE_INDEX, GATE_VIEWS
from ccrop_loaders.dali import contrastive_crop_decoded, contrastive_crop_views, contrastive_crop_windows

from .conftest import NUM_IMAGES, has_gpu, resize_reference

SIZE = (40, 48)
MEAN, STD = [0.485 * 255, 0.456 * 255, 0.406 * 255], [0.229 * 255, 0.224 * 255, 0.225 * 255]
KW = dict(num_views=2, scale=(0.1, 0.9), alpha=0.3)


def solo_learn_pipeline(folder, table, *, device="cpu", resize="auto"):
    """Decode first, crop the decoded images, then their augmentations; also the raw views and the windows."""

    @pipeline_def(batch_size=len(folder), num_threads=2, device_id=0 if device == "gpu" else None, seed=7,
                  prefetch_queue_depth=1)
    def pipe():
        jpegs, index = fn.readers.file(files=folder.paths, labels=list(range(len(folder))), random_shuffle=True,
                                       name="Reader")
        images = fn.decoders.image(jpegs, device="mixed" if device == "gpu" else "cpu", output_type=types.RGB)
        views = contrastive_crop_decoded(images, index, table, size=SIZE, flip=True, resize=resize, **KW)
        plain = contrastive_crop_decoded(images, index, table, size=SIZE, flip=False, resize=resize, **KW)
        windows = contrastive_crop_windows(images.shape(), index, table, **KW)
        augmented = [fn.crop_mirror_normalize(fn.color_twist(view, brightness=fn.random.uniform(range=[0.6, 1.4]),
                                                             contrast=fn.random.uniform(range=[0.6, 1.4])),
                                              mirror=fn.random.coin_flip(probability=0.5), dtype=types.FLOAT,
                                              output_layout="CHW", mean=MEAN, std=STD)
                     for view in views]
        return (*views, *plain, *augmented, windows, images.shape(), images, index)

    p = pipe()
    p.build()
    return p


def once_views(folder, table, resize="auto"):
    """The same samples through contrastive_crop_views(decode="once"), by global index."""

    @pipeline_def(batch_size=len(folder), num_threads=2, device_id=None, prefetch_queue_depth=1)
    def pipe():
        jpegs, index = fn.readers.file(files=folder.paths, labels=list(range(len(folder))))
        return (*contrastive_crop_views(jpegs, index, table, size=SIZE, flip=True, decode="once", resize=resize,
                                        **KW), index)

    p = pipe()
    p.build()
    v0, v1, index = p.run()
    return {int(np.array(index[s])[0]): (np.array(v0[s]), np.array(v1[s])) for s in range(len(index))}


def as_cpu(batch):
    return batch.as_cpu() if hasattr(batch, "as_cpu") else batch


def check_run(outputs, folder, table, once=None, mirror_tol=0, core=True):
    """``mirror_tol``: how far a mirrored view may be from its unmirrored one flipped (the core's resize mirrors
    exactly: 0); ``core``: the views are the core's resize_crop of DALI's decode (the CPU default)."""
    v0, v1, p0, p1, a0, a1, windows, shapes, images, index = (as_cpu(o) for o in outputs)
    order = [int(np.array(index[s])[0]) for s in range(len(index))]
    assert sorted(order) == list(range(len(folder)))
    flips = 0
    for s, i in enumerate(order):
        h, w = folder.images[i].shape[:2]
        assert tuple(np.array(shapes[s])) == (h, w, 3)
        box = table.read([i])[0]
        expected = [sample_crop(h, w, box, index=i, view=v, seed=table.seed, epoch=table.epoch, scale=(0.1, 0.9),
                                alpha=0.3) for v in range(2)]
        np.testing.assert_array_equal(np.array(windows[s]), np.array(expected, dtype=np.int32))
        for v, (view, plain) in enumerate(((v0, p0), (v1, p1))):
            got, flat = np.array(view[s]), np.array(plain[s])
            assert got.dtype == np.uint8 and got.shape == (*SIZE, 3)
            mirrored = sample_flip(seed=table.seed, epoch=table.epoch, index=i, view=v)
            # DALI's resize resamples a mirrored ROI right to left: its rounding may differ by 1 from the flip
            diff = np.abs(got.astype(int) - (flat[:, ::-1] if mirrored else flat)).max()
            assert diff <= (mirror_tol if mirrored else 0), (i, v, mirrored, diff)
            flips += mirrored
            if core:
                np.testing.assert_array_equal(got, resize_reference(np.array(images[s]), expected[v], SIZE, mirrored))
            if once is not None:  # the pixels of decode="once" for the same (seed, epoch, index, view)
                np.testing.assert_array_equal(got, once[i][v])
        for aug in (a0, a1):
            out = np.array(aug[s])
            assert out.dtype == np.float32 and out.shape == (3, *SIZE) and np.isfinite(out).all()
    assert 0 < flips < 2 * len(folder)
    return order


def test_decoded_views_are_contrastive_crop_views(folder, table):
    p = solo_learn_pipeline(folder, table)
    once = once_views(folder, table)
    check_run(p.run(), folder, table, once)
    table.epoch += 1  # the live table: the next epoch's windows, without rebuilding
    once = once_views(folder, table)
    p.run()  # prefetched before the change
    check_run(p.run(), folder, table, once)


def test_dali_resize_on_request(folder, table):
    p = solo_learn_pipeline(folder, table, resize="dali")
    check_run(p.run(), folder, table, once_views(folder, table, resize="dali"), mirror_tol=1, core=False)


def test_image_that_is_not_rgb_fails_the_batch(folder, table):
    """The core's resize takes 3 channels: a grayscale decode fails the batch (DALI's resize would take it)."""

    @pipeline_def(batch_size=2, num_threads=1, device_id=None, prefetch_queue_depth=1)
    def pipe():
        jpegs, index = fn.readers.file(files=folder.paths[:2], labels=[0, 1])
        gray = fn.decoders.image(jpegs, output_type=types.GRAY)
        return (*contrastive_crop_decoded(gray, index, table, size=SIZE),
                *contrastive_crop_decoded(gray, index, table, size=SIZE, resize="dali"))

    p = pipe()
    p.build()
    with pytest.raises(RuntimeError, match=rf"input_shape={{{GATE_VIEWS} x 1 x 0}}, slice_anchor={{0 x 1 x 0}}"):
        p.run()


@pytest.mark.parametrize("bad", [NUM_IMAGES + 5, -1])
def test_index_outside_table_fails_the_batch(folder, table, bad):
    @pipeline_def(batch_size=2, num_threads=1, device_id=None, prefetch_queue_depth=1)
    def pipe():
        jpegs, _ = fn.readers.file(files=folder.paths[:2], labels=[0, 1])
        index = fn.cast(fn.external_source(source=lambda: [np.array([0]), np.array([bad])], batch=True),
                        dtype=types.INT64)
        return tuple(contrastive_crop_decoded(fn.decoders.image(jpegs, output_type=types.RGB), index, table,
                                              size=SIZE))

    p = pipe()
    p.build()
    with pytest.raises(RuntimeError, match=rf"input_shape={{{GATE_INDEX} x 1 x 0}}, slice_anchor={{{bad} x 1 x 0}}"):
        p.run()


def test_views_follow_the_images_device(folder, table):
    """Graph only (no GPU needed): mixed-decoded images give GPU views; the windows op reads CPU shapes."""
    pipe = Pipeline(batch_size=2, num_threads=1, device_id=0)
    with pipe:
        jpegs, index = fn.readers.file(files=folder.paths, labels=list(range(len(folder))))
        gpu = contrastive_crop_decoded(fn.decoders.image(jpegs, device="mixed"), index, table, size=SIZE)
        cpu = contrastive_crop_decoded(fn.decoders.image(jpegs, device="cpu"), index, table, size=SIZE)
    assert [v.device for v in gpu] == ["gpu", "gpu"] and [v.device for v in cpu] == ["cpu", "cpu"]


def test_refuses_what_is_not_a_data_node(table):
    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def pipe():
        return tuple(contrastive_crop_decoded(np.zeros((8, 8, 3), np.uint8), np.array([0]), table))

    with pytest.raises(TypeError, match="images must be a DALI DataNode"):
        pipe().build()


@pytest.mark.skipif(not has_gpu(), reason="needs a GPU")
def test_mixed_decode_gpu_views(folder, table):
    outputs = solo_learn_pipeline(folder, table, device="gpu").run()
    assert all(type(o).__name__ == "TensorListGPU" for o in outputs[:6])
    check_run(outputs, folder, table, mirror_tol=2, core=False)  # same windows and flips; GPU pixels differ
    once = once_views(folder, table)
    v0, index = outputs[0].as_cpu(), outputs[-1]
    for s in range(len(index)):
        i = int(np.array(index[s])[0])
        assert np.abs(np.array(v0[s]).astype(int) - once[i][0].astype(int)).mean() < 3.0
