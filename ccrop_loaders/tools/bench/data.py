"""The benchmark's images: realistic JPEGs from real photos, one set per ``.beton`` max resolution.

For each size S the source folder is converted to ``S.beton`` (``convert_folder(max_resolution=S)``, q90) and the
JPEG bytes the ``.beton`` holds are written out as files, in sample-index order: FFCV, DALI, Pillow and the bare
decoders then all decode the very same bytes. Without FFCV (e.g. a DALI-only GPU machine) the files are resized
with Pillow instead (longest side S, q90), and there is no ``.beton``.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class ImageSet:
    """One size's images: ``files[i]`` is sample ``i`` of ``beton`` (when there is one); ``data[i]`` its bytes."""

    size: int
    beton: Path | None
    files: list[str]
    labels: list[int]
    data: list[np.ndarray]
    shapes: np.ndarray  # int64 (n, 2): height, width
    origin: str

    @property
    def count(self) -> int:
        return len(self.files)


def have(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _from_beton(beton: Path, out: Path) -> tuple[list[str], list[int]]:
    from ffcv.fields.rgb_image import IMAGE_MODES
    from ffcv.reader import Reader

    reader = Reader(str(beton))
    field = reader.field_names.index("image")
    label_field = reader.field_names.index("label")
    sizes = dict(zip(reader.alloc_table["ptr"].tolist(), reader.alloc_table["size"].tolist()))
    raw = np.memmap(beton, np.uint8, mode="r")
    files, labels = [], []
    for i, row in enumerate(reader.metadata):
        image = row[f"f{field}"]
        if image["mode"] != IMAGE_MODES["jpg"]:
            raise ValueError(f"{beton}: sample {i} is not stored as JPEG")
        ptr = int(image["data_ptr"])
        label = int(row[f"f{label_field}"])
        path = out / f"{label:03d}" / f"{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw[ptr: ptr + sizes[ptr]].tobytes())
        files.append(str(path))
        labels.append(label)
    del raw
    return files, labels


def _with_pillow(samples: list[tuple[Path, int]], size: int, out: Path) -> tuple[list[str], list[int]]:
    from PIL import Image

    files, labels = [], []
    for i, (source, label) in enumerate(samples):
        with Image.open(source) as img:
            img = img.convert("RGB")
            scale = size / max(img.size)
            if scale < 1:
                img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
            path = out / f"{label:03d}" / f"{i:06d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            img.save(path, quality=90)
        files.append(str(path))
        labels.append(label)
    return files, labels


def prepare(root: Path, images: int, sizes: list[int], *, workers: int, seed: int = 0) -> dict[int, ImageSet]:
    """Write the source JPEGs and, per size, the ``.beton`` and its JPEGs under ``root``."""
    from PIL import Image

    from ccrop_loaders.folder import list_images
    from ..sample_data import make_image_folder

    source = root / "source"
    make_image_folder(source, images, seed=seed, shorter_side=(300, 500), quality=90)
    sets = {}
    for size in sizes:
        out = root / f"jpeg{size}"
        if have("ffcv"):
            from ccrop_loaders.ffcv.convert import convert_folder

            beton = root / f"{size}.beton"
            convert_folder(source, beton, max_resolution=size, quality=90, workers=workers)
            files, labels = _from_beton(beton, out)
            origin = f"the JPEGs of {beton.name} (convert_folder, max_resolution={size}, q90)"
        else:
            beton = None
            files, labels = _with_pillow(list_images(source)[0], size, out)
            origin = f"Pillow-resized to longest side <= {size}, q90 (FFCV not installed: no .beton)"
        data = [np.fromfile(f, np.uint8) for f in files]
        shapes = []
        for f in files:
            with Image.open(f) as img:
                shapes.append((img.height, img.width))
        sets[size] = ImageSet(size, beton, files, labels, data, np.asarray(shapes, np.int64), origin)
    return sets
