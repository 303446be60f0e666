"""Region decoding of JPEGs from compiled code: the ctypes binding of ``jpeg_region.c``.

``decode_region`` decodes only the rows and iMCU columns that a set of crop
windows touches, at a DCT scale M/8; callable from numba-compiled loops
(nogil). Codes: ``REGION_OK`` or one of the errors below.
"""
from __future__ import annotations

import ctypes

import numba

try:
    from . import _jpeg_region
except ImportError as error:  # built by setup.py only where libjpeg's headers were found
    raise ImportError(
        "ccrop_loaders.ffcv needs its region decoder (ccrop_loaders/ffcv/jpeg_region.c), which was not built: "
        "install libjpeg-turbo's development files (Debian/Ubuntu: apt install libjpeg-dev; conda: libjpeg-turbo) "
        "and reinstall ccrop-loaders"
    ) from error

REGION_OK, REGION_ERROR, REGION_CORRUPT_DATA, REGION_TOO_LARGE, REGION_NO_MEMORY = range(5)

_decode = ctypes.CDLL(_jpeg_region.__file__).ccrop_decode_region
_decode.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int] + [ctypes.c_int64] * 4 + [
    ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
_decode.restype = ctypes.c_int


_U8 = numba.types.Array(numba.types.uint8, 1, "C")
_U8_READONLY = numba.types.Array(numba.types.uint8, 1, "C", readonly=True)
_I64 = numba.types.int64
# compiled now, for the buffers FFCV hands over (read-only or not): lazy compiling from
# FFCV's loader threads races inside numba's dispatcher
_SIGNATURES = [numba.types.int32(data, _I64, _I64, _I64, _I64, _I64, buffer, numba.types.Array(_I64, 1, "C"))
               for data in (_U8, _U8_READONLY) for buffer in (_U8, _U8_READONLY)]


@numba.njit(_SIGNATURES, nogil=True)
def decode_region(data, eighths, top, left, bottom, right, buffer, placed):
    """Decode rows ``[top, bottom)`` x columns ``[left, right)`` of JPEG ``data`` scaled by ``eighths``/8, as RGB.

    ``data``: uint8 (n,) JPEG bytes. Coordinates: int pixels of the scaled image
    (``ceil(height * eighths / 8)`` rows), clamped to it. ``buffer``: uint8,
    large enough for the region (else ``REGION_TOO_LARGE``). On ``REGION_OK``,
    ``placed`` (int64 (4,)) holds ``(row0, col0, rows, cols)``: ``buffer[:rows
    * cols * 3]`` is uint8 (rows, cols, 3) starting at that pixel of the scaled
    image; columns are widened (a pixel, then to the iMCU boundary), so it
    contains the region, whose pixels equal a full decode's (the extra columns
    may not). Returns the code.
    """
    return _decode(data.ctypes.data, data.size, eighths, top, left, bottom, right,
                   buffer.ctypes.data, buffer.size, placed.ctypes.data)
