"""DALI graph pieces: ContrastiveCrop windows read from the live ``BoxTable`` inside the graph, and the views.

Call these inside a ``@pipeline_def`` function. The windows op is a ``numba_function``
(CPU) that calls the core's ``table_crop_window``, the function FFCV and
``sample_crop`` use, so all three agree for the same (seed, epoch, index, view).
The compiled op reads the table's memory and controls at run time: writes and
``use_boxes``/``epoch`` changes reach batches not yet prefetched, without rebuilding.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numba
from nvidia.dali import fn, types
from nvidia.dali.data_node import DataNode
from nvidia.dali.pipeline import Pipeline
from nvidia.dali.plugin.numba.fn.experimental import numba_function

from ..core import BoxTable, beta_quantiles, table_crop_window, table_flip
from ..core.encoded import encoded_image_status
from ..core.sampler import check_alpha, check_count, check_range, check_size

DEVICES = ("cpu", "gpu")
DECODE_MODES = ("auto", "once", "slice")


@numba.njit(cache=True, nogil=True)
def view_windows(address, num_samples, index, height, width, scale_lo, scale_hi, log_ratio_lo, log_ratio_hi,
                 quantiles, flip, windows, rois):
    """Fill ``windows`` int32 (V, 4) ``(top, left, crop_height, crop_width)`` and ``rois`` float32 (V, 4)
    ``(y_start, x_start, y_end, x_end)`` in pixels for sample ``index`` of an image ``height`` x ``width``.

    A mirrored view (``flip`` and the keyed coin) has ``x_start > x_end``: DALI's
    resize flips such a ROI. An index outside the table reads no memory and gets
    the whole image (in a pipeline, ``checked_indices`` has failed the batch already).
    """
    if index < 0 or index >= num_samples:
        for v in range(windows.shape[0]):
            windows[v, 0], windows[v, 1], windows[v, 2], windows[v, 3] = 0, 0, height, width
            rois[v, 0], rois[v, 1], rois[v, 2], rois[v, 3] = 0.0, 0.0, height, width
        return
    for v in range(windows.shape[0]):
        top, left, h, w = table_crop_window(address, num_samples, index, v, height, width,
                                            scale_lo, scale_hi, log_ratio_lo, log_ratio_hi, quantiles)
        windows[v, 0], windows[v, 1], windows[v, 2], windows[v, 3] = top, left, h, w
        rois[v, 0], rois[v, 2] = top, top + h
        if flip and table_flip(address, num_samples, index, v):
            rois[v, 1], rois[v, 3] = left + w, left
        else:
            rois[v, 1], rois[v, 3] = left, left + w


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

    Each sample's bytes are checked in compiled code (``core.encoded.encoded_image_status``: format, JPEG segments
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
        reason, _, _ = encoded_image_status(data)
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


def _windows_and_rois(shapes: DataNode, indices: DataNode, table: BoxTable | str, num_views: int,
                      scale: Sequence[float], ratio: Sequence[float], alpha: float, flip: bool):
    # The pipeline holds the table's mapping itself: the caller closing its BoxTable must not unmap memory that
    # DALI's threads (still prefetching) read.
    mapping = resolve_table(table).mapping()
    views = check_count("num_views", num_views)
    scale_lo, scale_hi = check_range("scale", scale)
    ratio_lo, ratio_hi = check_range("ratio", ratio)
    quantiles = beta_quantiles(check_alpha(alpha))
    keep_alive(mapping)

    # Constants the compiled op holds: the table's address (its memory is read live) and size.
    address, num_samples = mapping.address, mapping.num_samples
    log_lo, log_hi, mirror = math.log(ratio_lo), math.log(ratio_hi), bool(flip)

    def run(windows, rois, shape, index, in_table):
        view_windows(address, num_samples, index[0], shape[0], shape[1], scale_lo, scale_hi, log_lo, log_hi,
                     quantiles, mirror, windows, rois)

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
    windows, _ = _windows_and_rois(shapes, indices, table, num_views, scale, ratio, alpha, False)
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


# One resize for every backend that crops decoded images (decode="once", contrastive_crop_decoded): same pixels.
_RESIZE = dict(antialias=True, interp_type=types.INTERP_LINEAR, dtype=types.UINT8)


def _resize_rois(images: DataNode, rois: DataNode, num_views: int, size: tuple[int, int]) -> list[DataNode]:
    """Each ROI v of ``rois`` (V, 4, CPU) resized out of ``images`` to ``size``, on the images' device."""
    return [fn.resize(images, roi_start=rois[v, 0:2], roi_end=rois[v, 2:4], roi_relative=False, size=list(size),
                      **_RESIZE) for v in range(num_views)]


def crop_resize_views(jpegs: DataNode, windows: DataNode, rois: DataNode, *, num_views: int, size: Sequence[int],
                      device: str = "cpu", decode: str = "auto") -> list[DataNode]:
    """``num_views`` views (uint8 HWC ``size``) of encoded images, from windows and (possibly mirrored) ROIs (V, 4).

    ``decode="once"`` decodes each image whole (``mixed`` on the GPU) and resizes
    each ROI out of it; ``"slice"`` decodes only each window
    (``decoders.image_slice``); ``"auto"`` is what measured faster on the device
    (benchmarks/dali_bench.py): ``"once"`` on both.
    """
    out_h, out_w = check_size("size", size)
    device = _check_device(device)
    if decode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
    decoder_device = "cpu" if device == "cpu" else "mixed"
    resize = _RESIZE | dict(size=[out_h, out_w])
    if decode in ("auto", "once"):
        images = fn.decoders.image(jpegs, device=decoder_device, output_type=types.RGB)
        return _resize_rois(images, rois, num_views, (out_h, out_w))
    views = []
    for v in range(num_views):
        start = windows[v, 0:2]
        crop = fn.decoders.image_slice(jpegs, start, windows[v, 2:4], axes=[0, 1], device=decoder_device,
                                       output_type=types.RGB)
        offset = fn.cast(fn.stack(start[0], start[1], start[0], start[1]), dtype=types.FLOAT)
        local = rois[v] - offset
        views.append(fn.resize(crop, roi_start=local[0:2], roi_end=local[2:4], roi_relative=False, **resize))
    return views


def contrastive_crop_views(jpegs: DataNode, indices: DataNode, table: BoxTable | str, *,
                           size: tuple[int, int] = (224, 224), num_views: int = 2,
                           scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                           alpha: float = 0.6, flip: bool = False, device: str = "cpu",
                           decode: str = "auto") -> list[DataNode]:
    """``num_views`` ContrastiveCrop views (uint8 HWC, ``size``) of encoded images ``jpegs``.

    ``indices`` are the samples' global indices in ``table``. With ``flip`` each
    view is mirrored with probability 1/2, keyed like its crop (fused into the
    resize). ``device="gpu"`` decodes with ``mixed`` and resizes on the GPU; the
    windows are always computed on the CPU. The bytes pass ``checked_images`` first: a damaged file fails the
    batch with its global index (``slice_anchor``) before a decoder sees it.
    """
    jpegs = checked_images(jpegs, indices)
    windows, rois = _windows_and_rois(fn.peek_image_shape(jpegs), indices, table, num_views, scale, ratio, alpha,
                                      flip)
    return crop_resize_views(jpegs, windows, rois, num_views=num_views, size=size, device=device, decode=decode)


def _image_shapes(images: DataNode) -> DataNode:
    """The HWC shapes of ``images`` as CPU data, also for GPU images (read from their metadata, no copy)."""
    if hasattr(images, "shape") and callable(images.shape):
        return images.shape(device="cpu")  # DALI >= 1.44
    return fn.shapes(images, device="cpu")


def contrastive_crop_decoded(images: DataNode, indices: DataNode, table: BoxTable | str, *,
                             size: tuple[int, int] = (224, 224), num_views: int = 2,
                             scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                             alpha: float = 0.6, flip: bool = False) -> list[DataNode]:
    """``num_views`` ContrastiveCrop views (uint8 HWC, ``size``) of already decoded images.

    For pipelines that decode first (solo-learn, DALI's examples): ``images`` are
    HWC uint8 images on the CPU or the GPU (``fn.decoders.image(..., device="mixed")``);
    ``indices`` their global indices in ``table`` (e.g. the file reader's label
    channel). The windows are those of every other backend for the same (seed,
    epoch, index, view), computed on the CPU from the images' shapes; each view is
    resized on the images' device with the ROI settings of ``crop_resize_views``'s
    ``decode="once"`` (on the CPU the same pixels). ``flip`` mirrors each view with
    probability 1/2, keyed like its crop. An index outside the table fails the batch.
    The images are not checked for damage: call ``checked_images`` on the encoded bytes before your decoder.
    """
    if not isinstance(images, DataNode):
        raise TypeError(f"images must be a DALI DataNode (decoded HWC images), got {type(images).__name__}")
    out_h, out_w = check_size("size", size)
    _, rois = _windows_and_rois(_image_shapes(images), indices, table, num_views, scale, ratio, alpha, flip)
    return _resize_rois(images, rois, num_views, (out_h, out_w))
