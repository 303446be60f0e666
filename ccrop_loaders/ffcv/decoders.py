"""FFCV decoders for ``RGBImageField``: ContrastiveCrop views read from the live ``BoxTable``.

One base, ``RegionViewsDecoder``, holds the one per-batch loop; each public
decoder is a thin plan over it: the view groups it makes now (``view_groups()``)
and the settable parameters that form them. Planning
(``declare_state_and_memory``, run by FFCV when the Loader is built and at every
``iter(loader)``) checks the table against the dataset, sizes the buffers and
writes the views' parameters (the core's view-parameter block,
``core.windows``) into the decoder's own memory. ``generate_code`` returns the
compiled loop, built once per Loader (FFCV's default ``recompile=False``): it
reads the table's memory and controls, that block and the output buffer's shape
at run time, so table writes, epoch changes and parameter changes (progressive
resizing) need no recompiling and give the pixels of a decoder built with the
new values. Windows come from the core's ``block_window``, the call DALI makes
too, over ``table_crop_window``, the function ``sample_crop`` uses.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, Sequence

import numba
import numpy as np
from ffcv.fields.basics import IntDecoder
from ffcv.fields.rgb_image import IMAGE_MODES, SimpleRGBImageDecoder
from ffcv.pipeline.allocation_query import AllocationQuery
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.state import State

from ..core import BoxTable, ViewGroup, first_views
from ..core.checks import check_flag
from ..core.groups import MAX_SAMPLE_BYTES, check_groups, check_view_size, sample_bytes
from ..core.resample import resize_crop, scratch_bytes_c
from ..core.checks import check_alpha, check_count, check_range
from ..core.table_layout import words_at
from ..core.windows import ROW_LENGTH, ROWS_AT, block_window, write_view_params
from .jpeg import REGION_BAD_SIZE, REGION_MAX_PIXELS, REGION_NO_MEMORY, REGION_OK, decode_region

_JPG, _RAW = IMAGE_MODES["jpg"], IMAGE_MODES["raw"]
_U8 = np.dtype("<u1")
_RAW_SIZE = -1  # decode status: raw pixels of another size than the metadata's


def check_metadata(metadata: np.ndarray) -> None:
    """Refuse a .beton whose image metadata no decoder can serve (sizes < 1 or over ``REGION_MAX_PIXELS``, an unknown
    storage mode), naming the first bad sample: checked when the Loader plans, before anything is allocated."""
    heights, widths = metadata["height"].astype(np.int64), metadata["width"].astype(np.int64)
    for bad, what in (((heights < 1) | (widths < 1), "a size below 1 pixel"),
                      (heights * widths > REGION_MAX_PIXELS, f"more than REGION_MAX_PIXELS ({REGION_MAX_PIXELS})"),
                      (~np.isin(metadata["mode"], (_JPG, _RAW)), "an unknown storage mode")):
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"the .beton's metadata gives sample (global index) {i} {what}: {heights[i]}x{widths[i]} "
                             f"pixels, mode {metadata['mode'][i]}; the .beton is damaged or was not written by FFCV's "
                             "RGBImageField")


def _fixed(name: str, stored: str) -> property:
    """A read-only attribute: the compiled loop is built around it."""

    def refuse(self, value):
        raise AttributeError(f"{type(self).__name__}.{name} cannot change once the decoder is built: "
                             f"build a new decoder and a new Loader")

    return property(lambda self: getattr(self, stored), refuse, doc=f"Fixed when built ({name}).")


class RegionViewsDecoder(SimpleRGBImageDecoder):
    """Decode each image once (raw, or only the JPEG region its windows cover), then hand it to the plan's finish
    step: crop-resize every view (here), or write a region row (``ContrastiveCropRegionDecoder``).

    A JPEG is decoded only over the union of the windows (``decode_region``:
    rows above skipped, rows below never read, iMCU columns outside untouched).
    With ``dct_scaling`` it is decoded at the smallest libjpeg-turbo scale M/8
    that still gives every window at least its own view's output resolution (the
    DCT does the first part of the downscale, cheaply); the windows are mapped
    onto it. Each view is resized (``core.resample``), mirrored where keyed, into
    its place in the sample's output bytes.

    The plan a subclass gives: ``view_groups()``, the groups of its views as
    they are now (their count and order fixed when built), and
    ``_output_shape()``; a plan that makes something else than views also
    gives ``_sample_steps()``. Views of one size (``one_size``) are laid out from the
    output buffer's shape, so a new size needs no recompiling; otherwise the
    groups' layout is fixed. With a ``table``, view ``v`` is the sampler's view
    ``first_view + v``, keyed and boxed by the live table; without one, every
    window is the whole image.
    """

    reads_table = True  # its windows come from a table (False: every window is the whole image, no table)

    def __init__(self, table: BoxTable | None, num_views: int, *, alpha: float = 1.0, flip: bool = False,
                 first_view: int = 0, one_size: bool = True, dct_scaling: bool = True):
        super().__init__()
        if (table is not None or self.reads_table) and not isinstance(table, BoxTable):
            raise TypeError(f"table must be a ccrop_loaders.BoxTable, got {type(table).__name__}")
        if isinstance(first_view, (bool, np.bool_)) or not isinstance(first_view, (int, np.integer)) \
                or not 0 <= first_view < 2**31:
            raise ValueError(f"view must be an integer in [0, 2**31), got {first_view!r}")
        self._table = table
        # The decoder holds the table's memory itself: the Loader's threads read it through this mapping's address
        # even after the user closed, unlinked or dropped the table (left its `with` block while prefetching).
        self.table_mapping = table.mapping() if table is not None else None
        self._num_views = check_count("num_views", num_views)
        self._first_view = int(first_view)
        self._one_size = one_size
        self._dct_scaling = check_flag("dct_scaling", dct_scaling)
        self._block = np.zeros(ROWS_AT + ROW_LENGTH * self._num_views, dtype=np.float64)
        self.alpha = alpha
        self._flip = check_flag("flip", flip)

    table = _fixed("table", "_table")
    num_views = _fixed("num_views", "_num_views")
    first_view = _fixed("first_view", "_first_view")
    dct_scaling = _fixed("dct_scaling", "_dct_scaling")

    @property
    def alpha(self) -> float:
        """The Beta(alpha, alpha) parameter of the boxed views' centres. Settable: applies from the next
        ``iter(loader)``."""
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._alpha = check_alpha(value)

    @property
    def flip(self) -> bool:
        """Whether each view is mirrored by its keyed coin (``table_flip``). Settable (a bool): applies from the next
        ``iter(loader)``."""
        return self._flip

    @flip.setter
    def flip(self, value: bool) -> None:
        self._flip = check_flag("flip", value)

    def view_groups(self) -> tuple[ViewGroup, ...]:
        """The groups of this decoder's views, as they are now (the plan's one hook)."""
        raise NotImplementedError

    def _output_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def declare_state_and_memory(self, previous_state: State) -> tuple[State, tuple[AllocationQuery, ...]]:
        if self._table is not None:
            self._table.check_dataset_size(len(self.metadata))
        check_metadata(self.metadata)
        groups = check_groups(self.view_groups())
        write_view_params(self._block, groups, self.alpha, self.flip)
        self.max_size = int(self.metadata["height"].max()), int(self.metadata["width"].max())
        shape = self._output_shape()
        return (
            replace(previous_state, jit_mode=True, shape=shape, dtype=_U8),
            AllocationQuery(shape, _U8),
        )

    def _window_function(self) -> Callable:
        """Compiled ``(index, v, height, width) -> (top, left, crop_height, crop_width, mirror)`` of view ``v``."""
        if self.table_mapping is None:
            @numba.njit(inline="always")
            def whole(index, v, height, width):
                return 0, 0, height, width, False

            return whole
        address, n = self.table_mapping.address, self.table_mapping.num_samples
        block, length, first = self._block.ctypes.data, self._block.size, self._first_view

        @numba.njit(inline="always")
        def window(index, v, height, width):
            live = words_at(block, length).view(np.float64)
            return block_window(address, n, live, v, first + v, index, height, width)

        return window

    def _fixed_layout(self) -> np.ndarray:
        """int64 (V, 3): each view's (rows, columns, byte offset in a sample), from the groups as built."""
        layout, at = [], 0
        for group in self.view_groups():
            rows, cols = group.size
            layout += [(rows, cols, at + j * rows * cols * 3) for j in range(group.num_views)]
            at += group.num_views * rows * cols * 3
        return np.array(layout, dtype=np.int64)

    def _sample_steps(self) -> tuple[Callable, Callable, Callable, int]:
        """The plan's compiled steps around the one decode: ``layout(destination)`` int64 (V, 3), each view's
        (rows, columns, byte offset in a sample), whose rows and columns also set the DCT scale;
        ``into(sample, buffer)``, the uint8 buffer to decode a JPEG into (``sample``: the sample's output bytes,
        ``buffer``: the thread's buffer); ``finish(image, is_jpeg, windows, eighths, placed, layout, sample, buffer,
        scratch)``, what is made of the decoded ``image``; and the thread buffer's bytes.

        Here: decode into the thread's buffer, resize every view into the sample's bytes."""
        views, max_h, max_w = self.num_views, *self.max_size
        if self._one_size:
            @numba.njit(inline="always")
            def layout(destination):
                return view_layout(destination, views)
        else:
            fixed_layout = self._fixed_layout()

            @numba.njit(inline="always")
            def layout(destination):
                return fixed_layout

        return layout, thread_buffer, resize_views_step, max_h * max_w * 3

    def generate_code(self) -> Callable:
        mem_read = self.memory_read
        my_range = Compiler.get_iterator()
        window = self._window_function()
        views, dct_scaling = self.num_views, self.dct_scaling
        layout_of, into, finish, buffer_length = self._sample_steps()
        max_h, max_w = self.max_size

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination = my_storage
            count = len(batch_indices)
            # read at run time (the buffer FFCV allocated for this epoch, or the plan's memory): no recompiling
            layout = layout_of(destination)
            scratch_bytes = 0
            for v in range(views):
                scratch_bytes = max(scratch_bytes, scratch_bytes_c(max_h, max_w, layout[v, 0], layout[v, 1]))
            status = np.zeros(count, dtype=np.int32)
            # per sample: (row0, col0, rows, cols) of the decoded part, the JPEG's declared (height, width)
            placed = np.zeros((count, 6), dtype=np.int64)
            # buffers and resampling scratch per thread, not per sample: they stay in cache
            threads = numba.get_num_threads()
            buffers = np.empty((threads, buffer_length), dtype=np.uint8)
            scratch = np.empty((threads, (scratch_bytes + 7) // 8), dtype=np.int64)
            for i in my_range(count):
                index = batch_indices[i]
                field = metadata[index]
                height, width = np.int64(field["height"]), np.int64(field["width"])
                windows = np.empty((views, 5), dtype=np.int64)
                for v in range(views):
                    windows[v, 0], windows[v, 1], windows[v, 2], windows[v, 3], windows[v, 4] = window(
                        index, v, height, width)
                data = mem_read(field["data_ptr"], storage_state)
                is_jpeg = field["mode"] == _JPG
                eighths = dct_eighths(windows, layout) if dct_scaling and is_jpeg else 8
                thread = numba.get_thread_id()
                buffer = into(destination[i], buffers[thread])
                status[i] = decode_sample(data, is_jpeg, height, width, windows, eighths, buffer, placed[i])
                if status[i] == REGION_OK:
                    image = sample_pixels(data, is_jpeg, height, width, buffer, placed[i])
                    finish(image, is_jpeg, windows, eighths, placed[i], layout, destination[i], buffers[thread],
                           scratch[thread])
            for i in range(count):
                if status[i] != REGION_OK:
                    failed = batch_indices[i]
                    raise_decode_failure(status[i], failed, placed[i], np.int64(metadata[failed]["height"]),
                                         np.int64(metadata[failed]["width"]))
            return destination[:count]

        decode.is_parallel = True
        return decode


@numba.njit(inline="always")
def view_layout(destination, views):
    """int64 (V, 3): (rows, columns, byte offset in a sample) of ``views`` views of one size, read off the batch
    buffer ``destination`` uint8 (B, [V,] H, W, 3)."""
    rows, cols = destination.shape[-3], destination.shape[-2]
    out = np.empty((views, 3), dtype=np.int64)
    for v in range(views):
        out[v, 0], out[v, 1], out[v, 2] = rows, cols, v * rows * cols * 3
    return out


@numba.njit(cache=True, nogil=True)
def dct_eighths(windows, layout):
    """Smallest libjpeg-turbo scale M/8, M in (1, 2, 4, 8), at which every window keeps at least its view's pixels.

    ``windows``: int64 (V, >= 4), each view's (top, left, height, width) in the
    image; ``layout``: int64 (V, >= 2), each view's output (rows, columns).
    Only the scales with SIMD inverse DCTs: libjpeg-turbo 2.x runs 5/8-7/8 with
    plain C IDCTs, slower than a full-size decode.
    """
    need = 0.0
    for v in range(windows.shape[0]):
        need = max(need, layout[v, 0] / windows[v, 2], layout[v, 1] / windows[v, 3])
    eighths = 1
    while eighths < 8 and eighths < need * 8.0 - 1e-9:
        eighths *= 2
    return eighths


@numba.njit(cache=True, nogil=True)
def union_region(windows, eighths):
    """Rows ``[top, bottom)`` x columns ``[left, right)`` covering every window, in pixels of the image at eighths/8."""
    s = eighths / 8.0
    top, left = windows[0, 0], windows[0, 1]
    bottom, right = top + windows[0, 2], left + windows[0, 3]
    for v in range(1, windows.shape[0]):
        top = min(top, windows[v, 0])
        left = min(left, windows[v, 1])
        bottom = max(bottom, windows[v, 0] + windows[v, 2])
        right = max(right, windows[v, 1] + windows[v, 3])
    return (np.int64(math.floor(top * s)), np.int64(math.floor(left * s)),
            np.int64(math.ceil(bottom * s)), np.int64(math.ceil(right * s)))


@numba.njit(inline="always")
def decode_sample(data, is_jpeg, height, width, windows, eighths, buffer, placed):
    """Decode one sample's stored bytes ``data``: a JPEG only over the union of ``windows`` at scale eighths/8 into
    ``buffer`` (its placement in ``placed``: row0, col0, rows, cols, declared height, width), raw pixels in place.
    Returns the status: ``REGION_OK``, a ``decode_region`` failure, or ``_RAW_SIZE``."""
    if is_jpeg:
        top, left, bottom, right = union_region(windows, eighths)
        # the JPEG must declare the metadata's size: a forged header is refused before any allocation
        return decode_region(data.ctypes.data, data.size, eighths, height, width, top, left, bottom, right,
                             buffer.ctypes.data, buffer.size, placed.ctypes.data)
    return REGION_OK if data.size == height * width * 3 else _RAW_SIZE


@numba.njit(inline="always")
def sample_pixels(data, is_jpeg, height, width, buffer, placed):
    """uint8 (rows, cols, 3): the decoded region in ``buffer`` (``placed``), or the raw image ``data``."""
    if is_jpeg:
        return buffer[: placed[2] * placed[3] * 3].reshape(placed[2], placed[3], 3)
    return data.reshape(height, width, 3)


@numba.njit(inline="always")
def resize_views(image, windows, eighths, placed, layout, sample, scratch):
    """Resize each window (int64 (V, 5): top, left, height, width, mirror, in full-image pixels) out of ``image``
    (decoded at eighths/8, its origin at ``placed[:2]``) into its place ``layout`` in ``sample``'s bytes."""
    flat = sample.reshape(sample.size)
    s = eighths / 8.0
    for v in range(windows.shape[0]):
        rows, cols, at = layout[v, 0], layout[v, 1], layout[v, 2]
        out = flat[at: at + rows * cols * 3].reshape(rows, cols, 3)
        resize_crop(image, windows[v, 0] * s - placed[0], windows[v, 1] * s - placed[1], windows[v, 2] * s,
                    windows[v, 3] * s, windows[v, 4] != 0, out, scratch)


@numba.njit(inline="always")
def thread_buffer(sample, buffer):
    """The views plan decodes into the thread's ``buffer``."""
    return buffer


@numba.njit(inline="always")
def resize_views_step(image, is_jpeg, windows, eighths, placed, layout, sample, buffer, scratch):
    """The views plan's finish: ``resize_views`` into the sample's bytes."""
    resize_views(image, windows, eighths, placed, layout, sample, scratch)


@numba.njit
def raise_decode_failure(status, index, placed, meta_h, meta_w):
    """Raise the error of a sample (global ``index``) whose decode returned ``status``, naming it."""
    sample = "ccrop_loaders: sample (global index) " + str(index)
    if status == REGION_BAD_SIZE:
        declared = str(placed[4]) + "x" + str(placed[5]) + " pixels (height x width)"
        raise ValueError(sample + ": its JPEG declares " + declared + " but the .beton's metadata says "
                         + str(meta_h) + "x" + str(meta_w) + "; the JPEG or the .beton is damaged or forged, "
                         "nothing was decoded")
    if status == REGION_NO_MEMORY:
        raise MemoryError(sample + ": no memory for libjpeg-turbo's decompressor")
    if status == _RAW_SIZE:
        raise ValueError(sample + ": its raw pixels in the .beton are not the " + str(meta_h) + "x" + str(meta_w)
                         + "x3 bytes its metadata says; the .beton is damaged")
    raise ValueError("ccrop_loaders: libjpeg-turbo could not decode the image of sample (global index) "
                     + str(index) + " - its JPEG data in the .beton is corrupt")


class _OneSizeDecoder(RegionViewsDecoder):
    """``num_views`` views of one settable ``output_size`` sharing settable ``scale`` and ``ratio``: uint8
    (B, H, W, 3) for one view, (B, V, H, W, 3) for several. Settable values are checked as in the constructor and
    apply from the next ``iter(loader)``."""

    def __init__(self, table: BoxTable | None, output_size: Sequence[int], num_views: int, *,
                 scale: Sequence[float] = (0.2, 1.0), ratio: Sequence[float] = (3 / 4, 4 / 3), **options):
        super().__init__(table, num_views, one_size=True, **options)
        self.output_size, self.scale, self.ratio = output_size, scale, ratio

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of the views. Settable (progressive resizing)."""
        return self._output_size

    @output_size.setter
    def output_size(self, value: Sequence[int]) -> None:
        size = check_view_size("output_size", value)
        if self.num_views * size[0] * size[1] * 3 > MAX_SAMPLE_BYTES:
            raise ValueError(f"{self.num_views} views of {size[0]} x {size[1]} take more than MAX_SAMPLE_BYTES "
                             f"({MAX_SAMPLE_BYTES:,}) bytes per sample")
        self._output_size = size

    @property
    def scale(self) -> tuple[float, float]:
        return self._scale

    @scale.setter
    def scale(self, value: Sequence[float]) -> None:
        self._scale = check_range("scale", value)

    @property
    def ratio(self) -> tuple[float, float]:
        return self._ratio

    @ratio.setter
    def ratio(self, value: Sequence[float]) -> None:
        self._ratio = check_range("ratio", value)

    def view_groups(self) -> tuple[ViewGroup, ...]:
        return (ViewGroup(self.output_size, self.num_views, self.scale, self.ratio),)

    def _output_shape(self) -> tuple[int, ...]:
        h, w = self.output_size
        return (h, w, 3) if self.num_views == 1 else (self.num_views, h, w, 3)


class ContrastiveCropRGBImageDecoder(_OneSizeDecoder):
    """Drop-in for FFCV's ``RandomResizedCropRGBImageDecoder``: one ContrastiveCrop view, uint8 (B, H, W, 3).

    The window of sample ``index`` is ``sample_crop(height, width, table box,
    scale, ratio, alpha, seed=table.seed, epoch=table.epoch, index=index,
    view=view)``; with ``table.use_boxes`` False it is RandomResizedCrop. The
    window is resized with an antialiased triangle filter (after DCT-domain
    scaling when ``dct_scaling``). Settable: ``output_size``, ``scale``, ``ratio``,
    ``alpha``. It never mirrors.
    """

    def __init__(self, table: BoxTable, output_size: Sequence[int], *, scale: tuple[float, float] = (0.2, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), alpha: float = 0.6, view: int = 0,
                 dct_scaling: bool = True):
        super().__init__(table, output_size, 1, scale=scale, ratio=ratio, alpha=alpha, first_view=view,
                         dct_scaling=dct_scaling)

    view = _fixed("view", "_first_view")

    @RegionViewsDecoder.flip.setter
    def flip(self, value: bool) -> None:
        raise AttributeError("ContrastiveCropRGBImageDecoder never mirrors: add FFCV's RandomHorizontalFlip, or use "
                             "MultiViewContrastiveCropDecoder(table, size, num_views=1, flip=True)")


class MultiViewContrastiveCropDecoder(_OneSizeDecoder):
    """Decode once, emit ``num_views`` ContrastiveCrop views: uint8 (B, V, H, W, 3).

    View ``v`` has the window of ``ContrastiveCropRGBImageDecoder(view=v)``; with
    ``flip`` it is mirrored with probability 1/2, keyed like the crop
    (``table_flip``), inside the resize at no cost. ``split_views`` turns the
    batch tensor into V image tensors. Settable: ``output_size``, ``scale``,
    ``ratio``, ``alpha``, ``flip``.
    """

    def __init__(self, table: BoxTable, output_size: Sequence[int], *, num_views: int = 2, flip: bool = True,
                 scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 alpha: float = 0.6, dct_scaling: bool = True):
        super().__init__(table, output_size, num_views, scale=scale, ratio=ratio, alpha=alpha, flip=flip,
                         dct_scaling=dct_scaling)


class MultiCropContrastiveCropDecoder(RegionViewsDecoder):
    """Multi-crop (SwAV, DINO): every view of every ``ViewGroup`` from one decode per image, in one uint8 buffer.

    Output: uint8 (B, ``total_bytes``); a sample's bytes hold each group's
    views, uint8 (V_g, H_g, W_g, 3), back to back in group order (offsets
    ``group_offsets``). ``split_groups(batch, groups)`` views them as one (B,
    V_g, H_g, W_g, 3) tensor per group, without copying. Group g's view j is the
    sampler's view ``first_views(groups)[g] + j``: its window is
    ``table_crop_window`` with the group's ``scale`` and ``ratio``, boxed by the
    table where the group's ``use_boxes`` (else RandomResizedCrop whatever the
    table says), and with ``flip`` it is mirrored by its own keyed coin. A JPEG
    is decoded once over the union of all windows, at the smallest DCT scale
    that keeps every window at least its group's output size.

    Settable, from the next ``iter(loader)``: ``alpha``, ``flip``, and
    ``groups`` with the same sizes and view counts (new ``scale``, ``ratio`` or
    ``use_boxes``). The sizes are fixed: the output buffer's layout is built on
    them.
    """

    def __init__(self, table: BoxTable, groups: Sequence[ViewGroup], *, alpha: float = 0.6, flip: bool = True,
                 dct_scaling: bool = True):
        groups = check_groups(groups)
        self._groups = groups
        super().__init__(table, sum(g.num_views for g in groups), alpha=alpha, flip=flip, one_size=False,
                         dct_scaling=dct_scaling)

    @property
    def groups(self) -> tuple[ViewGroup, ...]:
        """The view groups. Settable to groups of the same sizes and view counts (scale, ratio, use_boxes change)."""
        return self._groups

    @groups.setter
    def groups(self, value: Sequence[ViewGroup]) -> None:
        value = check_groups(value)
        new, fixed = [(g.size, g.num_views) for g in value], [(g.size, g.num_views) for g in self._groups]
        if new != fixed:
            raise AttributeError(f"{type(self).__name__}.groups may change only scale, ratio and use_boxes: the "
                                 f"groups' (size, num_views) {fixed} are fixed once the decoder is built, got {new}; "
                                 "build a new decoder and a new Loader")
        self._groups = value

    @property
    def output_size(self) -> tuple[tuple[int, int], ...]:
        """Each group's (height, width); fixed (a decoder's ``output_size`` set for progressive resizing is refused)."""
        return tuple(g.size for g in self._groups)

    @output_size.setter
    def output_size(self, value) -> None:
        raise AttributeError(f"{type(self).__name__}'s output sizes are its groups' and cannot change once the decoder "
                             "is built: build a new decoder and a new Loader")

    @property
    def total_bytes(self) -> int:
        """Bytes of one sample's output: every view of every group."""
        return sample_bytes(self._groups)

    @property
    def group_offsets(self) -> tuple[int, ...]:
        """Byte offset of each group's first view in a sample's output."""
        layout = self._fixed_layout()
        return tuple(int(layout[v, 2]) for v in first_views(self._groups))

    def view_groups(self) -> tuple[ViewGroup, ...]:
        return self._groups

    def _output_shape(self) -> tuple[int, ...]:
        return (self.total_bytes,)


class FullImageRGBImageDecoder(_OneSizeDecoder):
    """The whole image resized (antialiased) to ``output_size``: uint8 (B, H, W, 3), the view localization uses."""

    reads_table = False

    def __init__(self, output_size: Sequence[int] = (224, 224), *, dct_scaling: bool = True):
        super().__init__(None, output_size, 1, dct_scaling=dct_scaling)


class SampleIndexDecoder(IntDecoder):
    """The samples' global indices as int64 (B, 1), read off an ``IntField`` (e.g. the label).

    For a dataset without an index field, add an output read off the label:
    ``pipelines={..., "index": PipelineSpec("label", SampleIndexDecoder())}``.
    """

    def generate_code(self) -> Callable:
        def decode(batch_indices, destination, metadata, storage_state):
            for i in range(len(batch_indices)):
                destination[i, 0] = batch_indices[i]
            return destination[: len(batch_indices)]

        return decode
