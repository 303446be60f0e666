"""``ccrop bench``: every side-by-side throughput comparison in one run, one table, a JSON record and two charts.

The library part lives in the package (the ``ccrop`` console script runs from an installed package, where
``benchmarks/`` is not importable); ``benchmarks/bench.py`` is a thin entry point. Contenders whose backend is not
installed are skipped and listed as such. All contenders of a size decode the same JPEG bytes (the ``.beton``'s),
use the same thread count and batch size, and alternate round by round; each keeps its best round.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

FFCV_EPOCH_BATCHES = 64  # the shortest epoch FFCV's contenders run (a quarter with --quick; see _settings)
FFCV_SLOTS = 5  # FFCV 1.0.2 allocates each pipeline's buffers for batches_ahead (3 by default) + 2 batches
MAX_IMAGES = 20_000  # --images: JPEGs made per size, all held in memory while the contenders run
MAX_REPEATS = 100  # --rounds and --passes
OUTPUTS = ("bench.json", "bench.png", "scaling.png")  # what a run writes in --out
SIMD_NAMES = {0: "none", 1: "AVX2", 2: "AVX-512"}
VERSIONS = ("ffcv", "nvidia-dali-cuda120", "nvidia-dali", "numba", "numpy", "torch", "Pillow", "matplotlib",
            "ccrop-loaders")

# key, title, our contenders (best taken), baselines (best taken), goal
COMPARISONS = [
    ("ffcv_one_view", "FFCV one view: ContrastiveCrop / FFCV RandomResizedCrop",
     ["ffcv_ccrop"], ["ffcv_rrc"], ">= 0.97"),
    ("ffcv_two_views", "FFCV two views: decode-once multi-view / two FFCV RRC pipelines",
     ["ffcv_ccrop_2v"], ["ffcv_rrc_x2"], ">= 1.8"),
    ("dali_two_views_cpu", "DALI CPU two views: best ContrastiveCrop / best DALI RRC",
     ["dali_cpu_ccrop_once", "dali_cpu_ccrop_slice"], ["dali_cpu_rrc_random_crop", "dali_cpu_rrc_decode_once"],
     ">= 1.3"),
    ("dali_two_views_gpu", "DALI GPU two views: best ContrastiveCrop / best DALI RRC",
     ["dali_gpu_ccrop_once", "dali_gpu_ccrop_slice"], ["dali_gpu_rrc_random_crop", "dali_gpu_rrc_decode_once"],
     ">= 1.0"),
    ("ffcv_vs_original", "FFCV multi-view pairs / the original (PIL, torch DataLoader) pairs",
     ["ffcv_ccrop_2v"], ["original_pil"], "speed-up"),
    ("dali_cpu_vs_original", "DALI CPU ContrastiveCrop pairs / the original pairs",
     ["dali_cpu_ccrop_once", "dali_cpu_ccrop_slice"], ["original_pil"], "speed-up"),
    ("dali_gpu_vs_original", "DALI GPU ContrastiveCrop pairs / the original pairs",
     ["dali_gpu_ccrop_once", "dali_gpu_ccrop_slice"], ["original_pil"], "speed-up"),
    ("ffcv_vs_loader_decode", "FFCV multi-view pairs / FFCV decode-only Loader images",
     ["ffcv_ccrop_2v"], ["ffcv_decode_only"], ">= 0.8"),
    ("ffcv_region_vs_loader_decode", "FFCV region rows (2 views, the GPU path's CPU part) / FFCV decode-only Loader",
     ["ffcv_region_2v"], ["ffcv_decode_only"], ">= 0.95"),
    ("ffcv_region_vs_cpu_views", "FFCV region rows (2 views) / FFCV multi-view pairs (resized on the CPU)",
     ["ffcv_region_2v"], ["ffcv_ccrop_2v"], "speed-up"),
    ("ffcv_region_vs_bare_region", "FFCV region rows / bare libjpeg-turbo decode of the same regions (no Loader)",
     ["ffcv_region_2v"], ["bare_libjpeg_region"], "ceiling"),
    ("ffcv_vs_bare_decode", "FFCV multi-view pairs / bare libjpeg-turbo decode images (no Loader)",
     ["ffcv_ccrop_2v"], ["bare_libjpeg"], "ceiling"),
    ("loader_decode_vs_bare", "FFCV decode-only Loader / bare libjpeg-turbo decode (Loader overhead)",
     ["ffcv_decode_only"], ["bare_libjpeg"], "ceiling"),
    ("original_vs_pillow_decode", "the original pairs / bare Pillow decode images (no Loader)",
     ["original_pil"], ["bare_pillow"], "ceiling"),
]


class BenchError(Exception):
    """A bad setting or a missing requirement: the CLI prints it as one line."""


# ---------------------------------------------------------------- arguments

def _positive(name: str, lo: int = 1) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {value}")
        return value

    return parse


def _sizes(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"must be comma-separated integers (e.g. 256,512), got {text!r}")
    sizes = [int(p) for p in parts]
    if min(sizes) < 32:
        raise argparse.ArgumentTypeError(f"must be at least 32 pixels each, got {text!r}")
    return sorted(set(sizes))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``ccrop bench``'s options; argument errors become one line ``ccrop bench: <message>``, exit code 2."""
    parser.add_argument("--out", type=Path, default=Path("bench_out"),
                        help="folder for bench.json, bench.png and scaling.png (default bench_out)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run (under a minute on 2 cores): 64 images, size 256, 1 round, small scaling")
    parser.add_argument("--images", type=_positive("--images", 8), default=None,
                        help=f"JPEGs per size, at most {MAX_IMAGES:,} (default 512; --quick 64)")
    parser.add_argument("--threads", type=_positive("--threads"), default=None,
                        help="threads (FFCV workers, DALI threads, DataLoader workers), at most numba's "
                             "NUMBA_NUM_THREADS (default all cores, within that)")
    parser.add_argument("--sizes", type=_sizes, default=None,
                        help=".beton max resolutions, comma-separated (default 256,512; --quick 256)")
    parser.add_argument("--batch-size", type=_positive("--batch-size"), default=None,
                        help="batch size, at most --images (default 64; --quick 32)")
    parser.add_argument("--rounds", type=_positive("--rounds"), default=None,
                        help=f"timed rounds per contender, best kept, at most {MAX_REPEATS} (default 5; --quick 1)")
    parser.add_argument("--passes", type=_positive("--passes"), default=None,
                        help=f"reads of every image per epoch, so that epochs are long as in training, at most "
                             f"{MAX_REPEATS} (default 2; --quick 1); FFCV's loaders read them often enough for epochs "
                             "of 64 batches (--quick 16)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="gpu: add DALI's GPU contenders (needs a CUDA GPU); the CPU ones always run")
    parser.add_argument("--scaling", choices=("ffcv", "all", "none"), default=None,
                        help="throughput against threads and views: FFCV multi-view, plus DALI CPU with 'all' "
                             "(default all; --quick ffcv)")

    def one_line_error(message: str):
        print(f"ccrop bench: {message}", file=sys.stderr)
        sys.exit(2)

    parser.error = one_line_error


def _settings(args: argparse.Namespace) -> dict:
    """The run's settings (defaults filled in), or BenchError naming the option whose value is out of bounds."""
    from numba import config

    quick = bool(args.quick)
    threads = min(os.cpu_count() or 1, config.NUMBA_NUM_THREADS)  # all cores, as far as numba (FFCV's workers) may

    def pick(value, full, fast):
        return value if value is not None else (fast if quick else full)

    settings = {
        "quick": quick, "device": args.device,
        "images": pick(args.images, 512, 64), "threads": pick(args.threads, threads, threads),
        "sizes": pick(args.sizes, [256, 512], [256]), "batch_size": pick(args.batch_size, 64, 32),
        "rounds": pick(args.rounds, 5, 1), "passes": pick(args.passes, 2, 1),
        "scaling": pick(args.scaling, "all", "ffcv"), "view_size": [224, 224],
    }
    if settings["images"] > MAX_IMAGES:
        raise BenchError(f"--images must be at most {MAX_IMAGES:,}, got {settings['images']:,}")
    if settings["batch_size"] > settings["images"]:
        raise BenchError(f"--batch-size must be at most --images ({settings['images']:,}), got "
                         f"{settings['batch_size']:,}")
    if settings["threads"] > config.NUMBA_NUM_THREADS:
        raise BenchError(f"--threads must be at most {config.NUMBA_NUM_THREADS}, the threads numba may run "
                         f"(NUMBA_NUM_THREADS), got {settings['threads']:,}")
    for name in ("rounds", "passes"):
        if settings[name] > MAX_REPEATS:
            raise BenchError(f"--{name} must be at most {MAX_REPEATS}, got {settings[name]:,}")
    # FFCV allocates its output buffers at the start of each epoch, and the kernel zeroes each new page on its first
    # write: over a training epoch (thousands of batches) that is nothing, over a few batches it is much of the time.
    # FFCV's loaders therefore read each image often enough to make epochs of at least FFCV_EPOCH_BATCHES batches.
    epoch_batches = FFCV_EPOCH_BATCHES // 4 if quick else FFCV_EPOCH_BATCHES
    settings["ffcv_passes"] = max(settings["passes"],
                                  -(-epoch_batches * settings["batch_size"] // settings["images"]))
    return settings


# ---------------------------------------------------------------- machine

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _simd() -> int | None:
    """The resampler's instruction set (``ccrop_loaders.core.resample.SIMD``), None when it was not built."""
    try:
        from ccrop_loaders.core.resample import SIMD
    except ImportError:
        return None
    return int(SIMD)


def machine_info() -> dict:
    from importlib import metadata

    versions = {}
    for name in VERSIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    simd = _simd()
    return {"cpu": _cpu_model(), "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "resampler_simd": simd, "resampler_simd_name": SIMD_NAMES.get(simd, "unknown"),
            "python": platform.python_version(), "versions": versions}


# ---------------------------------------------------------------- timing

def best_times(contenders: dict[str, Callable[[], object]], rounds: int = 11) -> dict[str, float]:
    """Seconds of the fastest of ``rounds`` runs of each contender, run alternately (noise hits all alike), after
    one warm-up run each (compiling, worker start-up)."""
    for fn in contenders.values():
        fn()
    best = {name: float("inf") for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _thread_counts(threads: int, quick: bool) -> list[int]:
    if quick:
        return sorted({1, threads})
    counts, t = [], 1
    while t < threads:
        counts.append(t)
        t *= 2
    return counts + [threads]


# ---------------------------------------------------------------- the run

_STARTED = time.perf_counter()


def _log(message: str) -> None:
    print(f"[ccrop bench {time.perf_counter() - _STARTED:5.1f} s] {message}", file=sys.stderr, flush=True)


def _build(what: str, make: Callable, contenders: list, skipped: list, size: int) -> None:
    try:
        made = make()
    except ImportError as error:
        skipped.append({"size": size, "what": what, "why": f"not installed: {error}"})
        _log(f"skipping {what}: {error}")
        return
    contenders.extend(made if isinstance(made, list) else [made])


def _quiet_unraisable(unraisable) -> None:
    """Drop numba's ``KeyError`` from a dispatcher finalizer when an FFCV Loader's compiled code is collected
    (harmless, FFCV 1.0.2 + numba); report anything else as usual."""
    if unraisable.exc_type is KeyError and "numba" in repr(getattr(unraisable.exc_traceback, "tb_frame", "")) + \
            "".join(__import__("traceback").format_tb(unraisable.exc_traceback)):
        return
    sys.__unraisablehook__(unraisable)


def _time(contenders: list, rounds: int) -> list[dict]:
    """Time ``contenders`` (emptied afterwards: their loaders are closed and collected); one dict each."""
    try:
        best = best_times({c.key: c.run for c in contenders}, rounds)
        return [{"key": c.key, "label": c.label, "backend": c.backend, "threads": c.threads, "views": c.views,
                 "unit": c.unit, "images": c.items, "seconds": best[c.key], "rate": c.items / best[c.key]}
                for c in contenders]
    finally:
        for c in contenders:
            c.close()
        hook, sys.unraisablehook = sys.unraisablehook, _quiet_unraisable
        try:
            contenders.clear()
            import gc

            gc.collect()
        finally:
            sys.unraisablehook = hook


def _comparisons(results: list[dict], sizes: list[int], device: str) -> list[dict]:
    out = []
    for size in sizes:
        rates = {r["key"]: r for r in results if r["size"] == size}
        for key, title, ours, base, goal in COMPARISONS:
            if "gpu" in key and device != "gpu":
                continue
            have_ours = [rates[k] for k in ours if k in rates]
            have_base = [rates[k] for k in base if k in rates]
            entry = {"size": size, "key": key, "title": title, "goal": goal, "ratio": None}
            if have_ours and have_base:
                a, b = max(have_ours, key=lambda r: r["rate"]), max(have_base, key=lambda r: r["rate"])
                entry.update(ours=a["key"], baseline=b["key"], ours_rate=a["rate"], baseline_rate=b["rate"],
                             ratio=a["rate"] / b["rate"])
            else:
                entry["missing"] = sorted(set(ours + base) - set(rates))
            out.append(entry)
    return out


def region_row_figures(size: int, shapes, batch_size: int, slots: int = FFCV_SLOTS) -> dict:
    """What ``ContrastiveCropRegionDecoder`` rows (2 views) cost for a .beton of image ``shapes`` (int (n, 2)): bytes
    per sample against two 224x224 uint8 views, and per batch, times FFCV's ``slots`` buffers on the host and
    (after ``ToDevice``) again on the device."""
    from ccrop_loaders.core.region_rows import RowFormat

    fmt = RowFormat((int(shapes[:, 0].max()), int(shapes[:, 1].max())), 2)
    views = 2 * 224 * 224 * 3
    return {"size": size, "capacity": list(fmt.capacity), "row_bytes": fmt.row_bytes, "views_bytes": views,
            "ratio": fmt.row_bytes / views, "batch_size": batch_size, "batch_bytes": fmt.row_bytes * batch_size,
            "slots": slots, "host_bytes": slots * fmt.row_bytes * batch_size,
            "device_bytes": slots * fmt.row_bytes * batch_size}


def run(args: argparse.Namespace) -> dict:
    """Run every comparison; write ``bench.json``, ``bench.png`` and ``scaling.png`` in ``args.out``; return the
    record. Raises ``BenchError`` for a setting that cannot run (e.g. ``--device gpu`` without a GPU)."""
    import numpy as np

    from .contenders import (dali_contender, dali_contenders, dali_gpu_count, ffcv_contenders, ffcv_multiview,
                             libjpeg_contender, libjpeg_region_contender, original_contender, pillow_contender)
    from .data import have, prepare

    s = _settings(args)
    if s["device"] == "gpu":
        if not have("nvidia.dali"):
            raise BenchError("--device gpu needs NVIDIA DALI (pip install 'ccrop-loaders[dali]'), which is not "
                             "installed")
        if dali_gpu_count() < 1:
            raise BenchError("--device gpu: no CUDA GPU is visible (DALI sees 0 devices); run on a GPU machine or "
                             "use --device cpu")
    if not (have("PIL") and have("skimage")):
        raise BenchError("the benchmark images need Pillow and scikit-image: pip install 'ccrop-loaders[demo]'")
    out = Path(args.out)
    check_out(out)

    from ccrop_loaders.core import BoxTable
    from ..sample_data import random_boxes

    started = time.perf_counter()
    record = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "machine": machine_info(), "settings": {**s, "out": str(out)}}
    threads, bs, passes, rounds = s["threads"], s["batch_size"], s["passes"], s["rounds"]
    ffcv_passes = s["ffcv_passes"]
    results, skipped, scaling = [], [], []
    devices = ["cpu"] + (["gpu"] if s["device"] == "gpu" else [])
    with tempfile.TemporaryDirectory(prefix="ccrop-bench-") as tmp, BoxTable.create(s["images"]) as table:
        _log(f"making {s['images']} JPEGs from real photos, sizes {s['sizes']}")
        sets = prepare(Path(tmp), s["images"], s["sizes"], workers=threads)
        boxes = random_boxes(s["images"])
        table.write(np.arange(s["images"]), boxes)
        record["images"] = {str(k): v.origin for k, v in sets.items()}
        for size, images in sets.items():
            _log(f"size {size}: building the contenders")
            contenders, this_skipped = [], []
            _build("original (PIL + torch DataLoader)",
                   lambda: original_contender(images, boxes, threads, bs, passes), contenders, this_skipped, size)
            _build("bare Pillow decode", lambda: pillow_contender(images, threads, passes), contenders,
                   this_skipped, size)
            _build("bare libjpeg-turbo decode (ccrop_loaders.ffcv.jpeg)",
                   lambda: libjpeg_contender(images, threads, passes), contenders, this_skipped, size)
            _build("bare libjpeg-turbo region decode", lambda: libjpeg_region_contender(images, table, threads, passes),
                   contenders, this_skipped, size)
            _build("FFCV", lambda: ffcv_contenders(images, table, threads, bs, ffcv_passes), contenders, this_skipped,
                   size)
            for device in devices:
                _build(f"DALI ({device})", lambda: dali_contenders(images, table, device, threads, bs, passes,
                                                                   s["quick"]), contenders, this_skipped, size)
            skipped += this_skipped
            _log(f"size {size}: timing {len(contenders)} contenders, best of {rounds} alternating rounds, after a "
                 "warm-up run each (FFCV Loaders and DALI pipelines compile then: about 20 s each on 2 cores)")
            results += [{"size": size, **r} for r in _time(contenders, rounds)]
        if s["scaling"] != "none":
            size = max(sets)
            images = sets[size]
            views, counts = [1, 2, 4, 8] if not s["quick"] else [1, 2], _thread_counts(threads, s["quick"])
            grid = [("ffcv", t, v) for t in counts for v in views] if have("ffcv") else []
            if not grid:
                skipped.append({"size": size, "what": "scaling ffcv", "why": "not installed: ffcv"})
            if s["scaling"] == "all" and not s["quick"] and have("nvidia.dali"):
                grid += [("dali-cpu", t, 2) for t in counts] + [("dali-cpu", threads, v) for v in views if v != 2]
            contenders = []
            for backend, t, v in grid:
                def make(backend=backend, t=t, v=v):
                    if backend == "ffcv":
                        return ffcv_multiview(images, table, t, v, bs, ffcv_passes)
                    return dali_contender("ccrop_once", images, table, "cpu", t, bs, passes, views=v)

                before = len(contenders)
                _build(f"scaling {backend}", make, contenders, skipped, size)
                if len(contenders) > before:
                    contenders[-1].key = f"{backend}_{t}t_{v}v"
            _log(f"scaling: timing {len(contenders)} configurations at size {size}")
            for r in _time(contenders, rounds):
                scaling.append({"backend": r["backend"], "size": size, "threads": r["threads"], "views": r["views"],
                                "images_per_s": r["rate"], "views_per_s": r["rate"] * r["views"],
                                "thread_ms_per_image": 1000.0 * r["threads"] / r["rate"]})
        region_rows = [region_row_figures(size, images.shapes, bs) for size, images in sets.items() if len(images.shapes)]
    record.update(results=results, comparisons=_comparisons(results, s["sizes"], s["device"]),
                  region_rows=region_rows, scaling=scaling,
                  skipped=skipped, seconds=round(time.perf_counter() - started, 1))
    from ccrop_loaders.core.files import replace_atomically

    from .report import plot, table_text

    try:  # each beside its target, then renamed over it; a FIFO or device put there since check_out is refused
        record["files"] = plot(record, out)
        replace_atomically(out / "bench.json", (json.dumps(record, indent=1) + "\n").encode())
    except (OSError, ValueError) as error:
        print(table_text(record))
        raise BenchError(f"cannot write the outputs in --out {out}: {error}") from None
    print(table_text(record))
    print(f"\nwrote {out / 'bench.json'}" + "".join(f", {out / f['path']}" for f in record["files"].values()))
    return record


def check_out(out: Path) -> None:
    """Make ``out`` and make sure the run can write its outputs there, before any work: BenchError otherwise.

    Each of ``OUTPUTS`` already there must be a regular file (or a symlink to one): a FIFO named bench.json would
    block the end of the run forever. A temp file is made and removed, so a folder we may not write in (/sys, a
    read-only mount) is refused now rather than after the run.
    """
    from ccrop_loaders.core.files import file_kind, make_temp

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BenchError(f"cannot create --out {out}: {error.strerror or error}") from None
    for name in OUTPUTS:
        try:
            mode = os.stat(out / name).st_mode
        except FileNotFoundError:
            continue
        except OSError as error:
            raise BenchError(f"--out {out}: cannot look up {name}: {error.strerror or error}") from None
        if not stat.S_ISREG(mode):
            raise BenchError(f"--out {out}: {name} is {file_kind(mode)}, not a regular file the run can replace")
    try:
        fd, probe = make_temp(out, OUTPUTS[0])
    except OSError as error:
        raise BenchError(f"cannot write in --out {out}: {error.strerror or error}") from None
    os.close(fd)
    os.unlink(probe)


def main(argv: list[str] | None = None) -> int:
    """``python -m ccrop_loaders.bench`` / ``python -m benchmarks.bench``: the same as ``ccrop bench``."""
    parser = argparse.ArgumentParser(prog="ccrop bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run(args)
    except BenchError as error:
        print(f"ccrop bench: {error}", file=sys.stderr)
        return 2
    return 0
