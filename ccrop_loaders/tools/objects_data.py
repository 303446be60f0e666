"""An object-centric dataset with ground-truth boxes, made offline from scikit-image's real photos.

Each image pastes one object (a region cut from a real photo with a soft
elliptical mask, or a real silhouette/alpha mask: the horse, the logo) at a
random position and scale (its box covers ``object_area`` of the image, 5% to
40% by default) onto a cluttered background (a crop of a texture or photo with
patches of other textures over it). The label is the object's identity.

Boxes are normalized ``(y0, x0, y1, x1)`` with ``y0 = top / H`` and
``y1 = (bottom + 1) / H`` (the pixel edges of the object's mask, alpha > 0.5),
so a box's area is the object's box area in pixels over ``H * W``.

Needs Pillow and scikit-image (the ``demo`` extra).
``python -m ccrop_loaders.objects_data OUT [--images N] [--heldout M] [--seed S]`` writes a dataset.
"""
from __future__ import annotations

import csv
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

# object name -> (skimage.data function, region (y0, x0, y1, x1) in source pixels or None for the mask's box, mask)
OBJECTS: dict[str, tuple[str, tuple[int, int, int, int] | None, str]] = {
    "astronaut": ("astronaut", (10, 30, 470, 360), "ellipse"),
    "cameraman": ("camera", (40, 60, 500, 420), "ellipse"),
    "cat": ("chelsea", (10, 90, 300, 400), "ellipse"),
    "coffee": ("coffee", (30, 80, 390, 520), "ellipse"),
    "coin": ("coins", (10, 300, 78, 372), "ellipse"),
    "horse": ("horse", None, "silhouette"),
    "logo": ("logo", None, "alpha"),
    "motorcycle": ("stereo_motorcycle", (120, 60, 470, 720), "ellipse"),  # its left image
    "rocket": ("rocket", (100, 270, 420, 370), "ellipse"),
}
BACKGROUNDS = ("brick", "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "retina", "moon", "text",
               "page", "clock")
_SOURCE_SIDE = 256  # sources are cached with their longer side at most this (objects end up at most 128 px)


@dataclass
class ObjectDataset:
    """What ``make_object_dataset`` wrote: per split, the image folder, its truth CSV and arrays in global-index order
    (``folder.list_images`` order, as ``ccrop convert`` and the DALI readers number samples)."""

    root: Path
    classes: list[str]
    folders: dict[str, Path]      # split ("train", "heldout") -> ImageFolder root
    truth: dict[str, Path]        # split -> CSV index,y0,x0,y1,x1,height,width
    boxes: dict[str, np.ndarray]  # split -> float64 (n, 4) normalized (y0, x0, y1, x1)
    sizes: dict[str, np.ndarray]  # split -> int64 (n, 2) (height, width) in pixels
    labels: dict[str, np.ndarray]  # split -> int64 (n,) class index into ``classes``


def _rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.ascontiguousarray(array[..., :3].astype(np.uint8))


def _shrink(image, longest: int):
    from PIL import Image

    scale = min(1.0, longest / max(image.size))
    size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    return image.resize(size, Image.BILINEAR) if scale < 1 else image


def _load_sources() -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[np.ndarray]]:
    """Objects: name -> (uint8 (h, w, 3) pixels, float32 (h, w) mask in [0, 1]); backgrounds: uint8 (h, w, 3)."""
    try:
        import skimage.data
        from PIL import Image
    except ImportError as error:
        from .._extras import missing_extra

        raise missing_extra(error, "demo", "ccrop_loaders.objects_data") from error
    objects = {}
    for name, (source, region, kind) in OBJECTS.items():
        raw = getattr(skimage.data, source)()
        raw = np.asarray(raw[0] if isinstance(raw, tuple) else raw)
        if kind == "silhouette":  # the horse: False inside; filled with a brown coat shaded by the gravel texture
            mask = ~raw
            shade = np.asarray(Image.fromarray(_rgb(skimage.data.gravel())[..., 0]).resize(mask.shape[::-1]))
            coat = np.array([110, 70, 40], np.float32) * (0.6 + 0.8 * shade[..., None] / 255.0)
            pixels = np.clip(coat, 0, 255).astype(np.uint8)
        elif kind == "alpha":
            mask, pixels = raw[..., 3] > 127, _rgb(raw)
        else:
            pixels = _rgb(raw)
        if region is None:
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            region = (rows[0], cols[0], rows[-1] + 1, cols[-1] + 1)
        y0, x0, y1, x1 = region
        pixels = pixels[y0:y1, x0:x1]
        if kind == "ellipse":
            yy, xx = np.mgrid[0:y1 - y0, 0:x1 - x0]
            r = ((yy + 0.5) / (y1 - y0) * 2 - 1) ** 2 + ((xx + 0.5) / (x1 - x0) * 2 - 1) ** 2
            mask = np.clip((1.0 - r) * 8.0, 0.0, 1.0)  # soft edge
        else:
            mask = mask[y0:y1, x0:x1].astype(np.float32)
        image = _shrink(Image.fromarray(pixels), _SOURCE_SIDE)
        alpha = _shrink(Image.fromarray((mask * 255).astype(np.uint8)), _SOURCE_SIDE)
        objects[name] = (np.asarray(image), np.asarray(alpha, np.float32) / 255.0)
    backgrounds = [np.asarray(_shrink(Image.fromarray(_rgb(getattr(skimage.data, b)())), 2 * _SOURCE_SIDE))
                   for b in BACKGROUNDS]
    return objects, backgrounds


def _background_crop(rng: np.random.Generator, source: np.ndarray, height: int, width: int) -> np.ndarray:
    """A random crop (30-100% of the side) of ``source`` resized to (height, width), maybe mirrored and tinted."""
    from PIL import Image

    sh, sw = source.shape[:2]
    frac = rng.uniform(0.3, 1.0)
    ch, cw = max(2, int(sh * frac)), max(2, int(sw * frac * rng.uniform(0.8, 1.0)))
    top, left = rng.integers(0, sh - ch + 1), rng.integers(0, sw - cw + 1)
    crop = Image.fromarray(source[top:top + ch, left:left + cw]).resize((width, height), Image.BILINEAR)
    out = np.asarray(crop, np.float32) * rng.uniform(0.6, 1.3, size=3)  # tint: grey textures get colours
    return np.clip(out[:, ::-1] if rng.random() < 0.5 else out, 0, 255)


def _compose(rng: np.random.Generator, objects: dict, names: list[str], backgrounds: list[np.ndarray], label: int,
             size: tuple[int, int], object_area: tuple[float, float]) -> tuple[np.ndarray, tuple[float, ...]]:
    """One uint8 (H, W, 3) image with object ``names[label]`` and its normalized box (y0, x0, y1, x1)."""
    from PIL import Image

    height, width = (int(v) for v in rng.integers(size[0], size[1] + 1, size=2))
    canvas = _background_crop(rng, backgrounds[rng.integers(len(backgrounds))], height, width)
    for _ in range(rng.integers(2, 6)):  # clutter: patches of other textures
        ph, pw = (max(4, int(s * rng.uniform(0.15, 0.4))) for s in (height, width))
        top, left = rng.integers(0, height - ph + 1), rng.integers(0, width - pw + 1)
        canvas[top:top + ph, left:left + pw] = _background_crop(rng, backgrounds[rng.integers(len(backgrounds))],
                                                                ph, pw)
    pixels, mask = objects[names[label]]
    sh, sw = mask.shape
    aspect = sh / sw * np.exp(rng.uniform(-0.15, 0.15))  # height / width of the pasted object
    area = rng.uniform(*object_area) * height * width
    oh, ow = np.sqrt(area * aspect), np.sqrt(area / aspect)
    shrink = min(1.0, height / oh, width / ow)
    oh, ow = max(2, round(oh * shrink)), max(2, round(ow * shrink))
    flip = rng.random() < 0.5
    obj = np.asarray(Image.fromarray(pixels).resize((ow, oh), Image.BILINEAR), np.float32)
    alpha = np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).resize((ow, oh), Image.BILINEAR),
                       np.float32) / 255.0
    if flip:
        obj, alpha = obj[:, ::-1], alpha[:, ::-1]
    obj = np.clip((obj - 128.0) * rng.uniform(0.8, 1.2) + 128.0 + rng.uniform(-20, 20), 0, 255)
    top, left = int(rng.integers(0, height - oh + 1)), int(rng.integers(0, width - ow + 1))
    region = canvas[top:top + oh, left:left + ow]
    canvas[top:top + oh, left:left + ow] = region * (1 - alpha[..., None]) + obj * alpha[..., None]
    rows, cols = np.flatnonzero((alpha > 0.5).any(axis=1)), np.flatnonzero((alpha > 0.5).any(axis=0))
    box = ((top + rows[0]) / height, (left + cols[0]) / width, (top + rows[-1] + 1) / height,
           (left + cols[-1] + 1) / width)
    return canvas.astype(np.uint8), box


def write_truth(path: str | Path, boxes: np.ndarray, sizes: np.ndarray | None = None) -> None:
    """CSV ``index,y0,x0,y1,x1[,height,width]``, one row per sample in global-index order (what
    ``ccrop diagnose --truth`` reads)."""
    from ccrop_loaders.core.files import replace_atomically

    f = io.StringIO(newline="")
    out = csv.writer(f)
    out.writerow(["index", "y0", "x0", "y1", "x1"] + (["height", "width"] if sizes is not None else []))
    for i, box in enumerate(np.asarray(boxes, np.float64)):
        out.writerow([i, *(f"{v:.6f}" for v in box)] + ([int(v) for v in sizes[i]] if sizes is not None else []))
    replace_atomically(path, f.getvalue().encode())  # a FIFO or device there is refused, never written into


def _lstat_mode(path: Path) -> int | None:
    """``st_mode`` of ``path`` itself (a symlink is not followed), None if there is nothing there."""
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None


def _refuse_special(path: Path, mode: int) -> None:
    """Refuse a symlink (never written through: it may lead out of the output folder), a FIFO or a device."""
    from ccrop_loaders.core.files import file_kind

    if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ValueError(f"{path} is {file_kind(mode)}: objects_data writes only its own regular files and folders, "
                         "never through a link or into a FIFO or device; remove it or choose a new output folder")


def _check_split_folder(folder: Path, names: list[str], count: int) -> None:
    """Refuse a split folder that holds anything this run does not write (a file or class folder of another run
    or of the user): the loaders would list it, shifting the indices and labels the truth CSV gives. Rerunning
    with the same or more images rewrites the same files and is fine. (Image ``n`` is ``names[n % 9]/n.jpg``.)
    A symlink (the folder itself or inside it), a FIFO or a device is refused, named."""
    mode = _lstat_mode(folder)
    if mode is None:
        return
    _refuse_special(folder, mode)
    if not stat.S_ISDIR(mode):
        raise ValueError(f"{folder} exists and is not a folder: choose a new or empty output folder")

    def ours(relative: Path, is_dir: bool) -> bool:
        if relative.parts[0] not in names or names.index(relative.parts[0]) >= count:
            return False
        if is_dir or len(relative.parts) == 1:
            return is_dir and len(relative.parts) == 1
        stem = relative.name.removesuffix(".jpg")
        return (len(relative.parts) == 2 and relative.name.endswith(".jpg") and stem.isascii() and stem.isdigit()
                and len(stem) >= 5 and f"{int(stem):05d}" == stem and int(stem) < count
                and names[int(stem) % len(names)] == relative.parts[0])

    for entry in sorted(folder.rglob("*")):  # rglob does not descend into symlinked folders: they are refused
        relative = entry.relative_to(folder)
        mode = entry.lstat().st_mode
        _refuse_special(entry, mode)
        if not ours(relative, stat.S_ISDIR(mode)):
            raise ValueError(f"{folder} already holds {relative}, which this run would not write (another run with "
                             "more images, or other data): choose a new or empty output folder")


def make_object_dataset(
    root: str | Path,
    num_images: int = 2000,
    *,
    heldout: int = 500,
    seed: int = 0,
    size: tuple[int, int] = (64, 128),
    object_area: tuple[float, float] = (0.05, 0.4),
    quality: int = 90,
    show: bool = True,
) -> ObjectDataset:
    """Write ``root/train`` (``num_images`` JPEGs) and ``root/heldout`` (``heldout`` JPEGs) in ImageFolder layout
    ``<split>/<class>/<n>.jpg``, and ``root/<split>_truth.csv`` (``write_truth``).

    Image sides are drawn in ``size`` (inclusive), the object's box area as a fraction of the image in
    ``object_area``; classes take turns, so they are balanced. Deterministic for a seed (the held-out split has
    its own stream). ``show``: a progress bar. Every file is written beside its target and renamed over it; a
    symlink, FIFO or device where a file or folder goes is refused before anything is written.
    """
    from PIL import Image

    from ccrop_loaders.core.files import replace_atomically
    from ccrop_loaders.folder import list_images

    if not (0 < object_area[0] <= object_area[1] <= 1):
        raise ValueError(f"object_area must be (lo, hi) with 0 < lo <= hi <= 1, got {object_area}")
    if not 8 <= size[0] <= size[1]:
        raise ValueError(f"size must be (lo, hi) pixels with 8 <= lo <= hi, got {size}")
    if num_images < 1 or heldout < 0:
        raise ValueError(f"num_images must be >= 1 and heldout >= 0, got {num_images} and {heldout}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    root = Path(root)
    names = sorted(OBJECTS)
    for split, count in (("train", num_images), ("heldout", heldout)):  # everything checked before anything is written
        _check_split_folder(root / split, names, count)
        truth = root / f"{split}_truth.csv"
        mode = _lstat_mode(truth)
        if mode is not None:
            _refuse_special(truth, mode)
            if not stat.S_ISREG(mode):
                raise ValueError(f"{truth} is a folder: remove it or choose a new output folder")
    objects, backgrounds = _load_sources()
    result = ObjectDataset(root, names, {}, {}, {}, {}, {})
    for split, count, stream in (("train", num_images, 0), ("heldout", heldout, 1)):
        if count == 0:
            continue
        rng = np.random.default_rng([seed, stream])
        folder = root / split
        made = {}
        for n in tqdm(range(count), desc=f"objects {split}", unit="image", leave=False, disable=not show):
            label = n % len(names)
            image, box = _compose(rng, objects, names, backgrounds, label, size, object_area)
            path = folder / names[label] / f"{n:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            encoded = io.BytesIO()
            Image.fromarray(image).save(encoded, format="JPEG", quality=quality)
            replace_atomically(path, encoded.getvalue())
            made[path] = (box, image.shape[:2], label)
        listing = list_images(folder)[0]
        order = [made[p] for p, _ in listing]
        result.folders[split] = folder
        result.boxes[split] = np.array([b for b, _, _ in order], np.float64)
        result.sizes[split] = np.array([s for _, s, _ in order], np.int64)
        result.labels[split] = np.array([label for _, _, label in order], np.int64)
        result.truth[split] = root / f"{split}_truth.csv"
        write_truth(result.truth[split], result.boxes[split], result.sizes[split])
    return result


def main(argv: list[str] | None = None) -> None:
    """``python -m ccrop_loaders.objects_data OUT``: write the object dataset (train, heldout, truth CSVs)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ccrop_loaders.objects_data", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write (created; same-named files are rewritten)")
    parser.add_argument("--images", type=int, default=2000, help="training images (default 2000)")
    parser.add_argument("--heldout", type=int, default=500, help="held-out images (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    for name, value, lo in (("--images", args.images, 1), ("--heldout", args.heldout, 0), ("--seed", args.seed, 0)):
        if value < lo:
            parser.exit(2, f"{parser.prog}: {name} must be at least {lo}, got {value}\n")
    try:
        data = make_object_dataset(args.out, args.images, heldout=args.heldout, seed=args.seed)
    except (ValueError, OSError) as err:
        parser.exit(2, f"{parser.prog}: {err}\n")
    print(f"wrote {args.images} + {args.heldout} JPEGs of {len(data.classes)} objects to {args.out} "
          f"({', '.join(data.classes)}); boxes in {', '.join(str(p) for p in data.truth.values())}")


if __name__ == "__main__":
    main()
