"""DALI graph pieces: ContrastiveCrop windows read from the live ``BoxTable`` inside the graph, and the views.

Call these inside a ``@pipeline_def`` function. The windows op is a ``numba_function``
(CPU) that calls the core's ``table_crop_window``, the function FFCV and
``sample_crop`` use, so all three agree for the same (seed, epoch, index, view).
The compiled op reads the table's memory and controls at run time: writes and
``use_boxes``/``epoch`` changes reach batches not yet prefetched, without rebuilding.

The views are resized (``resize="auto"``) on the CPU by the core's resampler
(``core.resample``, the one FFCV's decoders use), from a ``numba_function`` op over
the decoded image or region (each view is ``resize_crop`` of its window, mirrored
where keyed), and on the GPU by DALI's ``fn.resize``; ``resize="dali"`` keeps
DALI's resize on the CPU too.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np
from nvidia.dali import fn, types
from nvidia.dali.data_node import DataNode
from nvidia.dali.pipeline import Pipeline
from nvidia.dali.plugin.numba.fn.experimental import numba_function

from ..core import BoxTable, ViewGroup, beta_quantiles, first_views, table_crop_window, table_flip
from ..core.encoded import image_status_at
from ..core.groups import check_groups
from ..core.resample import resize_crop_c, scratch_bytes_c
from ..core.sampler import check_alpha, check_count, check_range, check_size

DEVICES = ("cpu", "gpu")
DECODE_MODES = ("auto", "once", "slice", "union")
# What decode="auto" means per device, chosen by measurement. CPU: "union". It never decodes more than "once", and
# with the core's resize (the CPU default, ~3x DALI's fn.resize) the decode weighs more: measured side by side (the
# contenders of benchmarks/dali_bench.py, 2 threads, 256 JPEGs of shorter side 300-500, a shared 2-core machine,
# load 2-4), pairs/s union / once median 1.07 over 7 runs (0.99-1.19), "slice" / "once" 0.63-0.74; multi-crop
# 2x224 + 6x96 costs 1.10-1.36 x a union pair. GPU: "once" until a GPU has measured otherwise
# (benchmarks/gpu_check.sh prints the table; none has run yet).
AUTO_DECODE = {"cpu": "union", "gpu": "once"}


# Columns of a view's parameter row (float64): its scale and log-ratio ranges, and whether it uses the table's box.
PARAMS = ("scale_lo", "scale_hi", "log_ratio_lo", "log_ratio_hi", "boxed")


@numba.njit(cache=True, nogil=True)
def views_windows(address, num_samples, index, height, width, params, quantiles, flip, windows, rois):
    """Fill ``windows`` int32 (V, 4) ``(top, left, crop_height, crop_width)`` and ``rois`` float32 (V, 4)
    ``(y_start, x_start, y_end, x_end)`` in pixels for sample ``index`` of an image ``height`` x ``width``.

    Row v of ``params`` float64 (V, 5) (columns ``PARAMS``) sets view v's ranges and
    whether it is boxed (ContrastiveCrop) or plain RandomResizedCrop; view v is keyed
    by sampler view number v. A mirrored view (``flip`` and the keyed coin) has
    ``x_start > x_end``: the resize mirrors such an ROI. An index outside the table
    reads no memory and gets the whole image (in a pipeline, ``checked_indices`` has
    failed the batch already).
    """
    if index < 0 or index >= num_samples:
        for v in range(windows.shape[0]):
            windows[v, 0], windows[v, 1], windows[v, 2], windows[v, 3] = 0, 0, height, width
            rois[v, 0], rois[v, 1], rois[v, 2], rois[v, 3] = 0.0, 0.0, height, width
        return
    for v in range(windows.shape[0]):
        top, left, h, w = table_crop_window(address, num_samples, index, v, height, width, params[v, 0],
                                            params[v, 1], params[v, 2], params[v, 3], quantiles, params[v, 4] != 0)
        windows[v, 0], windows[v, 1], windows[v, 2], windows[v, 3] = top, left, h, w
        rois[v, 0], rois[v, 2] = top, top + h
        if flip and table_flip(address, num_samples, index, v):
            rois[v, 1], rois[v, 3] = left + w, left
        else:
            rois[v, 1], rois[v, 3] = left, left + w


@numba.njit(cache=True, nogil=True)
def view_windows(address, num_samples, index, height, width, scale_lo, scale_hi, log_ratio_lo, log_ratio_hi,
                 quantiles, flip, windows, rois):
    """``views_windows`` for V = ``windows.shape[0]`` boxed views sharing one scale and log-ratio range."""
    params = np.empty((windows.shape[0], 5))
    for v in range(windows.shape[0]):
        params[v, 0], params[v, 1], params[v, 2], params[v, 3], params[v, 4] = (
            scale_lo, scale_hi, log_ratio_lo, log_ratio_hi, 1.0)
    views_windows(address, num_samples, index, height, width, params, quantiles, flip, windows, rois)


def group_params(groups: Sequence[ViewGroup]) -> np.ndarray:
    """float64 (V, 5), one ``PARAMS`` row per view of ``groups`` (checked), in sampler view order."""
    rows = [(g.scale[0], g.scale[1], math.log(g.ratio[0]), math.log(g.ratio[1]), float(g.use_boxes))
            for g in check_groups(groups) for _ in range(g.num_views)]
    return np.array(rows, dtype=np.float64)


def resolve_table(table: BoxTable | str) -> BoxTable:
    """A ``BoxTable``, or the name of one to attach (refused with a clear message when it does not exist)."""
    if isinstance(table, str):
        return BoxTable.attach(table)
    if not isinstance(table, BoxTable):
        raise TypeError(f"table must be a BoxTable or a table name, got {type(table).__name__}")
    table.words  # raises if closed
    return table


def _current_pipeline() -> Pipeline:
    pipe = Pipeline.current()
    if pipe is None:
        raise RuntimeError("ContrastiveCrop DALI ops must be called while a pipeline is defined "
                           "(inside a @pipeline_def function)")
    return pipe


def keep_alive(*objects) -> None:
    """Tie ``objects`` (tables, arrays whose address compiled code holds) to the pipeline being defined."""
    pipe = _current_pipeline()
    if not hasattr(pipe, "_ccrop_keep_alive"):
        pipe._ccrop_keep_alive = []
    pipe._ccrop_keep_alive.extend(objects)


def checked_indices(indices: DataNode, num_samples: int) -> tuple[DataNode, DataNode]:
    """``indices`` as int64 (1,), and an empty uint8 (1, 0) per sample whose op fails the batch when an index is
    outside ``[0, num_samples)``: DALI's error quotes the line below and gives the index as ``slice_anchor``
    and the table size as ``input_shape``. Feed the empty output to an op that must not run on such a batch."""
    indices = fn.reshape(fn.cast(indices, dtype=types.INT64), shape=[1])
    rows = fn.zeros(shape=[num_samples, 0], dtype=types.UINT8)  # one row per table row, no bytes
    start = fn.cast(indices, dtype=types.INT32)  # saturates: an index beyond int32 stays outside the table
    in_table = fn.slice(rows, start, [1], axes=[0], out_of_bounds_policy="error")  # sample index outside box table?
    return indices, in_table


def checked_images(jpegs: DataNode, indices: DataNode) -> DataNode:
    """``jpegs`` (encoded images, uint8 1-D), through a check that fails the batch on a damaged file before any
    decoder (or ``fn.peek_image_shape``) reads it. Call it on the reader's output and decode what it returns.

    Each sample's bytes are checked in compiled code (``core.encoded.image_status_at``: format, JPEG segments
    and markers, end of image, PNG chunks, declared size at most ``MAX_IMAGE_PIXELS`` and what the bytes can
    hold). A damaged one fails the batch: DALI's error quotes the line below, and its ``slice_anchor`` is
    ``{global sample index x reason x 0}`` (reason: a key of ``core.encoded.REASONS``).
    ``ContrastiveCropIterator`` turns it into a ``ValueError`` naming the file and why.
    ``contrastive_crop_views`` calls it (once) itself.
    """
    pipe = _current_pipeline()
    checked = getattr(pipe, "_ccrop_checked_images", None)
    if checked is None:
        checked = pipe._ccrop_checked_images = []
    if any(node is jpegs for node in checked):
        return jpegs

    def run(anchor, data, index):
        reason, _, _ = image_status_at(data.ctypes.data, data.size)
        anchor[0] = 0 if reason == 0 else min(max(index[0], -2147483647), 2147483647)
        anchor[1] = reason

    def setup(outs, ins):
        for sample in range(len(outs[0])):
            outs[0][sample][0] = 2

    index = fn.reshape(fn.cast(indices, dtype=types.INT64), shape=[1])
    anchor = numba_function(jpegs, index, run_fn=run, setup_fn=setup, out_types=[types.INT32], outs_ndim=[1],
                            in_types=[types.UINT8, types.INT64], ins_ndim=[1, 1], device="cpu")
    good = fn.zeros(shape=[1, 1, 0], dtype=types.UINT8)  # anchor (0, 0) fits; a nonzero reason does not
    gate = fn.slice(good, anchor, [1, 1], axes=[0, 1], out_of_bounds_policy="error")  # damaged image file? slice_anchor = {sample index x reason x 0}
    # The decoders read the bytes through the gate: nothing decodes a batch holding a damaged file.
    jpegs = fn.cat(jpegs, fn.squeeze(gate, axes=[0, 1]), axis=0)
    checked.append(jpegs)
    return jpegs


def _single_group(num_views: int, scale: Sequence[float], ratio: Sequence[float]) -> np.ndarray:
    """``group_params`` of ``num_views`` boxed views sharing ``scale`` and ``ratio`` (checked, named as arguments)."""
    views = check_count("num_views", num_views)
    scale_lo, scale_hi = check_range("scale", scale)
    ratio_lo, ratio_hi = check_range("ratio", ratio)
    return np.tile([scale_lo, scale_hi, math.log(ratio_lo), math.log(ratio_hi), 1.0], (views, 1))


def _windows_and_rois(shapes: DataNode, indices: DataNode, table: BoxTable | str, params: np.ndarray, alpha: float,
                      flip: bool) -> tuple[DataNode, DataNode]:
    """Per sample, windows int32 (V, 4) and ROIs float32 (V, 4) (``views_windows``) for the V rows of ``params``."""
    # The pipeline holds the table's mapping itself: the caller closing its BoxTable must not unmap memory that
    # DALI's threads (still prefetching) read.
    mapping = resolve_table(table).mapping()
    quantiles = beta_quantiles(check_alpha(alpha))
    keep_alive(mapping)

    # Constants the compiled op holds: the table's address (its memory is read live) and size, the views' ranges.
    address, num_samples, mirror, views = mapping.address, mapping.num_samples, bool(flip), params.shape[0]

    def run(windows, rois, shape, index, in_table):
        views_windows(address, num_samples, index[0], shape[0], shape[1], params, quantiles, mirror, windows, rois)

    def setup(outs, ins):
        for out in range(2):
            for sample in range(len(outs[out])):
                outs[out][sample][0] = views
                outs[out][sample][1] = 4

    shapes = fn.cast(shapes, dtype=types.INT64)
    indices, in_table = checked_indices(indices, num_samples)
    windows, rois = numba_function(shapes, indices, in_table, run_fn=run, setup_fn=setup,
                                   out_types=[types.INT32, types.FLOAT], outs_ndim=[2, 2],
                                   in_types=[types.INT64, types.INT64, types.UINT8], ins_ndim=[1, 1, 2],
                                   device="cpu")
    return windows, rois


def contrastive_crop_windows(shapes: DataNode, indices: DataNode, table: BoxTable | str, *, num_views: int = 2,
                             scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                             alpha: float = 0.6) -> DataNode:
    """Per sample, int32 (num_views, 4) windows ``(top, left, crop_height, crop_width)`` in pixels.

    ``shapes``: the images' HWC shapes (e.g. ``fn.peek_image_shape(jpegs)``);
    ``indices``: the samples' global indices (integer, shape () or (1,)). Window v
    equals ``sample_crop(H, W, box, index=i, view=v, seed=table.seed,
    epoch=table.epoch)``; with ``table.use_boxes`` False it is RandomResizedCrop.
    """
    windows, _ = _windows_and_rois(shapes, indices, table, _single_group(num_views, scale, ratio), alpha, False)
    return windows


def contrastive_crop_group_windows(shapes: DataNode, indices: DataNode, table: BoxTable | str,
                                   groups: Sequence[ViewGroup], *, alpha: float = 0.6) -> DataNode:
    """Per sample, int32 (V, 4) windows ``(top, left, crop_height, crop_width)`` of all ``groups``' views in sampler
    view order (V = the groups' views): the windows ``contrastive_crop_groups`` crops. ``shapes``, ``indices``: as
    ``contrastive_crop_windows``."""
    windows, _ = _windows_and_rois(shapes, indices, table, group_params(groups), alpha, False)
    return windows


def check_device(device: str) -> str:
    """``"cpu"`` or ``"gpu"``, or ValueError."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    return device


def _check_device(device: str) -> str:
    check_device(device)
    if device == "gpu" and _current_pipeline().device_id is None:
        raise ValueError("device='gpu' needs a pipeline with a device_id (it was built with device_id=None)")
    return device


def resolve_decode(decode: str, device: str) -> str:
    """The decode mode ``decode`` stands for on ``device``: ``"auto"`` becomes ``AUTO_DECODE[device]``."""
    if decode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
    return AUTO_DECODE[device] if decode == "auto" else decode


RESIZES = ("auto", "ccrop", "dali")
# What resize="auto" means per device. CPU: "ccrop", the core's resampler (core.resample: antialiased triangle
# filter, fixed point, SIMD): union pairs 2.85-3.97x (median 2.98, 7 runs of benchmarks/dali_bench.py) faster than
# with DALI's CPU fn.resize, which was ~75% of a view's time. GPU: DALI's.
AUTO_RESIZE = {"cpu": "ccrop", "gpu": "dali"}


def resolve_resize(resize: str, device: str) -> str:
    """The resampler ``resize`` stands for on ``device``: ``"auto"`` becomes ``AUTO_RESIZE[device]``; ``"ccrop"``
    (the core's resampler) runs on the CPU only."""
    if resize not in RESIZES:
        raise ValueError(f"resize must be one of {RESIZES}, got {resize!r}")
    resize = AUTO_RESIZE[device] if resize == "auto" else resize
    if resize == "ccrop" and device != "cpu":
        raise ValueError("resize='ccrop' (the core's resampler) runs on the CPU; on the GPU use resize='dali'")
    return resize


# DALI's resize (resize="dali", and every GPU path): one setting for every backend, so the same pixels.
_DALI_RESIZE = dict(antialias=True, interp_type=types.INTERP_LINEAR, dtype=types.UINT8)
_MAX_OUTPUTS = 6  # numba_function's limit: more views take several resize ops over the same pixels


def _dali_resize_rois(images: DataNode, rois: DataNode, sizes: Sequence[tuple[int, int]]) -> list[DataNode]:
    """ROI v of ``rois`` (V, 4, CPU) resized out of ``images`` to ``sizes[v]`` by DALI, on the images' device."""
    return [fn.resize(images, roi_start=rois[v, 0:2], roi_end=rois[v, 2:4], roi_relative=False, size=list(size),
                      **_DALI_RESIZE) for v, size in enumerate(sizes)]


@numba.njit(cache=True, nogil=True)
def roi_window(roi):
    """``(top, left, height, width, mirror)`` of a float32 (4,) ROI ``(y_start, x_start, y_end, x_end)``: mirrored
    where ``x_start > x_end``."""
    y0, x0, y1, x1 = np.float64(roi[0]), np.float64(roi[1]), np.float64(roi[2]), np.float64(roi[3])
    return y0, min(x0, x1), y1 - y0, abs(x1 - x0), 1 if x0 > x1 else 0


@numba.njit(cache=True, nogil=True)
def rois_status(height, width, channels, rois, views):
    """``(view, reason)``: ``(0, 0)`` when the first ``views`` ROIs (float32 (V, 4)) are non-empty windows inside an
    image ``height`` x ``width`` x ``channels`` and it is RGB; reason 1: not 3 channels, 2: ROI v empty or outside,
    3: fewer than ``views`` ROIs."""
    if channels != 3:
        return 0, 1
    if rois.shape[0] < views:
        return rois.shape[0], 3
    for v in range(views):
        top, left, h, w, _ = roi_window(rois[v])
        if not (h > 0.0 and w > 0.0 and top >= 0.0 and left >= 0.0 and top + h <= height and left + w <= width):
            return v, 2
    return 0, 0


@numba.njit(nogil=True)  # not cached: it calls a ctypes function
def resize_rois(outs, image, rois, first):
    """Resize ROI ``first + k`` of ``rois`` (float32 (V, 4), pixels, mirrored where ``x_start > x_end``) out of
    ``image`` (uint8 (H, W, 3)) into ``outs[k]`` (uint8 (h, w, 3)) with the core's resampler. The call starts at
    the window's first row (its top then below one pixel), so a view's pixels do not depend on where the window
    lies: the same from a decoded region as from the whole image. One scratch per call, sized at run time for the
    largest window. The caller has checked the ROIs (``rois_status``): with them and that scratch the resampler
    cannot fail (it checks both itself and then writes nothing)."""
    height, width = image.shape[0], image.shape[1]
    size = np.int64(0)
    for k in range(len(outs)):
        _, _, h, w, _ = roi_window(rois[first + k])
        size = max(size, scratch_bytes_c(math.ceil(h), math.ceil(w), outs[k].shape[0], outs[k].shape[1]))
    scratch = np.empty(size, np.uint8)
    for k in range(len(outs)):
        top, left, h, w, mirror = roi_window(rois[first + k])
        row = math.floor(top)
        resize_crop_c(image.ctypes.data + row * width * 3, height - row, width, top - row, left, h, w, mirror,
                      outs[k].ctypes.data, outs[k].shape[0], outs[k].shape[1], scratch.ctypes.data, size)


def _resize_functions(first: int, shapes: np.ndarray):
    """The run and setup functions of a resize op writing views ``first`` to ``first + len(shapes) - 1`` (shapes
    int64 (n, 3)): run takes the n outputs, then the image, the ROIs and the gate."""
    outs = ", ".join(f"out{k}" for k in range(shapes.shape[0]))
    namespace = {"resize_rois": resize_rois}
    # numba_function calls run with exactly its outputs and inputs, and numba indexes a mixed tuple only statically
    exec(f"def run({outs}, image, rois, gate):\n    resize_rois(({outs},), image, rois, {first})", namespace)  # noqa: S102
    run = namespace["run"]

    def setup(outs, ins):
        for k in range(len(outs)):
            for sample in range(len(outs[k])):
                outs[k][sample][0], outs[k][sample][1], outs[k][sample][2] = shapes[k]

    return run, setup


def _ccrop_resize_rois(images: DataNode, rois: DataNode, sizes: Sequence[tuple[int, int]]) -> list[DataNode]:
    """ROI v of ``rois`` (V, 4, CPU) resized out of CPU ``images`` (uint8 HWC RGB) to ``sizes[v]`` by the core's
    resampler: uint8 HWC views, one ``numba_function`` op per (up to) 6 views, all reading the same pixels.

    A gate fails the batch first when an image is not RGB or an ROI is not a
    non-empty window inside its image (DALI's error quotes the line below:
    ``slice_anchor = {view x reason x 0}``, reasons as ``rois_status``).
    """
    views = len(sizes)

    def check(anchor, shape, rois):
        anchor[0], anchor[1] = rois_status(shape[0], shape[1], shape[2], rois, views)

    def check_setup(outs, ins):
        for sample in range(len(outs[0])):
            outs[0][sample][0] = 2

    anchor = numba_function(fn.cast(_image_shapes(images), dtype=types.INT64), rois, run_fn=check,
                            setup_fn=check_setup, out_types=[types.INT32], outs_ndim=[1],
                            in_types=[types.INT64, types.FLOAT], ins_ndim=[1, 2], device="cpu")
    good = fn.zeros(shape=[1, 1, 0], dtype=types.UINT8)  # anchor (0, 0) fits; a nonzero reason does not
    gate = fn.slice(good, anchor, [1, 1], axes=[0, 1], out_of_bounds_policy="error")  # image not RGB (reason 1), ROI outside it (2), too few ROIs (3)? slice_anchor = {view x reason x 0}
    out = []
    for first in range(0, views, _MAX_OUTPUTS):
        shapes = np.array([(h, w, 3) for h, w in sizes[first:first + _MAX_OUTPUTS]], dtype=np.int64)
        run, setup = _resize_functions(first, shapes)
        count = shapes.shape[0]
        resized = numba_function(images, rois, gate, run_fn=run, setup_fn=setup, out_types=[types.UINT8] * count,
                                 outs_ndim=[3] * count, in_types=[types.UINT8, types.FLOAT, types.UINT8],
                                 ins_ndim=[3, 2, 3], device="cpu")
        out += [resized] if count == 1 else list(resized)
    return [fn.reshape(view, layout="HWC") for view in out]


def _resize_rois(images: DataNode, rois: DataNode, sizes: Sequence[tuple[int, int]], resize: str) -> list[DataNode]:
    """ROI v of ``rois`` (V, 4, CPU) resized out of ``images`` to ``sizes[v]`` by ``resize`` (resolved)."""
    return (_ccrop_resize_rois if resize == "ccrop" else _dali_resize_rois)(images, rois, sizes)


def _union_and_local_rois(windows: DataNode, rois: DataNode, shapes: DataNode, sizes: Sequence[tuple[int, int]],
                          resize: str) -> tuple[DataNode, DataNode]:
    """Per sample, the region to decode, int32 (2, 2) ``((top, left), (height, width))``, and float32 (V, 4) the
    ROIs shifted by its origin (mirrored ROIs stay mirrored).

    The region is the union of the windows (V, 4), clamped to the image
    (``shapes``, HWC). The core's resampler (``resize="ccrop"``) reads only a
    window's own pixels; for DALI's (``"dali"``) each window is widened by the
    filter's reach (``ceil(crop / output) + 1`` pixels per axis: the antialiasing
    triangle's radius, one pixel when enlarging). Either resize then reads the
    same pixels as from the whole image.
    """
    out = np.array(sizes, dtype=np.int64)
    reach = resize == "dali"

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


def _decode_views(jpegs: DataNode, windows: DataNode, rois: DataNode, sizes: Sequence[tuple[int, int]], device: str,
                  decode: str, resize: str) -> list[DataNode]:
    """View v (uint8 HWC ``sizes[v]``) of encoded ``jpegs`` for window v / ROI v; ``decode``, ``resize`` resolved."""
    decoder_device = "cpu" if device == "cpu" else "mixed"
    if decode == "once":
        images = fn.decoders.image(jpegs, device=decoder_device, output_type=types.RGB)
        return _resize_rois(images, rois, sizes, resize)
    if decode == "union":
        union, local = _union_and_local_rois(windows, rois, fn.peek_image_shape(jpegs), sizes, resize)
        region = fn.decoders.image_slice(jpegs, union[0], union[1], axes=[0, 1], device=decoder_device,
                                         output_type=types.RGB)
        return _resize_rois(region, local, sizes, resize)
    views = []
    for v, size in enumerate(sizes):
        start = windows[v, 0:2]
        crop = fn.decoders.image_slice(jpegs, start, windows[v, 2:4], axes=[0, 1], device=decoder_device,
                                       output_type=types.RGB)
        offset = fn.cast(fn.stack(start[0], start[1], start[0], start[1]), dtype=types.FLOAT)
        views += _resize_rois(crop, fn.reshape(rois[v] - offset, shape=[1, 4]), [size], resize)
    return views


def _resolve(device: str, decode: str, resize: str) -> tuple[str, str, str]:
    device = _check_device(device)
    return device, resolve_decode(decode, device), resolve_resize(resize, device)


def crop_resize_views(jpegs: DataNode, windows: DataNode, rois: DataNode, *, num_views: int, size: Sequence[int],
                      device: str = "cpu", decode: str = "auto", resize: str = "auto") -> list[DataNode]:
    """``num_views`` views (uint8 HWC ``size``) of encoded images, from windows int32 (V, 4) ``(top, left,
    crop_height, crop_width)`` and ROIs float32 (V, 4) ``(y_start, x_start, y_end, x_end)`` (mirrored where
    ``x_start > x_end``), in pixels; V >= ``num_views``.

    ``decode="once"`` decodes each image whole (``mixed`` on the GPU) and resizes
    each ROI out of it; ``"slice"`` decodes only each window
    (``decoders.image_slice``); ``"union"`` decodes once only the union of the
    sample's windows (``decoders.image_slice``: libjpeg-turbo's crop decoding on the
    CPU, nvJPEG's ROI decoding on the GPU) and resizes each ROI, shifted by the
    region's origin, out of it. ``"auto"`` is ``AUTO_DECODE[device]``: ``"union"`` on
    the CPU (``python -m benchmarks.dali_bench``: pairs/s union / once median 1.07
    over 7 runs, slice / once 0.63-0.74), ``"once"`` on the GPU, where nothing has
    been measured yet.

    ``resize="ccrop"`` resizes on the CPU with the core's resampler
    (``core.resample.resize_crop``: antialiased triangle filter, fixed point, SIMD;
    a view is ``resize_crop`` of its window, mirrored where keyed), one
    ``numba_function`` op per image for up to 6 views; ``"dali"`` with DALI's
    ``fn.resize`` (antialiased linear), on the images' device. ``"auto"`` is
    ``AUTO_RESIZE[device]``: ``"ccrop"`` on the CPU, ``"dali"`` on the GPU. With
    ``"ccrop"``, ``"union"`` and ``"once"`` give the same pixels, bit for bit
    (the resampler reads only the window's pixels, which libjpeg-turbo's crop
    decoding gives exactly); with ``"dali"`` they agree up to one level of rounding.
    A batch whose ROI is not inside its image fails (``slice_anchor = {view x reason x 0}``).
    """
    out_h, out_w = check_size("size", size)
    device, decode, resize = _resolve(device, decode, resize)
    return _decode_views(jpegs, windows, rois, [(out_h, out_w)] * check_count("num_views", num_views), device,
                         decode, resize)


def contrastive_crop_views(jpegs: DataNode, indices: DataNode, table: BoxTable | str, *,
                           size: tuple[int, int] = (224, 224), num_views: int = 2,
                           scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                           alpha: float = 0.6, flip: bool = False, device: str = "cpu",
                           decode: str = "auto", resize: str = "auto") -> list[DataNode]:
    """``num_views`` ContrastiveCrop views (uint8 HWC, ``size``) of encoded images ``jpegs``.

    ``indices`` are the samples' global indices in ``table``. With ``flip`` each
    view is mirrored with probability 1/2, keyed like its crop (fused into the
    resize). ``device="gpu"`` decodes with ``mixed`` and resizes on the GPU; the
    windows are always computed on the CPU. ``decode``, ``resize``: see
    ``crop_resize_views``. The bytes pass ``checked_images`` first: a damaged file
    fails the batch with its global index (``slice_anchor``) before a decoder sees it.
    """
    jpegs = checked_images(jpegs, indices)
    windows, rois = _windows_and_rois(fn.peek_image_shape(jpegs), indices, table,
                                      _single_group(num_views, scale, ratio), alpha, flip)
    return crop_resize_views(jpegs, windows, rois, num_views=num_views, size=size, device=device, decode=decode,
                             resize=resize)


def _split_groups(views: list[DataNode], groups: Sequence[ViewGroup]) -> list[list[DataNode]]:
    return [views[first:first + group.num_views] for first, group in zip(first_views(groups), groups)]


def contrastive_crop_groups(jpegs: DataNode, indices: DataNode, table: BoxTable | str, groups: Sequence[ViewGroup],
                            *, alpha: float = 0.6, flip: bool = False, device: str = "cpu",
                            decode: str = "auto", resize: str = "auto") -> list[list[DataNode]]:
    """Multi-crop: per ``ViewGroup`` g, a list of ``groups[g].num_views`` views (uint8 HWC ``groups[g].size``) of
    encoded images ``jpegs``, all from one decode per image.

    View j of group g is the sampler's view ``first_views(groups)[g] + j``: its
    window equals ``sample_crop(H, W, box, index=i, view=first_views(groups)[g] + j,
    scale=group.scale, ratio=group.ratio, alpha=alpha, seed=table.seed,
    epoch=table.epoch)``, with the box (0, 0, 1, 1) and alpha 1 (RandomResizedCrop)
    for a group with ``use_boxes=False`` or while ``table.use_boxes`` is False.
    ``decode``: ``"union"`` decodes the union of all groups' windows once,
    ``"once"`` the whole image, ``"slice"`` each window (see ``crop_resize_views``).
    ``indices``, ``flip``, ``device``, ``resize``, the damaged-file check: as ``contrastive_crop_views``.
    """
    params = group_params(groups)
    device, decode, resize = _resolve(device, decode, resize)
    jpegs = checked_images(jpegs, indices)
    windows, rois = _windows_and_rois(fn.peek_image_shape(jpegs), indices, table, params, alpha, flip)
    views = _decode_views(jpegs, windows, rois, [g.size for g in groups for _ in range(g.num_views)], device, decode,
                          resize)
    return _split_groups(views, groups)


def _image_shapes(images: DataNode) -> DataNode:
    """The HWC shapes of ``images`` as CPU data, also for GPU images (read from their metadata, no copy)."""
    if hasattr(images, "shape") and callable(images.shape):
        return images.shape(device="cpu")  # DALI >= 1.44
    return fn.shapes(images, device="cpu")


def _check_images(images: DataNode) -> DataNode:
    if not isinstance(images, DataNode):
        raise TypeError(f"images must be a DALI DataNode (decoded HWC images), got {type(images).__name__}")
    return images


def contrastive_crop_decoded(images: DataNode, indices: DataNode, table: BoxTable | str, *,
                             size: tuple[int, int] = (224, 224), num_views: int = 2,
                             scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                             alpha: float = 0.6, flip: bool = False, resize: str = "auto") -> list[DataNode]:
    """``num_views`` ContrastiveCrop views (uint8 HWC, ``size``) of already decoded images.

    For pipelines that decode first (solo-learn, DALI's examples): ``images`` are
    HWC uint8 RGB images on the CPU or the GPU (``fn.decoders.image(..., device="mixed")``);
    ``indices`` their global indices in ``table`` (e.g. the file reader's label
    channel). The windows are those of every other backend for the same (seed,
    epoch, index, view), computed on the CPU from the images' shapes; each view is
    resized on the images' device, by ``resize`` as in ``crop_resize_views``
    (``"auto"``: the core's resampler for CPU images, DALI's for GPU images): on the
    CPU the pixels of ``decode="once"``. ``flip`` mirrors each view with
    probability 1/2, keyed like its crop. An index outside the table fails the
    batch, and with the core's resampler so does an image that is not 3-channel.
    The images are not checked for damage: call ``checked_images`` on the encoded bytes before your decoder.
    """
    images = _check_images(images)
    out_h, out_w = check_size("size", size)
    params = _single_group(num_views, scale, ratio)
    resize = resolve_resize(resize, images.device)
    _, rois = _windows_and_rois(_image_shapes(images), indices, table, params, alpha, flip)
    return _resize_rois(images, rois, [(out_h, out_w)] * params.shape[0], resize)


def contrastive_crop_groups_decoded(images: DataNode, indices: DataNode, table: BoxTable | str,
                                    groups: Sequence[ViewGroup], *, alpha: float = 0.6, flip: bool = False,
                                    resize: str = "auto") -> list[list[DataNode]]:
    """``contrastive_crop_groups`` for already decoded images (CPU or GPU, HWC uint8 RGB), as
    ``contrastive_crop_decoded``: per group a list of views, the same windows, and on the CPU the same pixels as
    ``contrastive_crop_groups(decode="once")``."""
    images = _check_images(images)
    params = group_params(groups)
    resize = resolve_resize(resize, images.device)
    _, rois = _windows_and_rois(_image_shapes(images), indices, table, params, alpha, flip)
    sizes = [g.size for g in groups for _ in range(g.num_views)]
    return _split_groups(_resize_rois(images, rois, sizes, resize), groups)
