"""Demo data: realistic JPEGs made from the real photos scikit-image ships (no downloads).

Needs Pillow and scikit-image (the ``demo`` extra).
``python -m ccrop_loaders.sample_data OUT [--images N] [--seed S]`` writes an image folder.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

SOURCES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
           "colorwheel", "camera", "coins")


def _source_photos() -> dict[str, np.ndarray]:
    """Name -> uint8 (H, W, 3) photo (grayscale ones repeated to RGB)."""
    try:
        import skimage.data
        import PIL  # noqa: F401
    except ImportError as error:
        from .._extras import missing_extra

        raise missing_extra(error, "demo", "ccrop_loaders.sample_data") from error

    photos = {}
    for name in SOURCES:
        img = getattr(skimage.data, name)()
        photos[name] = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
    return photos


def make_image_folder(
    root: str | Path,
    num_images: int = 64,
    *,
    seed: int = 0,
    shorter_side: tuple[int, int] = (300, 500),
    quality: int = 90,
) -> list[tuple[Path, int]]:
    """Write ``num_images`` JPEGs in ImageFolder layout ``root/<class>/<n>.jpg``; returns ``[(path, label)]``.

    Each image is a random crop (60-100% of the area), maybe mirrored, of one of
    scikit-image's photos (the class), resized so its shorter side lies in
    ``shorter_side``, saved at ``quality``. Deterministic for a seed; files that
    already exist with the same name are replaced (written beside, then renamed
    over them). A symlink, FIFO or device where a class folder or an image goes is
    refused (ValueError naming it): nothing is written through a link.
    """
    import io

    from PIL import Image

    from ccrop_loaders.core.files import replace_atomically

    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(seed)
    photos = _source_photos()
    names = sorted(photos)
    root = Path(root)
    samples = []
    for n in range(num_images):
        label = n % len(names)
        src = photos[names[label]]
        h, w = src.shape[:2]
        frac = np.sqrt(rng.uniform(0.6, 1.0))
        ch, cw = max(8, int(h * frac * rng.uniform(0.85, 1.0))), max(8, int(w * frac * rng.uniform(0.85, 1.0)))
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = src[top: top + ch, left: left + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        short = rng.integers(shorter_side[0], shorter_side[1] + 1)
        s = short / min(ch, cw)
        img = Image.fromarray(np.ascontiguousarray(crop)).resize((max(1, round(cw * s)), max(1, round(ch * s))),
                                                                 Image.BICUBIC)
        path = root / names[label] / f"{n:05d}.jpg"
        _refuse_link(path.parent, stat.S_ISDIR)
        path.parent.mkdir(parents=True, exist_ok=True)
        _refuse_link(path, stat.S_ISREG)
        encoded = io.BytesIO()
        img.save(encoded, format="JPEG", quality=quality)
        replace_atomically(path, encoded.getvalue())
        samples.append((path, label))
    return samples


def _refuse_link(path: Path, is_kind) -> None:
    """ValueError unless ``path`` is absent or (not following a symlink) of the kind ``is_kind`` tests for."""
    from ccrop_loaders.core.files import file_kind

    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not is_kind(mode):
        raise ValueError(f"{path} is {file_kind(mode)}: sample_data writes only its own folders and regular files, "
                         "never through a link or into a FIFO or device")


def random_boxes(num_samples: int, seed: int = 0) -> np.ndarray:
    """float64 (n, 4) valid boxes ``(y0, x0, y1, x1)`` with uniform random corners: stand-ins for tests and benchmarks."""
    rng = np.random.default_rng(seed)
    lo, hi = np.sort(rng.uniform(0, 1, (num_samples, 2, 2)), axis=2).transpose(2, 0, 1)
    return np.stack([lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]], axis=1)


def main(argv: list[str] | None = None) -> None:
    """``python -m ccrop_loaders.sample_data OUT --images N``: write a demo image folder (ImageFolder layout)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ccrop_loaders.sample_data",
                                     description="write demo JPEGs made from scikit-image's photos, "
                                                 "ImageFolder layout OUT/<class>/<n>.jpg")
    parser.add_argument("out", type=Path, help="folder to write (created; same-named files are rewritten)")
    parser.add_argument("--images", type=int, default=64, help="number of JPEGs (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.exit(2, f"{parser.prog}: --images must be at least 1, got {args.images}\n")
    if args.seed < 0:
        parser.exit(2, f"{parser.prog}: --seed must be at least 0, got {args.seed}\n")
    try:
        samples = make_image_folder(args.out, args.images, seed=args.seed)
    except (ValueError, OSError) as err:
        parser.exit(2, f"{parser.prog}: {err}\n")
    print(f"wrote {len(samples)} JPEGs in {len({label for _, label in samples})} classes to {args.out}")


if __name__ == "__main__":
    main()
