"""decode="union": one ROI decode of the union of a sample's windows, each view resized out of it (CPU,
device_id=None; the GPU variant under the GPU skip), with the core's resize (the CPU default) and DALI's."""
import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def, types

from ccrop_loaders.dali import AUTO_DECODE, contrastive_crop_views
from ccrop_loaders.dali.views import resolve_decode
from ccrop_loaders.dali.windows import contrastive_crop_windows, union_and_local_rois

from .conftest import has_gpu

KW = dict(num_views=3, scale=(0.1, 0.9), flip=True)


def views_by_mode(folder, table, modes, size, device="cpu", resize="auto"):
    """{mode: {global index: [view arrays]}} from one pipeline holding every mode."""

    @pipeline_def(batch_size=len(folder), num_threads=2, device_id=0 if device == "gpu" else None,
                  prefetch_queue_depth=1)
    def pipe():
        jpegs, index = fn.readers.file(files=folder.paths, labels=list(range(len(folder))))
        views = [v for mode in modes
                 for v in contrastive_crop_views(jpegs, index, table, size=size, decode=mode, resize=resize,
                                                 device="cpu" if mode == "once" else device, **KW)]
        return (*views, index)

    p = pipe()
    p.build()
    *views, index = p.run()
    order = [int(np.array(index[s])[0]) for s in range(len(index))]
    n = KW["num_views"]
    out = {}
    for m, mode in enumerate(modes):
        batches = [b.as_cpu() if hasattr(b, "as_cpu") else b for b in views[m * n:(m + 1) * n]]
        out[mode] = {i: [np.array(b[s]).astype(int) for b in batches] for s, i in enumerate(order)}
    return out


@pytest.mark.parametrize("size", [(40, 48), (150, 130)])  # views shrunk, and enlarged
def test_union_pixels_equal_once(folder, table, size):
    """The core's resize reads only a window's own pixels, which libjpeg-turbo's crop decoding gives exactly as
    the whole decode does, and a view does not depend on where its window lies: the same pixels, bit for bit."""
    got = views_by_mode(folder, table, ["once", "union"], size)
    for i, once in got["once"].items():
        for v, (a, b) in enumerate(zip(once, got["union"][i])):
            assert a.shape == b.shape == (*size, 3)
            np.testing.assert_array_equal(a, b, err_msg=f"index {i} view {v}")


@pytest.mark.parametrize("size", [(40, 48), (150, 130)])
def test_union_pixels_with_dali_resize(folder, table, size):
    got = views_by_mode(folder, table, ["once", "union"], size, resize="dali")
    differing = total = 0
    for i, once in got["once"].items():
        for v, (a, b) in enumerate(zip(once, got["union"][i])):
            diff = np.abs(a - b)
            # The region holds the whole decode's very pixels and reaches past every window by DALI's filter
            # radius, so its resize reads the same pixels; only its float rounding may differ (it runs over a
            # different input extent): 1 level, rarely.
            assert diff.max() <= 1, (i, v, diff.max())
            differing, total = differing + np.count_nonzero(diff), total + diff.size
    assert differing <= 0.001 * total, differing / total


@pytest.mark.parametrize("resize", ["ccrop", "dali"])
def test_union_region_holds_every_window(folder, table, resize):
    """The region is the windows' union: with DALI's resize widened by its filter's reach, clamped to the image."""
    size = (40, 48)

    @pipeline_def(batch_size=len(folder), num_threads=2, device_id=None, prefetch_queue_depth=1)
    def pipe():
        jpegs, index = fn.readers.file(files=folder.paths, labels=list(range(len(folder))))
        shapes = fn.peek_image_shape(jpegs)
        windows = contrastive_crop_windows(shapes, index, table, num_views=3, scale=(0.1, 0.9))
        rois = fn.cast(windows, dtype=types.FLOAT)  # (top, left, h, w) as a stand-in ROI: only shifted
        region, local = union_and_local_rois(windows, rois, shapes, [size] * 3, resize == "dali")
        return windows, region, local, shapes

    p = pipe()
    p.build()
    windows, region, local, shapes = p.run()
    for s in range(len(folder)):
        w, (top, left), (h, wd) = np.array(windows[s]), *np.array(region[s])
        H, W = np.array(shapes[s])[:2]
        pad_y, pad_x = (-(-w[:, 2] // size[0]) + 1, -(-w[:, 3] // size[1]) + 1) if resize == "dali" else (0, 0)
        assert top == max(0, (w[:, 0] - pad_y).min()) and left == max(0, (w[:, 1] - pad_x).min())
        assert top + h == min(H, (w[:, 0] + w[:, 2] + pad_y).max())
        assert left + wd == min(W, (w[:, 1] + w[:, 3] + pad_x).max())
        np.testing.assert_array_equal(np.array(local[s]), w - np.array([top, left, top, left]))


def test_auto_and_bad_modes():
    assert resolve_decode("auto", "cpu") == AUTO_DECODE["cpu"] and resolve_decode("auto", "gpu") == "once"
    assert resolve_decode("union", "gpu") == "union"
    with pytest.raises(ValueError, match=r"decode must be one of \('auto', 'once', 'slice', 'union'\), got 'roi'"):
        resolve_decode("roi", "cpu")


@pytest.mark.skipif(not has_gpu(), reason="needs a GPU")
def test_gpu_union_views_match_cpu_once(folder, table):
    got = views_by_mode(folder, table, ["once", "union"], (40, 48), device="gpu")
    for i, once in got["once"].items():
        for a, b in zip(once, got["union"][i]):
            assert np.abs(a - b).mean() < 3.0  # nvJPEG vs libjpeg-turbo, GPU vs CPU resampling
