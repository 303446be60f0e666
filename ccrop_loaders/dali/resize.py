"""Resizing the views' ROIs out of decoded images inside a DALI graph: the core's resampler on the CPU, or DALI's.

``resize="ccrop"`` is the core's resampler (``core.resample``, the one FFCV's
decoders use): one ``numba_function`` op writes every view of a sample into one
uint8 buffer, whatever the number of views, reading scratch memory that DALI
allocated for it (a failed allocation fails the batch; nothing inside the op
allocates). A gate first fails the batch when an image is not RGB or an ROI is
not a non-empty window inside it. ``"dali"`` is DALI's ``fn.resize``
(antialiased linear) on the images' device. ``"auto"`` is ``AUTO_RESIZE[device]``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np
from nvidia.dali import fn, types
from nvidia.dali.data_node import DataNode
from nvidia.dali.plugin.numba.fn.experimental import numba_function

from ..core.resample import resize_crop_c, scratch_bytes_c
from .gates import GATE_VIEWS, fail_batch_unless

RESIZES = ("auto", "ccrop", "dali")
AUTO_RESIZE = {"cpu": "ccrop", "gpu": "dali"}  # the core's resampler where it runs; the benchmark docs give figures
# DALI's resize (resize="dali", and every GPU path): one setting for every backend, so the same pixels.
_DALI_RESIZE = dict(antialias=True, interp_type=types.INTERP_LINEAR, dtype=types.UINT8)


def resolve_resize(resize: str, device: str) -> str:
    """The resampler ``resize`` stands for on ``device``: ``"auto"`` becomes ``AUTO_RESIZE[device]``; ``"ccrop"``
    (the core's resampler) runs on the CPU only."""
    if resize not in RESIZES:
        raise ValueError(f"resize must be one of {RESIZES}, got {resize!r}")
    resize = AUTO_RESIZE[device] if resize == "auto" else resize
    if resize == "ccrop" and device != "cpu":
        raise ValueError("resize='ccrop' (the core's resampler) runs on the CPU; on the GPU use resize='dali'")
    return resize


def image_shapes(images: DataNode) -> DataNode:
    """The HWC shapes of ``images`` as CPU data, also for GPU images (read from their metadata, no copy)."""
    if hasattr(images, "shape") and callable(images.shape):
        return images.shape(device="cpu")  # DALI >= 1.44
    return fn.shapes(images, device="cpu")


@numba.njit(cache=True, nogil=True)
def roi_window(roi):
    """``(top, left, height, width, mirror)`` of a float32 (4,) ROI ``(y_start, x_start, y_end, x_end)``: mirrored
    where ``x_start > x_end``."""
    y0, x0, y1, x1 = np.float64(roi[0]), np.float64(roi[1]), np.float64(roi[2]), np.float64(roi[3])
    return y0, min(x0, x1), y1 - y0, abs(x1 - x0), 1 if x0 > x1 else 0


@numba.njit(cache=True, nogil=True)
def rois_status(height, width, channels, rois, views):
    """``(view, reason)``: ``(0, 0)`` when the first ``views`` ROIs (float32 (V, 4)) are non-empty windows inside an
    image ``height`` x ``width`` x ``channels`` and it is RGB; else a reason of ``gates.VIEW_REASONS``."""
    if channels != 3:
        return 0, 1
    if rois.shape[0] < views:
        return rois.shape[0], 3
    for v in range(views):
        top, left, h, w, _ = roi_window(rois[v])
        if not (h > 0.0 and w > 0.0 and top >= 0.0 and left >= 0.0 and top + h <= height and left + w <= width):
            return v, 2
    return 0, 0


# Inlined into the op's run, as every helper typed on uint8 arrays: FFCV 1.0.2's Loader changes the interned uint8
# array types' hash, which breaks a dispatcher compiled for them before (core.encoded says more).
@numba.njit(inline="always", nogil=True)
def resize_rois(out, image, rois, layout, scratch):
    """Resize ROI v of ``rois`` (float32 (V, 4), pixels) out of ``image`` (uint8 (H, W, 3)) into ``out`` (uint8,
    the sample's buffer) at ``layout[v]`` = (rows, columns, byte offset), with the core's resampler.

    Each call starts at the window's first row (its top then below one pixel),
    so a view's pixels do not depend on where the window lies: the same from a
    decoded region as from the whole image. The gate has checked the ROIs and
    ``scratch`` holds ``scratch_bytes_c`` for the whole image: the resampler
    cannot fail (it checks both itself and then writes nothing).
    """
    for v in range(layout.shape[0]):
        resize_roi(image, rois[v], out.ctypes.data + layout[v, 2], layout[v, 0], layout[v, 1], scratch)


@numba.njit(inline="always", nogil=True)
def resize_roi(image, roi, address, rows, cols, scratch):
    """Resize ``roi`` out of ``image`` into the uint8 (rows, cols, 3) view at ``address`` (``resize_rois``)."""
    height, width = image.shape[0], image.shape[1]
    top, left, h, w, mirror = roi_window(roi)
    row = math.floor(top)
    resize_crop_c(image.ctypes.data + row * width * 3, height - row, width, top - row, left, h, w, mirror,
                  address, rows, cols, scratch.ctypes.data, scratch.size)


@numba.njit(inline="always", nogil=True)
def resize_into(outs, image, rois, scratch):
    """``resize_rois`` into one output array per view: ``outs`` a tuple of uint8 (h, w, 3) arrays."""
    for v in range(len(outs)):
        resize_roi(image, rois[v], outs[v].ctypes.data, outs[v].shape[0], outs[v].shape[1], scratch)


# numba_function calls run with exactly its outputs then its inputs: one signature per view count up to its limit
def _run_1(o0, image, rois, gate, scratch): resize_into((o0,), image, rois, scratch)  # noqa: E704
def _run_2(o0, o1, image, rois, gate, scratch): resize_into((o0, o1), image, rois, scratch)  # noqa: E704
def _run_3(o0, o1, o2, image, rois, gate, scratch): resize_into((o0, o1, o2), image, rois, scratch)  # noqa: E704
def _run_4(o0, o1, o2, o3, image, rois, gate, scratch): resize_into((o0, o1, o2, o3), image, rois, scratch)  # noqa: E704,E501
def _run_5(o0, o1, o2, o3, o4, image, rois, gate, scratch): resize_into((o0, o1, o2, o3, o4), image, rois, scratch)  # noqa: E704,E501
def _run_6(o0, o1, o2, o3, o4, o5, image, rois, gate, scratch): resize_into((o0, o1, o2, o3, o4, o5), image, rois, scratch)  # noqa: E704,E501


_RUNS = (None, _run_1, _run_2, _run_3, _run_4, _run_5, _run_6)


def _ccrop_resize_rois(images: DataNode, rois: DataNode, sizes: Sequence[tuple[int, int]]) -> list[DataNode]:
    """ROI v of ``rois`` (V, 4, CPU) resized out of CPU ``images`` (uint8 HWC RGB) to ``sizes[v]`` by the core's
    resampler: uint8 HWC views, from one gate op and one resize op whatever the number of views (up to 6 views
    its outputs are the views; beyond, one buffer that subscripts split, a copy of the views' bytes)."""
    layout = np.array([(h, w, 0) for h, w in sizes], dtype=np.int64)
    layout[1:, 2] = np.cumsum(layout[:-1, 0] * layout[:-1, 1] * 3)
    total = int(layout[-1, 2] + layout[-1, 0] * layout[-1, 1] * 3)
    views = len(sizes)

    def check(anchor, scratch, image, rois):
        anchor[0], anchor[1] = rois_status(image.shape[0], image.shape[1], image.shape[2], rois, views)

    def check_setup(outs, ins):
        for sample in range(len(outs[0])):
            outs[0][sample][0] = 2
            height, width = ins[0][sample][0], ins[0][sample][1]
            need = 0
            for v in range(layout.shape[0]):
                need = max(need, scratch_bytes_c(height, width, layout[v, 0], layout[v, 1]))
            outs[1][sample][0] = need

    anchor, scratch = numba_function(images, rois, run_fn=check, setup_fn=check_setup,
                                     out_types=[types.INT32, types.UINT8], outs_ndim=[1, 1],
                                     in_types=[types.UINT8, types.FLOAT], ins_ndim=[3, 2], device="cpu")
    gate = fail_batch_unless(anchor, GATE_VIEWS)

    inputs = dict(in_types=[types.UINT8, types.FLOAT, types.UINT8, types.UINT8], ins_ndim=[3, 2, 1, 1],
                  device="cpu")
    if views < len(_RUNS):  # one output per view: no copy after the resize
        def setup(outs, ins):
            for v in range(len(outs)):
                for sample in range(len(outs[v])):
                    outs[v][sample][0], outs[v][sample][1], outs[v][sample][2] = layout[v, 0], layout[v, 1], 3

        out = numba_function(images, rois, gate, scratch, run_fn=_RUNS[views], setup_fn=setup,
                             out_types=[types.UINT8] * views, outs_ndim=[3] * views, **inputs)
        return [fn.reshape(view, layout="HWC") for view in ([out] if views == 1 else out)]

    def run(out, image, rois, gate, scratch):  # beyond numba_function's outputs: one buffer, split after
        resize_rois(out, image, rois, layout, scratch)

    def flat_setup(outs, ins):
        for sample in range(len(outs[0])):
            outs[0][sample][0] = total

    flat = numba_function(images, rois, gate, scratch, run_fn=run, setup_fn=flat_setup, out_types=[types.UINT8],
                          outs_ndim=[1], **inputs)
    return [fn.reshape(flat[int(at):int(at + h * w * 3)], shape=[int(h), int(w), 3], layout="HWC")
            for h, w, at in layout]


def _dali_resize_rois(images: DataNode, rois: DataNode, sizes: Sequence[tuple[int, int]]) -> list[DataNode]:
    """ROI v of ``rois`` (V, 4, CPU) resized out of ``images`` to ``sizes[v]`` by DALI, on the images' device."""
    return [fn.resize(images, roi_start=rois[v, 0:2], roi_end=rois[v, 2:4], roi_relative=False, size=list(size),
                      **_DALI_RESIZE) for v, size in enumerate(sizes)]


def resize_rois_to(images: DataNode, rois: DataNode, sizes: Sequence[tuple[int, int]], resize: str) -> list[DataNode]:
    """ROI v of ``rois`` (V, 4, CPU) resized out of ``images`` to ``sizes[v]`` by ``resize`` (resolved)."""
    return (_ccrop_resize_rois if resize == "ccrop" else _dali_resize_rois)(images, rois, sizes)
