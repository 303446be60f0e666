"""A cheap check of encoded image files, before any decoder allocates: ``encoded_image_status(data)``.

Compiled code calls ``image_status_at(address, size)``: no dispatcher here is typed on uint8 arrays, so FFCV 1.0.2
(whose Loader sets ``mutable = False`` on numba's interned ``uint8[::1]`` type, changing its hash under every
dispatcher already compiled for it) cannot break a DALI pipeline built after an FFCV Loader in the same process.

Compiled with numba (no Python per sample), so DALI graphs can run it on every
sample; it reads the headers and scans the bytes once (no entropy decoding):

- JPEG: the segments up to the frame header (SOFn: height, width, 1 to 4
  components) must fit the file; inside the compressed data a 0xFF byte may be
  followed only by 0x00 (stuffing), the next restart marker in sequence, a fill
  byte or a marker allowed between scans (DHT, DQT, DRI, DNL, DAC, SOS, APPn,
  COM, EOI); the data must reach an end-of-image marker (bytes after it are
  ignored). This catches truncations and most corrupted middles (random bytes
  hold a 0xFF every 256 bytes on average), not a corruption without 0xFF bytes.
- PNG: the signature, an IHDR chunk (valid bit depth and colour type), chunks
  that fit the file (letter types) and an IEND chunk.
- BMP: the declared size. TIFF, WebP, JPEG 2000 and PNM pass on their magic
  bytes; anything else (GIF, random bytes) is not a format DALI decodes.
- Declared sizes are claims: at least 1x1, at most ``MAX_IMAGE_PIXELS``, and no
  more pixels than the file's bytes can hold (``MAX_PIXELS_PER_BYTE`` for a
  Huffman JPEG, which spends at least 1 bit per 8x8 block; deflate's 1032:1 for
  a PNG's raw rows).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

MAX_IMAGE_PIXELS = 1 << 28  # the most pixels an image may declare (e.g. 16384 x 16384), as the FFCV region decoder
MAX_PIXELS_PER_BYTE = 2048  # a Huffman JPEG holds >= 1 bit per 8x8 block (512 pixels/byte): 4x margin
PNG_MAX_RAW_PER_BYTE = 1032  # deflate's best ratio

IMAGE_OK = 0
IMAGE_EMPTY = 1
IMAGE_UNKNOWN_FORMAT = 2
IMAGE_BAD_HEADER = 3
IMAGE_BAD_SIZE = 4
IMAGE_CORRUPT = 5
IMAGE_TRUNCATED = 6

REASONS = {
    IMAGE_EMPTY: "empty, or too short to hold an image",
    IMAGE_UNKNOWN_FORMAT: "not an image format DALI decodes (JPEG, PNG, BMP, TIFF, WebP, JPEG 2000, PNM), e.g. "
                          "random bytes or a GIF",
    IMAGE_BAD_HEADER: "damaged header (segments that do not fit the file, no frame header, bad fields)",
    IMAGE_BAD_SIZE: "its header declares an empty image, more than MAX_IMAGE_PIXELS (2**28) pixels, or more pixels "
                    "than its bytes can hold (damaged or forged header)",
    IMAGE_CORRUPT: "corrupt compressed data (a marker that cannot be there)",
    IMAGE_TRUNCATED: "truncated (the data ends before the end-of-image marker)",
}


def describe_status(reason: int, height: int = 0, width: int = 0) -> str:
    """Words for a status code, with the declared size when the header gave one."""
    why = REASONS.get(int(reason), f"status {reason}")
    if reason == IMAGE_BAD_SIZE and (height or width):
        why = f"its header declares {width}x{height} pixels (width x height): an empty image, more than " \
              "MAX_IMAGE_PIXELS (2**28) pixels, or more pixels than its bytes can hold (damaged or forged header)"
    return why


@numba.njit(inline="always", cache=True)
def _u16(d, i):
    return (np.int64(d[i]) << 8) | np.int64(d[i + 1])


@numba.njit(inline="always", cache=True)
def _u32(d, i):
    return (np.int64(d[i]) << 24) | (np.int64(d[i + 1]) << 16) | (np.int64(d[i + 2]) << 8) | np.int64(d[i + 3])


@numba.njit(cache=True, nogil=True)
def _size_status(height, width, limit):
    if height < 1 or width < 1 or height * width > MAX_IMAGE_PIXELS or height * width > limit:
        return IMAGE_BAD_SIZE
    return IMAGE_OK


@numba.njit(cache=True, nogil=True)
def _is_sof(m):
    return (0xC0 <= m <= 0xC3) or (0xC5 <= m <= 0xC7) or (0xC9 <= m <= 0xCB) or (0xCD <= m <= 0xCF)


@numba.njit(inline="always", cache=True)
def _jpeg_status(d):
    n = d.shape[0]
    i = 2
    height, width = np.int64(0), np.int64(0)
    frame, scanned, arithmetic = False, False, False
    while True:
        bad = IMAGE_CORRUPT if scanned else IMAGE_BAD_HEADER
        if i >= n:
            return IMAGE_TRUNCATED, height, width
        if d[i] != 0xFF:
            return bad, height, width
        while i < n and d[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            return IMAGE_TRUNCATED, height, width
        m = np.int64(d[i])
        i += 1
        if m == 0xD9:  # EOI
            if not scanned:
                return IMAGE_BAD_HEADER, height, width
            limit = MAX_IMAGE_PIXELS if arithmetic else MAX_PIXELS_PER_BYTE * np.int64(n)
            return _size_status(height, width, limit), height, width
        if m == 0x01 or 0xD0 <= m <= 0xD7:  # TEM, a restart marker: no length
            continue
        if not (_is_sof(m) or m == 0xC4 or m == 0xCC or 0xDA <= m <= 0xDD or 0xE0 <= m <= 0xEF or m == 0xFE):
            return bad, height, width  # SOI again, reserved, JPG extensions, DHP/EXP: nothing a decoder reads
        if i + 2 > n:
            return IMAGE_TRUNCATED, height, width
        length = _u16(d, i)
        if length < 2:
            return bad, height, width
        if i + length > n:
            return IMAGE_TRUNCATED, height, width
        if _is_sof(m):
            if frame or length < 8:
                return bad, height, width
            height, width = _u16(d, i + 3), _u16(d, i + 5)
            components = np.int64(d[i + 7])
            if components < 1 or components > 4 or length != 8 + 3 * components:
                return bad, height, width
            frame, arithmetic = True, m >= 0xC9
            if _size_status(height, width, MAX_IMAGE_PIXELS) != IMAGE_OK:
                return IMAGE_BAD_SIZE, height, width  # before scanning megabytes of a forged file
        elif m == 0xDA:  # SOS: the compressed data follows the segment
            if not frame:
                return IMAGE_BAD_HEADER, height, width
            i += length
            restart = 0
            while True:
                while i < n and d[i] != 0xFF:
                    i += 1
                if i + 1 >= n:
                    return IMAGE_TRUNCATED, height, width
                nxt = d[i + 1]
                if nxt == 0x00:
                    i += 2
                elif 0xD0 <= nxt <= 0xD7:
                    if nxt != 0xD0 + restart:
                        return IMAGE_CORRUPT, height, width
                    restart = (restart + 1) & 7
                    i += 2
                elif nxt == 0xFF:
                    i += 1
                else:
                    break  # a marker: back to segments (i at its 0xFF)
            scanned = True
            continue
        i += length


@numba.njit(inline="always", cache=True)
def _png_status(d):
    n = d.shape[0]
    if n < 33:
        return IMAGE_TRUNCATED, 0, 0
    if _u32(d, 8) != 13 or d[12] != 0x49 or d[13] != 0x48 or d[14] != 0x44 or d[15] != 0x52:  # IHDR
        return IMAGE_BAD_HEADER, 0, 0
    width, height = _u32(d, 16), _u32(d, 20)
    depth, colour = np.int64(d[24]), np.int64(d[25])
    if colour == 0:
        channels = 1
    elif colour == 2:
        channels = 3
    elif colour == 3:
        channels = 1
    elif colour == 4:
        channels = 2
    elif colour == 6:
        channels = 4
    else:
        return IMAGE_BAD_HEADER, height, width
    if not (depth == 1 or depth == 2 or depth == 4 or depth == 8 or depth == 16):
        return IMAGE_BAD_HEADER, height, width
    if _size_status(height, width, MAX_IMAGE_PIXELS) != IMAGE_OK:
        return IMAGE_BAD_SIZE, height, width
    raw = height * (1 + (width * channels * depth + 7) // 8)  # filter byte + packed row
    if raw > PNG_MAX_RAW_PER_BYTE * np.int64(n) + 1024:
        return IMAGE_BAD_SIZE, height, width
    i, data = np.int64(8), False
    while True:
        if i + 12 > n:
            return IMAGE_TRUNCATED, height, width
        length = _u32(d, i)
        for k in range(4, 8):
            c = d[i + k]
            if not ((0x41 <= c <= 0x5A) or (0x61 <= c <= 0x7A)):
                return IMAGE_CORRUPT, height, width
        if length > 0x7FFFFFFF:
            return IMAGE_CORRUPT, height, width
        if i + 12 + length > n:
            return IMAGE_TRUNCATED, height, width
        kind = _u32(d, i + 4)
        if kind == 0x49444154:  # IDAT
            data = True
        elif kind == 0x49454E44:  # IEND
            return (IMAGE_OK if data else IMAGE_BAD_HEADER), height, width
        i += 12 + length


@intrinsic
def _bytes_at(typingctx, address):
    """uint8* from an integer address (numba intrinsic)."""
    sig = types.CPointer(types.uint8)(types.intp)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.uint8)))

    return sig, codegen


def encoded_image_status(data: np.ndarray) -> tuple[int, int, int]:
    """``(status, height, width)`` of an encoded image (uint8 1-D): ``IMAGE_OK`` (0) or why a decoder must not
    see it (``REASONS``); the declared size when read (else 0)."""
    data = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    status, height, width = image_status_at(data.ctypes.data, data.size)
    return int(status), int(height), int(width)


@numba.njit(cache=True, nogil=True)
def image_status_at(address, size):
    """``encoded_image_status`` of the ``size`` bytes at ``address``, for compiled code (e.g. a DALI op:
    ``image_status_at(data.ctypes.data, data.size)``); the caller keeps the bytes alive."""
    return _status(numba.carray(_bytes_at(address), size))


@numba.njit(inline="always", cache=True)
def _status(data):
    n = data.shape[0]
    zero = np.int64(0)
    if n < 8:
        return IMAGE_EMPTY, zero, zero
    b0, b1, b2, b3 = data[0], data[1], data[2], data[3]
    if b0 == 0xFF and b1 == 0xD8 and b2 == 0xFF:
        return _jpeg_status(data)
    if (b0 == 0x89 and b1 == 0x50 and b2 == 0x4E and b3 == 0x47 and data[4] == 0x0D and data[5] == 0x0A
            and data[6] == 0x1A and data[7] == 0x0A):
        status, height, width = _png_status(data)
        return status, np.int64(height), np.int64(width)
    if b0 == 0x42 and b1 == 0x4D:  # BMP
        if n < 26:
            return IMAGE_TRUNCATED, zero, zero
        header = np.int64(data[14]) | (np.int64(data[15]) << 8)
        if header == 12:  # OS/2 core header: 16-bit sizes
            width = np.int64(data[18]) | (np.int64(data[19]) << 8)
            height = np.int64(data[20]) | (np.int64(data[21]) << 8)
        else:
            width = np.int64(np.int32(np.uint32(data[18]) | (np.uint32(data[19]) << 8) | (np.uint32(data[20]) << 16)
                                      | (np.uint32(data[21]) << 24)))
            height = np.int64(np.int32(np.uint32(data[22]) | (np.uint32(data[23]) << 8) | (np.uint32(data[24]) << 16)
                                       | (np.uint32(data[25]) << 24)))
            height = -height if height < 0 else height  # top-down rows
        return _size_status(height, width, MAX_IMAGE_PIXELS), height, width
    if (b0 == 0x49 and b1 == 0x49 and b2 == 0x2A and b3 == 0x00) or (b0 == 0x4D and b1 == 0x4D and b2 == 0x00
                                                                     and b3 == 0x2A):  # TIFF
        return IMAGE_OK, zero, zero
    if (n >= 12 and b0 == 0x52 and b1 == 0x49 and b2 == 0x46 and b3 == 0x46 and data[8] == 0x57 and data[9] == 0x45
            and data[10] == 0x42 and data[11] == 0x50):  # RIFF....WEBP
        return IMAGE_OK, zero, zero
    if (b0 == 0xFF and b1 == 0x4F and b2 == 0xFF and b3 == 0x51) or (
            b0 == 0 and b1 == 0 and b2 == 0 and b3 == 0x0C and data[4] == 0x6A and data[5] == 0x50):  # JPEG 2000
        return IMAGE_OK, zero, zero
    if b0 == 0x50 and 0x31 <= b1 <= 0x36 and (b2 == 0x20 or b2 == 0x0A or b2 == 0x0D or b2 == 0x09 or b2 == 0x23):
        return IMAGE_OK, zero, zero  # PNM: P1..P6 and a separator (or a comment)
    return IMAGE_UNKNOWN_FORMAT, zero, zero
