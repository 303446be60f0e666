from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ffcv")

from ccrop_loaders import BoxTable  # noqa: E402
from ccrop_loaders.ffcv.convert import convert_folder  # noqa: E402
from ccrop_loaders.folder import list_images, load_rgb  # noqa: E402
from ccrop_loaders.sample_data import make_image_folder, random_boxes  # noqa: E402

NUM_IMAGES = 24


class Dataset:
    """A .beton made by ``convert_folder`` and the decoded pixels of each of its samples."""

    def __init__(self, beton: Path, images: list[np.ndarray]):
        self.beton = beton
        self.images = images

    def __len__(self):
        return len(self.images)


def _make(tmp_path_factory, write_mode: str) -> Dataset:
    root = tmp_path_factory.mktemp(f"images-{write_mode}")
    make_image_folder(root / "folder", NUM_IMAGES, shorter_side=(60, 120), seed=3)
    beton = root / "data.beton"
    convert_folder(root / "folder", beton, workers=2, write_mode=write_mode, quality=95)
    samples, _ = list_images(root / "folder")
    return Dataset(beton, [load_rgb(p) for p, _ in samples])


@pytest.fixture(scope="session")
def raw_dataset(tmp_path_factory) -> Dataset:
    """Raw-mode .beton: the decoder's input pixels are exactly ``images[i]``."""
    return _make(tmp_path_factory, "raw")


@pytest.fixture(scope="session")
def jpg_dataset(tmp_path_factory) -> Dataset:
    return _make(tmp_path_factory, "jpg")


@pytest.fixture
def table():
    with BoxTable.create(NUM_IMAGES) as t:
        t.write(np.arange(NUM_IMAGES), random_boxes(NUM_IMAGES, seed=0))
        t.epoch, t.seed = 2, 77
        yield t
