"""FFCV multi-crop (2 x 224 + 6 x 96, one decode per image) against a two-view 224 pair, side by side.

Run: ``python -m benchmarks.multicrop_bench [--images 256] [--workers 2] [--resolutions 256 512]``.
Realistic JPEGs (shorter side 300-500, quality 90) written to one .beton per
``--resolutions`` entry (FFCV's max resolution, as the ffcv-imagenet configs);
for each, the contenders alternate (each one's best of ``--rounds`` epochs)
through FFCV's ``Loader`` with the same batch size and threads:

- pair: ``MultiViewContrastiveCropDecoder(table, 224, num_views=2)`` at the global group's scale (0.14, 1), so
  that the two differ only by the local views;
- multi-crop: ``MultiCropContrastiveCropDecoder(table, multi_crop_groups())``;
- where the time goes: the same decoder with the global group alone (2 x 224
  at scale (0.14, 1)) and with the local group alone (6 x 96 at (0.05, 0.14)).

The goal (issue 15): multi-crop costs at most 1.5x the pair.
"""
from __future__ import annotations

import argparse
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
from ffcv.loader import Loader, OrderOption

from ccrop_loaders import BoxTable
from ccrop_loaders.core import multi_crop_groups
from ccrop_loaders.ffcv import MultiCropContrastiveCropDecoder, MultiViewContrastiveCropDecoder
from ccrop_loaders.ffcv.convert import convert_folder
from ccrop_loaders.tools.sample_data import make_image_folder, random_boxes

from ccrop_loaders.tools.bench import best_times
from ccrop_loaders.tools.bench.report import print_rows

GOAL = 1.5


def run_epoch(loader: Loader) -> None:
    for _ in loader:
        pass


def measure(beton: Path, table: BoxTable, args: argparse.Namespace) -> dict[str, float]:
    """Images per second of each contender on ``beton``, measured alternately."""
    groups = multi_crop_groups()

    def loader(decoder) -> Loader:
        return Loader(str(beton), batch_size=args.batch_size, num_workers=args.workers, order=OrderOption.SEQUENTIAL,
                      drop_last=False, indices=np.tile(np.arange(args.images), args.passes),
                      pipelines={"image": [decoder], "label": None, "index": None})

    loaders = {
        "pair": loader(MultiViewContrastiveCropDecoder(table, groups[0].size, num_views=2, scale=groups[0].scale)),
        "multi_crop": loader(MultiCropContrastiveCropDecoder(table, groups)),
        "global_only": loader(MultiCropContrastiveCropDecoder(table, groups[:1])),
        "local_only": loader(MultiCropContrastiveCropDecoder(table, groups[1:])),
    }
    best = best_times({name: partial(run_epoch, ld) for name, ld in loaders.items()}, rounds=args.rounds)
    return {name: args.images * args.passes / seconds for name, seconds in best.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--passes", type=int, default=16,
                        help="reads of every image per epoch (FFCV allocates its output buffers at each epoch start: "
                             "long epochs, as in training, keep that out of the figures)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512], help="the .betons' max resolution")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp, BoxTable.create(args.images) as table:
        folder = Path(tmp) / "images"
        make_image_folder(folder, args.images, shorter_side=(300, 500), quality=90)
        table.write(np.arange(args.images), random_boxes(args.images))
        for resolution in args.resolutions:
            beton = Path(tmp) / f"max{resolution}.beton"
            convert_folder(folder, beton, max_resolution=resolution, quality=90, workers=args.workers)
            rate = measure(beton, table, args)
            ratio = rate["pair"] / rate["multi_crop"]
            print_rows(f"FFCV multi-crop, {args.images} JPEGs at max resolution {resolution} x {args.passes} per epoch, "
                   f"{args.workers} threads, batch {args.batch_size}", [
                       ("two-view 224 pair", f"{rate['pair']:.0f} img/s", ""),
                       ("multi-crop 2 x 224 + 6 x 96, one decode", f"{rate['multi_crop']:.0f} img/s", ""),
                       ("cost ratio multi-crop / pair", f"{ratio:.2f}", f"goal <= {GOAL}"),
                       ("  its 2 x 224 group alone (scale 0.14-1)", f"{rate['global_only']:.0f} img/s", ""),
                       ("  its 6 x 96 group alone (scale 0.05-0.14)", f"{rate['local_only']:.0f} img/s", ""),
                   ])


if __name__ == "__main__":
    main()
