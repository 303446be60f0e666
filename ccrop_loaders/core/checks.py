"""Shared validators of the core's parameters: each returns the checked value or raises naming it."""
from __future__ import annotations

import math
from typing import Sequence

import numba
import numpy as np

# The alphas check_alpha accepts: throughout, scipy's betaincinv gives a finite, monotone, symmetric table (far
# outside it, NaN or wrong knots). Below it the draws are already the ends 0 and 1, above it the centre.
ALPHA_RANGE = (1e-6, 1e8)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or not name.isprintable() or name.startswith(".") \
            or len(name.encode()) > 200:
        raise ValueError(f"table name must be a non-empty string of at most 200 bytes, printable, without '/' and "
                         f"not starting with '.', got {name!r}")
    return name


def check_flag(name: str, value, *, stored: bool = False) -> bool:
    """A bool (numpy's too), or with ``stored`` the integer 0 or 1 a file holds; nothing else (not "False")."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if stored and isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return bool(value)
    expected = "0 or 1" if stored else "a bool"
    raise (ValueError if stored else TypeError)(f"{name} must be {expected}, got {type(value).__name__} {value!r}")


def check_control(name: str, value, hi: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if not 0 <= int(value) <= hi:
        raise ValueError(f"{name} must be in [0, {hi}], got {value}")
    return int(value)


def check_count(name: str, value) -> int:
    """A positive integer (a number of views, ...), or ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_size(name: str, size: Sequence[int]) -> tuple[int, int]:
    """An output size ``(height, width)`` of positive integers, or ValueError naming ``name``."""
    try:
        h, w = (int(v) for v in size)
        ok = all(float(v) == int(v) for v in size)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite side
        ok = False
    if not ok or h < 1 or w < 1:
        raise ValueError(f"{name} must be (height, width) with positive integers, got {size!r}")
    return h, w


def check_alpha(alpha: float) -> float:
    """The Beta(alpha, alpha) parameter as a float in ``ALPHA_RANGE`` ([1e-6, 1e8]), or ValueError naming alpha.

    A number only (not a bool or a string). Within the range the quantile table is
    finite, monotone and symmetric; outside it scipy's quantiles are NaN or wrong.
    """
    lo, hi = ALPHA_RANGE
    if isinstance(alpha, (bool, np.bool_, str, bytes)):
        raise ValueError(f"alpha must be a number from {lo:g} to {hi:g}, got {type(alpha).__name__} {alpha!r}")
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number from {lo:g} to {hi:g}, got {type(alpha).__name__} "
                         f"{alpha!r}") from None
    if not lo <= value <= hi:  # NaN fails too
        raise ValueError(f"alpha must be from {lo:g} to {hi:g} (ALPHA_RANGE: where Beta(alpha, alpha)'s quantile "
                         f"table is finite and monotone), got {alpha!r}")
    return value


def check_range(name: str, value: Sequence[float]) -> tuple[float, float]:
    """A ``(lo, hi)`` pair with ``0 < lo <= hi``, both finite."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (lo, hi), got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(f"{name} must satisfy 0 < lo <= hi (finite), got {value!r}")
    return lo, hi


@numba.njit(cache=True, nogil=True)
def _first_bad_box(boxes):
    """``(row, field, problem)`` of the first bad box, problem 0 (none), 1 (not finite), 2 (outside [0, 1]),
    3 (y0 > y1, field 0) or (x0 > x1, field 1)."""
    for r in range(boxes.shape[0]):
        for c in range(4):
            v = boxes[r, c]
            if not np.isfinite(v):
                return r, c, 1
            if v < 0 or v > 1:
                return r, c, 2
        for c in range(2):
            if boxes[r, c] > boxes[r, c + 2]:
                return r, c, 3
    return -1, -1, 0


_FIELDS = ("y0", "x0", "y1", "x1")


def check_boxes(boxes, what: str = "boxes") -> np.ndarray:
    """float (n, 4) boxes, each ``(y0, x0, y1, x1)`` finite, in [0, 1], y0 <= y1 and x0 <= x1.

    Returns a C-contiguous float32 or float64 array (other numeric types become float64).
    """
    arr = np.asarray(boxes)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{what} must have shape (n, 4) as (y0, x0, y1, x1), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64)
    r, c, problem = _first_bad_box(arr)
    if problem == 1:
        raise ValueError(f"{what}: row {r}, field {_FIELDS[c]} is {arr[r, c]} (expected a finite number in [0, 1])")
    if problem == 2:
        raise ValueError(f"{what}: row {r}, field {_FIELDS[c]} = {arr[r, c]!r} is outside [0, 1]")
    if problem == 3:
        lo, hi = _FIELDS[c], _FIELDS[c + 2]
        raise ValueError(f"{what}: row {r} has {lo} = {arr[r, c]!r} > {hi} = {arr[r, c + 2]!r} "
                         f"(expected {lo} <= {hi})")
    return arr


def check_int(name: str, value, lo: int = 0, hi: int = 2**64 - 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def check_int_array(name: str, values, lo: int, hi: int) -> np.ndarray:
    """A 1-D integer array with every value in [lo, hi], as int64 (the bounds ``sample_crop`` applies)."""
    arr = np.asarray(values)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array, got dtype {arr.dtype} and shape {arr.shape}")
    if arr.size:
        bad = (arr < lo) | (arr > hi)  # numpy compares mixed signed/unsigned integers exactly
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name}[{i}] = {arr[i]} (expected an integer in [{lo}, {hi}])")
    return arr.astype(np.int64)
