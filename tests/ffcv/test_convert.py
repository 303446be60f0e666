import errno
import json
import os
import threading
import time

import numpy as np
import pytest

from tests.conftest import mount_tiny_tmpfs
from ffcv.fields.basics import IntDecoder
from ffcv.loader import OrderOption
from PIL import Image

from ccrop_loaders.tools.cli import main
from ccrop_loaders.ffcv import FullImageRGBImageDecoder, Loader
from ccrop_loaders.ffcv.convert import convert_folder
from ccrop_loaders.folder import load_rgb


@pytest.fixture
def mixed_folder(tmp_path):
    """Two classes holding every awkward kind of input, and two unreadable files."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    root = tmp_path / "src"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    Image.fromarray(rgb).save(root / "a" / "rgb.jpg", quality=95)
    Image.fromarray(rgb[..., 0]).save(root / "a" / "gray.jpg")
    Image.fromarray(rgb).convert("CMYK").save(root / "a" / "cmyk.jpg")
    Image.fromarray(rgb).convert("P").save(root / "b" / "palette.png")
    rgba = np.dstack([rgb, np.full((40, 50), 255, np.uint8)])
    rgba[:10, :10, 3] = 0
    Image.fromarray(rgba).save(root / "b" / "alpha.png")
    (root / "b" / "not-an-image.jpg").write_bytes(b"hello")
    data = (root / "a" / "rgb.jpg").read_bytes()
    (root / "b" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    return root


def test_every_mode_becomes_rgb():
    import io

    for mode in ("L", "CMYK", "P", "RGBA", "LA", "I;16"):
        buf = io.BytesIO()
        Image.new(mode, (7, 5)).save(buf, format="TIFF" if mode in ("CMYK", "I;16") else "PNG")
        buf.seek(0)
        image = load_rgb(buf)
        assert image.shape == (5, 7, 3) and image.dtype == np.uint8, mode


def test_convert_skips_and_lists_unreadable_files(mixed_folder, tmp_path, capsys):
    out = tmp_path / "out.beton"
    assert main(["convert", str(mixed_folder), str(out), "--workers", "2", "--max-resolution", "32"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 5 images in 2 classes" in printed
    assert "not-an-image.jpg" in printed and "truncated.jpg" in printed
    loader = Loader(str(out), batch_size=5, order=OrderOption.SEQUENTIAL, drop_last=False,
                    pipelines={"image": [FullImageRGBImageDecoder((16, 16))], "label": [IntDecoder()],
                               "index": [IntDecoder()]})
    images, labels, indices = next(iter(loader))
    assert images.shape == (5, 16, 16, 3)
    np.testing.assert_array_equal(indices[:, 0], np.arange(5))
    np.testing.assert_array_equal(labels[:, 0], [0, 0, 0, 1, 1])  # a: cmyk, gray, rgb; b: alpha, palette


def test_strict_stops_naming_the_file_and_keeps_existing_output(mixed_folder, tmp_path, capsys):
    out = tmp_path / "out.beton"
    out.write_bytes(b"an earlier conversion")
    assert main(["convert", str(mixed_folder), str(out), "--workers", "1", "--strict"]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and ("not-an-image.jpg" in err or "truncated.jpg" in err)
    assert out.read_bytes() == b"an earlier conversion"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.beton", "src"]


def test_flat_folder_and_bad_arguments(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (20, 10), (1, 2, 3)).save(flat / "x.png")
    report = convert_folder(flat, tmp_path / "flat.beton", workers=1)
    assert report.written == 1 and report.classes == ["flat"]
    with pytest.raises(FileNotFoundError, match="no image folder"):
        convert_folder(tmp_path / "missing", tmp_path / "x.beton")
    with pytest.raises(ValueError, match="quality"):
        convert_folder(flat, tmp_path / "x.beton", quality=0)
    with pytest.raises(FileNotFoundError, match="output folder"):
        convert_folder(flat, tmp_path / "nope" / "x.beton")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        convert_folder(tmp_path / "empty", tmp_path / "x.beton")


def test_ensure_converted_is_keyed_to_the_source_and_options(tmp_path, capsys):
    import json
    import os

    from ccrop_loaders.ffcv.convert import ensure_converted, source_record
    from ccrop_loaders.tools.sample_data import make_image_folder

    first, other = tmp_path / "first", tmp_path / "other"
    make_image_folder(first, 6, shorter_side=(40, 60), seed=1)
    make_image_folder(other, 6, shorter_side=(40, 60), seed=2)
    beton = tmp_path / "train.beton"
    assert ensure_converted(first, beton, workers=1)
    assert not ensure_converted(first, beton, workers=1)  # unchanged: reused
    assert json.loads(source_record(beton).read_text())["source"] == str(first.resolve())

    assert ensure_converted(other, beton, workers=1)  # --data now points elsewhere: reconverted, said so
    assert "was converted from other images" in capsys.readouterr().out
    assert json.loads(source_record(beton).read_text())["source"] == str(other.resolve())

    image = sorted(other.rglob("*.jpg"))[3]
    Image.open(image).transpose(Image.FLIP_LEFT_RIGHT).save(image)  # same name, new content
    os.utime(image, ns=(1, 1))
    assert ensure_converted(other, beton, workers=1)
    assert ensure_converted(other, beton, workers=1, max_resolution=32)  # other options: other data
    assert not ensure_converted(other, beton, workers=1, max_resolution=32)

    source_record(beton).unlink()  # a .beton of unknown origin (e.g. an older run's) is not trusted
    assert ensure_converted(other, beton, workers=1)
    assert "has no record of its source" in capsys.readouterr().out


def test_waiters_see_the_conversion_or_its_failure(tmp_path):

    from ccrop_loaders.ffcv.convert import converted_samples, ensure_converted, wait_converted
    from ccrop_loaders.tools.sample_data import make_image_folder

    folder = tmp_path / "images"
    make_image_folder(folder, 6, shorter_side=(40, 60), seed=1)
    (folder / "astronaut" / "broken.jpg").write_bytes(b"not an image")
    beton = tmp_path / "train.beton"
    waiter_error = []
    waiter = threading.Thread(target=lambda: waiter_error.append(
        wait_converted(folder, beton, timeout_s=120, poll_s=0.05, workers=1)))
    waiter.start()
    assert ensure_converted(folder, beton, workers=1)
    waiter.join(60)
    assert waiter_error == [None] and converted_samples(beton) == 6  # the readable images: the .beton's samples

    with pytest.raises(ValueError, match="cannot read"):
        ensure_converted(folder, beton, workers=1, max_resolution=30, strict=True)
    with pytest.raises(RuntimeError, match="failed in another process: ValueError: cannot read"):
        wait_converted(folder, beton, timeout_s=60, poll_s=0.05, workers=1, max_resolution=30)


@pytest.fixture
def full_disk(tmp_path, request):
    """A folder with room for FFCV's header but not for one of its data pages: a 1 MiB tmpfs (as root), or a disk
    whose writes fail with ENOSPC in FFCV's worker processes (forked: they inherit the patch)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if request.param == "tmpfs":
        mount_tiny_tmpfs(folder, request)
    else:
        import ffcv.writer

        def no_room(*args, **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        patch = pytest.MonkeyPatch()
        patch.setattr(ffcv.writer, "handle_sample", no_room)
        request.addfinalizer(patch.undo)
    return folder


@pytest.mark.parametrize("full_disk", ["tmpfs", "failing-writes"], indirect=True)
def test_a_full_disk_ends_the_conversion_on_every_rank_and_leaves_nothing(tmp_path, full_disk):
    from ccrop_loaders.ffcv.convert import ensure_converted, wait_converted
    from ccrop_loaders.tools.sample_data import make_image_folder

    folder = tmp_path / "images"
    make_image_folder(folder, 24, shorter_side=(40, 60), seed=2)
    beton = full_disk / "train.beton"
    shm_before = set(os.listdir("/dev/shm"))
    waiter_error = []

    def wait():
        try:
            wait_converted(folder, beton, timeout_s=60, poll_s=0.05, workers=2)
        except Exception as error:
            waiter_error.append(error)

    waiter = threading.Thread(target=wait)
    waiter.start()
    started = time.monotonic()
    with pytest.raises(OSError) as raised:  # FFCV 1.0.2 waited forever for the dead workers
        ensure_converted(folder, beton, workers=2)
    waiter.join(30)
    assert time.monotonic() - started < 60
    assert raised.value.errno == errno.ENOSPC and str(beton) in str(raised.value) and "free" in str(raised.value)
    assert len(waiter_error) == 1 and "failed in another process" in str(waiter_error[0])  # the other rank ends too
    assert sorted(p.name for p in full_disk.iterdir()) == ["train.beton.source.json"]  # the failure, no temp file
    assert set(os.listdir("/dev/shm")) <= shm_before  # FFCV's metadata segment unlinked


def test_a_waiter_gives_up_on_a_conversion_without_signs_of_life(tmp_path):
    from ccrop_loaders.ffcv.convert import HEARTBEAT_S, _key_for, source_record, wait_converted
    from ccrop_loaders.tools.sample_data import make_image_folder

    folder = tmp_path / "images"
    make_image_folder(folder, 4, shorter_side=(40, 60), seed=3)
    beton = tmp_path / "train.beton"
    # a converter that wrote its record once, then died (SIGKILL, another node lost)
    source_record(beton).write_text(json.dumps({**_key_for(folder, {}), "converting": "elsewhere:1", "alive_at": 1.0}))
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="no sign of life"):
        wait_converted(folder, beton, timeout_s=1, poll_s=0.05)
    assert 3 * HEARTBEAT_S <= time.monotonic() - started < 3 * HEARTBEAT_S + 10
