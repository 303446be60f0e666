import io
import json
import shutil
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from ffcv.libffcv import imdecode
from ffcv.reader import Reader
from PIL import Image

from ccrop_loaders.ffcv.jpeg import (REGION_BAD_SIZE, REGION_ERROR, REGION_MAX_PIXELS, REGION_OK, REGION_TOO_LARGE,
                                     decode_region)
from ccrop_loaders.tools.sample_data import _source_photos


def jpeg_bytes(image: np.ndarray, **save) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", **save)
    return np.frombuffer(buffer.getvalue(), np.uint8)


def full_decode(data: np.ndarray, height: int, width: int, eighths: int) -> np.ndarray:
    """FFCV's libjpeg-turbo decode of the whole image at scale eighths/8 (the reference)."""
    out = np.empty(((height * eighths + 7) // 8, (width * eighths + 7) // 8, 3), np.uint8)
    assert imdecode(data, out, height, width, height, width, 0, 0, eighths, 8, False, False) == 0
    return out


PHOTO = np.ascontiguousarray(_source_photos()["chelsea"][:237, :301])  # odd sizes: partial iMCUs at both edges


def region(data, eighths, top, left, bottom, right, capacity=None, size=PHOTO.shape[:2]):
    """(code, placed int64 (6,), the decoded pixels uint8 (rows, cols, 3)) of a JPEG expected to be ``size``."""
    buffer = np.empty(capacity or 3 * 1024 * 1024, np.uint8)
    placed = np.zeros(6, np.int64)
    code = decode_region(data.ctypes.data, data.size, eighths, *size, top, left, bottom, right,
                         buffer.ctypes.data, buffer.size, placed.ctypes.data)
    row0, col0, rows, cols = placed[:4]
    return code, placed, buffer[: rows * cols * 3].reshape(rows, cols, 3)

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
        code, (row0, col0, rows, cols, *declared), pixels = region(data, eighths, top, left, bottom, right)
        assert code == REGION_OK and declared == list(PHOTO.shape[:2])
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
    assert code == REGION_OK and tuple(placed[:4]) == (0, 0, *PHOTO.shape[:2])


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
            code, (row0, col0, rows, cols, _, _), pixels = region(data, 8, top, left, top + 30, left + 40)
            if code != REGION_OK or not (pixels[:, left - col0: left - col0 + 40]
                                         == reference[top: top + 30, left: left + 40]).all():
                failures.append((seed, top, left))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def with_declared_size(data: np.ndarray, height: int, width: int) -> np.ndarray:
    """``data`` (a JPEG) with its frame header (SOF0-SOF2 marker) patched to declare ``height`` x ``width``."""
    forged, at = bytearray(data.tobytes()), 2
    while forged[at + 1] not in (0xC0, 0xC1, 0xC2):  # walk the marker segments: FF xx, 2-byte length
        at += 2 + struct.unpack(">H", forged[at + 2: at + 4])[0]
    forged[at + 5: at + 9] = struct.pack(">HH", height, width)
    return np.frombuffer(bytes(forged), np.uint8)


# a ~700-byte progressive JPEG declaring 65500 x 65500 pixels: a full decode would allocate ~13 GB
FORGED = with_declared_size(jpeg_bytes(PHOTO[:48, :48], quality=60, progressive=True), 65500, 65500)
REPO = Path(__file__).resolve().parents[2]


def measured(code: str, *args) -> dict:
    """Run ``code`` in a fresh Python with ``args``; it prints JSON as its last line (timings, rusage's peak RSS)."""
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr
    return json.loads(child.stdout.splitlines()[-1])


def test_forged_huge_jpeg_is_refused_quickly_without_allocating(tmp_path):
    assert FORGED.size < 1000 and 65500 * 65500 > REGION_MAX_PIXELS
    path = tmp_path / "forged.jpg"
    FORGED.tofile(path)
    results = measured("""
        import json, sys, time
        peak_kb = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])  # exec resets it, unlike ru_maxrss
        import numpy as np
        from ccrop_loaders.ffcv.jpeg import decode_region
        data, results = np.fromfile(sys.argv[1], np.uint8), []
        for height, width in [(120, 80), (65500, 65500)]:  # the metadata disagrees; it agrees, beyond the cap
            buffer, placed = np.zeros(1 << 20, np.uint8), np.zeros(6, np.int64)
            before, start = peak_kb(), time.perf_counter()
            code = decode_region(data.ctypes.data, data.size, 8, height, width, 0, 0, 100, 100, buffer.ctypes.data,
                                 buffer.size, placed.ctypes.data)
            results.append({"code": code, "placed": placed.tolist(), "seconds": time.perf_counter() - start,
                            "grown_mb": (peak_kb() - before) / 1024,
                            "untouched": not buffer.any()})
        print(json.dumps(results))
    """, path)
    for result in results:
        assert result["code"] == REGION_BAD_SIZE and result["placed"] == [0, 0, 0, 0, 65500, 65500]
        assert result["seconds"] < 1.0 and result["grown_mb"] < 50 and result["untouched"]


def test_jpeg_of_another_size_than_expected_is_refused_and_named():
    good = JPEGS["progressive"]
    for size in [(237, 300), (236, 301), (0, 0)]:
        code, placed, _ = region(good, 8, 0, 0, 10, 10, size=size)
        assert code == REGION_BAD_SIZE and tuple(placed) == (0, 0, 0, 0, *PHOTO.shape[:2])
    assert region(good, 8, 0, 0, 10, 10)[0] == REGION_OK  # the thread's decoder carries on


def test_loader_refuses_a_beton_with_a_forged_jpeg_naming_sample_and_sizes(jpg_dataset, tmp_path):
    forged_beton, index = tmp_path / "forged.beton", 13
    shutil.copy(jpg_dataset.beton, forged_beton)
    reader = Reader(str(forged_beton))
    ptr, height, width = (int(reader.metadata["f0"][key][index]) for key in ("data_ptr", "height", "width"))
    assert FORGED.size <= int(reader.alloc_table["size"][reader.alloc_table["ptr"] == ptr][0])
    with open(forged_beton, "r+b") as f:  # the sample's JPEG bytes now start with the forged file
        f.seek(ptr)
        f.write(FORGED.tobytes())
    result = measured("""
        import json, sys, time
        peak_kb = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])  # exec resets it, unlike ru_maxrss
        from ffcv.loader import OrderOption
        from ccrop_loaders.ffcv import FullImageRGBImageDecoder, Loader
        loader = Loader(sys.argv[1], batch_size=4, num_workers=1, order=OrderOption.SEQUENTIAL, batches_ahead=1,
                        pipelines={"image": [FullImageRGBImageDecoder((32, 32))], "label": None, "index": None})
        batches = iter(loader)
        next(batches)  # compiled; the forged sample is in a later batch
        before, start, message = peak_kb(), time.perf_counter(), None
        try:
            for _ in batches:
                pass
        except ValueError as error:
            message = str(error)
        print(json.dumps({"message": message, "seconds": time.perf_counter() - start,
                          "grown_mb": (peak_kb() - before) / 1024}))
    """, forged_beton)
    assert result["message"] == (
        f"ccrop_loaders: sample (global index) {index}: its JPEG declares 65500x65500 pixels (height x width) but "
        f"the .beton's metadata says {height}x{width}; the JPEG or the .beton is damaged or forged, "
        "nothing was decoded")
    assert result["seconds"] < 5.0 and result["grown_mb"] < 200
