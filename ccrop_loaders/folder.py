"""Image folders as datasets: the one listing every backend shares, so a sample's global index is the same in a
.beton written by ``ccrop convert`` and in a DALI file reader over the same folder."""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def list_images(root: str | Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """``[(path, label)]`` in global-index order, and the class names.

    ImageFolder layout (one folder per class, classes sorted by name, files sorted
    within each), or a flat folder (every label 0).
    """
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


def folder_fingerprint(root: str | Path, listing: tuple[list[tuple[Path, int]], list[str]] | None = None) -> str:
    """SHA-256 (hex) of an image folder's listing: each file's path relative to ``root``, label, size and mtime.

    Any added, removed, renamed, resized or rewritten image changes it: data
    converted or checkpointed from the folder is keyed to it. ``listing``: the
    folder's ``list_images(root)``, when the caller has it already.
    """
    root = Path(root)
    digest = hashlib.sha256()
    samples, classes = list_images(root) if listing is None else listing
    digest.update(json.dumps(classes).encode())
    for path, label in samples:
        st = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def load_rgb(path) -> np.ndarray:
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


def probe_image(path: Path, max_side: int = 65535) -> str | None:
    """None if the image decodes completely and its bytes pass ``core.encoded.encoded_image_status`` (the check the
    DALI pipelines run: it also refuses corrupt JPEG data that Pillow decodes without a word), else why not."""
    from .core.encoded import IMAGE_OK, describe_status, encoded_image_status

    try:
        with open(path, "rb") as f:
            status, height, width = encoded_image_status(np.frombuffer(f.read(), dtype=np.uint8))
        if status != IMAGE_OK:
            return describe_status(status, height, width)
        image = load_rgb(path)
        if image.shape[0] < 1 or image.shape[1] < 1:
            return "empty image"
        if max(image.shape[:2]) > max_side:
            return f"{image.shape[1]}x{image.shape[0]} exceeds the {max_side}-pixel side limit"
    except Exception as err:  # anything Pillow raises on a bad file
        return f"{type(err).__name__}: {err}"
    return None


def find_unreadable(paths: Sequence[Path], *, workers: int = 0, strict: bool = False) -> list[tuple[Path, str]]:
    """Decode every file (``workers`` processes, 0 = all cores, progress bar): ``[(path, reason)]`` of the failures.

    With ``strict`` the first failure raises ``ValueError`` naming the file.
    """
    from tqdm import tqdm

    bad: list[tuple[Path, str]] = []
    with ProcessPoolExecutor(int(workers) or (os.cpu_count() or 1)) as pool:
        problems = pool.map(probe_image, list(paths), chunksize=16)
        for path, problem in tqdm(zip(paths, problems), total=len(paths), desc="checking images", unit="img"):
            if problem is not None:
                if strict:
                    pool.shutdown(cancel_futures=True)
                    raise ValueError(f"cannot read {path}: {problem}")
                bad.append((path, problem))
    return bad


@dataclass
class FolderFiles:
    """An image folder as a file list (DALI's readers take it): ``files[i]`` has global index ``indices[i]`` and class ``labels[i]``.

    Global indices number the readable images in listing order, as ``ccrop
    convert`` numbers the samples of the .beton it writes (it leaves unreadable
    files out too): the same image has the same index, so the same box, in both.
    ``num_samples`` (the box table's size) counts them; ``skipped`` lists the
    ``(path, reason)`` of the files the optional check left out.
    """

    files: list[str]
    indices: np.ndarray
    labels: np.ndarray
    num_samples: int
    classes: list[str]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @classmethod
    def from_folder(cls, root: str | Path, *, check_images: bool = False, workers: int = 0) -> FolderFiles:
        """List ``root`` (ImageFolder or flat; the same order, so the same indices, as ``ccrop convert``).

        ``check_images`` decodes every file first (``workers`` processes, progress
        bar) and leaves out the unreadable ones, as ``ccrop convert`` does.
        """
        samples, classes = list_images(root)
        skipped = find_unreadable([p for p, _ in samples], workers=workers) if check_images else []
        if skipped:
            print(f"ccrop: skipping {len(skipped)} unreadable images of {len(samples)}, e.g. {skipped[0][0]}: "
                  f"{skipped[0][1]}")
        bad = {p for p, _ in skipped}
        keep = [i for i, (p, _) in enumerate(samples) if p not in bad]
        if not keep:
            raise ValueError(f"none of the {len(samples)} images in {root} could be read")
        return cls(files=[str(samples[i][0]) for i in keep], indices=np.arange(len(keep), dtype=np.int64),
                   labels=np.asarray([samples[i][1] for i in keep], dtype=np.int64), num_samples=len(keep),
                   classes=classes, skipped=skipped)

    def index_of(self, path: str) -> int | None:
        """Global index of ``path`` (None if not listed)."""
        try:
            return int(self.indices[self.files.index(str(path))])
        except ValueError:
            return None
