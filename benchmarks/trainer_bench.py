"""Trainer side: what handing a batch to BoxUpdater costs the training loop, against localizing in the loop.

Run: ``python -m benchmarks.trainer_bench [--batch 256] [--batches 20]``. Feature maps
(B, 512, 7, 7) as a ResNet's last stage gives for 224x224 inputs, on the GPU when
there is one. ``update`` returns once the work is queued; ``flush`` at the end of
the pass waits for it, and is timed with the pass.
"""
from __future__ import annotations

import argparse
import time

import torch

from ccrop_loaders import BoxTable, BoxUpdater, localize_boxes

from ccrop_loaders.tools.bench.report import print_rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    n = args.batch * args.batches
    maps = [torch.rand(args.batch, 512, 7, 7, device=device) for _ in range(4)]
    indices = [torch.arange(i * args.batch, (i + 1) * args.batch) for i in range(args.batches)]
    with BoxTable.create(n) as table, BoxUpdater(table, input_size=224) as updater:
        updater.update(maps[0], indices[0])  # warm up
        updater.flush()
        best_update, best_pass, best_inline = float("inf"), float("inf"), float("inf")
        for _ in range(5):
            sync()
            t0 = time.perf_counter()
            for i in range(args.batches):
                updater.update(maps[i % 4], indices[i])
            handed = time.perf_counter() - t0
            updater.flush()
            whole = time.perf_counter() - t0
            t0 = time.perf_counter()
            for i in range(args.batches):
                table.write(indices[i].numpy(), localize_boxes(maps[i % 4], input_size=224).cpu().numpy())
            sync()
            inline = time.perf_counter() - t0
            best_update, best_pass, best_inline = min(best_update, handed), min(best_pass, whole), min(best_inline,
                                                                                                    inline)
    per = 1e3 / args.batches
    print_rows(f"BoxUpdater on {device}, {args.batches} batches of {args.batch} maps (512, 7, 7)", [
        ("trainer's time in update(), per batch", f"{best_update * per:.2f} ms", "the loop's cost"),
        ("localize + write in the loop, per batch", f"{best_inline * per:.2f} ms", "what the updater takes off it"),
        ("ratio update() / in-loop", f"{best_update / best_inline:.3f}", ""),
        ("whole pass incl. flush, per batch", f"{best_pass * per:.2f} ms", ""),
    ])


if __name__ == "__main__":
    main()
