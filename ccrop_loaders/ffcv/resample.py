"""Antialiased crop-resize (triangle filter, as Pillow's BILINEAR), with a fused mirror.

Two passes that both run along contiguous rows, so the compiler vectorizes
them: a vertical pass over the window's rows, stored transposed (one row per
source column), then a "vertical" pass over that transpose, which is the
horizontal resample, written out transposed back. Taps and weights are computed
per call for the window's size (a few KB); the large scratch is the caller's.
Images are uint8 HWC with 3 channels.
"""
from __future__ import annotations

import math

import numba
import numpy as np


def scratch_size(max_width: int, out_height: int) -> int:
    """float32 elements of scratch that ``resize_crop`` needs for windows up to ``max_width`` pixels wide."""
    cols = int(max_width) + 1
    return cols * 3 * int(out_height) + 3 * max(cols, int(out_height))


@numba.njit(cache=True, nogil=True)
def filter_taps(start, extent, out_size):
    """Triangle-filter taps of ``out_size`` outputs over the input span ``[start, start + extent)``.

    ``start`` and ``extent`` are in input pixels and may be fractional; taps stay
    within the pixels the span touches, ``[floor(start), ceil(start + extent))``.
    Returns ``first`` int64 (out_size,) absolute input indices, ``count`` int64
    (out_size,) and ``weights`` float32 (out_size, max_taps), each row summing to
    1. The support widens with the downscale factor (antialiasing); upscaling is
    plain bilinear.
    """
    scale = extent / out_size
    filter_scale = max(scale, 1.0)
    max_taps = int(math.ceil(filter_scale)) * 2 + 2
    lo_limit = int(math.floor(start))
    hi_limit = max(int(math.ceil(start + extent)), lo_limit + 1)
    first = np.empty(out_size, dtype=np.int64)
    count = np.empty(out_size, dtype=np.int64)
    weights = np.zeros((out_size, max_taps), dtype=np.float32)
    inv = 1.0 / filter_scale
    for o in range(out_size):
        center = start + (o + 0.5) * scale
        lo = max(int(math.floor(center - filter_scale + 0.5)), lo_limit)
        hi = min(int(math.floor(center + filter_scale + 0.5)), hi_limit)
        hi = max(hi, lo + 1)
        total = 0.0
        for k in range(hi - lo):
            wgt = max(1.0 - abs((lo + k - center + 0.5) * inv), 0.0)
            weights[o, k] = wgt
            total += wgt
        if total == 0.0:  # a span narrower than a pixel: take the pixel under the centre
            weights[o, 0] = 1.0
            total = 1.0
        for k in range(hi - lo):
            weights[o, k] /= total
        first[o] = lo
        count[o] = hi - lo
    return first, count, weights


@numba.njit(inline="always")
def _to_u8(v):
    i = np.int32(v + np.float32(0.5))
    return np.uint8(min(max(i, 0), 255))


@numba.njit(cache=True, nogil=True, fastmath=True)
def resize_crop(image, top, left, height, width, mirror, out, scratch):
    """Resize window ``(top, left, height, width)`` of ``image`` (uint8 (H, W, 3)) into ``out`` (uint8 (h, w, 3)).

    The window is in pixels and may be fractional (e.g. mapped onto a
    DCT-downscaled decode); it must lie inside the image. ``mirror`` flips the
    result left-right at no cost. ``scratch``: float32 with at least
    ``scratch_size(ceil(width) + 1, out.shape[0])`` elements.
    """
    out_h, out_w = out.shape[0], out.shape[1]
    col_first, col_count, col_weights = filter_taps(left, width, out_w)
    c0 = int(math.floor(left))
    cols = max(int(math.ceil(left + width)), c0 + 1) - c0
    span = cols * 3
    col_span = out_h * 3
    columns = scratch[: cols * col_span].reshape(cols, col_span)
    acc = scratch[cols * col_span: cols * col_span + span]
    flat = image.reshape(image.shape[0], image.shape[1] * 3)
    first, count, weights = filter_taps(top, height, out_h)
    for y in range(out_h):
        acc[:] = 0.0
        for k in range(count[y]):
            wgt = weights[y, k]
            src = flat[first[y] + k, c0 * 3: c0 * 3 + span]
            for j in range(span):
                acc[j] += wgt * src[j]
        for x in range(cols):
            columns[x, 3 * y] = acc[3 * x]
            columns[x, 3 * y + 1] = acc[3 * x + 1]
            columns[x, 3 * y + 2] = acc[3 * x + 2]
    line = scratch[cols * col_span: cols * col_span + col_span]
    for x in range(out_w):
        line[:] = 0.0
        for k in range(col_count[x]):
            wgt = col_weights[x, k]
            src = columns[col_first[x] - c0 + k]
            for j in range(col_span):
                line[j] += wgt * src[j]
        xo = out_w - 1 - x if mirror else x
        for y in range(out_h):
            out[y, xo, 0] = _to_u8(line[3 * y])
            out[y, xo, 1] = _to_u8(line[3 * y + 1])
            out[y, xo, 2] = _to_u8(line[3 * y + 2])
