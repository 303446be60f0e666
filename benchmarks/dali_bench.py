"""DALI: ContrastiveCrop views against DALI's own two-view RandomResizedCrop, and multi-crop against a pair, side by
side.

Run: ``python -m benchmarks.dali_bench [--device cpu|gpu] [--images 256] [--threads 2] [--what all]``.
Realistic JPEGs (shorter side 300-500, quality 90) from scikit-image's photos, the
same files, batch size and threads for every contender, contenders alternating
round by round, each keeping its best round (``ccrop bench``'s timing: a pipeline
runs exactly one epoch per call and nothing ahead while the others are timed).
Two views (``--what pairs``): ContrastiveCrop decoding once (``decode="once"``),
each window (``"slice"``) and the union of the windows (``"union"``), resized by
the default on the CPU (the core's resampler), and the union resized by DALI's
``fn.resize`` (``resize="dali"``), against DALI RandomResizedCrop as
``decoders.image_random_crop`` per view and as one decode + ``random_resized_crop``
per view; a bare full decode for scale. Multi-crop
(``--what multi-crop``): ``contrastive_crop_groups`` with ``multi_crop_groups()``
(2 x 224 at scale (0.14, 1) and 6 x 96 at (0.05, 0.14)) decoding the union and
the whole image, against the two-view 224 pair of the same decode mode.
"""
from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
from nvidia.dali import fn, pipeline_def, types

from ccrop_loaders import BoxTable
from ccrop_loaders.tools.bench.contenders import DaliEpochs
from ccrop_loaders.core import multi_crop_groups
from ccrop_loaders.dali import contrastive_crop_groups, contrastive_crop_views
from ccrop_loaders.folder import list_images
from ccrop_loaders.tools.sample_data import make_image_folder, random_boxes

from ccrop_loaders.tools.bench import best_times
from ccrop_loaders.tools.bench.report import print_rows

SIZE = (224, 224)
SCALE = (0.2, 1.0)
PAIRS = ["rrc_random_crop", "rrc_decode_once", "ccrop_once", "ccrop_slice", "ccrop_union", "ccrop_union_dali",
         "decode_only"]
MULTI_CROP = ["ccrop_once", "ccrop_union", "multi_once", "multi_union"]


def build(kind: str, files: list[str], table: BoxTable, device: str, batch_size: int, threads: int):
    """A built pipeline for contender ``kind`` (``ccrop_<mode>``, ``multi_<mode>``, ``rrc_*``, ``decode_only``)."""
    device_id = 0 if device == "gpu" else None
    decoder = "mixed" if device == "gpu" else "cpu"

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=device_id, prefetch_queue_depth=2, seed=0)
    def pipe():
        jpegs, index = fn.readers.file(files=files, labels=list(range(len(files))), name="Reader",
                                       random_shuffle=False)
        if kind.startswith("ccrop"):  # ccrop_<decode>[_dali]: DALI's resize instead of the default
            return tuple(contrastive_crop_views(jpegs, index, table, size=SIZE, flip=True, device=device,
                                                decode=kind.split("_")[1],
                                                resize="dali" if kind.endswith("_dali") else "auto"))
        if kind.startswith("multi"):
            groups = contrastive_crop_groups(jpegs, index, table, multi_crop_groups(), flip=True, device=device,
                                             decode=kind.split("_")[1])
            return tuple(v for group in groups for v in group)
        if kind == "decode_only":
            return fn.decoders.image(jpegs, device=decoder, output_type=types.RGB)
        if kind == "rrc_random_crop":
            views = [fn.resize(fn.decoders.image_random_crop(jpegs, device=decoder, output_type=types.RGB,
                                                             random_area=SCALE), size=SIZE, antialias=True)
                     for _ in range(2)]
        elif kind == "rrc_decode_once":
            image = fn.decoders.image(jpegs, device=decoder, output_type=types.RGB)
            views = [fn.random_resized_crop(image, size=SIZE, random_area=SCALE, antialias=True) for _ in range(2)]
        else:
            raise ValueError(kind)
        return tuple(fn.flip(v, horizontal=fn.random.coin_flip()) for v in views)

    p = pipe()
    p.build()
    return p


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--what", choices=["pairs", "multi-crop", "all"], default="all")
    args = parser.parse_args(argv)

    kinds = list(dict.fromkeys((PAIRS if args.what != "multi-crop" else [])
                               + (MULTI_CROP if args.what != "pairs" else [])))
    batches = max(1, math.ceil(args.images / args.batch_size))
    with tempfile.TemporaryDirectory() as tmp, BoxTable.create(args.images) as table:
        folder = Path(tmp) / "images"
        make_image_folder(folder, args.images, shorter_side=(300, 500), quality=90)
        files = [str(p) for p, _ in list_images(folder)[0]]
        table.write(np.arange(args.images), random_boxes(args.images))
        epochs = {k: DaliEpochs(build(k, files, table, args.device, args.batch_size, args.threads), batches)
                  for k in kinds}
        best = best_times(epochs, rounds=args.rounds)
        for e in epochs.values():
            e.close()
    rate = {k: batches * args.batch_size / s for k, s in best.items()}
    title = (f"DALI ({args.device}), {args.images} JPEGs (shorter side 300-500, q90), {args.threads} threads, "
             f"batch {args.batch_size}, flip on")
    rows = []
    if args.what != "multi-crop":
        rrc = max(rate["rrc_random_crop"], rate["rrc_decode_once"])
        rows += [
            ("DALI RRC: image_random_crop x2", f"{rate['rrc_random_crop']:.0f} pairs/s", ""),
            ("DALI RRC: decode once + random_resized_crop x2", f"{rate['rrc_decode_once']:.0f} pairs/s", ""),
            *[(f"ContrastiveCrop, decode={mode!r}", f"{rate['ccrop_' + mode]:.0f} pairs/s",
               f"{rate['ccrop_' + mode] / rrc:.2f} x best RRC") for mode in ("once", "slice", "union")],
            ("ContrastiveCrop, decode='union', resize='dali'", f"{rate['ccrop_union_dali']:.0f} pairs/s",
             (f"{rate['ccrop_union_dali'] / rrc:.2f} x best RRC; the core's resampler "
              f"{rate['ccrop_union'] / rate['ccrop_union_dali']:.2f} x DALI's resize")),
            ("ratio best ContrastiveCrop / best DALI RRC",
             f"{max(rate['ccrop_' + m] for m in ('once', 'slice', 'union')) / rrc:.2f}", "goal >= 1.3"),
            ("decode only (whole image)", f"{rate['decode_only']:.0f} img/s", ""),
        ]
    if args.what != "pairs":
        rows += [(f"multi-crop 2x224 + 6x96, decode={mode!r}", f"{rate['multi_' + mode]:.0f} sets/s",
                  (f"cost {rate['ccrop_' + mode] / rate['multi_' + mode]:.2f} x a pair ({mode}); "
                   f"{max(rate['ccrop_once'], rate['ccrop_union']) / rate['multi_' + mode]:.2f} x the best pair; "
                   "goal <= 1.5")) for mode in ("once", "union")]
    print_rows(title, rows)


if __name__ == "__main__":
    main()
