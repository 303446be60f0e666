"""``ccrop`` command line: ``ccrop convert SRC OUT.beton``, ``ccrop clean``, ``ccrop demo``, ``ccrop show``,
``ccrop table``, ``ccrop diagnose``, ``ccrop bench``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _convert(args: argparse.Namespace) -> int:
    if args.format == "wds":
        return _convert_shards(args)
    from ccrop_loaders.ffcv.convert import convert_folder

    try:
        report = convert_folder(args.source, args.output, max_resolution=args.max_resolution, quality=args.quality,
                                workers=args.workers, strict=args.strict, write_mode=args.write_mode)
    except (ValueError, FileNotFoundError) as err:
        print(f"ccrop convert: {err}", file=sys.stderr)
        return 2
    print(f"wrote {report.written} images in {len(report.classes)} classes to {report.output}")
    if report.skipped:
        print(f"skipped {len(report.skipped)} unreadable files:")
        for path, why in report.skipped:
            print(f"  {path}: {why}")
    return 0


def _convert_shards(args: argparse.Namespace) -> int:
    from ccrop_loaders.shards import write_shards

    if args.max_resolution is not None or args.write_mode != "jpg":
        print("ccrop convert: --format wds keeps each file's own bytes: --max-resolution and --write-mode apply to "
              "a .beton only", file=sys.stderr)
        return 2
    try:
        record = write_shards(args.source, args.output, samples_per_shard=args.samples_per_shard)
    except (ValueError, OSError) as err:
        print(f"ccrop convert: {err}", file=sys.stderr)
        return 2
    print(f"wrote {record['num_samples']} images in {len(record['shards'])} shards to {args.output}")
    for path, why in record["skipped"]:
        print(f"  skipped {path}: {why}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import BenchError, run

    try:
        run(args)
    except (BenchError, ModuleNotFoundError) as err:
        print(f"ccrop bench: {err}", file=sys.stderr)
        return 2
    return 0


def _clean(args: argparse.Namespace) -> int:
    from ccrop_loaders.core.files import shm_dir
    from ccrop_loaders.core.orphans import orphaned_tables, remove_orphaned

    directory = args.dir or shm_dir()
    try:
        leftovers = orphaned_tables(directory)
    except OSError as err:
        print(f"ccrop clean: cannot list {directory}: {err}", file=sys.stderr)
        return 2
    failed = 0
    for path in leftovers:
        try:
            size = path.lstat().st_size
        except FileNotFoundError:
            continue
        if args.dry_run:
            print(f"would remove {path} ({size:,} bytes)")
        elif remove_orphaned(path):
            print(f"removed {path} ({size:,} bytes)")
        elif path.exists():
            failed += 1
            print(f"ccrop clean: did not remove {path}: it is in use again, or not ours to remove", file=sys.stderr)
    if not leftovers:
        print(f"no leftover box tables in {directory}")
    return 1 if failed else 0


def _show(args: argparse.Namespace) -> int:
    from .inspection import ImageSource, InspectError, read_table, show

    try:
        if args.samples < 1:
            raise InspectError(f"--samples must be at least 1, got {args.samples}")
        snap = read_table(args.table)
        drawn = show(snap, ImageSource(args.images), args.out, samples=args.samples, views=args.views,
                     epoch=args.epoch, epochs=args.epochs, alpha=args.alpha, seed=args.seed, size=args.size,
                     dpi=args.dpi, indices=args.indices)
    except (InspectError, ModuleNotFoundError) as err:
        print(f"ccrop show: {err}", file=sys.stderr)
        return 2
    width, height = drawn["pixels"]
    print(f"wrote {args.out} ({width}x{height} pixels): samples {', '.join(map(str, drawn['indices']))}, "
          f"{args.views} views, epochs {drawn['epochs'][0]}-{drawn['epochs'][-1]}")
    return 0


def _table(args: argparse.Namespace) -> int:
    from .inspection import InspectError, check_out, diff_report, plot_histograms, read_table, table_report

    try:
        if not 1 <= args.bins <= 1000:
            raise InspectError(f"--bins must be from 1 to 1000, got {args.bins}")
        if args.plot is not None:
            check_out(args.plot)  # before the work, as ccrop show does
        if (args.source is None) == (args.diff is None):
            raise InspectError("give one table (ccrop table SOURCE) or two to compare (ccrop table --diff A B)")
        if args.diff is not None:
            if args.plot is not None:
                raise InspectError("--plot draws one table's histograms; it does not go with --diff")
            print(diff_report(read_table(args.diff[0]), read_table(args.diff[1])))
            return 0
        snap = read_table(args.source)
        print(table_report(snap, bins=args.bins))
        if args.plot is not None:
            width, height = plot_histograms(snap, args.plot, bins=args.bins)
            print(f"wrote {args.plot} ({width}x{height} pixels)")
    except (InspectError, ModuleNotFoundError) as err:
        print(f"ccrop table: {err}", file=sys.stderr)
        return 2
    return 0


def _diagnose(args: argparse.Namespace) -> int:
    import json

    from .diagnostics import TruthError, box_diagnostics, read_truth
    from .inspection import InspectError, read_table

    from ccrop_loaders.core.checks import check_alpha

    try:
        if args.epochs < 1 or args.epochs > 1000:
            raise InspectError(f"--epochs must be from 1 to 1000, got {args.epochs}")
        try:
            check_alpha(args.alpha)  # before the work
        except ValueError as err:
            raise InspectError(f"--{err}") from None
        if not 0 < args.coverage <= 1:
            raise InspectError(f"--coverage must be in (0, 1], got {args.coverage}")
        if args.json is not None:
            _check_json_out(args.json)  # before the work
        snap = read_table(args.table)
        truth = read_truth(args.truth, max_rows=len(snap))  # more rows than samples: refused before parsing them all
        sizes = None
        if args.sizes is not None:
            sizes = _sizes(args.sizes)
            if sizes.ndim == 2:  # every image's size: pick the samples with ground truth
                if len(sizes) != len(snap):
                    raise InspectError(f"--sizes {args.sizes} holds {len(sizes):,} images but the table has "
                                       f"{len(snap):,} samples")
                if truth.indices.max() < len(sizes):  # else box_diagnostics names the index outside the table
                    sizes = sizes[truth.indices]
        elif truth.sizes is None:
            raise InspectError(f"{args.truth} has no height and width columns: give --sizes HxW (every image) or "
                               "--sizes PATH (the image folder or .beton the table indexes)")
        result = box_diagnostics(snap, truth, sizes, alpha=args.alpha, epochs=range(args.epochs),
                                 coverage=args.coverage)
    except (InspectError, TruthError, ValueError, FileNotFoundError, ModuleNotFoundError) as err:
        print(f"ccrop diagnose: {err}", file=sys.stderr)
        return 2
    print(f"table: {snap.describe()} ({len(snap):,} samples, seed {snap.seed}); ground truth: {args.truth}")
    print(result.report())
    if args.json is not None:
        from ccrop_loaders.core.files import replace_atomically

        try:  # beside it, then renamed over it: a reader never sees half a file; a FIFO or device is refused
            replace_atomically(args.json, json.dumps(result.as_dict(), indent=1).encode())
        except (OSError, ValueError) as err:
            print(f"ccrop diagnose: cannot write {args.json}: {err}", file=sys.stderr)
            return 2
        print(f"wrote {args.json}")
    return 0


def _check_json_out(out: Path) -> None:
    """Refuse a --json target that cannot be written as a regular file, before the work."""
    import os
    import stat

    from ccrop_loaders.core.files import file_kind
    from .inspection import InspectError

    target = Path(os.path.realpath(out))  # a symlink is written through, as atomic_path does
    if not target.parent.is_dir():
        raise InspectError(f"cannot write {out}: no folder {target.parent}")
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return
    except OSError as err:
        raise InspectError(f"cannot write {out}: {err}") from None
    if not stat.S_ISREG(mode):
        raise InspectError(f"cannot write {out}: it is {file_kind(mode)}, not a regular file")


def _sizes(text: str):
    """``HxW`` -> int64 (2,); a folder or .beton path -> int64 (n, 2) of its images."""
    import os
    import re

    import numpy as np

    from .diagnostics import MAX_SIDE, image_sizes

    match = re.fullmatch(r"\s*([0-9]{1,20})\s*[xX]\s*([0-9]{1,20})\s*", text)
    if match:
        height, width = int(match.group(1)), int(match.group(2))
        if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
            raise ValueError(f"--sizes {text}: height and width must be from 1 to {MAX_SIDE:,} pixels")
        return np.array([height, width], np.int64)
    if not os.path.exists(text):  # False for a name too long to look up, too
        raise FileNotFoundError(f"--sizes {text}: neither HxW (e.g. 96x128) nor an image folder or .beton")
    try:
        return image_sizes(text)
    except ModuleNotFoundError:
        raise
    except ValueError as err:  # image_sizes names the image or what is wrong with the .beton
        raise ValueError(f"--sizes {text}: cannot read the image sizes: {err}") from None
    except Exception as err:  # PIL and FFCV's reader raise many kinds on a file of another kind
        raise ValueError(f"--sizes {text}: cannot read the image sizes ({type(err).__name__}: {err})") from None


def _indices(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sample indices, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one sample index")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccrop", description="ContrastiveCrop loaders for FFCV and DALI")
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="image folder (ImageFolder layout or flat) -> FFCV .beton "
                                          "with image, label and index fields")
    conv.add_argument("source", help="folder of images: one sub-folder per class, or images directly")
    conv.add_argument("output", help="the .beton file to write (--format wds: the folder of shards)")
    conv.add_argument("--format", choices=("beton", "wds"), default="beton",
                      help="beton: an FFCV .beton (default); wds: WebDataset tar shards for DALI "
                           "(image, class and global index per sample)")
    conv.add_argument("--samples-per-shard", type=int, default=1000, help="--format wds: samples per shard")
    conv.add_argument("--max-resolution", type=int, default=None, help="longest side kept (default: unchanged)")
    conv.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    conv.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    conv.add_argument("--write-mode", choices=("jpg", "raw"), default="jpg", help="image storage (default jpg)")
    conv.add_argument("--strict", action="store_true", help="stop at the first unreadable file instead of skipping")
    conv.set_defaults(run=_convert)
    clean = sub.add_parser("clean", help="remove shared-memory box tables whose creator process is gone "
                                         "(left by SIGKILL or a crash); never a live one",
                           description="Removes box tables (and temp files of killed saves) in --dir whose creator "
                                       "process is gone. A table's creator removes it on unlink(), at exit, and "
                                       "through a small tracker process when it is killed; what is left after the "
                                       "tracker died too (the OOM killer, kill -9 of the session) is removed here. "
                                       "A live table is never touched: its creator holds a lock on it. Prints what "
                                       "it removed (or, with --dry-run, would remove).")
    clean.add_argument("--dir", type=Path, default=None, help="where tables live (default: $CCROP_SHM_DIR or /dev/shm)")
    clean.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    clean.set_defaults(run=_clean)
    demo = sub.add_parser("demo", help="run the demo: JPEGs from real photos through every installed backend, "
                                       "a figure of the crops (needs the demo extra)",
                          description="Makes --images JPEGs from scikit-image's photos in OUT/images, finds a box "
                                      "per image from a stand-in for feature maps (each pixel's colour distance "
                                      "from the image's border; no trained encoder), runs two-view ContrastiveCrop "
                                      "through every installed backend (the core sampler with Pillow, FFCV, DALI on "
                                      "the CPU), prints their pairs per second and writes "
                                      "OUT/contrastive_crops.png: each image with its box and its views' windows, "
                                      "and the views each backend made. FFCV and DALI compile on their first run "
                                      "(about 20 s and 10 s on 2 cores; announced).")
    from . import demo as demo_module  # light: its heavy imports happen when it runs

    demo_module.add_arguments(demo)
    demo.set_defaults(run=lambda a: demo_module.run(a) or 0)
    source_help = ("a box table: a file from BoxTable.save, a torch checkpoint whose 'boxes' entry is "
                   "table_state(table) (as pipelines/train_ssl.py saves), or the name of a live shared table")
    show_p = sub.add_parser("show", help="PNG grid: images with their box, the windows each view samples over a few "
                                         "epochs, and the views (needs the demo extra)",
                            description="One row per sample: the image with its box (dashed white) and each view's "
                                        "windows (one colour per view; thick: --epoch, thin: the epochs after it), "
                                        "then the views of --epoch (crop, bilinear resize, keyed flip), drawn with "
                                        "the table's seed and use_boxes (RandomResizedCrop when it is off). The PNG "
                                        "is (3 + 2.25 * views) x (0.75 + 2.25 * samples) inches at --dpi.")
    show_p.add_argument("table", help=source_help)
    show_p.add_argument("images", help="the images: an image folder (same global indices as ccrop convert and the "
                                       "DALI readers) or a .beton (needs the ffcv extra)")
    show_p.add_argument("--out", type=Path, default=Path("show.png"), help="PNG to write (default show.png)")
    show_p.add_argument("--samples", type=int, default=8, help="samples drawn at random (default 8)")
    show_p.add_argument("--indices", type=_indices, default=None, help="comma-separated sample indices instead")
    show_p.add_argument("--seed", type=int, default=0, help="seed choosing the samples (default 0); crops use the "
                                                            "table's seed")
    show_p.add_argument("--views", type=int, default=2, help="views per sample (default 2)")
    show_p.add_argument("--epoch", type=int, default=None, help="epoch of the views (default: the table's)")
    show_p.add_argument("--epochs", type=int, default=4, help="epochs whose windows are outlined, from --epoch "
                                                              "(default 4)")
    show_p.add_argument("--alpha", type=float, default=0.6, help="Beta(alpha, alpha) parameter (default 0.6)")
    show_p.add_argument("--size", type=int, default=224, help="side of the views in pixels (default 224)")
    show_p.add_argument("--dpi", type=int, default=100, help="dots per inch of the PNG (default 100)")
    show_p.set_defaults(run=_show)
    table_p = sub.add_parser("table", help="inspect a box table: size, controls, full boxes, box area and aspect "
                                           "histograms; --diff compares two",
                             description="Prints the table's sample count, controls (epoch, seed, use_boxes), "
                                         "writes (live tables), how many rows are still the full box (0, 0, 1, 1), "
                                         "and histograms of box area and aspect ratio. --diff A B compares two "
                                         "tables of the same size: boxes moved, coordinate changes, IoU.")
    table_p.add_argument("source", nargs="?", default=None, help=source_help)
    table_p.add_argument("--diff", nargs=2, metavar=("A", "B"), default=None,
                         help="compare two tables (files, checkpoints or live names) of the same size")
    table_p.add_argument("--bins", type=int, default=10, help="histogram bins (default 10)")
    table_p.add_argument("--plot", type=Path, default=None, help="also write both histograms to this PNG "
                                                                 "(1000x350 pixels; needs the demo extra)")
    table_p.set_defaults(run=_table)
    diag = sub.add_parser("diagnose", help="compare a box table with ground-truth boxes: IoU, and how often "
                                           "ContrastiveCrop's and RandomResizedCrop's two views both hold the object",
                          description="Reads a table (file, checkpoint or live name) and ground-truth boxes, "
                                      "normalized (y0, x0, y1, x1) = (top, left, bottom, right) as fractions of the "
                                      "image height and width: CSV with the header index,y0,x0,y1,x1 (optionally "
                                      ",height,width in pixels), or JSON, a list of objects with those keys or of "
                                      "lists [index, y0, x0, y1, x1(, height, width)]. index is the table row. "
                                      "Prints the mean IoU of the table's boxes and of the full image with the "
                                      "truth, and the share of view pairs in which both views hold at least "
                                      "--coverage of the object: ContrastiveCrop with the table's boxes, "
                                      "RandomResizedCrop, and ContrastiveCrop with the true boxes (upper bound).")
    diag.add_argument("table", help=source_help)
    diag.add_argument("--truth", type=Path, required=True, help="ground-truth boxes, CSV or JSON (see above)")
    diag.add_argument("--sizes", default=None, help="image sizes when the truth has none: HxW for all, or the image "
                                                    "folder or .beton the table indexes")
    diag.add_argument("--alpha", type=float, default=0.6, help="Beta(alpha, alpha) parameter (default 0.6)")
    diag.add_argument("--epochs", type=int, default=4, help="epochs of view pairs drawn per sample (default 4)")
    diag.add_argument("--coverage", type=float, default=0.3, help="share of the object both views must hold "
                                                                  "(default 0.3)")
    diag.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    diag.set_defaults(run=_diagnose)
    bench = sub.add_parser("bench", help="every throughput comparison side by side (FFCV, DALI, the original "
                                         "PIL loader, decode ceilings): a table, bench.json and charts")
    from . import bench as bench_module  # light: its heavy imports happen when it runs

    bench_module.add_arguments(bench)
    bench.set_defaults(run=_bench)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except OSError as err:  # what a command did not name itself (a full disk, a name too long): still one line
        print(f"ccrop {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
