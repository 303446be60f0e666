"""BoxUpdater's CUDA path: CUDA feature maps and a CUDA index buffer, both overwritten as soon as update returns.

Run: ``python -m benchmarks.updater_cuda_check [--device cuda|cpu] [--batch 256] [--batches 20]``.
A check pass (the GPU kept busy before each update, so the updater's copies are
still to come when it returns) writes every batch through two reused device
buffers that are overwritten right after ``update``; the table must then hold
the boxes of what each call was given. A timed pass (best of ``--rounds``)
gives the trainer's time in ``update`` and the whole pass with ``flush``, per
batch of (B, 512, 7, 7) maps. Exits 1 if the table is wrong.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ccrop_loaders import BoxTable, BoxUpdater, localize_boxes
from ccrop_loaders.tools.bench.report import print_rows

BUSY_CYCLES = 50_000_000  # torch.cuda._sleep before each checked update: the side stream's copies come later


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU")
    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    b, n = args.batch, args.batch * args.batches
    g = torch.Generator().manual_seed(0)
    sources = [(torch.rand(b, 512, 7, 7, generator=g) ** 4).to(device) for _ in range(4)]
    boxes = [localize_boxes(s, input_size=224).cpu().numpy() for s in sources]
    order = torch.randperm(n, generator=g)
    maps, indices = torch.empty_like(sources[0]), torch.empty(b, dtype=torch.int32, device=device)
    expected = np.zeros((n, 4), np.float32)
    with BoxTable.create(n) as table, BoxUpdater(table, input_size=224) as updater:
        for i in range(args.batches):  # the check pass
            maps.copy_(sources[i % 4])
            indices.copy_(order[i * b:(i + 1) * b])
            expected[order[i * b:(i + 1) * b].numpy()] = boxes[i % 4]
            if cuda:
                torch.cuda._sleep(BUSY_CYCLES)
            updater.update(maps, indices)
            maps.copy_(sources[(i + 1) % 4]).mul_(-1)  # overwritten at once: other maps, other rows
            indices.copy_(order.flip(0)[i * b:(i + 1) * b])
        updater.flush()
        wrong = int((np.abs(table.read() - expected) > 1.5 / 65535).any(axis=1).sum())
        best_update = best_pass = float("inf")
        for _ in range(args.rounds):  # the timed pass
            sync()
            handed, t0 = 0.0, time.perf_counter()
            for i in range(args.batches):
                maps.copy_(sources[i % 4])
                indices.copy_(order[i * b:(i + 1) * b])
                t1 = time.perf_counter()
                updater.update(maps, indices)
                handed += time.perf_counter() - t1
            updater.flush()
            best_update, best_pass = min(best_update, handed), min(best_pass, time.perf_counter() - t0)
    per = 1e3 / args.batches
    print_rows(f"BoxUpdater on {device}: {args.batches} batches of {b} maps (512, 7, 7), {device} int32 indices, "
               "buffers overwritten after each update", [
                   ("rows not holding their batch's boxes", f"{wrong} of {n}", "goal 0" + ("  FAIL" if wrong else "")),
                   ("trainer's time in update(), per batch", f"{best_update * per:.2f} ms", "the loop's cost"),
                   ("whole pass incl. flush, per batch", f"{best_pass * per:.2f} ms", ""),
               ])
    if wrong:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
