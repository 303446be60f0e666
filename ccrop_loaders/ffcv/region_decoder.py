"""ContrastiveCropRegionDecoder: each image's views' region decoded once into a region row, no resize on the CPU.

A plan over ``RegionViewsDecoder``: the same one decode loop (the views'
windows, the union of them decoded at the smallest DCT scale that keeps every
window at least its view's output size), whose finish step writes a region
row (``core.region_rows``, format v1) instead of resizing views. The torch
view stage (``ccrop_loaders.trainer.ViewStage``) makes the views from a batch
of rows, on the rows' device.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numba
import numpy as np

from ..core import BoxTable, ViewGroup
from ..core.groups import check_groups, check_view_size
from ..core.region_rows import RowFormat, row_pixels, write_region_header
from ..core.checks import check_count, check_range
from ..core.encoded import _bytes_at as bytes_at
from ..core.table_layout import words_at
from .decoders import RegionViewsDecoder, union_region

# The core's row writers, inlined into ``region_row_step``, which takes the row by address: FFCV 1.0.2 flips
# ``mutable`` on numba's interned uint8[::1] and uint8[:, ::1] types, which breaks a dispatcher once typed on them
# (KeyError in its overloads) for every later Loader.
_row_pixels = numba.njit(inline="always")(row_pixels.py_func)
_write_region_header = numba.njit(inline="always")(write_region_header.py_func)


class ContrastiveCropRegionDecoder(RegionViewsDecoder):
    """Decode once the union of each image's ContrastiveCrop windows; output uint8 (B, row_bytes) region rows.

    Row ``i`` holds the decoded region (uint8 RGB, at DCT scale M/8 in (1, 2,
    4, 8)), its size, each view's window in region pixels (float64 (top, left,
    height, width): the sampler's window times M/8, less the region's origin)
    and each view's mirror bit: ``RowFormat(capacity, num_views)``, where the
    capacity is the .beton's largest (height, width), known once the Loader is
    built (``row_format``). A JPEG is decoded straight into the row's pixel
    block. Views are those of ``MultiViewContrastiveCropDecoder(table,
    output_size, num_views=...)`` or ``MultiCropContrastiveCropDecoder(table,
    groups)``: the same windows, flips and DCT scale, so
    ``ViewStage(decoder.groups).from_rows(rows, decoder.row_format)`` gives
    their views within the stage's rounding.

    Give either ``num_views`` (with ``output_size``, ``scale``, ``ratio``) or
    ``groups``. The output sizes only choose the DCT scale: settable (between
    epochs, with progressive resizing, to the stage's new ``sizes``), like
    ``alpha``, ``flip``, ``scale``, ``ratio`` and ``groups`` of the same view
    counts; all apply from the next ``iter(loader)``.
    """

    def __init__(self, table: BoxTable, num_views: int | None = None, *, groups: Sequence[ViewGroup] | None = None,
                 output_size: Sequence[int] = (224, 224), scale: Sequence[float] = (0.2, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), alpha: float = 0.6, flip: bool = True,
                 dct_scaling: bool = True):
        if groups is None:
            groups = (ViewGroup(check_view_size("output_size", output_size),
                                check_count("num_views", 2 if num_views is None else num_views),
                                check_range("scale", scale), check_range("ratio", ratio)),)
        elif num_views is not None:
            raise ValueError("give num_views (with output_size, scale, ratio) or groups, not both")
        groups = check_groups(groups)
        total = sum(g.num_views for g in groups)
        RowFormat((1, 1), total)  # refuses more views than a row holds, before anything is built
        self._groups = groups
        # (rows, columns, 0) of each view's output: read by the compiled loop at run time (DCT scale only)
        self._sizes = np.zeros((total, 3), dtype=np.int64)
        self._format: RowFormat | None = None
        super().__init__(table, total, alpha=alpha, flip=flip, one_size=False, dct_scaling=dct_scaling)

    @property
    def groups(self) -> tuple[ViewGroup, ...]:
        """The view groups. Settable to groups of the same view counts (sizes, scale, ratio, use_boxes change)."""
        return self._groups

    @groups.setter
    def groups(self, value: Sequence[ViewGroup]) -> None:
        value = check_groups(value)
        if [g.num_views for g in value] != [g.num_views for g in self._groups]:
            raise AttributeError(f"{type(self).__name__}.groups may not change the groups' view counts "
                                 f"{[g.num_views for g in self._groups]} once built, got "
                                 f"{[g.num_views for g in value]}; build a new decoder and a new Loader")
        self._groups = value

    @property
    def output_size(self) -> tuple[int, int] | tuple[tuple[int, int], ...]:
        """The views' (height, width) for one group, else each group's; they set the DCT scale only. Settable:
        one (height, width) for every group, or one per group."""
        sizes = tuple(g.size for g in self._groups)
        return sizes[0] if len(sizes) == 1 else sizes

    @output_size.setter
    def output_size(self, value) -> None:
        value = list(value)
        if len(value) == 2 and not isinstance(value[0], (tuple, list)):
            value = [value] * len(self._groups)
        if len(value) != len(self._groups):
            raise ValueError(f"output_size: give one (height, width), or one per group ({len(self._groups)})")
        self.groups = [replace(group, size=check_view_size(f"output_size[{g}]", size))
                       for g, (group, size) in enumerate(zip(self._groups, value))]

    @property
    def scale(self) -> tuple[float, float]:
        """The first group's scale range; setting it sets every group's."""
        return self._groups[0].scale

    @scale.setter
    def scale(self, value: Sequence[float]) -> None:
        value = check_range("scale", value)
        self.groups = [replace(g, scale=value) for g in self._groups]

    @property
    def ratio(self) -> tuple[float, float]:
        """The first group's ratio range; setting it sets every group's."""
        return self._groups[0].ratio

    @ratio.setter
    def ratio(self, value: Sequence[float]) -> None:
        value = check_range("ratio", value)
        self.groups = [replace(g, ratio=value) for g in self._groups]

    @property
    def row_format(self) -> RowFormat:
        """The rows' ``RowFormat``: capacity the .beton's largest (height, width), one view per sampler view."""
        if self._format is None:
            raise RuntimeError(f"{type(self).__name__}.row_format is known once an FFCV Loader is built with it "
                               "(the capacity is the .beton's largest image)")
        return self._format

    def view_groups(self) -> tuple[ViewGroup, ...]:
        return self._groups

    def declare_state_and_memory(self, previous_state):
        state, query = super().declare_state_and_memory(previous_state)
        v = 0
        for group in self._groups:
            for _ in range(group.num_views):
                self._sizes[v, 0], self._sizes[v, 1] = group.size
                v += 1
        return state, query

    def _output_shape(self) -> tuple[int, ...]:
        self._format = RowFormat(self.max_size, self.num_views)
        return (self._format.row_bytes,)

    def _sample_steps(self) -> tuple[Callable, Callable, Callable, int]:
        """Sizes read off the decoder's memory; a JPEG decoded into the row's pixel block; the finish writes the
        row (``region_row_step``); the thread buffer holds one image row (a bounce for the in-place restride)."""
        address, words, views = self._sizes.ctypes.data, self._sizes.size, self.num_views
        cap_h, cap_w = self.max_size
        pixel_bytes = cap_h * cap_w * 3

        @numba.njit(inline="always")
        def layout(destination):
            return words_at(address, words).view(np.int64).reshape(views, 3)

        @numba.njit(inline="always")
        def into(sample, buffer):
            return sample[sample.shape[0] - pixel_bytes:]

        @numba.njit(inline="always")
        def finish(image, is_jpeg, windows, eighths, placed, layout, sample, buffer, scratch):
            region_row_step(image, is_jpeg, windows, eighths, placed, sample.ctypes.data, sample.size,
                            buffer.ctypes.data, cap_h, cap_w)

        return layout, into, finish, cap_w * 3


@numba.njit(nogil=True)
def region_row_step(image, is_jpeg, windows, eighths, placed, row_address, row_bytes, bounce_address, cap_h, cap_w):
    """Make the ``row_bytes`` at ``row_address`` the region row of a decoded sample.

    A JPEG's region, ``image`` uint8 (rows, cols, 3) decoded contiguously at the
    start of the row's pixel block, is moved in place to the block's row stride
    ``cap_w * 3`` (through the ``cap_w * 3`` bytes at ``bounce_address`` for
    rows that overlap their new place). A raw image (``image`` its full pixels) gives the
    union of its windows, copied into the block. ``windows``: int64 (V, 5) in
    full-image pixels (top, left, height, width, mirror); they are written in
    region pixels, scaled by eighths/8. ``placed[:4]`` ends as the region's
    (row0, col0, rows, cols) in pixels of the scaled image.
    """
    row = numba.carray(bytes_at(row_address), row_bytes)
    bounce = numba.carray(bytes_at(bounce_address), cap_w * 3)
    block = _row_pixels(row, cap_h, cap_w)
    if is_jpeg:
        rows, cols = placed[2], placed[3]
        flat = row[row.shape[0] - cap_h * cap_w * 3:]
        n = cols * 3
        if cols < cap_w:
            for r in range(rows - 1, 0, -1):  # last row first: a row never overwrites one not yet moved
                src, dst = r * n, r * cap_w * 3
                if dst - src >= n:
                    flat[dst:dst + n] = flat[src:src + n]
                else:
                    bounce[:n] = flat[src:src + n]
                    flat[dst:dst + n] = bounce[:n]
    else:
        top, left, bottom, right = union_region(windows, 8)
        placed[0], placed[1], placed[2], placed[3] = top, left, bottom - top, right - left
        block[:bottom - top, :right - left] = image[top:bottom, left:right]
    s = eighths / 8.0
    views = windows.shape[0]
    local = np.empty((views, 4), dtype=np.float64)
    flips = np.empty(views, dtype=np.uint8)
    for v in range(views):
        local[v, 0] = windows[v, 0] * s - placed[0]
        local[v, 1] = windows[v, 1] * s - placed[1]
        local[v, 2] = windows[v, 2] * s
        local[v, 3] = windows[v, 3] * s
        flips[v] = 1 if windows[v, 4] != 0 else 0
    _write_region_header(row, cap_h, cap_w, placed[2], placed[3], local, flips)
