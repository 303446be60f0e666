"""Image folder -> FFCV .beton with ``image`` (RGBImageField), ``label`` and ``index`` (IntField) fields.

Each .beton gets a ``NAME.source.json`` beside it: the source folder's fingerprint
(file list, sizes, mtimes) and the conversion options, so ``ensure_converted``
reconverts when either changed instead of training on stale data.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import multiprocessing
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ffcv.memory_allocator import MemoryAllocator
from ffcv.writer import DatasetWriter
from tqdm import tqdm

from ..core.files import atomic_path, free_bytes, replace_atomically, unlink_quietly
from ..folder import find_unreadable, folder_fingerprint, list_images, load_rgb

HEARTBEAT_S = 5.0  # how often a conversion in progress rewrites its record (what waiters take as a sign of life)


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
    with _heartbeat(output, key):
        skipped = find_unreadable([p for p, _ in samples], workers=workers, strict=strict)
    bad = {p for p, _ in skipped}
    good = [s for s in samples if s[0] not in bad]
    if not good:
        raise ValueError(f"none of the {len(samples)} images in {source} could be read")

    # a crash before the new record leaves the .beton unkeyed (a "converting" record): reconverted
    with _heartbeat(output, key), atomic_path(output) as tmp:  # a killed conversion leaves the old .beton
        writer = _CheckedWriter(str(tmp), {
            "image": RGBImageField(write_mode=write_mode, max_resolution=max_resolution, jpeg_quality=int(quality)),
            "label": IntField(),
            "index": IntField(),
        }, num_workers=workers)
        writer.from_indexed_dataset(_FolderDataset(good), chunksize=64)
    replace_atomically(source_record(output), json.dumps({**key, "samples": len(good)}, indent=1).encode())
    return ConversionReport(output, len(good), classes, skipped)


@contextlib.contextmanager
def _heartbeat(output: Path, key: dict) -> Iterator[None]:
    """While inside, ``output``'s record says it is being converted (by whom), rewritten every ``HEARTBEAT_S``;
    removed when the block fails."""
    stop = threading.Event()

    def beat():
        while True:
            replace_atomically(source_record(output), json.dumps({
                **key, "converting": f"{socket.gethostname()}:{os.getpid()}", "alive_at": time.time()}).encode())
            if stop.wait(HEARTBEAT_S):
                return

    beat_thread = threading.Thread(target=beat, name="ccrop-convert-heartbeat", daemon=True)
    beat_thread.start()
    try:
        yield
    except BaseException:
        stop.set()
        beat_thread.join()
        unlink_quietly(source_record(output))  # the .beton stays unkeyed: reconverted, as after a crash
        raise
    stop.set()
    beat_thread.join()


def _report_failure(errors, work_fn, *args) -> None:
    """An FFCV writer worker that tells the parent why it failed (errno, message) before exiting non-zero."""
    try:
        work_fn(*args)
    except BaseException as error:
        errors.put((getattr(error, "errno", None), f"{type(error).__name__}: {error}"))
        raise SystemExit(1) from None


class _CheckedWriter(DatasetWriter):
    """FFCV 1.0.2's writer, except that a worker that fails (a full disk: ENOSPC) ends the conversion with its
    error, the other workers stopped and the metadata's shared memory unlinked; FFCV waits forever."""

    def _write_common(self, num_samples, queue_content, work_fn, extra_worker_args):
        self.num_samples = num_samples
        self.prepare()
        try:
            work, allocations, errors = multiprocessing.Queue(), multiprocessing.Queue(), multiprocessing.Queue()
            for todo in queue_content:
                work.put(todo)
            for _ in range(self.num_workers):
                work.put(None)
            done = multiprocessing.Value(ctypes.c_uint64, 0)
            allocator = MemoryAllocator(self.fname, self.data_region_start, self.page_size)
            args = (work, self.metadata_sm, self.metadata_type, self.fields, allocator, done, allocations,
                    *extra_worker_args)
            workers = [multiprocessing.Process(target=_report_failure, args=(errors, work_fn, *args))
                       for _ in range(self.num_workers)]
            for worker in workers:
                worker.start()
            try:
                allocation_list = self._collect(workers, allocations, errors, done, tqdm(total=num_samples))
            finally:
                for worker in workers:
                    if worker.is_alive():
                        worker.terminate()
                    worker.join()
            self.finalize(allocation_list)
        finally:
            self.metadata_sm.close()
            self.metadata_sm.unlink()

    def _collect(self, workers, allocations, errors, done, progress) -> list:
        """Every worker's allocations, or the first failure raised."""
        allocation_list, received, shown = [], 0, 0
        with progress:
            while received < len(workers):
                try:
                    allocation_list.extend(allocations.get(timeout=0.1))
                    received += 1
                except queue.Empty:
                    pass
                progress.update(done.value - shown)
                shown = done.value
                failed = [w for w in workers if w.exitcode not in (None, 0)]
                if failed:
                    raise self._failure(errors, failed[0])
        return allocation_list

    def _failure(self, errors, worker) -> Exception:
        try:
            code, message = errors.get(timeout=1.0)
        except queue.Empty:
            code, message = None, f"exit code {worker.exitcode}"
        if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            directory = Path(self.fname).parent
            free = free_bytes(directory)
            return OSError(code, f"no room to write {self.fname} in {directory} "
                                 f"({'unknown' if free is None else f'{free:,} bytes'} free): {message}")
        return RuntimeError(f"an FFCV writer process failed: {message}")


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
    return (record is not None and "failed" not in record and "converting" not in record and Path(output).is_file()
            and all(record.get(k) == v for k, v in key.items()))


def converted_samples(output: str | Path) -> int:
    """How many samples the .beton ``output`` holds, from its record (the readable images of its source)."""
    record = _read_record(output)
    if record is None or not isinstance(record.get("samples"), int):
        raise ValueError(f"{output} has no readable record of its conversion ({source_record(output)})")
    return record["samples"]


def wait_converted(source: str | Path, output: str | Path, *, timeout_s: float = 1800.0,
                   poll_s: float = 1.0, **options) -> None:
    """Wait (polling its record) until another process has converted ``source`` to ``output`` with ``options``:
    what the other ranks of a node do while one converts, instead of a collective with a timeout. Raises at once
    if that conversion failed (``ensure_converted`` records the failure), and ``TimeoutError`` after ``timeout_s``
    (at least ``3 * HEARTBEAT_S``) without a sign of life from it: a conversion in progress rewrites its record
    every ``HEARTBEAT_S``, so only a converter that is gone or stuck runs out the time, however long converting
    takes."""
    key = _key_for(source, options)  # the folder is listed once
    timeout_s = max(float(timeout_s), 3 * HEARTBEAT_S)
    last_life, last_beat = time.monotonic(), None
    while True:
        record = _read_record(output)
        if _matches(record, key, output):
            return
        if record is not None and record.get("failed") and record.get("fingerprint") == key["fingerprint"]:
            raise RuntimeError(f"converting {source} to {output} failed in another process: {record['failed']}")
        beat = None if record is None else record.get("alive_at")
        if beat is not None and beat != last_beat:
            last_life, last_beat = time.monotonic(), beat
        if time.monotonic() - last_life > timeout_s:
            raise TimeoutError(f"{output}: no sign of life from its conversion from {source} for {timeout_s:.0f} s "
                               "(the converting process is gone or stuck)")
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
