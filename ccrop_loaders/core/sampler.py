"""ContrastiveCrop window sampling (one implementation, numba-compiled).

Coordinates: images are ``height x width`` pixels; a box is normalized
``(y0, x0, y1, x1)`` in [0, 1]; a window is ``(top, left, crop_height,
crop_width)`` in integer pixels and always lies inside the image.

``crop_window`` is the compiled kernel that every backend calls (from Python or
from numba code); ``sample_crop`` and ``sample_crops`` are the checked Python
entry points built on it.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numba
import numpy as np

from .checks import check_alpha, check_boxes, check_int, check_int_array, check_range
from .random import STREAM_POSITION, STREAM_TRY, flip_draw, random_bits, stream_key, uniform

FULL_BOX = (0.0, 0.0, 1.0, 1.0)
SIMCCROP_BOX = (0.25, 0.25, 0.75, 0.75)
MAX_TRIES = 10
QUANTILE_BITS = 13
QUANTILE_KNOTS = 1 << QUANTILE_BITS  # 8192 cells, 8193 knots
_CELL_SHIFT = np.uint32(32 - QUANTILE_BITS)
_CELL_MASK = np.uint32((1 << (32 - QUANTILE_BITS)) - 1)
_CELL_SCALE = 1.0 / (1 << (32 - QUANTILE_BITS))
UNIFORM_QUANTILES = np.arange(QUANTILE_KNOTS + 1, dtype=np.float64) / QUANTILE_KNOTS  # Beta(1, 1)
UNIFORM_QUANTILES.setflags(write=False)


def beta_quantiles(alpha: float) -> np.ndarray:
    """Quantiles of Beta(alpha, alpha) at ``u = i / 8192``: float64 (8193,), read-only.

    Drawing ``Q(U)``, ``Q`` linearly interpolated between these exact knots, is
    an inverse-CDF Beta sampler whose CDF error is below 1/8192 (1.2e-4): 32
    random bits per draw, no rejection loop. ``alpha == 1`` gives the identity
    (``Q(U) = U`` exactly). ``alpha`` must lie in ``ALPHA_RANGE`` (``check_alpha``).
    """
    return _beta_quantiles(check_alpha(alpha))  # cached by the checked float: True is never taken for 1.0


@lru_cache(maxsize=64)
def _beta_quantiles(alpha: float) -> np.ndarray:
    if alpha == 1.0:
        return UNIFORM_QUANTILES
    from scipy.special import betaincinv

    q = betaincinv(alpha, alpha, UNIFORM_QUANTILES)
    if not np.isfinite(q).all():  # outside the range probed for ALPHA_RANGE: another scipy may differ
        raise ValueError(f"alpha = {alpha!r}: scipy.special.betaincinv gave non-finite Beta quantiles")
    half = QUANTILE_KNOTS // 2
    q[: half + 1] = np.maximum.accumulate(np.clip(q[: half + 1], 0.0, 0.5))
    q[half + 1 :] = 1.0 - q[:half][::-1]  # Beta(a, a) is symmetric about 1/2
    q[0], q[half], q[-1] = 0.0, 0.5, 1.0
    q.setflags(write=False)
    return q


@numba.njit(inline="always", cache=True)
def _quantile(quantiles, bits32):
    """``Q(U)`` for ``U = bits32 / 2**32``: the top bits pick the cell, the rest interpolate in it."""
    cell = bits32 >> _CELL_SHIFT
    frac = np.float64(bits32 & _CELL_MASK) * _CELL_SCALE
    return quantiles[cell] + frac * (quantiles[cell + 1] - quantiles[cell])


@numba.njit(inline="always", cache=True)
def _clamp(v, lo, hi):
    return min(max(v, lo), hi)


@numba.njit(inline="always", cache=True)
def size_try(area, scale_lo, scale_hi, log_ratio_lo, log_ratio_hi, key, t):
    """RandomResizedCrop's size draw number ``t``: ``(crop_height, crop_width)``, not yet checked to fit."""
    target = area * (scale_lo + (scale_hi - scale_lo) * uniform(key, STREAM_TRY, 2 * t))
    aspect = math.exp(log_ratio_lo + (log_ratio_hi - log_ratio_lo) * uniform(key, STREAM_TRY, 2 * t + 1))
    return int(np.rint(math.sqrt(target / aspect))), int(np.rint(math.sqrt(target * aspect)))


@numba.njit(cache=True, nogil=True)
def crop_window(height, width, y0, x0, y1, x1, scale_lo, scale_hi, log_ratio_lo, log_ratio_hi, quantiles, key):
    """ContrastiveCrop window ``(top, left, crop_height, crop_width)`` for one view.

    ``quantiles`` is ``beta_quantiles(alpha)`` (8193 knots); ``key`` is ``stream_key(seed,
    epoch, index, view)``. Exactly DESIGN.md: up to 10 RandomResizedCrop size
    tries, the top-left range clamped to the image, Beta positions inside it,
    torchvision's central fallback.
    """
    area = np.float64(height) * np.float64(width)
    for t in range(MAX_TRIES):
        h, w = size_try(area, scale_lo, scale_hi, log_ratio_lo, log_ratio_hi, key, t)
        if 0 < w <= width and 0 < h <= height:
            ch0 = _clamp(int(height * y0) - h // 2, 0, height - h)
            ch1 = _clamp(int(height * y1) - h // 2, 0, height - h)
            cw0 = _clamp(int(width * x0) - w // 2, 0, width - w)
            cw1 = _clamp(int(width * x1) - w // 2, 0, width - w)
            bits = random_bits(key, STREAM_POSITION, 0)  # 32 bits for each Beta draw
            top = ch0 + int((ch1 - ch0) * _quantile(quantiles, np.uint32(bits >> np.uint64(32))))
            left = cw0 + int((cw1 - cw0) * _quantile(quantiles, np.uint32(bits & np.uint64(0xFFFFFFFF))))
            return top, left, h, w
    # torchvision's central fallback: the largest centred crop inside the ratio range.
    in_ratio = width / height
    ratio_lo = math.exp(log_ratio_lo)
    ratio_hi = math.exp(log_ratio_hi)
    if in_ratio < ratio_lo:
        w = width
        h = _clamp(int(np.rint(w / ratio_lo)), 1, height)
    elif in_ratio > ratio_hi:
        h = height
        w = _clamp(int(np.rint(h * ratio_hi)), 1, width)
    else:
        w = width
        h = height
    return (height - h) // 2, (width - w) // 2, h, w


@numba.njit(cache=True, parallel=True, nogil=True)
def _crop_windows(heights, widths, boxes, indices, views, scale_lo, scale_hi, log_lo, log_hi, quantiles, seed, epoch):
    n = indices.shape[0]
    out = np.empty((n, views, 4), dtype=np.int32)
    for j in numba.prange(n * views):
        i = j // views
        v = j % views
        key = stream_key(seed, epoch, indices[i], v)
        top, left, h, w = crop_window(
            heights[i], widths[i], boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3],
            scale_lo, scale_hi, log_lo, log_hi, quantiles, key,
        )
        out[i, v, 0] = top
        out[i, v, 1] = left
        out[i, v, 2] = h
        out[i, v, 3] = w
    return out


def _checked_key(seed, epoch, index, view) -> np.uint64:
    return np.uint64(stream_key(
        np.uint64(check_int("seed", seed)), np.int64(check_int("epoch", epoch, 0, 2**63 - 1)),
        np.int64(check_int("index", index, 0, 2**63 - 1)), np.int64(check_int("view", view, 0, 2**31 - 1)),
    ))


# ----------------------------------------------------------------- public API


def sample_flip(*, seed: int = 0, epoch: int = 0, index: int = 0, view: int = 0) -> bool:
    """The horizontal flip (probability 1/2) of one view, keyed like its crop."""
    return bool(flip_draw(_checked_key(seed, epoch, index, view)))


def sample_crop(
    height: int,
    width: int,
    box: Sequence[float] = FULL_BOX,
    *,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    alpha: float = 0.6,
    seed: int = 0,
    epoch: int = 0,
    index: int = 0,
    view: int = 0,
) -> tuple[int, int, int, int]:
    """One ContrastiveCrop window ``(top, left, crop_height, crop_width)`` in pixels.

    ``box`` is ``(y0, x0, y1, x1)`` normalized to [0, 1]. Every random draw is a
    pure function of ``(seed, epoch, index, view)``, so FFCV, DALI and this call
    give the same window for the same key.
    """
    height = check_int("height", height, 1, 2**31 - 1)
    width = check_int("width", width, 1, 2**31 - 1)
    box = np.asarray(box)
    if box.shape != (4,):
        raise ValueError(f"box must be (y0, x0, y1, x1), got shape {box.shape}")
    y0, x0, y1, x1 = check_boxes(box[None], "box")[0]
    scale_lo, scale_hi = check_range("scale", scale)
    ratio_lo, ratio_hi = check_range("ratio", ratio)
    key = _checked_key(seed, epoch, index, view)
    window = crop_window(
        height, width, y0, x0, y1, x1, scale_lo, scale_hi,
        math.log(ratio_lo), math.log(ratio_hi), beta_quantiles(alpha), key,
    )
    return tuple(int(v) for v in window)


def sample_crops(
    heights,
    widths,
    boxes,
    indices,
    *,
    views: int = 1,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    alpha: float = 0.6,
    seed: int = 0,
    epoch: int = 0,
) -> np.ndarray:
    """``sample_crop`` over a batch, compiled and parallel: int32 (n, views, 4).

    ``heights``, ``widths``, ``indices``: integer (n,); ``boxes``: float (n, 4).
    Window ``[i, v]`` equals ``sample_crop(heights[i], widths[i], boxes[i],
    index=indices[i], view=v, ...)`` whatever the number of threads.
    """
    heights = check_int_array("heights", heights, 1, 2**31 - 1)
    widths = check_int_array("widths", widths, 1, 2**31 - 1)
    idx = check_int_array("indices", indices, 0, 2**63 - 1)
    boxes = check_boxes(boxes)
    n = idx.shape[0]
    for name, arr in (("heights", heights), ("widths", widths), ("boxes", boxes)):
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} rows but indices has {n}")
    views = check_int("views", views, 1, 2**31 - 1)
    scale_lo, scale_hi = check_range("scale", scale)
    ratio_lo, ratio_hi = check_range("ratio", ratio)
    return _crop_windows(
        heights, widths, boxes, idx, views, scale_lo, scale_hi,
        math.log(ratio_lo), math.log(ratio_hi), beta_quantiles(alpha),
        np.uint64(check_int("seed", seed)), check_int("epoch", epoch, 0, 2**63 - 1),
    )
