"""resample.c and jpeg_region.c under AddressSanitizer and UndefinedBehaviorSanitizer (sanitizer_harness.c)."""
import io
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parents[1] / "ccrop_loaders"
SOURCES = [HERE / "sanitizer_harness.c", PACKAGE / "core" / "resample.c", PACKAGE / "ffcv" / "jpeg_region.c"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]


def compiles(tmp_path: Path, source: str, flags: list[str]) -> bool:
    probe = tmp_path / "probe.c"
    probe.write_text(source)
    return subprocess.run(["gcc", *flags, str(probe), "-o", str(tmp_path / "probe")],
                          capture_output=True).returncode == 0


def jpeg(image: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", **save)
    return buffer.getvalue()


def declaring(data: bytes, height: int, width: int) -> bytes:
    """The JPEG ``data`` with its frame header patched to declare ``height`` x ``width``."""
    forged, at = bytearray(data), 2
    while forged[at + 1] not in (0xC0, 0xC1, 0xC2):
        at += 2 + struct.unpack(">H", forged[at + 2: at + 4])[0]
    forged[at + 5: at + 9] = struct.pack(">HH", height, width)
    return bytes(forged)


def test_resize_and_region_decode_run_clean_under_asan_and_ubsan(tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    if not compiles(tmp_path, "#include <stdio.h>\n#include <jpeglib.h>\nint main(void) { return 0; }\n", []):
        pytest.skip("libjpeg's headers (jpeglib.h) are not installed")
    if not compiles(tmp_path, "int main(void) { return 0; }\n", SANITIZE):
        pytest.skip("gcc's AddressSanitizer / UndefinedBehaviorSanitizer runtimes are not installed")
    harness = tmp_path / "harness"
    build = subprocess.run(["gcc", "-O1", "-Wall", *SANITIZE, "-DCCROP_NO_PYTHON", *map(str, SOURCES),
                            "-ljpeg", "-lm", "-o", str(harness)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr

    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (3, 1, 3), dtype=np.uint8).repeat(40, axis=0).repeat(61, axis=1)
    photo = np.clip(photo.astype(int) + rng.integers(-20, 20, photo.shape), 0, 255).astype(np.uint8)
    good = jpeg(photo, quality=90)
    files = {  # name: (bytes, expected height, width, every code allowed)
        "baseline": (good, 120, 61, {0}),
        "progressive": (jpeg(photo, quality=90, progressive=True), 120, 61, {0}),
        "gray": (jpeg(photo[..., 0], quality=90), 120, 61, {0}),
        "truncated": (good[: len(good) // 2], 120, 61, {0, 1, 2}),
        "random": (rng.integers(0, 256, 3000, dtype=np.uint8).tobytes(), 120, 61, {1}),
        "corrupted": (good[: len(good) // 3] + rng.integers(0, 256, len(good) // 3, dtype=np.uint8).tobytes()
                      + good[2 * len(good) // 3:], 120, 61, {0, 1, 2}),
        "forged": (declaring(jpeg(photo, quality=60, progressive=True), 65500, 65500), 120, 61, {5}),
        "forged_expected": (declaring(jpeg(photo, quality=60, progressive=True), 65500, 65500), 65500, 65500, {5}),
    }
    args = []
    for name, (data, height, width, _) in files.items():
        (tmp_path / name).write_bytes(data)
        args += [str(tmp_path / name), str(height), str(width)]
    run = subprocess.run([str(harness), *args], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "ASAN_OPTIONS": "abort_on_error=0:exitcode=99",
                              "UBSAN_OPTIONS": "print_stacktrace=1"})
    assert run.returncode == 0 and "runtime error" not in run.stderr and "Sanitizer" not in run.stderr, run.stderr
    codes = {}
    for line in run.stdout.splitlines():
        path, _, code = line.split()
        codes.setdefault(Path(path).name, []).append(int(code))
    for name, (_, _, _, allowed) in files.items():
        assert len(codes[name]) == 16, name  # 4 scales x 4 regions
        # the fourth region of each scale goes to a 16-byte buffer: too small (3) unless the data was refused first
        assert set(codes[name][r] for r in range(0, 16) if r % 4 != 3) <= allowed, (name, codes[name])
