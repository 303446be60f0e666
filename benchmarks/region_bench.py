"""Region rows on FFCV: ContrastiveCropRegionDecoder against the decode-only Loader, side by side, and where time goes.

Run: ``python -m benchmarks.region_bench [--images 256] [--threads 2] [--sizes 256,500]``. Per .beton max
resolution, on the same JPEG bytes (``ccrop bench``'s images), the contenders alternate round by round, best of
``--rounds``: the FFCV Loader with the region decoder (2 views' region rows), the decode-only Loader (full
decode, nothing else), the CPU views decoder (2 views resized on the CPU), and the bare libjpeg-turbo decodes
(full image; the region decoder's regions) without a Loader. Thread-milliseconds per image split the region
Loader's time into its decoding, the Loader's own overhead (decode-only Loader less bare full decode) and the
rest (windows, in-place restride, header). Also: bytes per sample host to device against two 224x224 views,
and what a batch costs in host and device memory.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from ccrop_loaders import BoxTable
from ccrop_loaders.tools.bench import best_times, region_row_figures
from ccrop_loaders.tools.bench.contenders import ffcv_contenders, libjpeg_contender, libjpeg_region_contender
from ccrop_loaders.tools.bench.data import prepare
from ccrop_loaders.tools.bench.report import print_rows
from ccrop_loaders.tools.sample_data import random_boxes

KEYS = ("ffcv_region_2v", "ffcv_decode_only", "ffcv_ccrop_2v", "bare_libjpeg", "bare_libjpeg_region")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="256,500")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=64, help="FFCV epochs of at least this many batches")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    passes = max(1, -(-args.batches * args.batch_size // args.images))
    figures = {}
    with tempfile.TemporaryDirectory(prefix="ccrop-region-") as tmp, BoxTable.create(args.images) as table:
        table.write(np.arange(args.images), random_boxes(args.images))
        sets = prepare(Path(tmp), args.images, sizes, workers=args.threads)
        for size, images in sets.items():
            contenders = [c for c in ffcv_contenders(images, table, args.threads, args.batch_size, passes)
                          if c.key in KEYS]
            contenders += [libjpeg_contender(images, args.threads, passes),
                           libjpeg_region_contender(images, table, args.threads, passes)]
            try:
                best = best_times({c.key: c.run for c in contenders}, args.rounds)
            finally:
                for c in contenders:
                    c.close()
            rate = {c.key: c.items / best[c.key] for c in contenders}
            ms = {k: 1000.0 * args.threads / r for k, r in rate.items()}  # thread-ms per image
            loader = ms["ffcv_decode_only"] - ms["bare_libjpeg"]
            rest = ms["ffcv_region_2v"] - ms["bare_libjpeg_region"] - loader
            rows = region_row_figures(size, images.shapes, args.batch_size)
            mib = 1 << 20
            print_rows(f"max resolution {size}: {args.images} JPEGs x {passes}, {args.threads} threads, batch "
                       f"{args.batch_size}, best of {args.rounds}", [
                ("region rows, images/s", f"{rate['ffcv_region_2v']:.0f}", ""),
                ("decode-only Loader, images/s", f"{rate['ffcv_decode_only']:.0f}", ""),
                ("CPU views (2 x 224), pairs/s", f"{rate['ffcv_ccrop_2v']:.0f}", ""),
                ("region rows / decode-only Loader", f"{rate['ffcv_region_2v'] / rate['ffcv_decode_only']:.3f}",
                 "goal >= 0.95"),
                ("CPU views / decode-only Loader", f"{rate['ffcv_ccrop_2v'] / rate['ffcv_decode_only']:.3f}", ""),
                ("thread-ms/image: region Loader", f"{ms['ffcv_region_2v']:.3f}", ""),
                ("  bare region decode", f"{ms['bare_libjpeg_region']:.3f}", "libjpeg-turbo, same regions"),
                ("  Loader overhead", f"{loader:.3f}", "decode-only Loader - bare full decode"),
                ("  rest", f"{rest:.3f}", "windows, restride, header"),
                ("thread-ms/image: bare full decode", f"{ms['bare_libjpeg']:.3f}", ""),
                ("row bytes per sample", f"{rows['row_bytes']:,}",
                 f"{rows['ratio']:.2f} x two 224x224 views ({rows['views_bytes']:,})"),
                ("rows per batch, MiB", f"{rows['batch_bytes'] / mib:.1f}",
                 f"x {rows['slots']} FFCV buffers: host {rows['host_bytes'] / mib:.0f} MiB, "
                 f"device {rows['device_bytes'] / mib:.0f} MiB"),
            ])
            figures[size] = {"rates": rate, "thread_ms": ms, "loader_ms": loader, "rest_ms": rest, **rows}
    return figures


if __name__ == "__main__":
    main()
