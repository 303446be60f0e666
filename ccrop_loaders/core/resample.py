"""Antialiased crop-resize (triangle filter, as Pillow's BILINEAR) with a fused mirror: the binding of ``resample.c``.

``resize_crop`` is compiled (numba) and callable from FFCV's compiled loops and
from Python alike. Images are uint8 (H, W, 3), C order. The work is done in C,
in fixed point (see ``resample.c``), with the best instruction set the CPU has
(``SIMD``: AVX-512, AVX2 or none); all give the same pixels.
"""
from __future__ import annotations

import ctypes

import numba
import numpy as np
from numba import types
from numba.extending import overload

try:
    from . import _resample
except ImportError as error:  # built by setup.py, which needs a C compiler
    from .._extras import missing_extension

    raise missing_extension(
        error, "_resample", "a C compiler (Debian/Ubuntu: apt install gcc)", package="core"
    ) from error

RESIZE_OK, RESIZE_BAD_WINDOW, RESIZE_BAD_SIZE, RESIZE_SMALL_SCRATCH = range(4)
SIMD_NONE, SIMD_AVX2, SIMD_AVX512 = range(3)

_library = ctypes.CDLL(_resample.__file__)
# (max_h, max_w, out_h, out_w) -> scratch bytes (-1: invalid sizes), callable from compiled code as from Python
scratch_bytes_c = _library.ccrop_resize_scratch_bytes
scratch_bytes_c.argtypes = [ctypes.c_int64] * 4
scratch_bytes_c.restype = ctypes.c_int64


_simd = _library.ccrop_resize_simd
_simd.restype = ctypes.c_int
SIMD: int = _simd()  # the instruction set this CPU gives the resampler

_ARGS = ([ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64] + [ctypes.c_double] * 4
         + [ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64])
resize_crop_c = _library.ccrop_resize_crop  # the best instruction set the CPU has
resize_crop_c.argtypes, resize_crop_c.restype = _ARGS, ctypes.c_int
resize_crop_simd_c = _library.ccrop_resize_crop_simd  # ... at most the one its last argument names (SIMD_*)
resize_crop_simd_c.argtypes, resize_crop_simd_c.restype = _ARGS + [ctypes.c_int], ctypes.c_int


def scratch_size(max_height: int, max_width: int, output_size: tuple[int, int]) -> int:
    """int64 elements of scratch ``resize_crop`` needs for windows up to ``max_height`` x ``max_width`` pixels."""
    size = scratch_bytes_c(int(max_height), int(max_width), int(output_size[0]), int(output_size[1]))
    if size < 0:
        raise ValueError(f"image and output sizes must be >= 1 and need a scratch that fits in memory, got "
                         f"{max_height}x{max_width} -> {output_size}")
    return -(-size // 8)


def _is_array_of(array, dtype) -> bool:
    """Whether ``array`` is a numpy array of ``dtype`` (decided when compiling: no cost at run time)."""
    return isinstance(array, np.ndarray) and array.dtype == dtype


@overload(_is_array_of)
def _is_array_of_typed(array, dtype):
    answer = isinstance(array, types.Array) and array.dtype == dtype.instance_type  # dtype: e.g. class(uint8)
    return lambda array, dtype: answer


def _is_writeable(array) -> bool:
    """Whether ``array`` may be written (numba types a read-only array apart: decided when compiling)."""
    return bool(array.flags.writeable)


@overload(_is_writeable)
def _is_writeable_typed(array):
    answer = isinstance(array, types.Array) and array.mutable
    return lambda array: answer


@numba.njit(inline="always")
def _check(code):
    if code == RESIZE_BAD_WINDOW:
        raise ValueError("resize_crop: the window must be non-empty and lie inside the image")
    if code == RESIZE_BAD_SIZE:
        raise ValueError("resize_crop: image and output must have at least one pixel")
    if code == RESIZE_SMALL_SCRATCH:
        raise ValueError("resize_crop: scratch is smaller than scratch_size() asks for this window")


@numba.njit(nogil=True)
def resize_crop(image, top, left, height, width, mirror, out, scratch):
    """Resize window ``(top, left, height, width)`` of ``image`` (uint8 (H, W, 3)) into ``out`` (uint8 (h, w, 3)).

    The window is in pixels, may be fractional (e.g. mapped onto a
    DCT-downscaled decode) and must lie inside the image. ``mirror`` flips the
    result left-right at no cost. ``image`` and ``out`` are C-contiguous;
    ``scratch``: int64 with at least ``scratch_size(...)`` elements for the
    window's size. ``out`` and ``scratch`` must be writeable and ``scratch``
    aligned: anything else is a ValueError before anything is written.
    """
    if not (_is_array_of(image, np.uint8) and _is_array_of(out, np.uint8) and _is_array_of(scratch, np.int64)):
        raise ValueError("resize_crop: image and out must be uint8 arrays and scratch an int64 array")
    if image.ndim != 3 or out.ndim != 3:  # (a constant when compiling: the shapes below are never typed otherwise)
        raise ValueError("resize_crop: image and out must be 3-D uint8 arrays (H, W, 3), e.g. not a 2-D grey image")
    if not (image.flags.c_contiguous and out.flags.c_contiguous and image.shape[2] == 3 and out.shape[2] == 3):
        raise ValueError("resize_crop: image and out must be C-contiguous uint8 (H, W, 3)")
    if not (_is_writeable(out) and _is_writeable(scratch)):
        raise ValueError("resize_crop: out and scratch must be writeable arrays (flags.writeable; e.g. not a "
                         "read-only memmap or an array over bytes)")
    if scratch.ctypes.data % 8 != 0:
        raise ValueError("resize_crop: scratch must be 8-byte aligned (flags.aligned)")
    _check(resize_crop_c(image.ctypes.data, image.shape[0], image.shape[1], top, left, height, width, mirror,
                         out.ctypes.data, out.shape[0], out.shape[1], scratch.ctypes.data, scratch.nbytes))
