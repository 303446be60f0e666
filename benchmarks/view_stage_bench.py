"""The torch view stage: pixel agreement with the C resampler, cost per batch, FLOPs, bytes per sample moved.

Run: ``python -m benchmarks.view_stage_bench [--device cpu|cuda] [--batch 256] [--max-side 500] [--threads 2]``.
Each sample is an image of 0.75 to 1 x ``--max-side`` per side; its views'
windows come from the core sampler (keyed, the full box), its region is the
union of its windows (what the FFCV region decoder hands over), written as a
region row (``core.region_rows``) of capacity max-side x max-side. Timed: the
stage on a batch of rows already on the device (``from_rows``, checked), for
the SimCLR pair 2 x 224 and DINO's multi-crop 2 x 224 + 6 x 96, best of
``--rounds``. Agreement: the stage's levels (before normalization) against
``core.resample.resize_crop`` of the same region and window, float32 and
float16 products. Exits 1 if an agreement goal is missed.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ccrop_loaders.core.groups import ViewGroup, first_views, multi_crop_groups
from ccrop_loaders.core.region_rows import RowFormat, write_region_row
from ccrop_loaders.core.resample import resize_crop, scratch_size
from ccrop_loaders.core.sampler import FULL_BOX, sample_crops
from ccrop_loaders.tools.bench.report import print_rows
from ccrop_loaders.trainer import ViewStage

WITHIN_ONE_GOAL, MAX_GOAL = 0.999, 2


def region_batch(groups, batch: int, max_side: int, seed: int = 0):
    """(rows uint8 (batch, row_bytes), fmt, samples [(region, windows (V, 4), flips (V,))]) of union regions."""
    rng = np.random.default_rng(seed)
    views = sum(g.num_views for g in groups)
    fmt = RowFormat((max_side, max_side), views)
    rows = np.zeros((batch, fmt.row_bytes), np.uint8)
    heights = rng.integers(max(1, 3 * max_side // 4), max_side + 1, batch)
    widths = rng.integers(max(1, 3 * max_side // 4), max_side + 1, batch)
    boxes = np.tile(np.asarray(FULL_BOX, np.float64), (batch, 1))
    windows = np.concatenate([sample_crops(heights, widths, boxes, np.arange(batch), views=start + g.num_views,
                                           scale=g.scale, ratio=g.ratio, seed=seed)[:, start:]
                              for g, start in zip(groups, first_views(groups))], axis=1).astype(np.float64)
    flips = rng.integers(0, 2, (batch, views)).astype(bool)
    samples = []
    for i in range(batch):
        h, w = int(heights[i]), int(widths[i])
        y, x = np.mgrid[:h, :w]
        photo_like = 128 + 90 * np.sin(y / 9.0 + i)[..., None] * np.cos(x / 13.0)[..., None] * [1.0, 0.6, -0.8]
        image = np.clip(photo_like + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        top, left = windows[i, :, 0].min(), windows[i, :, 1].min()
        bottom, right = (windows[i, :, 0] + windows[i, :, 2]).max(), (windows[i, :, 1] + windows[i, :, 3]).max()
        region = np.ascontiguousarray(image[int(top):int(bottom), int(left):int(right)])
        local = windows[i] - [top, left, 0, 0]
        write_region_row(rows[i], max_side, max_side, region, local, flips[i])
        samples.append((region, local, flips[i]))
    return torch.from_numpy(rows), fmt, samples


def agreement(views, samples, groups) -> tuple[float, float, float]:
    """(share within 1 level, share equal, max difference) of the stage's levels against ``resize_crop``."""
    diffs = []
    first = 0
    for group, out in zip(groups, views):
        out = out.float().cpu().numpy()
        expected = np.empty((*group.size, 3), np.uint8)
        for i, (region, windows, flips) in enumerate(samples):
            scratch = np.empty(scratch_size(*region.shape[:2], group.size), np.int64)
            for j in range(group.num_views):
                resize_crop(region, *windows[first + j], flips[first + j], expected, scratch)
                diffs.append(np.abs(out[i, j].transpose(1, 2, 0) - expected).ravel())
        first += group.num_views
    diff = np.concatenate(diffs)
    return float((diff <= 1).mean()), float((diff == 0).mean()), float(diff.max())


def best_time(fn, rounds: int, sync) -> float:
    fn()  # warm up: allocator, kernels
    best = float("inf")
    for _ in range(rounds):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--max-side", type=int, default=500, help="the .beton's largest side: the rows' capacity")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--agreement-batch", type=int, default=16, help="samples compared with resize_crop")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--size", type=int, default=224, help="the global views' side; local ones: 96/224 of it")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    side = args.size
    pair = (ViewGroup((side, side), 2),)
    dino = multi_crop_groups(side, max(1, side * 96 // 224))
    failed = False

    rows_out = []
    check_rows, fmt, samples = region_batch(dino, args.agreement_batch, args.max_side, seed=1)
    for compute in (torch.float32, torch.float16):
        stage = ViewStage(dino, mean=None, std=None, compute_dtype=compute)
        within, equal, most = agreement(stage.from_rows(check_rows.to(device), fmt), samples, dino)
        ok = within >= WITHIN_ONE_GOAL and most <= MAX_GOAL
        failed |= not ok
        name = str(compute).replace("torch.", "")
        rows_out += [(f"{name} products: values within 1 level", f"{within:.5f}",
                      f"goal >= {WITHIN_ONE_GOAL}" + ("" if ok else "  FAIL")),
                     (f"{name} products: values equal", f"{equal:.5f}", ""),
                     (f"{name} products: largest difference", f"{most:.0f}", f"goal <= {MAX_GOAL}")]
    print_rows(f"view stage on {device}: levels against resize_crop, {args.agreement_batch} regions of "
               f"<= {args.max_side} px, {sum(g.num_views for g in dino)} views each (2 x {side} + 6 x "
               f"{dino[1].size[0]})", rows_out)

    timing = []
    for label, groups in ((f"2 x {side}", pair), (f"2 x {side} + 6 x {dino[1].size[0]}", dino)):
        rows, fmt, _ = region_batch(groups, args.batch, args.max_side)
        rows = rows.to(device)
        computes = (torch.float32, torch.float16) if device == "cuda" else (torch.float32,)
        for compute in computes:
            stage = ViewStage(groups, compute_dtype=compute)
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            seconds = best_time(lambda: stage.from_rows(rows, fmt), args.rounds, sync)
            flops = stage.flops(args.batch, fmt.capacity)
            name = str(compute).replace("torch.", "")
            timing += [(f"{label}, {name} products: per batch", f"{seconds * 1e3:.1f} ms",
                        f"{seconds * 1e6 / args.batch:.1f} us per sample"),
                       (f"{label}: FLOPs per batch", f"{flops / 1e9:.1f} G",
                        f"{flops / seconds / 1e12:.2f} TFLOP/s achieved")]
            if device == "cuda":
                peak = torch.cuda.max_memory_allocated() / 2**30
                timing.append((f"{label}, {name}: peak device memory", f"{peak:.2f} GiB",
                               "rows, float regions, weights, views"))
        views_bytes = sum(g.num_views * g.size[0] * g.size[1] * 3 for g in groups)
        timing += [(f"{label}: region row, bytes per sample", f"{fmt.row_bytes}",
                    f"{fmt.header_bytes} header + {args.max_side}x{args.max_side}x3 pixels"),
                   (f"{label}: its uint8 views, bytes per sample", f"{views_bytes}", "what CPU decoders move"),
                   (f"{label}: ratio row / views", f"{fmt.row_bytes / views_bytes:.2f}", "host to device"),
                   (f"{label}: rows per batch, host and device", f"{args.batch * fmt.row_bytes / 2**20:.1f} MiB", "")]
    print_rows(f"view stage on {device}: batch {args.batch}, regions = union of the views' windows of images "
               f"0.75-1 x {args.max_side} px, rows of capacity {args.max_side}x{args.max_side}, "
               f"{torch.get_num_threads()} CPU threads", timing)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
