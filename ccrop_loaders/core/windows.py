"""Windows read from the live table, and the one view-parameter block both backends encode their views in.

A view-parameter block (``view_params``) is float64, laid out as

    [FLIP_AT]                        1.0 when each view is mirrored by its keyed coin
    [QUANTILES_AT : ROWS_AT]         ``beta_quantiles(alpha)`` (8193 knots)
    [ROWS_AT + ROW_LENGTH * r + k]   row r: scale_lo, scale_hi, log ratio_lo, log ratio_hi, boxed

one row per output view. FFCV's decoders rewrite their block in place when the
Loader plans an epoch (settable parameters); DALI's ops hold theirs fixed.
``block_window`` is the compiled call both make: row ``r`` drawn as the
sampler's view ``view``, keyed and boxed by the table at run time.
"""
from __future__ import annotations

import math
from typing import Sequence

import numba
import numpy as np

from .groups import ViewGroup, check_groups
from .random import flip_draw, stream_key
from .sampler import QUANTILE_KNOTS, UNIFORM_QUANTILES, beta_quantiles, crop_window
from .checks import check_flag
from .table_layout import load_box, load_controls

FLIP_AT = 0
QUANTILES_AT = 1
ROWS_AT = QUANTILES_AT + QUANTILE_KNOTS + 1
ROW_LENGTH = 5


@numba.njit(cache=True, nogil=True)
def table_crop_window(address, num_samples, index, view, height, width,
                      scale_lo, scale_hi, log_ratio_lo, log_ratio_hi, quantiles, boxed=True):
    """``crop_window`` for sample ``index``, view ``view``, keyed and boxed by the live table.

    Reads ``epoch``, ``seed`` and ``use_boxes`` now; with ``use_boxes`` False (or
    ``boxed`` False: a view group that never uses the box) the box is (0, 0, 1, 1)
    and the Beta draw uniform: plain RandomResizedCrop, keyed like the boxed view.
    """
    epoch, seed, use_boxes = load_controls(address, num_samples)
    key = stream_key(seed, epoch, index, view)
    if use_boxes and boxed:
        y0, x0, y1, x1 = load_box(address, num_samples, index)
        return crop_window(height, width, y0, x0, y1, x1, scale_lo, scale_hi,
                           log_ratio_lo, log_ratio_hi, quantiles, key)
    return crop_window(height, width, 0.0, 0.0, 1.0, 1.0, scale_lo, scale_hi,
                       log_ratio_lo, log_ratio_hi, UNIFORM_QUANTILES, key)


@numba.njit(cache=True, nogil=True)
def table_flip(address, num_samples, index, view):
    """The horizontal flip (p = 1/2) of sample ``index``, view ``view``, keyed by the live table's controls."""
    epoch, seed, _ = load_controls(address, num_samples)
    return flip_draw(stream_key(seed, epoch, index, view))


@numba.njit(inline="always", cache=True)
def block_window(address, num_samples, block, row, view, index, height, width):
    """``(top, left, crop_height, crop_width, mirror)`` of sample ``index``: row ``row`` of the view-parameter
    ``block`` (float64) drawn as the sampler's view ``view``, keyed and boxed by the live table."""
    at = ROWS_AT + ROW_LENGTH * row
    top, left, h, w = table_crop_window(address, num_samples, index, view, height, width, block[at],
                                        block[at + 1], block[at + 2], block[at + 3],
                                        block[QUANTILES_AT:ROWS_AT], block[at + 4] != 0)
    return top, left, h, w, block[FLIP_AT] != 0 and table_flip(address, num_samples, index, view)


def view_params(groups: Sequence[ViewGroup], alpha: float, flip: bool) -> np.ndarray:
    """The view-parameter block of every view of ``groups`` (checked), in sampler view order: float64."""
    groups = check_groups(groups)
    block = np.zeros(ROWS_AT + ROW_LENGTH * sum(g.num_views for g in groups), dtype=np.float64)
    write_view_params(block, groups, alpha, flip)
    return block


def write_view_params(block: np.ndarray, groups: Sequence[ViewGroup], alpha: float, flip: bool) -> None:
    """Write ``view_params(groups, alpha, flip)`` into ``block`` (float64, sized for the groups' views) in place."""
    groups = check_groups(groups)
    rows = [(*g.scale, math.log(g.ratio[0]), math.log(g.ratio[1]), float(g.use_boxes))
            for g in groups for _ in range(g.num_views)]
    if block.shape != (ROWS_AT + ROW_LENGTH * len(rows),):
        raise ValueError(f"a view-parameter block for {len(rows)} views has {ROWS_AT + ROW_LENGTH * len(rows)} "
                         f"values, got shape {block.shape}")
    quantiles = beta_quantiles(alpha)
    block[FLIP_AT] = check_flag("flip", flip)
    block[QUANTILES_AT:ROWS_AT] = quantiles
    block[ROWS_AT:] = np.asarray(rows, dtype=np.float64).reshape(-1)
