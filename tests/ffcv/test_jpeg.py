import io
import threading

import numpy as np
import pytest
from ffcv.libffcv import imdecode
from PIL import Image

from ccrop_loaders.ffcv.jpeg import REGION_ERROR, REGION_OK, REGION_TOO_LARGE, decode_region
from ccrop_loaders.sample_data import _source_photos


def jpeg_bytes(image: np.ndarray, **save) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", **save)
    return np.frombuffer(buffer.getvalue(), np.uint8)


def full_decode(data: np.ndarray, height: int, width: int, eighths: int) -> np.ndarray:
    """FFCV's libjpeg-turbo decode of the whole image at scale eighths/8 (the reference)."""
    out = np.empty(((height * eighths + 7) // 8, (width * eighths + 7) // 8, 3), np.uint8)
    assert imdecode(data, out, height, width, height, width, 0, 0, eighths, 8, False, False) == 0
    return out


def region(data, eighths, top, left, bottom, right, capacity=None):
    buffer = np.empty(capacity or 3 * 1024 * 1024, np.uint8)
    placed = np.zeros(4, np.int64)
    code = decode_region(data.ctypes.data, data.size, eighths, top, left, bottom, right,
                         buffer.ctypes.data, buffer.size, placed.ctypes.data)
    row0, col0, rows, cols = placed
    return code, placed, buffer[: rows * cols * 3].reshape(rows, cols, 3)


PHOTO = np.ascontiguousarray(_source_photos()["chelsea"][:237, :301])  # odd sizes: partial iMCUs at both edges
JPEGS = {
    "4:2:0": jpeg_bytes(PHOTO, quality=90),
    "4:4:4": jpeg_bytes(PHOTO, quality=90, subsampling=0),
    "4:2:2": jpeg_bytes(PHOTO, quality=90, subsampling=1),
    "progressive": jpeg_bytes(PHOTO, quality=90, progressive=True),
}


@pytest.mark.parametrize("kind", JPEGS)
@pytest.mark.parametrize("eighths", [1, 2, 4, 8])
def test_region_equals_the_same_pixels_of_a_full_decode(kind, eighths):
    data = JPEGS[kind]
    reference = full_decode(data, *PHOTO.shape[:2], eighths)
    height, width = reference.shape[:2]
    rng = np.random.default_rng(eighths)
    for _ in range(25):
        top, left = rng.integers(0, height), rng.integers(0, width)
        bottom, right = rng.integers(top + 1, height + 1), rng.integers(left + 1, width + 1)
        code, (row0, col0, rows, cols), pixels = region(data, eighths, top, left, bottom, right)
        assert code == REGION_OK
        assert row0 == top and rows == bottom - top and col0 <= left and col0 + cols >= right
        # exact where asked (the extra columns at the edges are upsampled without their outer neighbour)
        np.testing.assert_array_equal(pixels[:, left - col0: right - col0], reference[top:bottom, left:right])


def test_gray_jpeg_comes_out_rgb():
    gray = PHOTO[..., 1]
    code, _, pixels = region(jpeg_bytes(gray, quality=95), 8, 0, 0, *gray.shape)
    assert code == REGION_OK and pixels.shape == (*gray.shape, 3)
    assert (pixels[..., 0] == pixels[..., 2]).all() and np.abs(pixels[..., 0].astype(int) - gray).mean() < 2


def test_region_is_clamped_to_the_image():
    code, placed, _ = region(JPEGS["4:2:0"], 8, -5, -5, 10_000, 10_000)
    assert code == REGION_OK and tuple(placed) == (0, 0, *PHOTO.shape[:2])


def test_bad_data_and_small_buffers_are_reported_not_decoded():
    good = JPEGS["4:2:0"]
    assert region(good[: len(good) // 2], 8, 0, 0, 237, 301)[0] != REGION_OK   # truncated: warns, refused
    assert region(np.frombuffer(b"not a jpeg at all", np.uint8), 8, 0, 0, 8, 8)[0] == REGION_ERROR
    garbled = good.copy()
    garbled[len(good) // 3: len(good) // 2] = np.random.default_rng(0).integers(0, 256, len(good) // 2 - len(good) // 3)
    assert region(garbled, 8, 0, 0, 237, 301)[0] != REGION_OK
    assert region(good, 8, 0, 0, 237, 301, capacity=100)[0] == REGION_TOO_LARGE
    cmyk = io.BytesIO()
    Image.fromarray(PHOTO).convert("CMYK").save(cmyk, format="JPEG")
    assert region(np.frombuffer(cmyk.getvalue(), np.uint8), 8, 0, 0, 8, 8)[0] == REGION_ERROR
    # the thread's decoder recovers: the next image decodes
    assert region(good, 8, 0, 0, 237, 301)[0] == REGION_OK


def test_threads_decode_concurrently_with_their_own_decoders():
    data = JPEGS["4:2:0"]
    reference = full_decode(data, *PHOTO.shape[:2], 8)
    failures = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(40):
            top, left = rng.integers(0, 200), rng.integers(0, 250)
            code, (row0, col0, rows, cols), pixels = region(data, 8, top, left, top + 30, left + 40)
            if code != REGION_OK or not (pixels[:, left - col0: left - col0 + 40]
                                         == reference[top: top + 30, left: left + 40]).all():
                failures.append((seed, top, left))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
