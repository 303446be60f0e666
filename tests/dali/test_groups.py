"""Multi-crop for DALI: contrastive_crop_groups (one decode, a list of views per ViewGroup), its windows and its
decoded-images variant (CPU, device_id=None; the GPU variant under the GPU skip)."""
import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def, types

from ccrop_loaders import sample_crop
from ccrop_loaders.core import FULL_BOX, ViewGroup, first_views, sample_flip
from ccrop_loaders.dali import (contrastive_crop_group_windows, contrastive_crop_groups,
                                contrastive_crop_groups_decoded, contrastive_crop_views)

from .conftest import has_gpu, resize_reference

# global views (ContrastiveCrop) and small local views (plain RandomResizedCrop), three groups to cover numbering
GROUPS = (ViewGroup((40, 48), 2, (0.14, 1.0)), ViewGroup((16, 16), 3, (0.05, 0.14), use_boxes=False),
          ViewGroup((24, 20), 1, (0.05, 0.3), (0.5, 2.0)))
ALPHA = 0.3


def run_groups(folder, table, *, device="cpu", modes=("once",), decoded=False):
    """[{global index: [[group 0 views], [group 1 views], ...]} per mode (+ decoded)], windows by index."""

    @pipeline_def(batch_size=len(folder), num_threads=2, device_id=0 if device == "gpu" else None,
                  prefetch_queue_depth=1)
    def pipe():
        jpegs, index = fn.readers.file(files=folder.paths, labels=list(range(len(folder))))
        outs = [contrastive_crop_groups(jpegs, index, table, GROUPS, alpha=ALPHA, flip=True, decode=mode,
                                        device="cpu" if mode == "once" else device) for mode in modes]
        if decoded:
            images = fn.decoders.image(jpegs, output_type=types.RGB)
            outs.append(contrastive_crop_groups_decoded(images, index, table, GROUPS, alpha=ALPHA, flip=True))
        windows = contrastive_crop_group_windows(fn.peek_image_shape(jpegs), index, table, GROUPS, alpha=ALPHA)
        return (*[v for groups in outs for group in groups for v in group], windows, index)

    p = pipe()
    p.build()
    *views, windows, index = p.run()
    order = [int(np.array(index[s])[0]) for s in range(len(index))]
    per_run = sum(g.num_views for g in GROUPS)
    runs = []
    for r in range(len(views) // per_run):
        batches = [b.as_cpu() if hasattr(b, "as_cpu") else b for b in views[r * per_run:(r + 1) * per_run]]
        runs.append({i: [[np.array(batches[first + j][s]) for j in range(g.num_views)]
                         for first, g in zip(first_views(GROUPS), GROUPS)] for s, i in enumerate(order)})
    return runs, {i: np.array(windows[s]) for s, i in enumerate(order)}


def expected_windows(folder, table, i):
    h, w = folder.images[i].shape[:2]
    rows = []
    for first, group in zip(first_views(GROUPS), GROUPS):
        boxed = group.use_boxes and table.use_boxes
        box, alpha = (table.read([i])[0], ALPHA) if boxed else (FULL_BOX, 1.0)
        rows += [sample_crop(h, w, box, scale=group.scale, ratio=group.ratio, alpha=alpha, seed=table.seed,
                             epoch=table.epoch, index=i, view=first + j) for j in range(group.num_views)]
    return np.array(rows, dtype=np.int32)


@pytest.mark.parametrize("use_boxes", [True, False])
def test_windows_equal_sample_crop_per_group(folder, table, use_boxes):
    table.use_boxes = use_boxes  # warm-up: every group is RandomResizedCrop
    (views,), windows = run_groups(folder, table)
    assert sorted(windows) == list(range(len(folder)))
    for i, got in windows.items():
        np.testing.assert_array_equal(got, expected_windows(folder, table, i))
        assert [len(g) for g in views[i]] == [g.num_views for g in GROUPS]
        for group, group_views in zip(GROUPS, views[i]):
            assert all(v.dtype == np.uint8 and v.shape == (*group.size, 3) for v in group_views)


def test_decode_modes_and_decoded_variant_agree(folder, table):
    (once, union, sliced, decoded), _ = run_groups(folder, table, modes=("once", "union", "slice"), decoded=True)
    for i in once:
        for g in range(len(GROUPS)):
            for a, b, c, d in zip(once[i][g], union[i][g], sliced[i][g], decoded[i][g]):
                np.testing.assert_array_equal(a, d)  # the same decode and resize
                np.testing.assert_array_equal(a, b)  # union: the same pixels (test_union.py)
                assert np.abs(a.astype(int) - c).mean() < 3.0  # slice: each window's own decode


def test_views_are_the_core_resize_of_the_decoded_image(folder, table):
    """Every group's view j is resize_crop of its window of DALI's own decode, to the group's size, mirrored where
    sample_flip says for its sampler view number (8 views: the resize takes two ops over the same pixels)."""
    groups = (*GROUPS, ViewGroup((12, 14), 3, (0.05, 0.2)))  # 9 views

    @pipeline_def(batch_size=len(folder), num_threads=2, device_id=None, prefetch_queue_depth=1)
    def pipe():
        jpegs, index = fn.readers.file(files=folder.paths, labels=list(range(len(folder))))
        views = contrastive_crop_groups(jpegs, index, table, groups, alpha=ALPHA, flip=True)
        windows = contrastive_crop_group_windows(fn.peek_image_shape(jpegs), index, table, groups, alpha=ALPHA)
        return (*[v for group in views for v in group], windows, fn.decoders.image(jpegs, output_type=types.RGB),
                index)

    p = pipe()
    p.build()
    *views, windows, decoded, index = p.run()
    sizes = [g.size for g in groups for _ in range(g.num_views)]
    assert len(views) == len(sizes) == 9
    flips = 0
    for s in range(len(index)):
        i = int(np.array(index[s])[0])
        for v, (window, size) in enumerate(zip(np.array(windows[s]), sizes)):
            mirrored = sample_flip(seed=table.seed, epoch=table.epoch, index=i, view=v)
            flips += mirrored
            ref = resize_reference(np.array(decoded[s]), window, size, mirrored)
            np.testing.assert_array_equal(np.array(views[v][s]), ref, err_msg=f"index {i} view {v}")
    assert 0 < flips < 9 * len(folder)


def test_first_group_is_contrastive_crop_views(folder, table):
    """Group 0 holds sampler views 0, 1: the very views contrastive_crop_views gives with its settings."""

    @pipeline_def(batch_size=len(folder), num_threads=2, device_id=None, prefetch_queue_depth=1)
    def pipe():
        jpegs, index = fn.readers.file(files=folder.paths, labels=list(range(len(folder))))
        groups = contrastive_crop_groups(jpegs, index, table, GROUPS, alpha=ALPHA, flip=True, decode="once")
        views = contrastive_crop_views(jpegs, index, table, size=GROUPS[0].size, num_views=2, scale=GROUPS[0].scale,
                                       alpha=ALPHA, flip=True, decode="once")
        return (*groups[0], *views)

    p = pipe()
    p.build()
    a0, a1, b0, b1 = p.run()
    for s in range(len(folder)):
        np.testing.assert_array_equal(np.array(a0[s]), np.array(b0[s]))
        np.testing.assert_array_equal(np.array(a1[s]), np.array(b1[s]))


@pytest.mark.parametrize("groups, error, message", [
    ([], ValueError, "groups must hold at least one ViewGroup"),
    (GROUPS[0], TypeError, "groups must be a list of ViewGroup, got ViewGroup"),
    ([GROUPS[0], ((96, 96), 6)], TypeError, r"groups\[1\] must be a ViewGroup, got tuple"),
])
def test_bad_groups_are_refused(folder, table, groups, error, message):
    @pipeline_def(batch_size=2, num_threads=1, device_id=None)
    def pipe():
        jpegs, index = fn.readers.file(files=folder.paths[:2], labels=[0, 1])
        return tuple(v for g in contrastive_crop_groups(jpegs, index, table, groups) for v in g)

    with pytest.raises(error, match=message):
        pipe().build()


def test_bad_view_group_and_mode_are_refused(folder, table):
    with pytest.raises(ValueError, match="ViewGroup.scale"):
        ViewGroup((96, 96), 6, (0.3, 0.1))

    @pipeline_def(batch_size=2, num_threads=1, device_id=None)
    def pipe():
        jpegs, index = fn.readers.file(files=folder.paths[:2], labels=[0, 1])
        return tuple(v for g in contrastive_crop_groups(jpegs, index, table, GROUPS, decode="whole") for v in g)

    with pytest.raises(ValueError, match="decode must be one of"):
        pipe().build()


@pytest.mark.skipif(not has_gpu(), reason="needs a GPU")
def test_gpu_groups_match_cpu(folder, table):
    (once, union), _ = run_groups(folder, table, device="gpu", modes=("once", "union"))
    for i in once:
        for g in range(len(GROUPS)):
            for a, b in zip(once[i][g], union[i][g]):
                assert np.abs(a.astype(int) - b.astype(int)).mean() < 3.0  # nvJPEG + GPU resize vs CPU
