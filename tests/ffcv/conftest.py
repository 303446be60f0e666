from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ffcv")

from ccrop_loaders import BoxTable  # noqa: E402
from ccrop_loaders.ffcv.convert import convert_folder  # noqa: E402
from ccrop_loaders.folder import list_images, load_rgb  # noqa: E402
from ccrop_loaders.tools.sample_data import make_image_folder, random_boxes  # noqa: E402

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


@pytest.fixture(scope="session")
def _session_table():
    with BoxTable.create(NUM_IMAGES) as t:
        t.write(np.arange(NUM_IMAGES), random_boxes(NUM_IMAGES, seed=0))
        t.epoch, t.seed = 2, 77
        yield t, t.words.copy()


@pytest.fixture
def table(_session_table):
    """A table of NUM_IMAGES random boxes, epoch 2, seed 77: one table for the session, every word of it (header,
    controls, rows, write count) reset to that state before and after each test. The decoders compile the table's
    address into the code each Loader builds, so one table lets numba reuse the window code it compiled for it."""
    t, words = _session_table
    t.words[:] = words
    yield t
    t.words[:] = words


def epoch_outputs(dataset, decoder, *, batch_size=5, workers=1, order=None, **loader_options) -> dict:
    """{global index: the sample's decoder output (numpy)} over one epoch of an FFCV Loader with ``decoder``."""
    from ffcv.fields.basics import IntDecoder
    from ffcv.loader import OrderOption

    from ccrop_loaders.ffcv import Loader

    loader = Loader(str(dataset.beton), batch_size=batch_size, num_workers=workers, drop_last=False,
                    order=OrderOption.SEQUENTIAL if order is None else order,
                    pipelines={"image": [decoder], "label": None, "index": [IntDecoder()]}, **loader_options)
    out = {}
    for images, indices in loader:
        for image, index in zip(images, indices[:, 0]):
            out[int(index)] = np.array(image)
    return out

