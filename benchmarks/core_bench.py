"""Core costs: sampler vs a RandomResizedCrop sampler written the same way, table reads and writes.

Run: ``.venv/bin/python -m benchmarks.core_bench`` (single-threaded, ratios in one run).
"""
from __future__ import annotations

import math

import numba
import numpy as np

from ccrop_loaders import BoxTable
from ccrop_loaders.core import load_box, stream_key
from ccrop_loaders.core.random import STREAM_POSITION, random_bits
from ccrop_loaders.core.sampler import MAX_TRIES, beta_quantiles, crop_window, size_try

from ccrop_loaders.tools.bench import best_times
from ccrop_loaders.tools.bench.report import print_rows

N_CROPS = 1_000_000
N_ROWS = 1_281_167  # ImageNet-1k train


@numba.njit(cache=True)
def rrc_window(height, width, scale_lo, scale_hi, log_lo, log_hi, key):
    """torchvision's RandomResizedCrop.get_params written as ``crop_window``: the same keyed random stream,
    the same draws (central fallback omitted: these shapes never reach it)."""
    area = np.float64(height) * np.float64(width)
    for t in range(MAX_TRIES):
        h, w = size_try(area, scale_lo, scale_hi, log_lo, log_hi, key, t)
        if 0 < w <= width and 0 < h <= height:
            bits = random_bits(key, STREAM_POSITION, 0)  # 32 bits for each position, as crop_window
            top = int((height - h + 1) * (np.float64(bits >> np.uint64(32)) * 2.0**-32))
            left = int((width - w + 1) * (np.float64(bits & np.uint64(0xFFFFFFFF)) * 2.0**-32))
            return top, left, h, w
    return 0, 0, height, width


@numba.njit(cache=True)
def run_rrc(heights, widths, n):
    acc = 0
    for i in range(n):
        key = stream_key(np.uint64(0), 0, i, 0)
        t, l, h, w = rrc_window(heights[i & 1023], widths[i & 1023], 0.2, 1.0, math.log(0.75), math.log(4 / 3), key)
        acc += t + l + h + w
    return acc


@numba.njit(cache=True)
def run_ccrop(heights, widths, boxes, quantiles, n):
    acc = 0
    for i in range(n):
        key = stream_key(np.uint64(0), 0, i, 0)
        b = boxes[i & 1023]
        t, l, h, w = crop_window(heights[i & 1023], widths[i & 1023], b[0], b[1], b[2], b[3],
                                 0.2, 1.0, math.log(0.75), math.log(4 / 3), quantiles, key)
        acc += t + l + h + w
    return acc


@numba.njit(cache=True)
def read_rows(address, num_samples, order):
    acc = 0.0
    for i in range(order.shape[0]):
        y0, x0, y1, x1 = load_box(address, num_samples, order[i])
        acc += y0 + x0 + y1 + x1
    return acc


def main() -> None:
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    heights, widths = rng.integers(300, 501, 1024), rng.integers(300, 501, 1024)
    lo, hi = np.sort(rng.random((1024, 2, 2)), axis=2).transpose(2, 0, 1)
    boxes = np.stack([lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]], axis=1)
    quantiles = beta_quantiles(0.6)
    t = best_times({
        "rrc": lambda: run_rrc(heights, widths, N_CROPS),
        "ccrop": lambda: run_ccrop(heights, widths, boxes, quantiles, N_CROPS),
    })
    rows = [
        ("RandomResizedCrop sampler", f"{t['rrc'] / N_CROPS * 1e9:.1f} ns/crop", ""),
        ("ContrastiveCrop sampler", f"{t['ccrop'] / N_CROPS * 1e9:.1f} ns/crop", ""),
        ("ratio ContrastiveCrop / RRC", f"{t['ccrop'] / t['rrc']:.2f}x", "goal <= 1.2x"),
    ]
    with BoxTable.create(N_ROWS) as table:
        new_boxes = np.tile([0.1, 0.2, 0.7, 0.9], (N_ROWS, 1))
        all_rows = np.arange(N_ROWS)
        order = rng.permutation(N_ROWS)
        t = best_times({
            "read": lambda: read_rows(table.address, N_ROWS, order),
            "write": lambda: table.write(all_rows, new_boxes),
        })
    rows += [
        ("compiled table read (random order)", f"{t['read'] / N_ROWS * 1e9:.1f} ns/row", "goal <= 20 ns"),
        (f"write {N_ROWS:,} rows (checked)", f"{t['write'] * 1e3:.1f} ms", "goal < 50 ms"),
    ]
    print_rows("core (1 thread)", rows)


if __name__ == "__main__":
    main()
