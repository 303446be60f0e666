"""Box health after a localization pass: mean area, share of whole-image boxes, change since the last pass.

Boxes that grow to the whole image (a threshold too low for the encoder's
heat maps: the official repository's issue 15 saw it with MoCo v3) turn
ContrastiveCrop back into RandomResizedCrop without any error; ``BoxHealth.warning``
names the cause and the fix when the mean area passes ``COLLAPSE_AREA``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

COLLAPSE_AREA = 0.9  # mean box area above which the boxes are taken to be collapsing to the image
_FULL = np.uint64(0xFFFF_FFFF_0000_0000)  # the packed row of (0, 0, 1, 1)


@dataclass(frozen=True)
class BoxHealth:
    """``mean_area`` (boxes' area, normalized), ``full_share`` (boxes (0, 0, 1, 1)), ``changed_share`` (rows that
    differ from the previous pass; None without one) and ``area_change`` (mean area minus the previous pass's)."""

    samples: int
    mean_area: float
    full_share: float
    changed_share: float | None = None
    area_change: float | None = None

    @property
    def collapsing(self) -> bool:
        return self.mean_area > COLLAPSE_AREA

    def warning(self) -> str | None:
        """The warning to print when the boxes collapse to the whole image (None otherwise)."""
        if not self.collapsing:
            return None
        return (f"ContrastiveCrop boxes cover {self.mean_area:.0%} of the image on average ({self.full_share:.0%} are "
                "the whole image): the views are close to plain RandomResizedCrop. The localization threshold k is too "
                "low for these feature maps: raise it (BoxUpdater(threshold=...), the recipe's --loc-threshold; "
                "0.3-0.5 for MoCo v3-like heat maps)")

    def __str__(self) -> str:
        text = f"mean box area {self.mean_area:.3f} over {self.samples} samples, whole image {self.full_share:.1%}"
        if self.changed_share is not None:
            text += f", {self.changed_share:.1%} changed, mean area {self.area_change:+.3f} since the last pass"
        return text


@numba.njit(cache=True, nogil=True)
def _row_stats(rows, previous):
    """(sum of areas, whole-image rows, rows differing from ``previous``, sum of previous areas) of packed rows."""
    area = 0.0
    full = 0
    changed = 0
    before = 0.0
    s = 1.0 / 65535.0
    mask = np.uint64(0xFFFF)
    for i in range(rows.shape[0]):
        w = rows[i]
        h = np.float64(((w >> np.uint64(32)) & mask) - (w & mask)) * s
        x = np.float64((w >> np.uint64(48)) - ((w >> np.uint64(16)) & mask)) * s
        area += h * x
        full += w == _FULL
        if previous.shape[0]:
            p = previous[i]
            changed += p != w
            before += np.float64(((p >> np.uint64(32)) & mask) - (p & mask)) * s * \
                np.float64((p >> np.uint64(48)) - ((p >> np.uint64(16)) & mask)) * s
    return area, full, changed, before


def box_health(rows: np.ndarray, previous: np.ndarray | None = None) -> BoxHealth:
    """``BoxHealth`` of packed table rows (uint64 (n,), ``table_layout``'s packing), against the rows of the
    previous pass when given (uint64 (n,))."""
    rows = np.ascontiguousarray(rows, dtype=np.uint64)
    n = rows.shape[0]
    if n == 0:
        raise ValueError("box_health needs at least one row")
    before = np.zeros(0, np.uint64) if previous is None else np.ascontiguousarray(previous, dtype=np.uint64)
    if previous is not None and before.shape != rows.shape:
        raise ValueError(f"the previous pass has {before.shape[0]} rows, this one {n}")
    area, full, changed, area_before = _row_stats(rows, before)
    if previous is None:
        return BoxHealth(n, area / n, full / n)
    return BoxHealth(n, area / n, full / n, changed / n, (area - area_before) / n)
