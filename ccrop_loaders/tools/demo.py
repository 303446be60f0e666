"""Demo: ContrastiveCrop end to end on a small dataset of real photos.

``python -m ccrop_loaders.demo`` builds JPEGs from scikit-image's photos, finds a
box per image from stand-in feature maps (``localize_boxes``), stores the boxes in
a shared ``BoxTable``, runs two-view ContrastiveCrop through every backend that is
installed, prints throughput and writes ``demo_out/contrastive_crops.png``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ccrop_loaders import BoxTable, sample_crops
from .sample_data import make_image_folder

OUTPUT_SIZE = 224


def stand_in_feature_maps(images: list[np.ndarray]):
    """(N, 3, 7, 7) float maps: each pixel's colour distance from the image's border colour, pooled by 32.

    Not a trained encoder (none can be downloaded here), but object-like: large
    where the image differs from its background (squared, so peaks stand out).
    """
    import torch
    import torch.nn.functional as F
    from PIL import Image

    batch = np.stack([np.asarray(Image.fromarray(im).resize((OUTPUT_SIZE, OUTPUT_SIZE), Image.BILINEAR))
                      for im in images]).astype(np.float32)
    x = torch.from_numpy(batch).permute(0, 3, 1, 2)
    border = torch.cat([x[:, :, :16].flatten(2), x[:, :, -16:].flatten(2), x[:, :, :, :16].flatten(2),
                        x[:, :, :, -16:].flatten(2)], dim=2).mean(dim=2)
    return F.avg_pool2d((x - border[:, :, None, None]) ** 2, 32)


def crop_resize_pillow(image, window, size: int = OUTPUT_SIZE) -> np.ndarray:
    """uint8 (size, size, 3): window ``(top, left, h, w)`` of a PIL image, resized with antialiasing."""
    from PIL import Image

    top, left, h, w = (int(v) for v in window)
    return np.asarray(image.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h)))


def run_pillow(paths: list[Path], table: BoxTable, views: int = 2) -> tuple[float, np.ndarray]:
    """Decode with Pillow, windows from the table, crop-resize with Pillow: (pairs per second, windows)."""
    from PIL import Image

    idx = np.arange(len(paths))
    sample_crops([1], [1], [[0, 0, 1, 1]], [0])  # compiled before the clock starts
    t0 = time.perf_counter()
    images = [Image.open(p).convert("RGB") for p in paths]
    heights = np.array([im.height for im in images])
    widths = np.array([im.width for im in images])
    windows = sample_crops(heights, widths, table.read(idx), idx, views=views, alpha=0.6,
                           seed=table.seed, epoch=table.epoch)
    for im, wins in zip(images, windows):
        for window in wins:
            crop_resize_pillow(im, window)
    return len(paths) / (time.perf_counter() - t0), windows


def run_ffcv(paths: list[Path], table: BoxTable, views: int = 2) -> tuple[float, None]:
    """The .beton of these images through ``MultiViewContrastiveCropDecoder`` in an FFCV Loader: pairs per second."""
    import tempfile

    from ffcv.fields.basics import IntDecoder
    from ffcv.loader import OrderOption

    from ccrop_loaders.ffcv import Loader, MultiViewContrastiveCropDecoder
    from ccrop_loaders.ffcv.convert import convert_folder

    root = Path(paths[0]).parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        beton = Path(tmp) / "demo.beton"
        convert_folder(root, beton, workers=2)
        loader = Loader(str(beton), batch_size=32, num_workers=2, order=OrderOption.SEQUENTIAL, drop_last=False,
                        pipelines={"image": [MultiViewContrastiveCropDecoder(table, (OUTPUT_SIZE, OUTPUT_SIZE),
                                                                             num_views=views)],
                                   "label": None, "index": [IntDecoder()]})
        for _ in loader:  # warm-up epoch
            pass
        t0 = time.perf_counter()
        count = sum(len(indices) for _, indices in loader)
        return count / (time.perf_counter() - t0), None


def run_dali(paths: list[Path], table: BoxTable, views: int = 2) -> tuple[float, None]:
    """The images through DALI's file reader and ``contrastive_crop_views`` (CPU, or GPU if one is there)."""
    from ccrop_loaders.dali import ContrastiveCropIterator, file_reader_pipeline

    root = Path(paths[0]).parent.parent
    pipe = file_reader_pipeline(root, table, batch_size=32, num_threads=2, size=(OUTPUT_SIZE, OUTPUT_SIZE),
                                num_views=views, last_batch="partial")
    loader = ContrastiveCropIterator(pipe)
    for _ in loader:  # warm-up epoch
        pass
    t0 = time.perf_counter()
    count = sum(len(batch["index"]) for batch in loader)
    return count / (time.perf_counter() - t0), None


BACKENDS = {"pillow (core sampler)": run_pillow, "ffcv (multi-view decoder)": run_ffcv,
            "dali (file reader, cpu)": run_dali}


def draw_figure(paths: list[Path], boxes: np.ndarray, windows: np.ndarray, out: Path, columns: int = 6) -> None:
    """Images with their box (dashed) and sampled windows, above the views those windows give."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from PIL import Image

    colors = plt.cm.tab10.colors
    fig, axes = plt.subplots(2, columns, figsize=(3.2 * columns, 5.2), gridspec_kw={"height_ratios": [3, 1.1]})
    for c in range(columns):
        image = Image.open(paths[c]).convert("RGB")
        ax = axes[0, c]
        ax.imshow(image)
        y0, x0, y1, x1 = boxes[c] * [image.height, image.width, image.height, image.width]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="red", lw=2.5, ls="--"))
        for v, (top, left, h, w) in enumerate(windows[c]):
            ax.add_patch(Rectangle((left, top), w, h, fill=False, ec=colors[v % 10], lw=1.5))
        ax.set_title(f"sample {c}", fontsize=9)
        strip = np.concatenate([crop_resize_pillow(image, win, 96) for win in windows[c][:4]], axis=1)
        axes[1, c].imshow(strip)
        for ax in axes[:, c]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("ContrastiveCrop: box from the feature maps (red, dashed), sampled windows, and the first views")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The demo's options (``python -m ccrop_loaders.demo`` and ``ccrop demo`` share them)."""
    parser.add_argument("--images", type=int, default=128, help="number of JPEGs to make (default 128)")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = add_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0])).parse_args(argv)
    run(args)


def run(args: argparse.Namespace) -> None:
    """The demo with parsed options (``add_arguments``)."""
    if args.images < 6:
        print("ccrop demo: --images must be at least 6 (the figure shows 6 images)", file=sys.stderr)
        raise SystemExit(2)
    try:
        from PIL import Image
        import matplotlib  # noqa: F401
        import skimage  # noqa: F401
        import torch  # noqa: F401
    except ImportError as err:
        raise SystemExit(f"ccrop demo needs {err.name}, which is not installed: pip install 'ccrop-loaders[demo]'")
    from ccrop_loaders.trainer import localize_boxes

    print(f"making {args.images} JPEGs from scikit-image's photos in {args.out / 'images'} ...")
    samples = make_image_folder(args.out / "images", args.images)
    paths = [p for p, _ in samples]
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    boxes = localize_boxes(stand_in_feature_maps(images), threshold=0.4, input_size=OUTPUT_SIZE).numpy()
    print(f"localized {len(boxes)} boxes; mean box area {np.mean((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])):.2f}")

    with BoxTable.create(len(paths)) as table:
        table.write(np.arange(len(paths)), boxes)
        table.epoch, table.seed = 1, 2022
        print(f"\n{'backend':<28} {'two-view pairs/s':>17}")
        for name, run in BACKENDS.items():
            try:
                rate, _ = run(paths, table)
            except ImportError as err:
                print(f"{name:<28} {'not installed (' + err.name + ')':>17}")
                continue
            print(f"{name:<28} {rate:>17.1f}")
        _, figure_windows = run_pillow(paths, table, views=8)
        out = args.out / "contrastive_crops.png"
        draw_figure(paths, table.read(np.arange(len(paths))), figure_windows, out)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
