import numpy as np
import pytest

pytest.importorskip("nvidia.dali")

from ccrop_loaders import BoxTable
from ccrop_loaders.folder import list_images, load_rgb
from ccrop_loaders.sample_data import make_image_folder

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


@pytest.fixture
def table():
    rng = np.random.default_rng(1)
    lo, hi = np.sort(rng.uniform(0, 1, (NUM_IMAGES, 2, 2)), axis=2).transpose(2, 0, 1)
    with BoxTable.create(NUM_IMAGES) as t:
        t.write(np.arange(NUM_IMAGES), np.stack([lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]], axis=1))
        t.epoch, t.seed = 3, 11
        yield t
