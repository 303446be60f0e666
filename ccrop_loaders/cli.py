"""``ccrop`` command line: ``ccrop convert SRC OUT.beton``, ``ccrop clean``, ``ccrop demo``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _convert(args: argparse.Namespace) -> int:
    from .ffcv.convert import convert_folder

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


def _clean(args: argparse.Namespace) -> int:
    from .core.files import shm_dir
    from .core.table import orphaned_tables

    directory = args.dir or shm_dir()
    try:
        leftovers = orphaned_tables(directory)
    except OSError as err:
        print(f"ccrop clean: cannot list {directory}: {err}", file=sys.stderr)
        return 2
    failed = 0
    for path in leftovers:
        size = path.stat().st_size if path.exists() else 0
        if args.dry_run:
            print(f"would remove {path} ({size:,} bytes)")
            continue
        try:
            path.unlink()
            print(f"removed {path} ({size:,} bytes)")
        except FileNotFoundError:
            pass
        except OSError as err:
            failed += 1
            print(f"ccrop clean: cannot remove {path}: {err}", file=sys.stderr)
    if not leftovers:
        print(f"no leftover box tables in {directory}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccrop", description="ContrastiveCrop loaders for FFCV and DALI")
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="image folder (ImageFolder layout or flat) -> FFCV .beton "
                                          "with image, label and index fields")
    conv.add_argument("source", help="folder of images: one sub-folder per class, or images directly")
    conv.add_argument("output", help="the .beton file to write")
    conv.add_argument("--max-resolution", type=int, default=None, help="longest side kept (default: unchanged)")
    conv.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    conv.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    conv.add_argument("--write-mode", choices=("jpg", "raw"), default="jpg", help="image storage (default jpg)")
    conv.add_argument("--strict", action="store_true", help="stop at the first unreadable file instead of skipping")
    conv.set_defaults(run=_convert)
    clean = sub.add_parser("clean", help="remove shared-memory box tables whose creator process is gone "
                                         "(left by SIGKILL or a crash); never a live one")
    clean.add_argument("--dir", type=Path, default=None, help="where tables live (default: $CCROP_SHM_DIR or /dev/shm)")
    clean.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    clean.set_defaults(run=_clean)
    demo = sub.add_parser("demo", help="run the demo: JPEGs from real photos through every installed backend, "
                                       "a figure of the crops (needs the demo extra)")
    from . import demo as demo_module  # light: its heavy imports happen when it runs

    demo_module.add_arguments(demo)
    demo.set_defaults(run=lambda a: demo_module.run(a) or 0)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
