"""Damaged image files on DALI's file-reader path: every kind fails with the file and its global index, before a
decoder allocates (``checked_images`` / ``core.encoded``), and no good image is refused."""
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image
from nvidia.dali import fn, pipeline_def

pytest.importorskip("torch")  # the iterator hands out torch tensors

from ccrop_loaders import BoxTable
from ccrop_loaders.core.encoded import (IMAGE_BAD_SIZE, IMAGE_CORRUPT, IMAGE_EMPTY, IMAGE_OK, IMAGE_TRUNCATED,
                                        IMAGE_UNKNOWN_FORMAT, MAX_IMAGE_PIXELS, encoded_image_status)
from ccrop_loaders.dali.gates import GATE_IMAGE
from ccrop_loaders.dali import (ExternalSourceReader, FolderFiles, contrastive_crop_views, external_source_pipeline,
                                file_reader_pipeline, full_image_pipeline)
from ccrop_loaders.dali.iterator import ContrastiveCropIterator
from ccrop_loaders.tools.sample_data import make_image_folder

from .conftest import has_gpu

SIZE = (32, 32)
VICTIM = 6
KINDS = ["empty", "random", "gif", "truncated", "corrupt_middle", "huge_header", "forged_16k"]
# What the iterator says after the file and index (the empty file fails in DALI's reader, before our check).
SAYS = {"empty": "", "random": ": not an image format", "gif": ": not an image format", "truncated": ": truncated",
        "corrupt_middle": ": corrupt compressed data", "huge_header": ": its header declares 65000x65000 pixels",
        "forged_16k": ": its header declares 16000x16000 pixels"}
REASON = {"random": IMAGE_UNKNOWN_FORMAT, "gif": IMAGE_UNKNOWN_FORMAT, "truncated": IMAGE_TRUNCATED,
          "corrupt_middle": IMAGE_CORRUPT, "huge_header": IMAGE_BAD_SIZE, "forged_16k": IMAGE_BAD_SIZE}


def status(data: bytes) -> tuple[int, int, int]:
    return tuple(int(v) for v in encoded_image_status(np.frombuffer(data, dtype=np.uint8)))


def forge_size(data: bytes, height: int, width: int) -> bytes:
    i = 2
    while not 0xC0 <= data[i + 1] <= 0xC2:  # walk the segments to the frame header
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return data[:i + 5] + struct.pack(">HH", height, width) + data[i + 9:]


def encode(image: np.ndarray, **options) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, **options)
    return buf.getvalue()


def damaged(kind: str, path: str) -> bytes:
    """The bytes of JPEG ``path`` damaged as ``kind``."""
    from PIL import Image

    data = open(path, "rb").read()
    if kind == "empty":
        return b""
    if kind == "random":
        return np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes()
    if kind == "gif":
        return encode(np.asarray(Image.open(path).convert("RGB")), format="GIF")
    if kind == "truncated":
        return data[: len(data) // 2]
    if kind == "corrupt_middle":  # garbage inside the compressed data, holding a marker that cannot be there
        mid = len(data) // 2
        garbage = np.random.default_rng(1).integers(0, 255, 64, dtype=np.uint8).tobytes()
        return data[:mid] + garbage[:20] + b"\xff\x13" + garbage[22:] + data[mid + 64:]
    if kind == "huge_header":  # a tiny JPEG declaring 65000 x 65000 (DALI: std::bad_alloc, a 12.7 GB attempt)
        small = encode(np.zeros((8, 8, 3), dtype=np.uint8), format="JPEG", quality=50)
        assert len(small) < 1000
        return forge_size(small, 65000, 65000)
    assert kind == "forged_16k"  # under MAX_IMAGE_PIXELS, far more than a few KB can hold
    return forge_size(data, 16000, 16000)


@pytest.fixture
def damaged_copy(folder, tmp_path):
    """(files, victim path) of a copy of the folder with file VICTIM damaged as asked."""

    def make(kind: str):
        root = tmp_path / "copy"
        shutil.copytree(folder.root, root)
        files = FolderFiles.from_folder(root)
        victim = files.files[VICTIM]
        bad = damaged(kind, victim)
        with open(victim, "wb") as f:
            f.write(bad)
        return files, victim

    return make


def consume(iterator) -> None:
    for _ in iterator:
        pass


@pytest.mark.parametrize("kind", KINDS)
def test_encoded_status_names_each_kind(folder, kind):
    if kind == "empty":
        assert status(b"")[0] == IMAGE_EMPTY
        return
    code, height, width = status(damaged(kind, folder.paths[VICTIM]))
    assert code == REASON[kind]
    if kind == "huge_header":
        assert (height, width) == (65000, 65000)


@pytest.mark.parametrize("decode", ["once", "slice"])
@pytest.mark.parametrize("kind", KINDS)
def test_file_reader_names_the_file_and_index(damaged_copy, kind, decode):
    files, victim = damaged_copy(kind)
    with BoxTable.create(files.num_samples) as table:
        pipe = file_reader_pipeline(files, table, batch_size=4, num_threads=1, size=SIZE, shuffle=False,
                                    decode=decode)
        with pytest.raises(ValueError, match=rf"cannot decode {re.escape(victim)} \(sample index {VICTIM}\)"
                                             + re.escape(SAYS[kind])):
            consume(ContrastiveCropIterator(pipe))


@pytest.mark.parametrize("kind", KINDS)
def test_full_image_pipeline_names_the_file_and_index(damaged_copy, kind):
    files, victim = damaged_copy(kind)
    pipe = full_image_pipeline(files, batch_size=4, num_threads=1, size=SIZE)
    with pytest.raises(ValueError, match=rf"cannot decode {re.escape(victim)} \(sample index {VICTIM}\)"
                                         + re.escape(SAYS[kind])):
        consume(ContrastiveCropIterator(pipe))


def test_full_image_pipeline_iterates_every_image_once(folder):
    pipe = full_image_pipeline(folder.root, batch_size=5, num_threads=1, size=SIZE)
    it = ContrastiveCropIterator(pipe)
    assert len(it) == 4
    for _ in range(2):
        seen = []
        for batch in it:
            assert batch["image"].shape[1:] == (*SIZE, 3)
            seen += batch["index"].tolist()
        assert seen == list(range(len(folder)))


@pytest.mark.parametrize("decode", ["once", "slice"])
@pytest.mark.parametrize("kind", KINDS)
def test_own_pipeline_error_carries_the_index(damaged_copy, kind, decode):
    files, victim = damaged_copy(kind)
    with BoxTable.create(files.num_samples) as table:
        @pipeline_def(batch_size=4, num_threads=1, device_id=None)
        def pipe():
            jpegs, index = fn.readers.file(files=files.files, labels=files.indices.tolist(), random_shuffle=False)
            return tuple(contrastive_crop_views(jpegs, index, table, size=SIZE, decode=decode))

        p = pipe()
        p.build()
        if kind == "empty":  # DALI's reader fails first and names the file
            expected = rf"File mapping failed: {re.escape(victim)}"
        else:
            expected = rf"input_shape={{{GATE_IMAGE} x 1 x 0}}, slice_anchor={{{VICTIM} x {REASON[kind]} x 0}}"
        with pytest.raises(RuntimeError, match=expected):
            for _ in range(4):
                p.run()


class FileBytes:
    """Picklable loader for the external source: the encoded file of a global index."""

    def __init__(self, paths):
        self.paths = paths

    def __call__(self, index: int) -> bytes:
        with open(self.paths[index], "rb") as f:
            return f.read()


def test_external_source_corrupt_middle_is_named(damaged_copy):
    files, victim = damaged_copy("corrupt_middle")  # Pillow reads its header: only the check in the graph sees it
    with BoxTable.create(files.num_samples) as table:
        reader = ExternalSourceReader(FileBytes(files.files), files.num_samples, table, batch_size=4, shuffle=False)
        pipe = external_source_pipeline(reader, num_threads=1, py_num_workers=1, size=SIZE)
        with pytest.raises(ValueError, match=rf"cannot decode sample index {VICTIM}: load\({VICTIM}\) returned a "
                                             "damaged image: corrupt compressed data"):
            consume(ContrastiveCropIterator(pipe))


@pytest.mark.skipif(not has_gpu(), reason="needs a GPU")
@pytest.mark.parametrize("decode", ["once", "slice"])
@pytest.mark.parametrize("kind", ["random", "truncated", "corrupt_middle", "huge_header"])
def test_gpu_file_reader_names_the_file_and_index(damaged_copy, kind, decode):
    files, victim = damaged_copy(kind)
    with BoxTable.create(files.num_samples) as table:
        pipe = file_reader_pipeline(files, table, batch_size=4, num_threads=1, size=SIZE, shuffle=False,
                                    decode=decode, device="gpu", device_id=0)
        with pytest.raises(ValueError, match=rf"cannot decode {re.escape(victim)} \(sample index {VICTIM}\)"
                                             + re.escape(SAYS[kind])):
            consume(ContrastiveCropIterator(pipe))
        pipe = full_image_pipeline(files, batch_size=4, num_threads=1, size=SIZE, device="gpu", device_id=0)
        with pytest.raises(ValueError, match=rf"cannot decode {re.escape(victim)} \(sample index {VICTIM}\)"):
            consume(ContrastiveCropIterator(pipe))


def test_check_images_leaves_out_what_the_pipeline_refuses(damaged_copy):
    files, victim = damaged_copy("corrupt_middle")  # Pillow decodes it (garbage) without a word
    checked = FolderFiles.from_folder(files.files[0].rsplit("/", 2)[0], check_images=True, workers=1)
    assert [str(p) for p, _ in checked.skipped] == [victim]
    assert "corrupt compressed data" in checked.skipped[0][1]


def test_no_false_positives(folder, tmp_path):
    """Every test image, demo JPEGs of many sizes, and re-encodings (baseline, progressive, 4:4:4/4:2:2/4:2:0,
    grayscale, CMYK, restart markers, PNG of each colour type, BMP, TIFF, WebP, PPM) pass the check and decode."""
    from PIL import Image

    make_image_folder(tmp_path / "demo", 12, shorter_side=(20, 600), seed=9, quality=75)
    paths = list(folder.paths) + sorted(str(p) for p in (tmp_path / "demo").rglob("*.jpg"))
    for path in paths:
        assert status(open(path, "rb").read())[0] == IMAGE_OK, path
    rgb = np.asarray(Image.open(folder.paths[3]).convert("RGB"))
    variants = [encode(rgb, format="JPEG", quality=q, progressive=p, subsampling=s, optimize=o)
                for q in (5, 75, 100) for p in (False, True) for s in (0, 1, 2) for o in (False, True)]
    variants += [encode(rgb[..., 0], format="JPEG"), encode(rgb, format="JPEG", restart_marker_blocks=1)]
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, format="JPEG")
    variants.append(buf.getvalue())
    for mode in ("RGB", "RGBA", "L", "LA", "P", "1", "I;16"):
        buf = io.BytesIO()
        Image.fromarray(rgb).convert(mode).save(buf, format="PNG")
        variants.append(buf.getvalue())
    variants += [encode(rgb, format=f) for f in ("BMP", "TIFF", "WEBP", "PPM")]
    variants.append(encode(np.full((4000, 4000), 7, dtype=np.uint8), format="JPEG", quality=10))  # few bytes/pixel
    variants.append(encode(np.full((4000, 4000), 7, dtype=np.uint8), format="PNG"))
    for n, data in enumerate(variants):
        assert status(data)[0] == IMAGE_OK, n
    assert status(b"\xff\xd8\xff" + b"\x00" * 100)[0] != IMAGE_OK
    assert MAX_IMAGE_PIXELS == 1 << 28

    # and through the pipelines: every variant DALI decodes, in one folder, read with the check in the graph
    root = tmp_path / "variants"
    root.mkdir()
    names = []
    for n, data in enumerate(variants):
        kind = "png" if data[:4] == b"\x89PNG" else "jpg"
        names.append(root / f"{n:03d}.{kind}")
        names[-1].write_bytes(data)
    files = FolderFiles.from_folder(root)
    with BoxTable.create(files.num_samples) as table:
        for decode in ("once", "slice"):
            pipe = file_reader_pipeline(files, table, batch_size=8, num_threads=1, size=SIZE, decode=decode,
                                        last_batch="partial")
            consume(ContrastiveCropIterator(pipe))
    consume(ContrastiveCropIterator(full_image_pipeline(files, batch_size=8, num_threads=1, size=SIZE)))


def test_a_pipeline_built_after_an_ffcv_loader_still_compiles(tmp_path):
    # FFCV 1.0.2's Loader sets ``mutable = False`` on numba's interned uint8[::1] type, which changes its hash
    # under every dispatcher already compiled for it: a later pipeline's check then failed to compile with
    # "KeyError: (OptionalType(array(uint8, 1d, C)), ...)". A fresh process and numba cache, in that order.
    pytest.importorskip("ffcv")
    script = tmp_path / "order.py"
    script.write_text(textwrap.dedent(f"""
        import glob, numba, numpy as np
        from nvidia.dali import fn, pipeline_def, types
        from ccrop_loaders.dali import checked_images
        from ccrop_loaders.core.encoded import encoded_image_status
        files = sorted(glob.glob({str(tmp_path / "*.jpg")!r}))

        @pipeline_def(batch_size=2, num_threads=1, device_id=None)
        def pipe():
            jpegs, index = fn.readers.file(files=files, labels=[0, 1])
            return fn.decoders.image(checked_images(jpegs, index), output_type=types.RGB)

        for built in range(2):
            p = pipe()
            p.build()
            assert len(p.run()[0]) == 2
            print(encoded_image_status(np.fromfile(files[0], np.uint8)))
            numba.uint8[::1].mutable = False  # what OSCacheManager.state_type does when a Loader is built
        print("ok")
    """))
    for i in range(2):
        Image.fromarray(np.full((16, 24, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.jpg")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
