"""DALI: two ContrastiveCrop views against DALI's own two-view RandomResizedCrop, side by side.

Run: ``python -m benchmarks.dali_bench [--device cpu|gpu] [--images 512] [--threads 2]``.
Realistic JPEGs (shorter side 300-500, quality 90) from scikit-image's photos, the
same files, batch size and threads for every contender, each contender's best of
several epochs, contenders alternating so machine noise hits all alike.
Contenders: ContrastiveCrop decoding once (``decode="once"``) and decoding each
window (``"slice"``); DALI RandomResizedCrop as ``decoders.image_random_crop`` per
view, and as one decode + ``random_resized_crop`` per view.
"""
from __future__ import annotations

import argparse
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
from nvidia.dali import fn, pipeline_def, types

from ccrop_loaders import BoxTable
from ccrop_loaders.dali import contrastive_crop_views
from ccrop_loaders.folder import list_images
from ccrop_loaders.sample_data import make_image_folder, random_boxes

from .common import best_times, report

SIZE = (224, 224)
SCALE = (0.2, 1.0)


def build(kind: str, files: list[str], table: BoxTable, device: str, batch_size: int, threads: int):
    device_id = 0 if device == "gpu" else None
    decoder = "mixed" if device == "gpu" else "cpu"

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=device_id, prefetch_queue_depth=2, seed=0)
    def pipe():
        jpegs, index = fn.readers.file(files=files, labels=list(range(len(files))), name="Reader",
                                       random_shuffle=False)
        if kind.startswith("ccrop"):
            views = contrastive_crop_views(jpegs, index, table, size=SIZE, flip=True, device=device,
                                           decode=kind.split("_")[1])
        elif kind == "rrc_random_crop":
            views = [fn.resize(fn.decoders.image_random_crop(jpegs, device=decoder, output_type=types.RGB,
                                                             random_area=SCALE),
                               size=SIZE, antialias=True) for _ in range(2)]
        elif kind == "rrc_decode_once":
            image = fn.decoders.image(jpegs, device=decoder, output_type=types.RGB)
            views = [fn.random_resized_crop(image, size=SIZE, random_area=SCALE, antialias=True) for _ in range(2)]
        elif kind == "decode_only":
            views = [fn.decoders.image(jpegs, device=decoder, output_type=types.RGB)]
        else:
            raise ValueError(kind)
        flips = [fn.flip(v, horizontal=fn.random.coin_flip()) for v in views] if kind.startswith("rrc") else views
        return tuple(flips)

    p = pipe()
    p.build()
    return p


def run_epoch(p, batches: int) -> None:
    for _ in range(batches):
        outputs = p.run()
    if hasattr(outputs[0], "as_cpu"):  # wait for the GPU work
        outputs[0].as_cpu()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    kinds = ["rrc_random_crop", "rrc_decode_once", "ccrop_once", "ccrop_slice", "decode_only"]
    batches = args.images // args.batch_size
    with tempfile.TemporaryDirectory() as tmp, BoxTable.create(args.images) as table:
        folder = Path(tmp) / "images"
        make_image_folder(folder, args.images, shorter_side=(300, 500), quality=90)
        files = [str(p) for p, _ in list_images(folder)[0]]
        table.write(np.arange(args.images), random_boxes(args.images))
        pipes = {k: build(k, files, table, args.device, args.batch_size, args.threads) for k in kinds}
        best = best_times({k: partial(run_epoch, p, batches) for k, p in pipes.items()}, rounds=args.rounds)
        del pipes
    rate = {k: batches * args.batch_size / s for k, s in best.items()}
    rrc = max(rate["rrc_random_crop"], rate["rrc_decode_once"])
    ccrop = max(rate["ccrop_once"], rate["ccrop_slice"])
    report(f"DALI ({args.device}), {args.images} JPEGs (shorter side 300-500, q90), {args.threads} threads, "
           f"batch {args.batch_size}, two {SIZE[0]}x{SIZE[1]} views with flip", [
               ("DALI RRC: image_random_crop x2", f"{rate['rrc_random_crop']:.0f} pairs/s", ""),
               ("DALI RRC: decode once + random_resized_crop x2", f"{rate['rrc_decode_once']:.0f} pairs/s", ""),
               ("ContrastiveCrop, decode once", f"{rate['ccrop_once']:.0f} pairs/s", ""),
               ("ContrastiveCrop, decode each window (slice)", f"{rate['ccrop_slice']:.0f} pairs/s", ""),
               ("ratio best ContrastiveCrop / best DALI RRC", f"{ccrop / rrc:.2f}", "goal >= 1.0"),
               ("decode only", f"{rate['decode_only']:.0f} img/s", ""),
           ])


if __name__ == "__main__":
    main()
