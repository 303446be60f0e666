"""ContrastiveCrop windows inside a DALI graph, read from the live ``BoxTable``, and the union region they cover.

The windows op is a ``numba_function`` (CPU) over the core's view-parameter
block (``core.windows``) and ``block_window``, the call FFCV's decoders make, so
DALI, FFCV and ``sample_crop`` agree for the same (seed, epoch, index, view).
The compiled op reads the table's memory and controls at run time: writes and
``use_boxes``/``epoch`` changes reach batches not yet run, without rebuilding.
A window is ``(top, left, crop_height, crop_width)``; its ROI ``(y_start,
x_start, y_end, x_end)``, in pixels, mirrored where ``x_start > x_end``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
from nvidia.dali import fn, types
from nvidia.dali.data_node import DataNode
from nvidia.dali.plugin.numba.fn.experimental import numba_function

from ..core import BoxTable, ViewGroup
from ..core.groups import check_view_size
from ..core.checks import check_count, check_range
from ..core.windows import ROW_LENGTH, ROWS_AT, block_window, view_params
from .gates import checked_indices
from .graph import keep_alive, resolve_table


@numba.njit(cache=True, nogil=True)
def views_windows(address, num_samples, index, height, width, block, windows, rois):
    """Fill ``windows`` int32 (V, 4) and ``rois`` float32 (V, 4) of sample ``index`` (an image ``height`` x
    ``width``) from the view-parameter ``block`` (float64, V rows; view v is the sampler's view v).

    An index outside the table reads no memory and gets the whole image (in a
    pipeline, ``checked_indices`` has failed the batch already).
    """
    for v in range(windows.shape[0]):
        if index < 0 or index >= num_samples:
            top, left, h, w, mirror = 0, 0, height, width, False
        else:
            top, left, h, w, mirror = block_window(address, num_samples, block, v, v, index, height, width)
        windows[v, 0], windows[v, 1], windows[v, 2], windows[v, 3] = top, left, h, w
        rois[v, 0], rois[v, 2] = top, top + h
        rois[v, 1], rois[v, 3] = (left + w, left) if mirror else (left, left + w)


def block_views(block: np.ndarray) -> int:
    """The number of views (rows) of a view-parameter block."""
    return (block.shape[0] - ROWS_AT) // ROW_LENGTH


def windows_and_rois(shapes: DataNode, indices: DataNode, table: BoxTable | str,
                     block: np.ndarray) -> tuple[DataNode, DataNode]:
    """Per sample, windows int32 (V, 4) and ROIs float32 (V, 4) of the V views of the view-parameter ``block``;
    ``shapes``: the images' HWC shapes; ``indices``: their global indices (gated: ``checked_indices``)."""
    # The pipeline holds the table's mapping itself: the caller closing its BoxTable must not unmap memory that
    # DALI's threads (still prefetching) read.
    mapping = resolve_table(table).mapping()
    keep_alive(mapping)
    # Constants the compiled op holds: the table's address (its memory is read live) and size, the views' block.
    # As int64 scalars, not Python ints: numba types a Python int constant as its literal value, which compiled
    # views_windows (and the core's window code below it) again for every table and filled the on-disk cache.
    address, num_samples, views = np.int64(mapping.address), np.int64(mapping.num_samples), block_views(block)

    def run(windows, rois, shape, index, in_table):
        views_windows(address, num_samples, index[0], shape[0], shape[1], block, windows, rois)

    def setup(outs, ins):
        for out in range(2):
            for sample in range(len(outs[out])):
                outs[out][sample][0] = views
                outs[out][sample][1] = 4

    indices, in_table = checked_indices(indices, num_samples)
    return numba_function(fn.cast(shapes, dtype=types.INT64), indices, in_table, run_fn=run, setup_fn=setup,
                          out_types=[types.INT32, types.FLOAT], outs_ndim=[2, 2],
                          in_types=[types.INT64, types.INT64, types.UINT8], ins_ndim=[1, 1, 1], device="cpu")


def contrastive_crop_group_windows(shapes: DataNode, indices: DataNode, table: BoxTable | str,
                                   groups: Sequence[ViewGroup], *, alpha: float = 0.6) -> DataNode:
    """Per sample, int32 (V, 4) windows ``(top, left, crop_height, crop_width)`` of all ``groups``' views in sampler
    view order (V = the groups' views): the windows ``contrastive_crop_groups`` crops. ``shapes``, ``indices``: as
    ``contrastive_crop_windows``."""
    windows, _ = windows_and_rois(shapes, indices, table, view_params(groups, alpha, False))
    return windows


def contrastive_crop_windows(shapes: DataNode, indices: DataNode, table: BoxTable | str, *, num_views: int = 2,
                             scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                             alpha: float = 0.6) -> DataNode:
    """Per sample, int32 (num_views, 4) windows ``(top, left, crop_height, crop_width)`` in pixels.

    ``shapes``: the images' HWC shapes (e.g. ``fn.peek_image_shape(jpegs)``);
    ``indices``: the samples' global indices (integer, shape () or (1,)). Window v
    equals ``sample_crop(H, W, box, index=i, view=v, seed=table.seed,
    epoch=table.epoch)``; with ``table.use_boxes`` False it is RandomResizedCrop.
    """
    return contrastive_crop_group_windows(shapes, indices, table, [one_group(num_views, scale, ratio)], alpha=alpha)


def one_group(num_views: int, scale: Sequence[float], ratio: Sequence[float],
              size: Sequence[int] = (1, 1)) -> ViewGroup:
    """The ``ViewGroup`` of the single-size calls, its arguments checked under their own names."""
    return ViewGroup(check_view_size("size", size), check_count("num_views", num_views), check_range("scale", scale),
                     check_range("ratio", ratio))


def union_and_local_rois(windows: DataNode, rois: DataNode, shapes: DataNode, sizes: Sequence[tuple[int, int]],
                         reach: bool) -> tuple[DataNode, DataNode]:
    """Per sample, the region to decode, int32 (2, 2) ``((top, left), (height, width))``, and float32 (V, 4) the
    ROIs shifted by its origin (mirrored ROIs stay mirrored).

    The region is the union of the windows (V, 4), clamped to the image
    (``shapes``, HWC). With ``reach`` (DALI's resize) each window is widened by
    the filter's reach (``ceil(crop / output) + 1`` pixels per axis: the
    antialiasing triangle's radius, one pixel when enlarging); the core's
    resampler reads only a window's own pixels. Either resize then reads the
    same pixels as from the whole image.
    """
    out = np.array(sizes, dtype=np.int64)

    def run(region, local, windows, rois, shape):
        top, left, bottom, right = shape[0], shape[1], 0, 0
        for v in range(min(windows.shape[0], out.shape[0])):  # the views resized (a short ROI list fails there)
            pad_y = -(-windows[v, 2] // out[v, 0]) + 1 if reach else 0
            pad_x = -(-windows[v, 3] // out[v, 1]) + 1 if reach else 0
            top, left = min(top, windows[v, 0] - pad_y), min(left, windows[v, 1] - pad_x)
            bottom = max(bottom, windows[v, 0] + windows[v, 2] + pad_y)
            right = max(right, windows[v, 1] + windows[v, 3] + pad_x)
        top, left, bottom, right = max(top, 0), max(left, 0), min(bottom, shape[0]), min(right, shape[1])
        region[0, 0], region[0, 1], region[1, 0], region[1, 1] = top, left, bottom - top, right - left
        for v in range(rois.shape[0]):
            local[v, 0], local[v, 1], local[v, 2], local[v, 3] = (rois[v, 0] - top, rois[v, 1] - left,
                                                                  rois[v, 2] - top, rois[v, 3] - left)

    def setup(outs, ins):
        for sample in range(len(outs[0])):
            outs[0][sample][0], outs[0][sample][1] = 2, 2
            outs[1][sample][0], outs[1][sample][1] = ins[1][sample][0], 4

    return numba_function(windows, rois, fn.cast(shapes, dtype=types.INT64), run_fn=run, setup_fn=setup,
                          out_types=[types.INT32, types.FLOAT], outs_ndim=[2, 2],
                          in_types=[types.INT32, types.FLOAT, types.INT64], ins_ndim=[2, 2, 1], device="cpu")
