"""FFCV: ContrastiveCrop decoders against FFCV's RandomResizedCrop, side by side on one .beton.

Run: ``python -m benchmarks.ffcv_bench [--images 512] [--workers 2]``. Realistic JPEGs
(shorter side 300-500, quality 90) made from scikit-image's photos; the same
.beton, batch size and threads for every contender; each contender's best of
several epochs, the contenders alternating so machine noise hits all alike.

Each epoch reads the images ``--passes`` times (default 4), so that epochs are
long, as in training: FFCV allocates its batch buffers afresh at every epoch
start, and faulting in their pages (5 slots x batch x views x 150 KB) would
weigh on a 512-image epoch as it never does on a 1.28M-image one (it cost the
two-view decoder ~7% of a 512-image epoch, against ~2% at 4 passes).
"""
from __future__ import annotations

import argparse
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
from ffcv.fields.rgb_image import RandomResizedCropRGBImageDecoder
from ffcv.loader import Loader, OrderOption
from ffcv.pipeline import PipelineSpec

from ccrop_loaders import BoxTable
from ccrop_loaders.tools.bench.contenders import ffcv_decode_only_class
from ccrop_loaders.ffcv import ContrastiveCropRGBImageDecoder, MultiViewContrastiveCropDecoder
from ccrop_loaders.ffcv.convert import convert_folder
from ccrop_loaders.tools.sample_data import make_image_folder, random_boxes

from ccrop_loaders.tools.bench import best_times
from ccrop_loaders.tools.bench.report import print_rows

SIZE = (224, 224)
SCALE = (0.2, 1.0)


DecodeOnly = ffcv_decode_only_class()  # the decode-only ceiling, shared with `ccrop bench`


def run_epoch(loader: Loader) -> None:
    for _ in loader:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--passes", type=int, default=4, help="reads of every image per epoch")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp, BoxTable.create(args.images) as table:
        folder = Path(tmp) / "images"
        make_image_folder(folder, args.images, shorter_side=(300, 500), quality=90)
        beton = Path(tmp) / "bench.beton"
        convert_folder(folder, beton, quality=90, workers=args.workers)
        table.write(np.arange(args.images), random_boxes(args.images))

        def loader(pipelines):
            return Loader(str(beton), batch_size=args.batch_size, num_workers=args.workers,
                          order=OrderOption.SEQUENTIAL, drop_last=False,
                          indices=np.tile(np.arange(args.images), args.passes),
                          pipelines={"label": None, "index": None, **pipelines})

        loaders = {
            "ffcv_rrc": loader({"image": [RandomResizedCropRGBImageDecoder(SIZE, scale=SCALE)]}),
            "ccrop": loader({"image": [ContrastiveCropRGBImageDecoder(table, SIZE)]}),
            "ffcv_rrc_x2": loader({"image": [RandomResizedCropRGBImageDecoder(SIZE, scale=SCALE)],
                                   "image2": PipelineSpec("image", RandomResizedCropRGBImageDecoder(SIZE, scale=SCALE))}),
            "ccrop_multi": loader({"image": [MultiViewContrastiveCropDecoder(table, SIZE, num_views=2, flip=True)]}),
            "decode_only": loader({"image": [DecodeOnly(per_thread=True)]}),
            "decode_only_per_sample": loader({"image": [DecodeOnly(per_thread=False)]}),
        }
        best = best_times({name: partial(run_epoch, ld) for name, ld in loaders.items()}, rounds=args.rounds)
    rate = {name: args.images * args.passes / s for name, s in best.items()}
    threads = f"{args.workers} thread{'s' if args.workers != 1 else ''}"
    print_rows(f"FFCV, {args.images} JPEGs (shorter side 300-500, q90) x {args.passes} per epoch, {threads}, "
           f"batch {args.batch_size}, {SIZE[0]}x{SIZE[1]} views", [
               ("FFCV RandomResizedCrop, 1 view", f"{rate['ffcv_rrc']:.0f} img/s", ""),
               ("ContrastiveCrop, 1 view", f"{rate['ccrop']:.0f} img/s", ""),
               ("ratio ContrastiveCrop / FFCV RRC", f"{rate['ccrop'] / rate['ffcv_rrc']:.2f}", "goal >= 0.97"),
               ("two FFCV RRC pipelines", f"{rate['ffcv_rrc_x2']:.0f} pairs/s", ""),
               ("multi-view ContrastiveCrop, 2 views", f"{rate['ccrop_multi']:.0f} pairs/s", ""),
               ("ratio multi-view / two FFCV pipelines", f"{rate['ccrop_multi'] / rate['ffcv_rrc_x2']:.2f}",
                "goal >= 1.8"),
               ("libjpeg-turbo full decode only, a buffer per thread", f"{rate['decode_only']:.0f} img/s", ""),
               ("ratio multi-view pairs / decode-only images", f"{rate['ccrop_multi'] / rate['decode_only']:.2f}",
                "goal >= 0.8 (>= 1.0 decoding only what views need)"),
               ("same decode, a buffer per sample (as FFCV's decoders)",
                f"{rate['decode_only_per_sample']:.0f} img/s", ""),
               ("ratio multi-view pairs / that", f"{rate['ccrop_multi'] / rate['decode_only_per_sample']:.2f}",
                "for comparison with earlier figures"),
           ])


if __name__ == "__main__":
    main()
