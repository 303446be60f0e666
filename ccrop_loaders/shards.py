"""WebDataset tar shards of an image folder: each sample's encoded image, class and global index, keyed to the source.

``write_shards(SRC, OUT)`` numbers the images as ``FolderFiles.from_folder(SRC,
check_images=True)`` and ``ccrop convert`` do, so a sample has the same global
index (the same box) in a .beton, a file reader and the shards. Shard ``k`` is
``OUT/shard-{k:06d}.tar`` holding, per sample, ``{key}.{ext}`` (the file's own
bytes), ``{key}.cls`` and ``{key}.idx`` (int64 little-endian: class, global
index), ``key`` being the index as 9 digits; beside it ``shard-{k:06d}.idx``,
DALI's index (wds2idx v1.2). ``OUT/shards.json`` records the shards, their
sizes and samples, and the source's fingerprint. Every file is written beside
its target and renamed over it; the record is written last.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .core.checks import check_int
from .core.files import replace_atomically
from .folder import FolderFiles, folder_fingerprint, list_images

RECORD = "shards.json"
RECORD_VERSION = 1


def _key(index: int) -> str:
    return f"{index:09d}"


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> tuple[int, int]:
    """Add ``name`` holding ``data``; returns its data's (offset, size) in the archive."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    offset = tar.fileobj.tell() + tarfile.BLOCKSIZE  # the header block, then the data
    tar.addfile(info, io.BytesIO(data))
    return offset, len(data)


def write_shards(source: str | Path, out: str | Path, *, samples_per_shard: int = 1000) -> dict:
    """Write the readable images of ``source`` as shards in the folder ``out`` (made if absent); returns the record.

    Unreadable files are left out (as ``ccrop convert`` does) and listed in the
    record's ``skipped``. A folder ``out`` holding anything but our own shards is refused.
    """
    samples_per_shard = check_int("samples_per_shard", samples_per_shard, 1, 10**7)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    strangers = [p.name for p in out.iterdir() if not (p.name == RECORD or p.name.startswith("shard-"))]
    if strangers:
        raise ValueError(f"{out} holds other files ({strangers[0]}, ...): write shards into an empty folder")
    from tqdm import tqdm

    listing = list_images(source)
    files = FolderFiles.from_folder(source, check_images=True)
    shards = []
    bar = tqdm(total=files.num_samples, desc="ccrop convert: writing shards", unit="img", smoothing=0.05)
    for first in range(0, files.num_samples, samples_per_shard):
        name = f"shard-{first // samples_per_shard:06d}"
        buffer, index_lines = io.BytesIO(), []
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(first, min(first + samples_per_shard, files.num_samples)):
                path, index = Path(files.files[i]), int(files.indices[i])
                ext = path.suffix.lower().lstrip(".") or "img"
                fields = [(ext, path.read_bytes()), ("cls", np.int64(files.labels[i]).tobytes()),
                          ("idx", np.int64(index).tobytes())]
                parts = []
                for field, data in fields:
                    offset, size = _member(tar, f"{_key(index)}.{field}", data)
                    parts.append(f"{field} {offset} {size} {_key(index)}.{field}")
                index_lines.append(" ".join(parts))
                bar.update()
        count = len(index_lines)
        replace_atomically(out / f"{name}.tar", buffer.getvalue())
        replace_atomically(out / f"{name}.idx", (f"v1.2 {count}\n" + "\n".join(index_lines) + "\n").encode())
        shards.append({"tar": f"{name}.tar", "index": f"{name}.idx", "bytes": len(buffer.getvalue()),
                       "first": first, "samples": count})
    bar.close()
    record = {"version": RECORD_VERSION, "num_samples": files.num_samples, "classes": files.classes,
              "samples_per_shard": samples_per_shard, "shards": shards,
              "source": {"path": str(Path(source).resolve()), "fingerprint": folder_fingerprint(source, listing)},
              "skipped": [[str(p), why] for p, why in files.skipped]}
    replace_atomically(out / RECORD, (json.dumps(record, indent=1) + "\n").encode())
    return record


@dataclass
class ShardFiles:
    """Shards written by ``write_shards``, checked against their record: ``tars`` and ``index_files`` (paths, in
    order), ``num_samples``, ``classes``; ``files[i]`` names sample ``indices[i]`` as ``shard.tar:key`` (how
    errors name a damaged member)."""

    root: Path
    tars: list[str]
    index_files: list[str]
    num_samples: int
    classes: list[str]
    files: list[str]
    indices: np.ndarray

    @classmethod
    def open(cls, root: str | Path) -> "ShardFiles":
        """Read ``root/shards.json`` and check each shard's size against it (a truncated or replaced shard is a
        ValueError naming it, before any reader opens it)."""
        root = Path(root)
        try:
            record = json.loads((root / RECORD).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no {RECORD} in {root}: write the shards with ccrop convert --format wds") \
                from None
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"{root / RECORD} is not a shard record: {err}") from None
        if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
            raise ValueError(f"{root / RECORD}: unknown shard record (version {record.get('version')!r}), "
                             f"expected {RECORD_VERSION}")
        tars, index_files, files, indices, at = [], [], [], [], 0
        for shard in record["shards"]:
            tar = root / shard["tar"]
            size = os.stat(tar).st_size if tar.is_file() else None
            if size != shard["bytes"]:
                raise ValueError(f"shard {tar} is damaged or truncated: {size} bytes, its record says "
                                 f"{shard['bytes']}; write the shards again")
            if shard["first"] != at:
                raise ValueError(f"{root / RECORD} is corrupt: shard {tar} starts at sample {shard['first']}, "
                                 f"expected {at}")
            tars.append(str(tar))
            index_files.append(str(root / shard["index"]))
            files += [f"{tar}:{_key(i)}" for i in range(at, at + shard["samples"])]
            indices += range(at, at + shard["samples"])
            at += shard["samples"]
        if at != record["num_samples"]:
            raise ValueError(f"{root / RECORD} is corrupt: its shards hold {at} samples, it declares "
                             f"{record['num_samples']}")
        return cls(root, tars, index_files, at, record["classes"], files, np.asarray(indices, dtype=np.int64))

    def index_of(self, name: str) -> int | None:
        """Global index of ``shard.tar:key`` (None if not listed)."""
        try:
            return int(self.indices[self.files.index(str(name))])
        except ValueError:
            return None
