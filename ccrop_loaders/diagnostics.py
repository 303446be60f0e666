"""Do a table's boxes find the objects, and do ContrastiveCrop's views share them? Checks against ground truth.

Boxes everywhere are normalized ``(y0, x0, y1, x1)`` in [0, 1] with ``y0 <= y1``
and ``x0 <= x1`` (top, left, bottom, right as fractions of the image height and
width; the bottom/right edge is exclusive, so a box's area is ``(y1 - y0) * (x1 -
x0)`` of the image). Windows are the sampler's pixel ``(top, left, height,
width)``, drawn exactly as every loader draws them (``sample_crops``, same keys).

- **IoU** of each table box with its ground-truth box, and of the full box
  ``(0, 0, 1, 1)`` (what RandomResizedCrop implicitly uses: the object's area).
- **Coverage** of a view: the fraction of the object's ground-truth box inside the
  view's window. **View consistency**: the fraction of view pairs (views 0 and 1
  of a sample in an epoch) in which both views cover at least ``coverage`` (30%)
  of the object; for ContrastiveCrop with the table's boxes, for
  RandomResizedCrop (full box, uniform positions), and for ContrastiveCrop with
  the ground-truth boxes (an upper bound for perfect localization).

Ground truth files (``read_truth``): CSV with a header ``index,y0,x0,y1,x1``
(optionally ``,height,width`` in pixels), or JSON: a list of objects with those
keys, or of lists ``[index, y0, x0, y1, x1]`` (optionally ``, height, width``).
``index`` is the sample's global index (its table row).
"""
from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .core.sampler import FULL_BOX, check_boxes, sample_crops

FIELDS = ("index", "y0", "x0", "y1", "x1")
SIZE_FIELDS = ("height", "width")


class TruthError(ValueError):
    """A ground-truth file or array that cannot be used; the message names the file, row and field."""


@dataclass
class Truth:
    """Ground-truth boxes: int64 (n,) table rows, float64 (n, 4) normalized boxes, int64 (n, 2) (height, width)
    pixels or None when the file has no sizes."""

    indices: np.ndarray
    boxes: np.ndarray
    sizes: np.ndarray | None = None


@dataclass
class BoxDiagnostics:
    """``box_diagnostics``'s figures (means over the samples with ground truth)."""

    samples: int              # samples with ground truth
    pairs: int                # view pairs per consistency figure (samples x epochs)
    coverage: float           # the share of the object both views must hold
    mean_iou: float           # table boxes vs ground truth
    full_box_iou: float       # the full box vs ground truth (= the mean object area)
    located: float            # share of table boxes smaller than the full image
    consistency_ccrop: float  # ContrastiveCrop with the table's boxes
    consistency_rrc: float    # RandomResizedCrop
    consistency_truth: float  # ContrastiveCrop with the ground-truth boxes (upper bound)

    def as_dict(self) -> dict:
        return asdict(self)

    def report(self) -> str:
        """A few lines of text, as ``ccrop diagnose`` prints them."""
        pct = lambda v: f"{100 * v:5.1f}%"
        return "\n".join([
            f"samples with ground truth   {self.samples:,} ({self.pairs:,} view pairs per figure)",
            f"box IoU with ground truth   table {self.mean_iou:.3f}   full image {self.full_box_iou:.3f}",
            f"boxes smaller than image    {pct(self.located)}",
            f"view pairs both holding >= {100 * self.coverage:.0f}% of the object:",
            f"  ContrastiveCrop, table boxes        {pct(self.consistency_ccrop)}",
            f"  RandomResizedCrop                   {pct(self.consistency_rrc)}",
            f"  ContrastiveCrop, ground-truth boxes {pct(self.consistency_truth)} (upper bound)",
        ])


# ----------------------------------------------------------------- geometry


def box_iou(a, b) -> np.ndarray:
    """IoU of rows of two float (n, 4) box arrays, float64 (n,); two empty boxes that are equal have IoU 1."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    ih = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iw = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = ih * iw
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    same = np.all(a == b, axis=1)
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), np.where(same, 1.0, 0.0))


def object_coverage(windows, truth, sizes) -> np.ndarray:
    """Share of each object's box inside its window, float64 (n,).

    ``windows``: int (n, 4) pixel ``(top, left, height, width)``; ``truth``: float (n, 4) normalized boxes of
    positive area; ``sizes``: int (n, 2) image ``(height, width)`` in pixels.
    """
    w = np.asarray(windows, np.float64).reshape(-1, 4)
    t = np.asarray(truth, np.float64).reshape(-1, 4)
    s = np.asarray(sizes, np.float64).reshape(-1, 2)
    oy0, ox0, oy1, ox1 = t[:, 0] * s[:, 0], t[:, 1] * s[:, 1], t[:, 2] * s[:, 0], t[:, 3] * s[:, 1]
    ih = np.clip(np.minimum(oy1, w[:, 0] + w[:, 2]) - np.maximum(oy0, w[:, 0]), 0, None)
    iw = np.clip(np.minimum(ox1, w[:, 1] + w[:, 3]) - np.maximum(ox0, w[:, 1]), 0, None)
    return ih * iw / ((oy1 - oy0) * (ox1 - ox0))


def view_consistency(boxes, truth, sizes, *, indices=None, alpha: float = 0.6, seed: int = 0,
                     epochs: Sequence[int] = range(4), coverage: float = 0.3,
                     scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> float:
    """Fraction of view pairs (views 0 and 1, each epoch in ``epochs``) whose two windows, sampled from ``boxes``
    with ``alpha``, both cover at least ``coverage`` of the ``truth`` box. ``boxes`` = the full box with
    ``alpha=1`` is RandomResizedCrop. ``indices``: the samples' global indices (keys of their windows; default
    ``0..n-1``); the other arguments as ``box_diagnostics``."""
    truth = np.asarray(truth, np.float64)
    n = len(truth)
    boxes = np.broadcast_to(np.asarray(boxes, np.float64), (n, 4))
    indices = np.arange(n) if indices is None else np.asarray(indices)
    sizes = np.asarray(sizes, np.int64)
    both = []
    for epoch in epochs:
        windows = sample_crops(sizes[:, 0], sizes[:, 1], boxes, indices, views=2, scale=scale, ratio=ratio,
                               alpha=alpha, seed=seed, epoch=int(epoch))
        held = [object_coverage(windows[:, v], truth, sizes) >= coverage for v in (0, 1)]
        both.append(held[0] & held[1])
    return float(np.mean(np.concatenate(both)))


# ----------------------------------------------------------------- the report


def box_diagnostics(table_or_boxes, truth, image_sizes=None, *, indices=None, alpha: float = 0.6,
                    seed: int | None = None, epochs: Sequence[int] = range(4), coverage: float = 0.3,
                    scale: tuple[float, float] = (0.2, 1.0),
                    ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> BoxDiagnostics:
    """IoU of a table's boxes with ground truth, and view consistency of ContrastiveCrop vs RandomResizedCrop.

    ``table_or_boxes``: a ``BoxTable``, an ``inspection.TableSnapshot`` (what ``read_table`` gives for a file,
    checkpoint or live name) or float (N, 4) boxes, one per sample. ``truth``: a ``Truth`` (``read_truth``) or
    float (n, 4) ground-truth boxes of positive area for table rows ``indices`` (default ``0..n-1``).
    ``image_sizes``: int (n, 2) ``(height, width)`` pixels of those samples (as the loader sees them; a ``.beton``
    may store them resized), or one ``(height, width)`` for all; None takes the ``Truth``'s sizes. Windows use
    ``seed`` (default: the table's seed, else 0), ``scale``, ``ratio``, ``alpha`` for ContrastiveCrop, over
    ``epochs``; a view pair counts when both views hold at least ``coverage`` of the object's box.
    """
    if isinstance(truth, Truth):
        indices = truth.indices if indices is None else indices
        image_sizes = truth.sizes if image_sizes is None else image_sizes
        truth = truth.boxes
    truth = _checked_truth(truth)
    n = len(truth)
    rows, table_seed = _rows_of(table_or_boxes)
    indices = np.arange(n) if indices is None else np.asarray(indices)
    if indices.shape != (n,) or not np.issubdtype(indices.dtype, np.integer):
        raise TruthError(f"indices must be n = {n} integers (one per ground-truth box), got {indices.dtype} "
                         f"{indices.shape}")
    bad = np.flatnonzero((indices < 0) | (indices >= len(rows)))
    if bad.size:
        raise TruthError(f"ground truth row {bad[0]}: index {indices[bad[0]]} is not a row of the table "
                         f"({len(rows)} samples, rows 0 to {len(rows) - 1})")
    if image_sizes is None:
        raise TruthError("image sizes are needed (the windows are drawn in pixels): pass image_sizes, or ground "
                         "truth with height and width")
    sizes = np.asarray(image_sizes)
    if sizes.shape == (2,):
        sizes = np.broadcast_to(sizes, (n, 2))
    if sizes.shape != (n, 2) or not np.issubdtype(sizes.dtype, np.integer) or (sizes < 1).any():
        raise TruthError(f"image_sizes must be positive integers (height, width), one pair or one per ground-truth "
                         f"box (n = {n}), got {sizes.dtype} {sizes.shape}")
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    seed = table_seed if seed is None else seed
    boxes = rows[indices]
    common = {"indices": indices, "seed": seed, "epochs": epochs, "coverage": coverage, "scale": scale, "ratio": ratio}
    full = np.array(FULL_BOX)
    return BoxDiagnostics(
        samples=n, pairs=n * len(epochs), coverage=float(coverage),
        mean_iou=float(box_iou(boxes, truth).mean()),
        full_box_iou=float(box_iou(np.broadcast_to(full, (n, 4)), truth).mean()),
        located=float(np.mean(np.abs(boxes - full).max(axis=1) > 1e-3)),
        consistency_ccrop=view_consistency(boxes, truth, sizes, alpha=alpha, **common),
        consistency_rrc=view_consistency(full, truth, sizes, alpha=1.0, **common),
        consistency_truth=view_consistency(truth, truth, sizes, alpha=alpha, **common))


def _rows_of(table_or_boxes) -> tuple[np.ndarray, int]:
    """float64 (N, 4) boxes and the seed of a BoxTable, a TableSnapshot or an array (seed 0)."""
    from .core.table import BoxTable

    if isinstance(table_or_boxes, BoxTable):
        return table_or_boxes.read().astype(np.float64), int(table_or_boxes.seed)
    if hasattr(table_or_boxes, "boxes") and hasattr(table_or_boxes, "seed"):  # inspection.TableSnapshot
        return np.asarray(table_or_boxes.boxes, np.float64), int(table_or_boxes.seed)
    return check_boxes(table_or_boxes, "table boxes").astype(np.float64), 0


def _checked_truth(truth) -> np.ndarray:
    try:
        truth = check_boxes(truth, "ground truth").astype(np.float64)
    except ValueError as err:
        raise TruthError(str(err)) from None
    empty = np.flatnonzero((truth[:, 2] <= truth[:, 0]) | (truth[:, 3] <= truth[:, 1]))
    if empty.size:
        raise TruthError(f"ground truth: row {empty[0]} has zero area ({truth[empty[0]].tolist()}): an object box "
                         "needs y0 < y1 and x0 < x1")
    return truth


# ----------------------------------------------------------------- files


def read_truth(path: str | os.PathLike) -> Truth:
    """Ground-truth boxes from a CSV or JSON file (the module doc gives the formats); rows sorted by index.

    Raises ``TruthError`` naming the file, the row (CSV: its line; JSON: its entry) and the field of the first
    malformed value: a missing or extra field, a non-number, a coordinate outside [0, 1], y0 >= y1 or
    x0 >= x1, a negative or non-integer index or size, an index given twice.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise TruthError(f"cannot read the ground truth {path}: {err}") from None
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        records = _json_records(path, text)
    else:
        records = _csv_records(path, text)
    if not records:
        raise TruthError(f"{path}: no ground-truth rows")
    with_sizes = {len(values) == 7 for _, values in records}
    if len(with_sizes) > 1:
        raise TruthError(f"{path}: some rows have height and width and others not; give them for all or none")
    indices, boxes, sizes, seen = [], [], [], {}
    for where, values in records:
        index = _integer(path, where, "index", values[0], lo=0)
        if index in seen:
            raise TruthError(f"{path}, {where}: index {index} was given before ({seen[index]})")
        seen[index] = where
        box = [_number(path, where, name, v) for name, v in zip(FIELDS[1:], values[1:5])]
        for lo, hi in ((0, 2), (1, 3)):
            if not box[lo] < box[hi]:
                raise TruthError(f"{path}, {where}: {FIELDS[1 + lo]} = {box[lo]} must be below {FIELDS[1 + hi]} = "
                                 f"{box[hi]} (boxes are (y0, x0, y1, x1), normalized, of positive area)")
        indices.append(index)
        boxes.append(box)
        if len(values) == 7:
            sizes.append([_integer(path, where, name, v, lo=1) for name, v in zip(SIZE_FIELDS, values[5:])])
    order = np.argsort(indices, kind="stable")
    return Truth(np.array(indices, np.int64)[order], np.array(boxes, np.float64)[order],
                 np.array(sizes, np.int64)[order] if sizes else None)


def _csv_records(path: Path, text: str) -> list[tuple[str, list]]:
    rows = [(n, row) for n, row in enumerate(csv.reader(text.splitlines()), start=1) if any(c.strip() for c in row)]
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0][1]]
    if header not in (list(FIELDS), list(FIELDS + SIZE_FIELDS)):
        raise TruthError(f"{path}, line {rows[0][0]}: the header must be {','.join(FIELDS)} (optionally "
                         f"{','.join(SIZE_FIELDS)} after it), got {','.join(header)!r}")
    records = []
    for n, row in rows[1:]:
        if len(row) != len(header):
            raise TruthError(f"{path}, line {n}: {len(row)} fields, expected {len(header)} ({','.join(header)})")
        records.append((f"line {n}", [c.strip() for c in row]))
    return records


def _json_records(path: Path, text: str) -> list[tuple[str, list]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise TruthError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, list):
        raise TruthError(f"{path}: expected a JSON list of boxes, got {type(data).__name__}")
    records = []
    for n, entry in enumerate(data):
        where = f"entry {n}"
        if isinstance(entry, dict):
            keys = FIELDS + SIZE_FIELDS if "height" in entry or "width" in entry else FIELDS
            missing = [k for k in keys if k not in entry]
            extra = sorted(set(entry) - set(keys))
            if missing or extra:
                raise TruthError(f"{path}, {where}: " + (f"missing field {missing[0]!r}" if missing else
                                                         f"unknown field {extra[0]!r}") +
                                 f" (expected {', '.join(keys)})")
            records.append((where, [entry[k] for k in keys]))
        elif isinstance(entry, list) and len(entry) in (5, 7):
            records.append((where, entry))
        else:
            raise TruthError(f"{path}, {where}: expected an object with {', '.join(FIELDS)} or a list [index, y0, "
                             f"x0, y1, x1] (optionally height, width), got {entry!r}")
    return records


def _number(path: Path, where: str, name: str, value) -> float:
    try:
        v = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise TruthError(f"{path}, {where}: field {name} = {value!r} is not a number in [0, 1] (boxes are "
                         "normalized)")
    return v


def _integer(path: Path, where: str, name: str, value, lo: int) -> int:
    try:
        v = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v == int(v) and v >= lo):
        raise TruthError(f"{path}, {where}: field {name} = {value!r} is not an integer >= {lo}")
    return int(v)


def image_sizes(source: str | os.PathLike) -> np.ndarray:
    """int64 (n, 2) ``(height, width)`` of every image, in global-index order, of an image folder (read from the
    headers) or a ``.beton`` (its stored sizes, which the FFCV loader crops)."""
    source = Path(source)
    if source.is_dir():
        from PIL import Image

        from .folder import list_images

        sizes = []
        for p, _ in list_images(source)[0]:
            with Image.open(p) as img:
                sizes.append(img.size[::-1])
        return np.array(sizes, np.int64)
    if not source.is_file():
        raise FileNotFoundError(f"no image folder or .beton at {source}")
    from ffcv.reader import Reader

    reader = Reader(str(source))
    field = reader.field_names.index("image") if "image" in reader.field_names else 0
    meta = reader.metadata[f"f{field}"]
    return np.stack([meta["height"], meta["width"]], axis=1).astype(np.int64)
