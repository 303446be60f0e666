"""FFCV decoders for ``RGBImageField``: ContrastiveCrop views read from the live ``BoxTable``.

Planning (``declare_state_and_memory``, run by FFCV when the Loader is built and
at every ``iter(loader)``) checks the table against the dataset, sizes the
buffers and snapshots the settable parameters (``output_size``, ``scale``,
``ratio``, ``alpha``, ``flip``, a multi-crop decoder's ``groups``) into the
decoder's own memory. ``generate_code`` returns the compiled per-batch loop,
built once per Loader (FFCV's default ``recompile=False``): it reads the
table's memory and controls, that snapshot and
the output buffer's shape at run time, so table writes, epoch changes and
parameter changes (progressive resizing) need no recompiling and give the pixels
of a decoder built with the new values. Windows come from the core's
``table_crop_window``, the same function DALI and ``sample_crop`` use.
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

from ..core import BoxTable, ViewGroup, beta_quantiles, first_views, table_crop_window, table_flip
from ..core.groups import check_groups
from ..core.sampler import QUANTILE_KNOTS, check_alpha, check_count, check_range, check_size
from ..core.table_layout import words_at
from .jpeg import REGION_BAD_SIZE, REGION_MAX_PIXELS, REGION_NO_MEMORY, REGION_OK, decode_region
from ..core.resample import resize_crop, scratch_bytes_c

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


# the live settings of a _TableWindows, float64: flip, the Beta quantiles (alpha), then a row per view group:
# scale_lo, scale_hi, log ratio_lo, log ratio_hi, boxed (ContrastiveCrop, else RandomResizedCrop)
_FLIP, _QUANTILES_AT = 0, 1
_ROWS_AT = _QUANTILES_AT + QUANTILE_KNOTS + 1
_ROW_LENGTH = 5


def _fixed(name: str, stored: str) -> property:
    """A read-only attribute: the compiled loop is built around it."""

    def refuse(self, value):
        raise AttributeError(f"{type(self).__name__}.{name} cannot change once the decoder is built: "
                             f"build a new decoder and a new Loader")

    return property(lambda self: getattr(self, stored), refuse, doc=f"Fixed when built ({name}).")


class _RegionDecoder(SimpleRGBImageDecoder):
    """Decode each image once (raw, or only the JPEG region its windows cover), then crop-resize ``num_views`` windows.

    A JPEG is decoded only over the union of the windows (``decode_region``:
    rows above skipped, rows below never read, iMCU columns outside untouched).
    With ``dct_scaling`` it is decoded at the smallest libjpeg-turbo scale M/8
    that still gives every window at least its own view's output resolution (the
    DCT does the first part of the downscale, cheaply); the windows are mapped
    onto it. Each view is resized into its place in the sample's output bytes.
    Subclasses give ``_output_shape()`` (a sample's output, uint8),
    ``window_function()``: a compiled ``(index, v, height, width) -> (top, left,
    crop_height, crop_width, mirror)`` for the decoder's view ``v`` (0 to
    ``num_views - 1``), and ``layout_function()``: a compiled ``(destination) ->
    int64 (num_views, 3)``, each view's (rows, columns, byte offset in a sample)
    in the batch buffer ``destination``.
    """

    def __init__(self, num_views: int, dct_scaling: bool = True):
        super().__init__()
        self._num_views = check_count("num_views", num_views)
        self._dct_scaling = bool(dct_scaling)

    num_views = _fixed("num_views", "_num_views")
    dct_scaling = _fixed("dct_scaling", "_dct_scaling")

    def _output_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def window_function(self) -> Callable:
        raise NotImplementedError

    def layout_function(self) -> Callable:
        raise NotImplementedError

    def check_dataset(self, num_samples: int) -> None:
        """Refuse a dataset this decoder cannot serve (called when the Loader is built)."""

    def declare_state_and_memory(self, previous_state: State) -> tuple[State, tuple[AllocationQuery, ...]]:
        self.check_dataset(len(self.metadata))
        check_metadata(self.metadata)
        self.max_size = int(self.metadata["height"].max()), int(self.metadata["width"].max())
        shape = self._output_shape()
        return (
            replace(previous_state, jit_mode=True, shape=shape, dtype=_U8),
            AllocationQuery(shape, _U8),
        )

    def generate_code(self) -> Callable:
        mem_read = self.memory_read
        my_range = Compiler.get_iterator()
        window = self.window_function()
        view_layout = self.layout_function()
        views = self.num_views
        dct_scaling = self.dct_scaling
        max_h, max_w = self.max_size
        decoded_length = max_h * max_w * 3

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination = my_storage
            count = len(batch_indices)
            # read off the buffer FFCV allocated for this epoch, planned at its iter(loader)
            layout = view_layout(destination)
            scratch_bytes = 0
            for v in range(views):
                scratch_bytes = max(scratch_bytes, scratch_bytes_c(max_h, max_w, layout[v, 0], layout[v, 1]))
            status = np.zeros(count, dtype=np.int32)
            # per sample: (row0, col0, rows, cols) of the decoded part, the JPEG's declared (height, width)
            placed = np.zeros((count, 6), dtype=np.int64)
            # decoded pixels and resampling scratch per thread, not per sample: they stay in cache
            threads = numba.get_num_threads()
            decoded = np.empty((threads, decoded_length), dtype=np.uint8)
            scratch = np.empty((threads, (scratch_bytes + 7) // 8), dtype=np.int64)
            for i in my_range(count):
                index = batch_indices[i]
                field = metadata[index]
                height = np.int64(field["height"])
                width = np.int64(field["width"])
                windows = np.empty((views, 5), dtype=np.int64)
                for v in range(views):
                    windows[v, 0], windows[v, 1], windows[v, 2], windows[v, 3], windows[v, 4] = window(
                        index, v, height, width)
                data = mem_read(field["data_ptr"], storage_state)
                eighths = 8
                if field["mode"] == _JPG:
                    if dct_scaling:
                        eighths = dct_eighths(windows, layout)
                    top, left, bottom, right = union_region(windows, eighths)
                    buffer = decoded[numba.get_thread_id()]
                    # the JPEG must declare the metadata's size: a forged header is refused before any allocation
                    status[i] = decode_region(data.ctypes.data, data.size, eighths, height, width, top, left, bottom,
                                              right, buffer.ctypes.data, buffer.size, placed[i].ctypes.data)
                    image = buffer[: placed[i, 2] * placed[i, 3] * 3].reshape(placed[i, 2], placed[i, 3], 3)
                elif data.size == height * width * 3:
                    image = data.reshape(height, width, 3)
                else:
                    status[i] = _RAW_SIZE
                    image = data[:0].reshape(0, 0, 3)
                if status[i] == REGION_OK:
                    sample = destination[i].reshape(destination[i].size)
                    for v in range(views):
                        rows, cols, at = layout[v, 0], layout[v, 1], layout[v, 2]
                        out = sample[at: at + rows * cols * 3].reshape(rows, cols, 3)
                        top, left, crop_h, crop_w = scaled_window(windows[v], eighths)
                        resize_crop(image, top - placed[i, 0], left - placed[i, 1], crop_h, crop_w, windows[v, 4] != 0,
                                    out, scratch[numba.get_thread_id()])
            for i in range(count):
                if status[i] == REGION_OK:
                    continue
                failed = batch_indices[i]
                sample = "ccrop_loaders: sample (global index) " + str(failed)
                declared = str(placed[i, 4]) + "x" + str(placed[i, 5]) + " pixels (height x width)"
                meta_h, meta_w = np.int64(metadata[failed]["height"]), np.int64(metadata[failed]["width"])
                if status[i] == REGION_BAD_SIZE:
                    raise ValueError(sample + ": its JPEG declares " + declared + " but the .beton's metadata says "
                                     + str(meta_h) + "x" + str(meta_w) + "; the JPEG or the .beton is damaged or "
                                     "forged, nothing was decoded")
                if status[i] == REGION_NO_MEMORY:
                    raise MemoryError(sample + ": no memory for libjpeg-turbo's decompressor")
                if status[i] == _RAW_SIZE:
                    raise ValueError(sample + ": its raw pixels in the .beton are not the " + str(meta_h) + "x"
                                     + str(meta_w) + "x3 bytes its metadata says; the .beton is damaged")
                raise ValueError("ccrop_loaders: libjpeg-turbo could not decode the image of sample (global index) "
                                 + str(failed) + " - its JPEG data in the .beton is corrupt")
            return destination[:count]

        decode.is_parallel = True
        return decode


@numba.njit(cache=True, nogil=True)
def dct_eighths(windows, layout):
    """Smallest libjpeg-turbo scale M/8, M in (1, 2, 4, 8), at which every window keeps at least its view's pixels.

    ``windows``: int64 (V, >= 4), each view's (top, left, height, width) in the
    image; ``layout``: int64 (V, >= 2), each view's output (rows, columns).

    Only the scales with SIMD inverse DCTs: at 5/8-7/8 libjpeg-turbo 2.x runs
    plain C IDCTs and decodes slower than at full size (measured 1.3-1.7x).
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


@numba.njit(cache=True, nogil=True)
def scaled_window(window, eighths):
    """Window ``(top, left, h, w)`` of the full image, in pixels of the image decoded at scale eighths/8."""
    s = eighths / 8.0
    return window[0] * s, window[1] * s, window[2] * s, window[3] * s


class _CropResizeDecoder(_RegionDecoder):
    """``num_views`` views of one settable ``output_size``: uint8 (B, H, W, 3) for one view, (B, V, H, W, 3) for
    several. View ``v`` is the sampler's view ``first_view + v``."""

    def __init__(self, output_size: Sequence[int], num_views: int, first_view: int = 0, dct_scaling: bool = True):
        super().__init__(num_views, dct_scaling)
        self.output_size = output_size
        if isinstance(first_view, bool) or not isinstance(first_view, (int, np.integer)) or first_view < 0:
            raise ValueError(f"view must be an integer >= 0, got {first_view!r}")
        self._first_view = int(first_view)

    first_view = _fixed("first_view", "_first_view")

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of the views. Settable (progressive resizing): applies from the next ``iter(loader)``."""
        return self._output_size

    @output_size.setter
    def output_size(self, value: Sequence[int]) -> None:
        self._output_size = check_size("output_size", value)

    def _output_shape(self) -> tuple[int, ...]:
        h, w = self.output_size
        return (h, w, 3) if self.num_views == 1 else (self.num_views, h, w, 3)

    def layout_function(self) -> Callable:
        views = self.num_views

        @numba.njit(inline="always")
        def layout(destination):
            rows, cols = destination.shape[-3], destination.shape[-2]
            out = np.empty((views, 3), dtype=np.int64)
            for v in range(views):
                out[v, 0], out[v, 1], out[v, 2] = rows, cols, v * rows * cols * 3
            return out

        return layout


class _TableWindows:
    """Mixin for decoders whose windows come from the live table (before ``_RegionDecoder`` in the bases).

    Holds the table's mapping and the settings the compiled loop reads at run
    time (float64, at an address): ``flip``, the Beta quantiles of ``alpha``
    and, per view group (a row), ``scale``, ``ratio`` and whether the group
    uses the table's boxes; ``_write_settings`` puts the current values there
    when the Loader plans an epoch. ``alpha`` is settable, ``table`` fixed.
    """

    def _use_table(self, table: BoxTable, groups: int, alpha: float, flip: bool) -> None:
        if not isinstance(table, BoxTable):
            raise TypeError(f"table must be a ccrop_loaders.BoxTable, got {type(table).__name__}")
        self._table = table
        # The decoder holds the table's memory itself: the Loader's threads read it through this mapping's address
        # even after the user closed, unlinked or dropped the table (left its `with` block while prefetching).
        self.table_mapping = table.mapping()
        self._settings = np.zeros(_ROWS_AT + groups * _ROW_LENGTH, dtype=np.float64)
        self.alpha = alpha
        self._flip = bool(flip)

    table = _fixed("table", "_table")

    @property
    def alpha(self) -> float:
        """The Beta(alpha, alpha) parameter of the boxed views' centres."""
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._alpha = check_alpha(value)

    @property
    def flip(self) -> bool:
        """Whether each view is mirrored by its keyed coin (``table_flip``)."""
        return self._flip

    def check_dataset(self, num_samples: int) -> None:
        self.table.check_dataset_size(num_samples)

    def _write_settings(self, rows: Sequence[tuple[tuple[float, float], tuple[float, float], bool]]) -> None:
        """Snapshot ``alpha``, ``flip`` and each group's ``(scale, ratio, use_boxes)`` for the compiled loop."""
        settings = self._settings
        settings[_FLIP] = self.flip
        settings[_QUANTILES_AT:_ROWS_AT] = beta_quantiles(self.alpha)
        for r, (scale, ratio, boxed) in enumerate(rows):
            at = _ROWS_AT + r * _ROW_LENGTH
            settings[at: at + _ROW_LENGTH] = (*scale, math.log(ratio[0]), math.log(ratio[1]), boxed)

    def _table_window_function(self, first_view: int, view_groups: Sequence[int]) -> Callable:
        """Compiled ``(index, v, height, width) -> (top, left, h, w, mirror)``: view ``v`` is the sampler's view
        ``first_view + v``, drawn with the settings of group ``view_groups[v]``."""
        address, n = self.table_mapping.address, self.table_mapping.num_samples
        settings, length = self._settings.ctypes.data, self._settings.size
        rows = np.array([_ROWS_AT + g * _ROW_LENGTH for g in view_groups], dtype=np.int64)

        @numba.njit(inline="always")
        def window(index, v, height, width):
            live = words_at(settings, length).view(np.float64)
            view, at = first_view + v, rows[v]
            top, left, h, w = table_crop_window(address, n, index, view, height, width, live[at], live[at + 1],
                                                live[at + 2], live[at + 3], live[_QUANTILES_AT:_ROWS_AT],
                                                live[at + 4] != 0)
            return top, left, h, w, live[_FLIP] != 0 and table_flip(address, n, index, view)

        return window


class _TableDecoder(_TableWindows, _CropResizeDecoder):
    """Views of one size, windows from the live table; ``scale``, ``ratio``, ``alpha`` (and ``flip`` where the class
    has it) are settable, checked as in the constructor, and apply from the next ``iter(loader)``."""

    def __init__(self, table: BoxTable, output_size, *, num_views, first_view, flip, scale, ratio, alpha,
                 dct_scaling):
        super().__init__(output_size, num_views, first_view, dct_scaling)
        self._use_table(table, 1, alpha, flip)
        self.scale, self.ratio = scale, ratio

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

    def declare_state_and_memory(self, previous_state: State) -> tuple[State, tuple[AllocationQuery, ...]]:
        self._write_settings([(self.scale, self.ratio, True)])
        return super().declare_state_and_memory(previous_state)

    def window_function(self) -> Callable:
        return self._table_window_function(self.first_view, [0] * self.num_views)


class ContrastiveCropRGBImageDecoder(_TableDecoder):
    """Drop-in for FFCV's ``RandomResizedCropRGBImageDecoder``: one ContrastiveCrop view, uint8 (B, H, W, 3).

    The window of sample ``index`` is ``sample_crop(height, width, table box,
    scale, ratio, alpha, seed=table.seed, epoch=table.epoch, index=index,
    view=view)``; with ``table.use_boxes`` False it is RandomResizedCrop. The
    window is resized with an antialiased triangle filter (after DCT-domain
    scaling when ``dct_scaling``).
    """

    def __init__(self, table: BoxTable, output_size: Sequence[int], *, scale: tuple[float, float] = (0.2, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), alpha: float = 0.6, view: int = 0,
                 dct_scaling: bool = True):
        super().__init__(table, output_size, num_views=1, first_view=view, flip=False, scale=scale, ratio=ratio,
                         alpha=alpha, dct_scaling=dct_scaling)

    view = _fixed("view", "_first_view")

    @_TableDecoder.flip.setter
    def flip(self, value: bool) -> None:
        raise AttributeError("ContrastiveCropRGBImageDecoder never mirrors: add FFCV's RandomHorizontalFlip, or use "
                             "MultiViewContrastiveCropDecoder(table, size, num_views=1, flip=True)")


class MultiViewContrastiveCropDecoder(_TableDecoder):
    """Decode once, emit ``num_views`` ContrastiveCrop views: uint8 (B, V, H, W, 3).

    View ``v`` has the window of ``ContrastiveCropRGBImageDecoder(view=v)``; with
    ``flip`` it is mirrored with probability 1/2, keyed like the crop
    (``table_flip``), inside the resize at no cost. ``split_views`` turns the
    batch tensor into V image tensors.
    """

    def __init__(self, table: BoxTable, output_size: Sequence[int], *, num_views: int = 2, flip: bool = True,
                 scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 alpha: float = 0.6, dct_scaling: bool = True):
        super().__init__(table, output_size, num_views=num_views, first_view=0, flip=flip, scale=scale, ratio=ratio,
                         alpha=alpha, dct_scaling=dct_scaling)

    @_TableDecoder.flip.setter
    def flip(self, value: bool) -> None:
        self._flip = bool(value)


class MultiCropContrastiveCropDecoder(_TableWindows, _RegionDecoder):
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
        super().__init__(sum(g.num_views for g in groups), dct_scaling)
        self._use_table(table, len(groups), alpha, flip)
        self._groups = groups
        layout, at = [], 0
        for group in groups:
            rows, cols = group.size
            layout += [(rows, cols, at + j * rows * cols * 3) for j in range(group.num_views)]
            at += group.num_views * rows * cols * 3
        if at >= 2 ** 63:  # the compiled loop's offsets are int64 (numpy would say "Python int too large")
            raise ValueError(f"the groups' views take {at} bytes per sample, more than any buffer can hold: {groups}")
        self._layout = np.array(layout, dtype=np.int64)
        self._total_bytes = at

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

    @_TableWindows.flip.setter
    def flip(self, value: bool) -> None:
        self._flip = bool(value)

    @property
    def total_bytes(self) -> int:
        """Bytes of one sample's output: every view of every group."""
        return self._total_bytes

    @property
    def group_offsets(self) -> tuple[int, ...]:
        """Byte offset of each group's first view in a sample's output."""
        return tuple(int(self._layout[v, 2]) for v in first_views(self._groups))

    def _output_shape(self) -> tuple[int, ...]:
        return (self._total_bytes,)

    def declare_state_and_memory(self, previous_state: State) -> tuple[State, tuple[AllocationQuery, ...]]:
        self._write_settings([(g.scale, g.ratio, g.use_boxes) for g in self._groups])
        return super().declare_state_and_memory(previous_state)

    def window_function(self) -> Callable:
        return self._table_window_function(0, [g for g, group in enumerate(self._groups)
                                               for _ in range(group.num_views)])

    def layout_function(self) -> Callable:
        fixed = self._layout

        @numba.njit(inline="always")
        def layout(destination):
            return fixed

        return layout


class FullImageRGBImageDecoder(_CropResizeDecoder):
    """The whole image resized (antialiased) to ``output_size``: uint8 (B, H, W, 3), the view localization uses."""

    def __init__(self, output_size: Sequence[int] = (224, 224), *, dct_scaling: bool = True):
        super().__init__(output_size, num_views=1, dct_scaling=dct_scaling)

    def window_function(self) -> Callable:
        @numba.njit(inline="always")
        def window(index, view, height, width):
            return 0, 0, height, width, False

        return window


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
