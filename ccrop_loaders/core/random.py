"""Counter-based random stream.

Every draw is a pure function of ``(seed, epoch, index, view, stream, counter)``:
no state is carried between calls, so results never depend on threads, workers,
batch position or scheduling. The mixer is SplitMix64's finalizer, applied to
each key field in turn (a keyed hash, not a sequential generator).

All functions are numba-compiled and callable from Python and from numba code.
"""
from __future__ import annotations

import numba
import numpy as np

_U = np.uint64
_GOLDEN = _U(0x9E3779B97F4A7C15)
_M1 = _U(0xBF58476D1CE4E5B9)
_M2 = _U(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53

# Draw streams: one per purpose, so that a variable number of draws in one
# (e.g. rejected tries) never shifts another.
STREAM_TRY = 0
STREAM_POSITION = 1
STREAM_FLIP = 2


@numba.njit(inline="always", cache=True)
def _mix(z):
    z = (z ^ (z >> _U(30))) * _M1
    z = (z ^ (z >> _U(27))) * _M2
    return z ^ (z >> _U(31))


@numba.njit(cache=True)
def stream_key(seed, epoch, index, view):
    """uint64 key of one (seed, epoch, sample index, view); all inputs are integers >= 0."""
    k = _mix(_U(seed) + _GOLDEN)
    k = _mix(k ^ _mix(_U(epoch) + _U(0x1F123BB5159A55E5)))
    k = _mix(k ^ _mix(_U(index) + _U(0x5851F42D4C957F2D)))
    return _mix(k ^ _mix(_U(view) + _U(0x14057B7EF767814F)))


@numba.njit(inline="always", cache=True)
def random_bits(key, stream, counter):
    """64 random bits (uint64), a pure function of its arguments."""
    return _mix(key ^ _mix((_U(stream) << _U(40)) + _U(counter) + _GOLDEN))


@numba.njit(inline="always", cache=True)
def uniform(key, stream, counter):
    """float64 in the open interval (0, 1), a pure function of its arguments."""
    return (np.float64(random_bits(key, stream, counter) >> _U(11)) + 0.5) * _TO_UNIT


@numba.njit(inline="always", cache=True)
def flip_draw(key):
    """True with probability 1/2: the horizontal flip of the view keyed by ``key``."""
    return uniform(key, STREAM_FLIP, 0) < 0.5
