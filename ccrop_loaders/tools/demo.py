"""Demo: ContrastiveCrop end to end on a small dataset of real photos.

``ccrop demo`` (or ``python -m ccrop_loaders.demo``) builds JPEGs from
scikit-image's photos, finds a box per image with a stand-in for feature maps
(each pixel's colour distance from the image's border colour, run through
``localize_boxes``: no trained encoder is involved), stores the boxes in a shared
``BoxTable``, runs two-view ContrastiveCrop through every backend that is
installed (the core sampler with Pillow, FFCV's multi-view decoder, DALI's file
reader pipeline), prints their throughput and writes
``demo_out/contrastive_crops.png``: each image with its box and its views'
windows, then the views each backend made, framed in their window's colour.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ccrop_loaders import BoxTable, sample_crops
from ccrop_loaders.core import sample_flip
from ccrop_loaders.folder import list_images
from .sample_data import make_image_folder

OUTPUT_SIZE = 224
FIGURE_SAMPLES = 6
FIGURE_VIEWS = 2
VIEW_SIZE = 112  # the views' side in the figure


def say(message: str) -> None:
    """A progress line, shown at once."""
    print(message, flush=True)


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


def crop_resize_pillow(image, window, size: int = OUTPUT_SIZE, flip: bool = False) -> np.ndarray:
    """uint8 (size, size, 3): window ``(top, left, h, w)`` of a PIL image, resized with antialiasing, maybe mirrored."""
    from PIL import Image

    top, left, h, w = (int(v) for v in window)
    view = np.asarray(image.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h)))
    return np.ascontiguousarray(view[:, ::-1]) if flip else view


def run_pillow(paths: list[Path], table: BoxTable, views: int = 2, keep: int = 0) -> tuple[float, dict]:
    """Decode with Pillow, windows from the core sampler, crop-resize with Pillow, keyed flips.

    Returns (pairs per second, {index: uint8 (views, H, W, 3)} for the first ``keep`` samples).
    """
    from PIL import Image

    idx = np.arange(len(paths))
    sample_crops([1], [1], [[0, 0, 1, 1]], [0])  # compiled before the clock starts
    t0 = time.perf_counter()
    images = [Image.open(p).convert("RGB") for p in paths]
    heights = np.array([im.height for im in images])
    widths = np.array([im.width for im in images])
    windows = sample_crops(heights, widths, table.read(idx), idx, views=views, alpha=0.6,
                           seed=table.seed, epoch=table.epoch)
    kept = {}
    for i, (im, wins) in enumerate(zip(images, windows)):
        made = [crop_resize_pillow(im, window, flip=sample_flip(seed=table.seed, epoch=table.epoch, index=i, view=v))
                for v, window in enumerate(wins)]
        if i < keep:
            kept[i] = np.stack(made)
    return len(paths) / (time.perf_counter() - t0), kept


def run_ffcv(paths: list[Path], table: BoxTable, views: int = 2, keep: int = 0) -> tuple[float, dict]:
    """The .beton of these images through ``MultiViewContrastiveCropDecoder`` in an FFCV Loader.

    Returns (pairs per second, {index: uint8 (views, H, W, 3)} for the first ``keep`` samples).
    """
    import tempfile

    from ffcv.fields.basics import IntDecoder
    from ffcv.loader import OrderOption

    from ccrop_loaders.ffcv import Loader, MultiViewContrastiveCropDecoder
    from ccrop_loaders.ffcv.convert import convert_folder

    root = Path(paths[0]).parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        beton = Path(tmp) / "demo.beton"
        say("ffcv: converting the images to a .beton ...")
        convert_folder(root, beton, workers=2)
        loader = Loader(str(beton), batch_size=32, num_workers=2, order=OrderOption.SEQUENTIAL, drop_last=False,
                        pipelines={"image": [MultiViewContrastiveCropDecoder(table, (OUTPUT_SIZE, OUTPUT_SIZE),
                                                                             num_views=views, flip=True)],
                                   "label": None, "index": [IntDecoder()]})
        say("ffcv: compiling the decoder pipeline on its first batch (once per Loader, about 20 s on 2 cores) ...")
        kept = {}
        for images, indices in loader:  # warm-up epoch, which compiles; its views are the figure's
            for image, index in zip(images, np.asarray(indices).ravel()):
                if index < keep:
                    kept[int(index)] = np.array(image)
        t0 = time.perf_counter()
        count = sum(len(indices) for _, indices in loader)
        return count / (time.perf_counter() - t0), kept


def run_dali(paths: list[Path], table: BoxTable, views: int = 2, keep: int = 0) -> tuple[float, dict]:
    """The images through DALI's file reader and ``contrastive_crop_views`` on the CPU.

    Returns (pairs per second, {index: uint8 (views, H, W, 3)} for the first ``keep`` samples).
    """
    from ccrop_loaders.dali import ContrastiveCropIterator, file_reader_pipeline

    root = Path(paths[0]).parent.parent
    say("dali: building the pipeline (compiles its numba ops, about 10 s on 2 cores) ...")
    pipe = file_reader_pipeline(root, table, batch_size=32, num_threads=2, size=(OUTPUT_SIZE, OUTPUT_SIZE),
                                num_views=views, flip=True, last_batch="partial")
    loader = ContrastiveCropIterator(pipe)
    kept = {}
    for batch in loader:  # warm-up epoch; its views are the figure's
        stacked = np.stack([np.asarray(v.cpu()) for v in batch["views"]], axis=1)  # (B, views, H, W, 3)
        for image, index in zip(stacked, np.asarray(batch["index"].cpu()).ravel()):
            if index < keep:
                kept[int(index)] = image
    t0 = time.perf_counter()
    count = sum(len(batch["index"]) for batch in loader)
    return count / (time.perf_counter() - t0), kept


BACKENDS = {"pillow (core sampler)": run_pillow, "ffcv (multi-view decoder)": run_ffcv,
            "dali (file reader, cpu)": run_dali}


def draw_figure(paths: list[Path], boxes: np.ndarray, windows: np.ndarray, views: dict[str, dict], out: Path,
                seed: int, epoch: int) -> None:
    """One row per sample: the image with its box and its views' windows, then each backend's views.

    ``windows``: int (samples, V, 4) from the core sampler (every backend's); ``views``: backend name ->
    {index: uint8 (V, H, W, 3)}; each view is framed in its window's colour and titled with its backend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import patheffects
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle
    from PIL import Image

    colors = plt.cm.tab10.colors
    rows, num_views = len(windows), windows.shape[1]
    names = [name for name in views if views[name]]
    columns = 1 + num_views * len(names)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 + 1.55 * (columns - 1), 1.0 + 1.75 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [1.6] + [1.0] * (columns - 1)})
    outline = [patheffects.withStroke(linewidth=3.2, foreground="black")]
    for r in range(rows):
        image = Image.open(paths[r]).convert("RGB")
        ax = axes[r, 0]
        ax.imshow(image)
        for v, (top, left, h, w) in enumerate(windows[r]):
            ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, ec=colors[v % 10], lw=2.0))
        y0, x0, y1, x1 = boxes[r] * [image.height, image.width, image.height, image.width]
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="white", lw=1.6, ls="--",
                               path_effects=outline))
        ax.set_title(f"sample {r} ({image.width}x{image.height})", fontsize=7)
        for b, name in enumerate(names):
            for v in range(num_views):
                ax = axes[r, 1 + b * num_views + v]
                ax.imshow(views[name][r][v])
                flip = sample_flip(seed=seed, epoch=epoch, index=r, view=v)
                ax.set_title(f"{name.split()[0]}: view {v}{' (flipped)' if flip else ''}", fontsize=7,
                             color=colors[v % 10])
                for spine in ax.spines.values():
                    spine.set_edgecolor(colors[v % 10])
                    spine.set_linewidth(2.5)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    handles = [Patch(fc="none", ec="black", ls="--", lw=1.2,
                     label="box (white, dashed): colour distance from the border, a stand-in for feature maps")]
    handles += [Line2D([], [], color=colors[v % 10], lw=2.5, label=f"view {v}: its window, and the views it gave")
                for v in range(num_views)]
    fig.legend(handles=handles, loc="upper center", ncol=1 + num_views, fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.5 / fig.get_figheight()))
    fig.suptitle(f"ContrastiveCrop demo (epoch {epoch}, seed {seed}): boxes from a colour-distance stand-in, not a "
                 f"trained encoder\nwindows from the core sampler, which every backend shares; the views each backend "
                 f"made: {', '.join(name.split()[0] for name in names)}", fontsize=9,
                 y=1 - 0.06 / fig.get_figheight(), va="top")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.95 / fig.get_figheight(), wspace=0.08,
                        hspace=0.3)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The demo's options (``python -m ccrop_loaders.demo`` and ``ccrop demo`` share them)."""
    parser.add_argument("--images", type=int, default=128, help="number of JPEGs to make (default 128, at least 6)")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = add_arguments(argparse.ArgumentParser(prog="python -m ccrop_loaders.demo",
                                                 description=__doc__.split("\n\n")[1].replace("\n", " "))
                         ).parse_args(argv)
    run(args)


def run(args: argparse.Namespace) -> None:
    """The demo with parsed options (``add_arguments``)."""
    if args.images < FIGURE_SAMPLES:
        print(f"ccrop demo: --images must be at least {FIGURE_SAMPLES} (the figure shows {FIGURE_SAMPLES} images)",
              file=sys.stderr)
        raise SystemExit(2)
    try:
        from PIL import Image
        import matplotlib  # noqa: F401
        import skimage  # noqa: F401
        import torch  # noqa: F401
    except ImportError as err:
        raise SystemExit(f"ccrop demo needs {err.name}, which is not installed: pip install -e '.[demo]' "
                         "from the checkout")
    from ccrop_loaders.trainer import localize_boxes

    say(f"making {args.images} JPEGs from scikit-image's photos in {args.out / 'images'} ...")
    make_image_folder(args.out / "images", args.images)
    found = len(list_images(args.out / "images")[0])
    if found != args.images:  # left from an earlier run with more images
        raise SystemExit(f"ccrop demo: {args.out / 'images'} holds {found} images, not --images {args.images}: "
                         "remove it or choose another --out")
    paths = [p for p, _ in list_images(args.out / "images")[0]]   # global-index order, as FFCV and DALI number them
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    say("boxes from a stand-in for feature maps (each pixel's colour distance from the image's border; "
        "no trained encoder) ...")
    boxes = localize_boxes(stand_in_feature_maps(images), threshold=0.4, input_size=OUTPUT_SIZE).numpy()
    say(f"localized {len(boxes)} boxes; mean box area "
        f"{np.mean((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])):.2f} of the image")
    say("compiling the core sampler (numba, once, a few seconds) ...")
    sample_crops([1], [1], [[0, 0, 1, 1]], [0])

    out = args.out / "contrastive_crops.png"
    with BoxTable.create(len(paths)) as table:
        table.write(np.arange(len(paths)), boxes)
        table.epoch, table.seed = 1, 2022
        rates, views = {}, {}
        for name, backend in BACKENDS.items():
            try:
                rates[name], views[name] = backend(paths, table, views=FIGURE_VIEWS, keep=FIGURE_SAMPLES)
            except ImportError as err:
                rates[name] = f"not installed ({err.name})"
        say(f"\n{'backend':<28} {'two-view pairs/s':>17}")
        for name, rate in rates.items():
            say(f"{name:<28} {rate:>17.1f}" if isinstance(rate, float) else f"{name:<28} {rate:>17}")
        idx = np.arange(FIGURE_SAMPLES)
        heights = np.array([images[i].shape[0] for i in idx])
        widths = np.array([images[i].shape[1] for i in idx])
        figure_boxes = table.read(idx)
        windows = sample_crops(heights, widths, figure_boxes, idx, views=FIGURE_VIEWS, alpha=0.6, seed=table.seed,
                               epoch=table.epoch)
        draw_figure(paths[:FIGURE_SAMPLES], figure_boxes, windows, views, out, table.seed, table.epoch)
    say(f"\nwrote {out}")


if __name__ == "__main__":
    main()
