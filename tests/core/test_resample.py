import numpy as np
import pytest
from PIL import Image

from ccrop_loaders.core.resample import (RESIZE_OK, SIMD, SIMD_AVX2, SIMD_AVX512, SIMD_NONE, resize_crop,
                                         resize_crop_simd_c, scratch_size)
from ccrop_loaders.tools.sample_data import _source_photos


def resized(image, window, size, mirror=False):
    out = np.empty((*size, 3), np.uint8)
    resize_crop(image, *window, mirror, out, np.empty(scratch_size(*image.shape[:2], size), np.int64))
    return out


def resized_with(simd, image, window, size, mirror=False):
    out = np.empty((*size, 3), np.uint8)
    scratch = np.empty(scratch_size(*image.shape[:2], size), np.int64)
    code = resize_crop_simd_c(image.ctypes.data, *image.shape[:2], *window, mirror, out.ctypes.data, *size,
                              scratch.ctypes.data, scratch.nbytes, simd)
    assert code == RESIZE_OK
    return out


@pytest.mark.parametrize("simd", [SIMD_AVX2, SIMD_AVX512])
def test_every_instruction_set_gives_the_portable_pixels(simd):
    # odd sizes, tiny and huge scale factors (AVX-512 hands large downscales to AVX2), mirrored or not
    if SIMD < simd:
        pytest.skip(f"this CPU lacks the instruction set (it has level {SIMD})")
    rng = np.random.default_rng(simd)
    for _ in range(150):
        h, w = rng.integers(1, 300, 2)
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        crop_h, crop_w = rng.uniform(0.2, h), rng.uniform(0.2, w)
        window = (rng.uniform(0, h - crop_h), rng.uniform(0, w - crop_w), crop_h, crop_w)
        size = tuple(rng.integers(1, 260, 2))
        if rng.integers(2):  # half of them the usual views: downscales by 1 to 2.5
            size = tuple(max(1, int(round(side / rng.uniform(1.0, 2.5)))) for side in (crop_h, crop_w))
        mirror = bool(rng.integers(2))
        np.testing.assert_array_equal(resized_with(simd, image, window, size, mirror),
                                      resized_with(SIMD_NONE, image, window, size, mirror))
    np.testing.assert_array_equal(resized(image, window, size), resized_with(SIMD, image, window, size))


@pytest.mark.parametrize("size", [(224, 224), (97, 131), (300, 250)])
def test_photo_matches_pillow_bilinear(size):
    photo = _source_photos()["astronaut"]
    window = (31, 17, 280, 301)
    top, left, h, w = window
    pillow = np.asarray(Image.fromarray(photo[top: top + h, left: left + w]).resize(size[::-1], Image.BILINEAR))
    ours = resized(photo, window, size)
    assert np.abs(ours.astype(int) - pillow).max() <= 2
    assert np.abs(ours.astype(int) - pillow).mean() < 0.3


def test_checkerboard_downscale_is_antialiased():
    board = ((np.indices((400, 400)).sum(axis=0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, axis=2)
    out = resized(board, (0, 0, 400, 400), (235, 235))
    assert out.std() < 10
    assert abs(out.mean() - 127.5) < 2


@pytest.mark.parametrize("window, size", [((0, 0, 1, 1), (8, 8)), ((3, 5, 7, 2), (64, 16)),
                                          ((0, 0, 50, 60), (50, 60)), ((10, 0, 40, 60), (7, 200)),
                                          ((0.5, 0.25, 0.1, 0.3), (3, 5)), ((0, 0, 50, 60), (1, 1))])
def test_constant_image_stays_constant(window, size):
    image = np.full((50, 60, 3), (10, 200, 33), np.uint8)
    assert (resized(image, window, size, mirror=True) == (10, 200, 33)).all()


def test_identity_resize_and_mirror():
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resized(image, (0, 0, 30, 40), (30, 40)), image)
    np.testing.assert_array_equal(resized(image, (0, 0, 30, 40), (30, 40), mirror=True), image[:, ::-1])


def test_large_downscale_averages_the_window():
    # 40 taps per output: a 4000-pixel-wide gradient to 50 columns keeps its local means
    ramp = np.tile(np.linspace(0, 255, 4000), (20, 1))
    image = np.repeat(ramp[..., None], 3, axis=2).round().astype(np.uint8)
    out = resized(image, (0, 0, 20, 4000), (5, 50))
    expected = ramp[0].reshape(50, 80).mean(axis=1)
    assert np.abs(out[2, :, 0] - expected).max() <= 1.5


@pytest.mark.parametrize("window", [(-1, 0, 10, 10), (0, 0, 31, 10), (0, 35, 10, 6), (0, 0, 0, 10), (5, 5, 10, -1)])
def test_windows_outside_the_image_are_refused(window):
    image = np.zeros((30, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="inside the image"):
        resized(image, window, (8, 8))


def test_small_scratch_and_bad_layouts_are_refused():
    image = np.zeros((30, 40, 3), np.uint8)
    out = np.empty((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="scratch"):
        resize_crop(image, 0, 0, 30, 40, False, out, np.empty(4, np.int64))
    scratch = np.empty(scratch_size(30, 40, (8, 8)), np.int64)
    with pytest.raises(ValueError, match="C-contiguous"):
        resize_crop(image[:, ::2], 0, 0, 10, 10, False, out, scratch)
    with pytest.raises(ValueError, match="C-contiguous"):
        resize_crop(image, 0, 0, 10, 10, False, np.empty((8, 16, 3), np.uint8)[:, ::2], scratch)
    with pytest.raises(ValueError, match=">= 1"):
        scratch_size(30, 40, (0, 8))
    np.testing.assert_array_equal(image, 0)  # nothing written to the input


INSTRUCTION_SETS = [simd for simd in (SIMD_NONE, SIMD_AVX2, SIMD_AVX512) if simd <= SIMD]


def random_span(rng, n):
    """(start, length) inside [0, n): fractional, flush with either edge, sub-pixel or the whole side."""
    kind = rng.integers(5)
    length = rng.uniform(0.05, 0.95) if kind == 3 else (float(n) if kind == 4 else rng.uniform(0.05, n))
    start = {0: 0.0, 1: n - length}.get(kind, rng.uniform(0, n - length))
    while start + length > n:  # flush with the far edge however the subtraction rounded
        length = np.nextafter(length, 0)
    return start, length


def random_case(rng):
    """An image shape, window and output size: usual views, or extreme ratios (20000 -> 1, 1 -> 500) on a side."""
    shape, size = [], []
    for _ in range(2):
        kind = rng.integers(4)
        if kind == 0:  # extreme downscale
            shape.append(int(rng.integers(5000, 20001)))
            size.append(int(rng.integers(1, 4)))
        elif kind == 1:  # extreme upscale
            shape.append(int(rng.integers(1, 4)))
            size.append(int(rng.integers(100, 501)))
        else:
            shape.append(int(rng.integers(1, 300)))
            size.append(int(rng.integers(1, 120)))
    if shape[0] * shape[1] > 100_000:  # two extreme downscales: keep the image small enough to be quick
        shape[int(rng.integers(2))] = int(rng.integers(1, 4))
    (top, height), (left, width) = random_span(rng, shape[0]), random_span(rng, shape[1])
    return tuple(shape), (top, left, height, width), tuple(size), bool(rng.integers(2))


def triangle_weights(start, extent, out_size, limit):
    """float64 (out_size, limit): output o's weights over input pixels (centres at i + 0.5), the triangle filter
    of half-width max(scale, 1) around its centre, on the pixels the span touches, normalized to sum to 1."""
    scale = extent / out_size
    support = max(scale, 1.0)
    centres = start + (np.arange(out_size) + 0.5) * scale
    pixels = np.arange(limit)
    weights = np.clip(1.0 - np.abs(pixels[None, :] + 0.5 - centres[:, None]) / support, 0.0, None)
    weights *= (pixels >= np.floor(start)) & (pixels < min(np.ceil(start + extent), limit))
    return weights / weights.sum(axis=1, keepdims=True)


def float_reference(image, window, size, mirror):
    """float64 (h, w, 3): the window's triangle-filter resample in exact arithmetic."""
    top, left, height, width = window
    rows = triangle_weights(top, height, size[0], image.shape[0])
    cols = triangle_weights(left, width, size[1], image.shape[1])
    out = np.einsum("xj,yjc->yxc", cols, np.tensordot(rows, image.astype(np.float64), axes=1), optimize=True)
    return out[:, ::-1] if mirror else out


@pytest.mark.parametrize("simd", INSTRUCTION_SETS)
def test_constant_image_stays_constant_for_any_window_and_scale(simd):
    rng = np.random.default_rng(100 + simd)
    for case in range(300):
        shape, window, size, mirror = random_case(rng)
        colour = rng.integers(0, 256, 3)
        if case % 3 == 0:
            colour[0] = 255  # the extremes: sums at their largest
        image = np.empty((*shape, 3), np.uint8)
        image[:] = colour
        out = resized_with(simd, image, window, size, mirror)
        error = np.abs(out.astype(int) - colour).max()
        assert error <= 1, (shape, window, size, mirror, colour, error)


@pytest.mark.parametrize("window, size", [((0, 0, 3, 20000), (3, 1)), ((0, 0, 20000, 3), (1, 3)),
                                          ((0, 12.49, 2, 0.51), (2, 2)), ((0, 34 - 10.76, 2, 10.76), (2, 21)),
                                          ((0, 0, 1, 1), (500, 500))])
def test_constant_image_stays_exactly_constant_at_the_reported_cases(window, size):
    # a 20000x3 image of 255 resized to 1x3 gave 100; a fractional window flush with the right edge drew zeros
    top, left, height, width = window
    image = np.full((int(np.ceil(top + height)), int(np.ceil(left + width)), 3), 255, np.uint8)
    for simd in INSTRUCTION_SETS:
        for mirror in (False, True):
            assert (resized_with(simd, image, window, size, mirror) == 255).all()


def test_random_windows_match_a_float_reference():
    # every instruction set gives the same pixels (checked above); here the best one against exact arithmetic
    rng = np.random.default_rng(7)
    errors = []
    for _ in range(200):
        shape, window, size, mirror = random_case(rng)
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        if rng.integers(2):  # smooth content too, where a fixed-point bias would show
            ramp = np.linspace(0, 255, shape[1])[None, :, None] + rng.normal(0, 3, (*shape, 3))
            image = np.clip(ramp, 0, 255).astype(np.uint8)
        error = np.abs(resized(image, window, size, mirror) - float_reference(image, window, size, mirror))
        assert error.max() <= 0.75, (shape, window, size, mirror, error.max())  # rounding, plus < 0.25
        errors.append(error.mean())
    assert np.mean(errors) < 0.3


@pytest.mark.parametrize("image_dtype, out_dtype, scratch_dtype", [
    (np.float64, np.uint8, np.int64), (np.int16, np.uint8, np.int64), (np.uint8, np.float64, np.int64),
    (np.uint8, np.uint8, np.int32),
])
def test_arrays_of_other_dtypes_are_refused_not_misread(image_dtype, out_dtype, scratch_dtype):
    image = np.full((10, 12, 3), 200, dtype=image_dtype)
    out = np.zeros((4, 4, 3), dtype=out_dtype)
    scratch = np.zeros(scratch_size(10, 12, (4, 4)), dtype=scratch_dtype)
    with pytest.raises(ValueError, match="must be uint8 arrays and scratch an int64 array"):
        resize_crop(image, 0, 0, 10, 12, False, out, scratch)
    assert not out.any()


@pytest.mark.parametrize("simd", [SIMD_AVX2, SIMD_AVX512])
def test_every_output_width_is_portable_and_writes_nothing_past_the_output(simd):
    """Every width 1..600 (the AVX-512 pass stores 64 bytes at a time: the last store of a row is partial), around
    the 2.5x downscale where it hands the view to AVX2, fractional windows at both edges, mirrored or not: the
    portable pixels, and guard bytes on both sides of the output and past the scratch untouched."""
    if SIMD < simd:
        pytest.skip(f"this CPU lacks the instruction set (it has level {SIMD})")
    rng = np.random.default_rng(10 + simd)
    image = rng.integers(0, 256, (6, 1600, 3), dtype=np.uint8)
    guard = 96

    def run(level, window, size, mirror):
        n = size[0] * size[1] * 3
        out = np.full(n + 2 * guard, 0xA5, np.uint8)
        scratch_bytes = scratch_size(*image.shape[:2], size) * 8
        scratch = np.full(scratch_bytes + guard, 0x5A, np.uint8)
        code = resize_crop_simd_c(image.ctypes.data, *image.shape[:2], *window, mirror, out.ctypes.data + guard, *size,
                                  scratch.ctypes.data, scratch_bytes, level)
        assert code == RESIZE_OK
        assert (out[:guard] == 0xA5).all() and (out[guard + n:] == 0xA5).all(), (level, window, size, mirror)
        assert (scratch[scratch_bytes:] == 0x5A).all(), (level, window, size, mirror)
        return out[guard: guard + n]

    for width in range(1, 601):
        factor = (0.4, 1.0, 2.45, 2.55, 3.1)[width % 5]
        crop = min(1600.0, width * factor + rng.uniform(0, 1))
        left = (0.0, 1600.0 - crop, rng.uniform(0, 1600.0 - crop))[width % 3]
        window, size, mirror = (rng.uniform(0, 2), left, rng.uniform(0.5, 4), crop), (2, width), bool(width % 2)
        np.testing.assert_array_equal(run(simd, window, size, mirror), run(SIMD_NONE, window, size, mirror))


def test_outputs_that_may_not_be_written_are_refused_before_anything_is_written():
    """An array over ``bytes``, a read-only scratch and an unaligned scratch: ValueError, nothing written."""
    image = np.full((30, 40, 3), 9, np.uint8)
    out = np.zeros((8, 8, 3), np.uint8)
    scratch = np.zeros(scratch_size(30, 40, (8, 8)), np.int64)
    over_bytes = np.frombuffer(bytes(out.nbytes), np.uint8).reshape(out.shape)
    with pytest.raises(ValueError, match="out and scratch must be writeable"):
        resize_crop(image, 0, 0, 30, 40, False, over_bytes, scratch)
    assert not over_bytes.any()
    read_only = scratch.copy()
    read_only.setflags(write=False)
    with pytest.raises(ValueError, match="out and scratch must be writeable"):
        resize_crop(image, 0, 0, 30, 40, False, out, read_only)
    unaligned = np.zeros(scratch.nbytes + 8, np.uint8)[1:-7].view(np.int64)
    assert not unaligned.flags.aligned
    with pytest.raises(ValueError, match="8-byte aligned"):
        resize_crop(image, 0, 0, 30, 40, False, out, unaligned)
    assert not out.any() and not scratch.any() and not read_only.any()
    read_only_image = np.frombuffer(image.tobytes(), np.uint8).reshape(image.shape)  # reading one is fine
    resize_crop(read_only_image, 0, 0, 30, 40, False, out, scratch)
    assert (out == 9).all()


def test_a_read_only_memmap_as_out_is_a_value_error_not_a_segfault(tmp_path):
    """Run apart: before the check, the C resampler wrote into the read-only mapping and the process died (SIGSEGV)."""
    import subprocess
    import sys

    path = tmp_path / "out.u8"
    path.write_bytes(bytes(8 * 8 * 3))
    code = f"""
import numpy as np
from ccrop_loaders.core.resample import resize_crop, scratch_size
out = np.memmap({str(path)!r}, np.uint8, mode="r", shape=(8, 8, 3))
try:
    resize_crop(np.full((30, 40, 3), 9, np.uint8), 0, 0, 30, 40, False, out, np.empty(scratch_size(30, 40, (8, 8)),
                np.int64))
except ValueError as err:
    print(err)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "out and scratch must be writeable" in done.stdout
    assert path.read_bytes() == bytes(8 * 8 * 3)


@pytest.mark.parametrize("image_shape, out_shape", [((30, 40), (8, 8, 3)), ((30, 40, 3), (8, 24)),
                                                    ((30, 40, 3, 1), (8, 8, 3))])
def test_images_and_outputs_of_other_dimensions_are_a_value_error(image_shape, out_shape):
    """A 2-D (grey) image was a numba TypingError ("tuple index out of range")."""
    out = np.zeros(out_shape, np.uint8)
    with pytest.raises(ValueError, match=r"3-D uint8 arrays \(H, W, 3\)"):
        resize_crop(np.zeros(image_shape, np.uint8), 0, 0, 30, 40, False, out,
                    np.empty(scratch_size(30, 40, (8, 8)), np.int64))
    assert not out.any()
