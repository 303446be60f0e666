"""Image folder -> FFCV .beton with ``image`` (RGBImageField), ``label`` and ``index`` (IntField) fields."""
from __future__ import annotations

import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass
class ConversionReport:
    """What ``convert_folder`` wrote and what it skipped (path, reason)."""

    output: Path
    written: int
    classes: list[str]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def list_images(root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """``[(path, label)]`` and class names: ImageFolder layout (one folder per class), or a flat folder (label 0)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no image folder at {root}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    is_image = lambda p: p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS  # noqa: E731
    if classes:
        samples = [(p, label) for label, c in enumerate(classes) for p in sorted((root / c).rglob("*")) if is_image(p)]
    else:
        samples = [(p, 0) for p in sorted(root.iterdir()) if is_image(p)]
    if not samples:
        raise ValueError(f"{root} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return samples, classes or [root.name]


def load_rgb(path: str | Path) -> np.ndarray:
    """uint8 (H, W, 3): any Pillow-readable image (grayscale, CMYK, palette, alpha, PNG) as RGB, EXIF-rotated.

    Transparent pixels are composed over white.
    """
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.getchannel("A"))
        return np.asarray(img.convert("RGB"))


def _probe(path: Path) -> str | None:
    """None if the image decodes completely, else why not."""
    try:
        image = load_rgb(path)
        if image.shape[0] < 1 or image.shape[1] < 1:
            return "empty image"
        if max(image.shape[:2]) > 65535:
            return f"{image.shape[1]}x{image.shape[0]} exceeds FFCV's 65535-pixel side limit"
    except Exception as err:  # anything Pillow raises on a bad file
        return f"{type(err).__name__}: {err}"
    return None


class _FolderDataset:
    """Indexable dataset FFCV's writer reads: (image uint8 (H, W, 3), label, index)."""

    def __init__(self, samples: list[tuple[Path, int]]):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        return load_rgb(path), label, i


def convert_folder(source: str | Path, output: str | Path, *, max_resolution: int | None = None,
                   quality: int = 90, workers: int = 0, strict: bool = False,
                   write_mode: str = "jpg") -> ConversionReport:
    """Write ``source`` (ImageFolder or flat folder) to the .beton ``output``.

    Every file is decoded first (in ``workers`` processes, progress bar); files
    that fail are skipped and reported, or with ``strict`` stop the conversion
    naming the file. The .beton is written to a temporary file and renamed, so an
    existing ``output`` survives a failed conversion. ``index`` is the sample's
    position in the .beton: the global index the box table uses.
    """
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter
    from tqdm import tqdm

    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    if max_resolution is not None and int(max_resolution) < 1:
        raise ValueError(f"max_resolution must be positive, got {max_resolution}")
    if write_mode not in ("jpg", "raw"):
        raise ValueError(f"write_mode must be 'jpg' or 'raw', got {write_mode!r}")
    workers = int(workers) or (os.cpu_count() or 1)
    output = Path(output)
    if not output.parent.is_dir():
        raise FileNotFoundError(f"the output folder {output.parent} does not exist")
    samples, classes = list_images(Path(source))

    skipped: list[tuple[Path, str]] = []
    with ProcessPoolExecutor(workers) as pool:
        problems = pool.map(_probe, [p for p, _ in samples], chunksize=16)
        for (path, _), problem in tqdm(zip(samples, problems), total=len(samples), desc="checking images",
                                       unit="img"):
            if problem is not None:
                if strict:
                    pool.shutdown(cancel_futures=True)
                    raise ValueError(f"cannot read {path}: {problem}")
                skipped.append((path, problem))
    bad = {p for p, _ in skipped}
    good = [s for s in samples if s[0] not in bad]
    if not good:
        raise ValueError(f"none of the {len(samples)} images in {source} could be read")

    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    os.close(fd)
    try:
        writer = DatasetWriter(tmp, {
            "image": RGBImageField(write_mode=write_mode, max_resolution=max_resolution, jpeg_quality=int(quality)),
            "label": IntField(),
            "index": IntField(),
        }, num_workers=workers)
        writer.from_indexed_dataset(_FolderDataset(good), chunksize=64)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ConversionReport(output, len(good), classes, skipped)
