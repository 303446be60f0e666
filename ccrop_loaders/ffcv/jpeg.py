"""Region decoding of JPEGs: the ctypes binding of ``jpeg_region.c``, callable from numba-compiled loops.

``decode_region(data_address, data_size, eighths, height, width, top, left,
bottom, right, buffer_address, buffer_size, placed_address) -> code`` decodes
rows ``[top, bottom)`` x columns ``[left, right)`` of a JPEG (uint8 bytes at
``data_address``) scaled by ``eighths``/8, as RGB. The JPEG must declare
``height`` x ``width`` pixels (the size the caller expects, e.g. the .beton's
metadata), at most ``REGION_MAX_PIXELS``: else ``REGION_BAD_SIZE``, refused
before libjpeg allocates the image's buffers (its memory is capped too, at 8
bytes per pixel plus 16 MB). Coordinates are int pixels of the scaled image
(``ceil(height * eighths / 8)`` rows), clamped to it. ``placed`` is int64 (6,):
``placed[4:6]`` receives the JPEG's declared ``(height, width)`` once its header
is read (``(0, 0)`` until then); on ``REGION_OK``, ``placed[:4]`` holds ``(row0,
col0, rows, cols)``: the buffer's first ``rows * cols * 3`` bytes are uint8
(rows, cols, 3) starting at that pixel of the scaled image. Columns are widened
(a pixel, then to the iMCU boundary), so it contains the region, whose pixels
equal a full decode's (the extra columns may not). Other codes: the errors below.

Addresses, not arrays: compiled code passes ``array.ctypes.data``. A numba
dispatcher typed on uint8 arrays would break once an FFCV 1.0.2 Loader is
built, since FFCV flips ``mutable`` on numba's interned ``uint8[::1]`` type.
"""
from __future__ import annotations

import ctypes

try:
    from . import _jpeg_region
except ImportError as error:  # built by setup.py only where libjpeg's headers were found
    from .._extras import missing_extension

    raise missing_extension(
        error, "_jpeg_region", "a C compiler and libjpeg-turbo's development files "
        "(Debian/Ubuntu: apt install gcc libjpeg-dev; conda: libjpeg-turbo)"
    ) from error

REGION_OK, REGION_ERROR, REGION_CORRUPT_DATA, REGION_TOO_LARGE, REGION_NO_MEMORY, REGION_BAD_SIZE = range(6)

_library = ctypes.CDLL(_jpeg_region.__file__)
_library.ccrop_region_max_pixels.restype = ctypes.c_int64
REGION_MAX_PIXELS: int = _library.ccrop_region_max_pixels()  # the most pixels a JPEG may declare (2**28)

decode_region = _library.ccrop_decode_region
decode_region.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int] + [ctypes.c_int64] * 6 + [
    ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
decode_region.restype = ctypes.c_int
