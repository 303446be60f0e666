import shutil

import numpy as np
import pytest
from ffcv.loader import OrderOption
from ffcv.reader import Reader

from ccrop_loaders import BoxTable
from ccrop_loaders.ffcv import ContrastiveCropRGBImageDecoder, Loader, MultiViewContrastiveCropDecoder
from ccrop_loaders.ffcv.resample import resize_crop, scratch_size


def corrupt_sample(beton, out, index):
    """Copy ``beton`` to ``out`` with the middle of sample ``index``'s JPEG overwritten by garbage."""
    shutil.copy(beton, out)
    reader = Reader(str(out))
    ptr = int(reader.metadata["f0"]["data_ptr"][index])
    size = int(reader.alloc_table["size"][reader.alloc_table["ptr"] == ptr][0])
    with open(out, "r+b") as f:
        f.seek(ptr + size // 3)
        f.write(np.random.default_rng(0).integers(0, 256, size // 3, dtype=np.uint8).tobytes())


@pytest.mark.parametrize("decoder_type", [ContrastiveCropRGBImageDecoder, MultiViewContrastiveCropDecoder])
def test_corrupt_jpeg_raises_naming_the_sample(jpg_dataset, tmp_path, decoder_type):
    bad = tmp_path / "bad.beton"
    corrupt_sample(jpg_dataset.beton, bad, 13)
    with BoxTable.create(len(jpg_dataset)) as table:
        loader = Loader(str(bad), batch_size=4, num_workers=2, order=OrderOption.SEQUENTIAL,
                        pipelines={"image": [decoder_type(table, (32, 32))], "label": None, "index": None})
        with pytest.raises(ValueError) as info:
            for _ in loader:
                pass
    assert "could not decode" in str(info.value) and "13" in str(info.value)
    # the dataset and the table are untouched
    assert jpg_dataset.beton.read_bytes() != bad.read_bytes()


def test_checkerboard_downscale_is_antialiased():
    board = ((np.indices((400, 400)).sum(axis=0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, axis=2)
    out = np.empty((235, 235, 3), np.uint8)
    resize_crop(board, 0, 0, 400, 400, False, out, np.empty(scratch_size(400), np.float32))
    assert out.std() < 10
    assert abs(out.mean() - 127.5) < 2


@pytest.mark.parametrize("window, size", [((0, 0, 1, 1), (8, 8)), ((3, 5, 7, 2), (64, 16)),
                                          ((0, 0, 50, 60), (50, 60)), ((10, 0, 40, 60), (7, 200))])
def test_resize_edge_cases_constant_image_stays_constant(window, size):
    image = np.full((50, 60, 3), (10, 200, 33), np.uint8)
    out = np.empty((*size, 3), np.uint8)
    resize_crop(image, *window, True, out, np.empty(scratch_size(60), np.float32))
    assert (out == (10, 200, 33)).all()


def test_identity_resize_and_mirror():
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    out = np.empty_like(image)
    scratch = np.empty(scratch_size(40), np.float32)
    resize_crop(image, 0, 0, 30, 40, False, out, scratch)
    np.testing.assert_array_equal(out, image)
    resize_crop(image, 0, 0, 30, 40, True, out, scratch)
    np.testing.assert_array_equal(out, image[:, ::-1])


def test_resize_compiles_again_after_a_loader_is_built(raw_dataset):
    # FFCV 1.0.2 sets ``mutable = False`` on numba's interned uint8[::1] type when a Loader is built
    # (OSCacheManager.state_type); a 1-D uint8 buffer typed before that then fails to compile after it
    import numba

    image = np.full((20, 30, 3), 77, np.uint8)
    out = np.empty((10, 10, 3), np.uint8)
    scratch = np.empty(scratch_size(30), np.float32)
    numba.njit(resize_crop.py_func)(image, 1.0, 2.0, 15.0, 20.0, True, out, scratch)
    with BoxTable.create(len(raw_dataset)) as table:
        loader = Loader(str(raw_dataset.beton), batch_size=4, num_workers=1, order=OrderOption.SEQUENTIAL,
                        pipelines={"image": [ContrastiveCropRGBImageDecoder(table, (16, 16))], "label": None,
                                   "index": None})
        next(iter(loader))
        out[:] = 0
        numba.njit(resize_crop.py_func)(image, 1, 2, 15, 20, False, out, scratch)
        assert (out == 77).all()
