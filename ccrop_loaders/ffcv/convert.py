"""Image folder -> FFCV .beton with ``image`` (RGBImageField), ``label`` and ``index`` (IntField) fields.

Each .beton gets a ``NAME.source.json`` beside it: the source folder's fingerprint
(file list, sizes, mtimes) and the conversion options, so ``ensure_converted``
reconverts when either changed instead of training on stale data.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core.files import atomic_path, replace_atomically, unlink_quietly
from ..folder import find_unreadable, folder_fingerprint, list_images, load_rgb


@dataclass
class ConversionReport:
    """What ``convert_folder`` wrote and what it skipped (path, reason)."""

    output: Path
    written: int
    classes: list[str]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


class _FolderDataset:
    """Indexable dataset FFCV's writer reads: (image uint8 (H, W, 3), label, index)."""

    def __init__(self, samples: list[tuple[Path, int]]):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        return load_rgb(path), label, i


def convert_folder(source: str | Path, output: str | Path, *, max_resolution: int | None = None,
                   quality: int = 90, workers: int = 0, strict: bool = False,
                   write_mode: str = "jpg") -> ConversionReport:
    """Write ``source`` (ImageFolder or flat folder) to the .beton ``output``.

    Every file is decoded first (in ``workers`` processes, progress bar); files
    that fail are skipped and reported, or with ``strict`` stop the conversion
    naming the file. The .beton is written to a temporary file and renamed, so an
    existing ``output`` survives a failed conversion. ``index`` is the sample's
    position in the .beton: the global index the box table uses.
    """
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    if max_resolution is not None and int(max_resolution) < 1:
        raise ValueError(f"max_resolution must be positive, got {max_resolution}")
    if write_mode not in ("jpg", "raw"):
        raise ValueError(f"write_mode must be 'jpg' or 'raw', got {write_mode!r}")
    if int(workers) < 0:
        raise ValueError(f"--workers must be 0 (all cores) or a positive number of processes, got {workers}")
    workers = int(workers) or (os.cpu_count() or 1)
    output = Path(output)
    if not output.parent.is_dir():
        raise FileNotFoundError(f"the output folder {output.parent} does not exist")
    samples, classes = listing = list_images(Path(source))
    # keyed to the folder as it is before any file is read: a change during the conversion makes the next one redo it
    key = conversion_key(source, listing=listing, max_resolution=max_resolution, quality=quality,
                         write_mode=write_mode)
    skipped = find_unreadable([p for p, _ in samples], workers=workers, strict=strict)
    bad = {p for p, _ in skipped}
    good = [s for s in samples if s[0] not in bad]
    if not good:
        raise ValueError(f"none of the {len(samples)} images in {source} could be read")

    unlink_quietly(source_record(output))  # a crash before the new record leaves the .beton unkeyed: reconverted
    with atomic_path(output) as tmp:  # a killed conversion leaves the old .beton, and its temp file is cleaned later
        writer = DatasetWriter(str(tmp), {
            "image": RGBImageField(write_mode=write_mode, max_resolution=max_resolution, jpeg_quality=int(quality)),
            "label": IntField(),
            "index": IntField(),
        }, num_workers=workers)
        writer.from_indexed_dataset(_FolderDataset(good), chunksize=64)
    replace_atomically(source_record(output), json.dumps({**key, "samples": len(good)}, indent=1).encode())
    return ConversionReport(output, len(good), classes, skipped)


def source_record(output: str | Path) -> Path:
    """Where the record of what ``output`` was converted from lives: ``OUTPUT.source.json``."""
    output = Path(output)
    return output.with_name(output.name + ".source.json")


def conversion_key(source: str | Path, *, listing=None, max_resolution: int | None = None, quality: int = 90,
                   write_mode: str = "jpg") -> dict:
    """What a .beton's content depends on: the source folder (path and fingerprint) and the options."""
    return {"source": str(Path(source).resolve()), "fingerprint": folder_fingerprint(source, listing),
            "max_resolution": None if max_resolution is None else int(max_resolution), "quality": int(quality),
            "write_mode": write_mode}


def _key_for(source: str | Path, options: dict) -> dict:
    return conversion_key(source, **{k: v for k, v in options.items() if k in ("max_resolution", "quality",
                                                                               "write_mode")})


def _read_record(output: str | Path) -> dict | None:
    try:
        record = json.loads(source_record(output).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _matches(record: dict | None, key: dict, output: str | Path) -> bool:
    return (record is not None and "failed" not in record and Path(output).is_file()
            and all(record.get(k) == v for k, v in key.items()))


def converted_samples(output: str | Path) -> int:
    """How many samples the .beton ``output`` holds, from its record (the readable images of its source)."""
    record = _read_record(output)
    if record is None or not isinstance(record.get("samples"), int):
        raise ValueError(f"{output} has no readable record of its conversion ({source_record(output)})")
    return record["samples"]


def wait_converted(source: str | Path, output: str | Path, *, timeout_s: float = 86400.0, poll_s: float = 2.0,
                   **options) -> None:
    """Wait (polling its record, up to ``timeout_s``) until another process has converted ``source`` to ``output``
    with ``options``: what the other ranks of a node do while one converts, instead of a collective with a
    timeout. Raises at once if that conversion failed (``ensure_converted`` records the failure)."""
    key, deadline = _key_for(source, options), time.monotonic() + timeout_s  # the folder is listed once
    while True:
        record = _read_record(output)
        if _matches(record, key, output):
            return
        if record is not None and record.get("failed") and record.get("fingerprint") == key["fingerprint"]:
            raise RuntimeError(f"converting {source} to {output} failed in another process: {record['failed']}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{output} was not converted from {source} within {timeout_s:.0f} s")
        time.sleep(poll_s)


def ensure_converted(source: str | Path, output: str | Path, **options) -> bool:
    """Convert ``source`` to ``output`` unless ``output`` was converted from the same, unchanged folder with the same
    options (its ``.source.json`` record says so). Returns whether it converted. ``options``: ``convert_folder``'s.
    A failed conversion is recorded (``wait_converted`` raises) and raised.
    """
    key = _key_for(source, options)
    record = _read_record(output)
    if _matches(record, key, output):
        return False
    if Path(output).exists():
        why = "has no record of its source" if record is None else "was converted from other images or options"
        print(f"ccrop: {output} {why}; converting {source} again")
    try:
        convert_folder(source, output, **options)
    except Exception as error:
        replace_atomically(source_record(output), json.dumps({**key, "failed": f"{type(error).__name__}: {error}"},
                                                             indent=1).encode())
        raise
    return True
