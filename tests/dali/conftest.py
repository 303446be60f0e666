import numpy as np
import pytest

pytest.importorskip("nvidia.dali")

from ccrop_loaders import BoxTable
from ccrop_loaders.folder import list_images, load_rgb
from ccrop_loaders.tools.sample_data import make_image_folder, random_boxes

NUM_IMAGES = 16


def has_gpu() -> bool:
    try:
        from nvidia.dali.backend import GetCUDADeviceCount

        return GetCUDADeviceCount() > 0
    except Exception:
        return False


class Folder:
    """An ImageFolder of JPEGs and what Pillow decodes from each, in global-index order."""

    def __init__(self, root, paths, labels):
        self.root, self.paths, self.labels = root, paths, labels
        self.images = [load_rgb(p) for p in paths]

    def __len__(self):
        return len(self.paths)


@pytest.fixture(scope="session")
def folder(tmp_path_factory) -> Folder:
    root = tmp_path_factory.mktemp("dali-images") / "folder"
    make_image_folder(root, NUM_IMAGES, shorter_side=(80, 140), seed=5, quality=95)
    samples, _ = list_images(root)
    return Folder(root, [str(p) for p, _ in samples], [label for _, label in samples])


@pytest.fixture(scope="session")
def _session_table():
    with BoxTable.create(NUM_IMAGES) as t:
        t.write(np.arange(NUM_IMAGES), random_boxes(NUM_IMAGES, seed=1))
        t.epoch, t.seed = 3, 11
        yield t, t.words.copy()


@pytest.fixture
def table(_session_table):
    """A table of NUM_IMAGES random boxes, epoch 3, seed 11: one table for the session, every word of it (header,
    controls, rows, write count) reset to that state before each test. The windows op compiles the table's address
    in, so a fresh table per test compiled every pipeline's windows op again (tests/conftest.py shares the rest)."""
    t, words = _session_table
    t.words[:] = words
    yield t
    t.words[:] = words


def resize_reference(image: np.ndarray, window, size, mirror: bool) -> np.ndarray:
    """The core resampler's view (uint8 (h, w, 3)) of ``window`` ``(top, left, height, width)`` of ``image``
    (uint8 HWC), mirrored if ``mirror``: what the DALI CPU views must equal bit for bit."""
    from ccrop_loaders.core.resample import resize_crop, scratch_size

    top, left, height, width = (int(x) for x in window)
    out = np.empty((*size, 3), np.uint8)
    resize_crop(np.ascontiguousarray(image), top, left, height, width, int(mirror), out,
                np.empty(scratch_size(height, width, size), np.int64))
    return out
