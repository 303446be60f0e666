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
``index`` is the sample's global index (its table row). Files are UTF-8 (a BOM is fine), regular, at most
``MAX_TRUTH_BYTES``; a FIFO, a device, a folder or a file holding NUL bytes is refused without being read.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ccrop_loaders.core.files import open_regular
from ccrop_loaders.core.checks import check_alpha, check_boxes
from ccrop_loaders.core.sampler import FULL_BOX, sample_crops

FIELDS = ("index", "y0", "x0", "y1", "x1")
SIZE_FIELDS = ("height", "width")
MAX_TRUTH_BYTES = 1 << 30  # 1 GiB: about 15 million CSV rows; larger files are refused before reading
MAX_INDEX = 2**63 - 1      # the sampler's bounds on sample indices and image sides
MAX_SIDE = 2**31 - 1
# A share of the object counts as "at least coverage" up to this much float rounding: 0.3 computed as
# 63 * 10 / (210 * 10) can come out 0.29999999999999993.
COVERAGE_TOLERANCE = 1e-9
_CHUNK = 1 << 24


class TruthError(ValueError):
    """A ground-truth file or array that cannot be used; the message names the file, row and field."""


@dataclass
class Truth:
    """Ground-truth boxes: int64 (n,) table rows, float64 (n, 4) normalized boxes, int64 (n, 2) (height, width)
    pixels or None when the file has no sizes."""

    indices: np.ndarray
    boxes: np.ndarray
    sizes: np.ndarray | None = None
    source: str | None = field(default=None, compare=False)    # the file read (read_truth), for messages
    where: list[str] | None = field(default=None, compare=False)  # each row's line or entry in it, same order


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
    with ``alpha``, both cover at least ``coverage`` of the ``truth`` box (up to ``COVERAGE_TOLERANCE``: an
    exact 30% counts whatever the float rounding). ``boxes`` = the full box with
    ``alpha=1`` is RandomResizedCrop. ``indices``: the samples' global indices (keys of their windows; default
    ``0..n-1``); the other arguments as ``box_diagnostics``."""
    truth = np.asarray(truth, np.float64)
    n = len(truth)
    epochs = _checked_epochs(epochs)
    boxes = np.broadcast_to(np.asarray(boxes, np.float64), (n, 4))
    indices = np.arange(n) if indices is None else np.asarray(indices)
    sizes = np.asarray(sizes, np.int64)
    both = []
    for epoch in epochs:
        windows = sample_crops(sizes[:, 0], sizes[:, 1], boxes, indices, views=2, scale=scale, ratio=ratio,
                               alpha=alpha, seed=seed, epoch=int(epoch))
        held = [object_coverage(windows[:, v], truth, sizes) >= coverage - COVERAGE_TOLERANCE for v in (0, 1)]
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
    where = None  # each truth row's line or entry in its file, for messages
    if isinstance(truth, Truth):
        if truth.source is not None and truth.where is not None and indices is None:
            where = [f"{truth.source}, {w}" for w in truth.where]
        indices = truth.indices if indices is None else indices
        image_sizes = truth.sizes if image_sizes is None else image_sizes
        truth = truth.boxes
    truth = _checked_truth(truth)
    n = len(truth)

    def name(i: int) -> str:
        return where[i] if where is not None else f"ground truth row {i}"

    if n == 0:
        raise TruthError("no ground-truth boxes: the figures need at least one")
    epochs = _checked_epochs(epochs)
    rows, table_seed = _rows_of(table_or_boxes)
    indices = np.arange(n) if indices is None else np.asarray(indices)
    if indices.shape != (n,) or not np.issubdtype(indices.dtype, np.integer):
        raise TruthError(f"indices must be n = {n} integers (one per ground-truth box), got {indices.dtype} "
                         f"{indices.shape}")
    bad = np.flatnonzero((indices < 0) | (indices >= len(rows)))
    if bad.size:
        raise TruthError(f"{name(bad[0])}: index {indices[bad[0]]} is not a row of the table "
                         f"({len(rows)} samples, rows 0 to {len(rows) - 1})")
    order = np.argsort(indices, kind="stable")
    same = np.flatnonzero(indices[order][1:] == indices[order][:-1])
    if same.size:
        first, again = order[same[0]], order[same[0] + 1]
        raise TruthError(f"{name(again)}: index {indices[again]} has a ground-truth box already ({name(first)}); "
                         "give each sample one box")
    if image_sizes is None:
        raise TruthError("image sizes are needed (the windows are drawn in pixels): pass image_sizes, or ground "
                         "truth with height and width")
    sizes = np.asarray(image_sizes)
    if sizes.shape == (2,):
        sizes = np.broadcast_to(sizes, (n, 2))
    if sizes.shape != (n, 2) or not np.issubdtype(sizes.dtype, np.integer) or (sizes < 1).any() or (
            sizes > MAX_SIDE).any():
        raise TruthError(f"image_sizes must be integers (height, width) from 1 to {MAX_SIDE}, one pair or one per "
                         f"ground-truth box (n = {n}), got {sizes.dtype} {sizes.shape}" +
                         (f" holding {sizes.min()} to {sizes.max()}" if np.issubdtype(sizes.dtype, np.number)
                          and sizes.size else ""))
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    alpha = check_alpha(alpha)
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


def _checked_epochs(epochs) -> list[int]:
    """``epochs`` as a non-empty list of integers (the sampler checks their range)."""
    values = list(epochs)
    if not values or not all(isinstance(e, (int, np.integer)) and not isinstance(e, (bool, np.bool_))
                             for e in values):
        raise ValueError(f"epochs must be one or more integers, got {epochs!r}")
    return [int(e) for e in values]


def _rows_of(table_or_boxes) -> tuple[np.ndarray, int]:
    """float64 (N, 4) boxes and the seed of a BoxTable, a TableSnapshot or an array (seed 0)."""
    from ccrop_loaders.core.table import BoxTable

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


def read_truth(path: str | os.PathLike, *, max_rows: int | None = None) -> Truth:
    """Ground-truth boxes from a CSV or JSON file (the module doc gives the formats); rows sorted by index.

    ``max_rows``: the table's sample count, when known; a file with more rows cannot be right (one row per
    sample) and is refused as soon as the row after it is read, before the rest is parsed (memory stays in
    proportion to the table, not to the file).

    Raises ``TruthError`` naming the file, the row (CSV: its line; JSON: its entry) and the field of the first
    malformed value: a missing or extra field, a non-number, a coordinate outside [0, 1], y0 >= y1 or
    x0 >= x1, a negative, non-integer or too large index or size, an index given twice. A file that is not a
    regular file, is larger than ``MAX_TRUTH_BYTES``, holds NUL bytes or is not UTF-8 is refused before
    anything is parsed.
    """
    path = Path(path)
    text = _read_text(path)
    limit = math.inf if max_rows is None else max_rows
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        records = _json_records(path, text, limit)
    else:
        records = _csv_records(path, text, limit)
    if not records:
        raise TruthError(f"{path}: no ground-truth rows")
    with_sizes = {len(values) == 7 for _, values in records}
    if len(with_sizes) > 1:
        raise TruthError(f"{path}: some rows have height and width and others not; give them for all or none")
    indices, boxes, sizes, seen = [], [], [], {}
    for where, values in records:
        index = _integer(path, where, "index", values[0], lo=0, hi=MAX_INDEX)
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
            sizes.append([_integer(path, where, name, v, lo=1, hi=MAX_SIDE)
                          for name, v in zip(SIZE_FIELDS, values[5:])])
    order = np.argsort(np.array(indices, np.int64), kind="stable")
    return Truth(np.array(indices, np.int64)[order], np.array(boxes, np.float64)[order],
                 np.array(sizes, np.int64)[order] if sizes else None, str(path), [records[i][0] for i in order])


def _read_text(path: Path) -> str:
    """The file's text: a regular file (never blocking on a FIFO), at most ``MAX_TRUTH_BYTES``, no NUL, UTF-8."""
    try:
        fd = open_regular(path, os.O_RDONLY, f"ground truth file {path}")
    except ValueError as err:
        raise TruthError(str(err)) from None
    except OSError as err:
        raise TruthError(f"cannot read the ground truth {path}: {err.strerror or err}") from None
    chunks, total = [], 0
    try:
        size = os.fstat(fd).st_size
        if size > MAX_TRUTH_BYTES:
            raise TruthError(f"{path} is {size:,} bytes; ground truth files are at most {MAX_TRUTH_BYTES:,} bytes "
                             "(give the boxes of a subset of the samples)")
        while True:  # chunks: a file that grows, or claims a wrong size, is still stopped at the limit
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            nul = chunk.find(b"\0")
            if nul >= 0:
                raise TruthError(f"{path} holds a NUL byte (at byte {total + nul:,}): not a CSV or JSON text file")
            total += len(chunk)
            if total > MAX_TRUTH_BYTES:
                raise TruthError(f"{path} holds more than {MAX_TRUTH_BYTES:,} bytes; ground truth files are at most "
                                 "that (give the boxes of a subset of the samples)")
            chunks.append(chunk)
    except OSError as err:
        raise TruthError(f"cannot read the ground truth {path}: {err.strerror or err}") from None
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise TruthError(f"{path} is not UTF-8 text (byte {err.start:,}: {err.reason})") from None


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def _too_many(path: Path, limit: float) -> TruthError:
    return TruthError(f"{path} holds more than {int(limit):,} rows, but the table has {int(limit):,} samples "
                      "(one row per sample)")


def _csv_records(path: Path, text: str, limit: float = math.inf) -> list[tuple[str, list]]:
    # lines one at a time, ends kept (a quoted field may hold one): io.StringIO would copy the text 4 bytes a character
    reader = csv.reader(m.group() for m in _LINE.finditer(text))
    rows = []
    try:
        for row in reader:
            if any(c.strip() for c in row):
                rows.append((reader.line_num, row))
                if len(rows) > limit + 1:  # the header and more rows than the table has samples
                    raise _too_many(path, limit)
    except csv.Error as err:  # a field over csv's size limit, a stray quote in strict mode
        raise TruthError(f"{path}, line {reader.line_num}: not CSV ({err})") from None
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0][1]]
    if header not in (list(FIELDS), list(FIELDS + SIZE_FIELDS)):
        shown = ",".join(header)
        raise TruthError(f"{path}, line {rows[0][0]}: the header must be {','.join(FIELDS)} (optionally "
                         f"{','.join(SIZE_FIELDS)} after it), got {shown[:200]!r}")
    records = []
    for n, row in rows[1:]:
        if len(row) != len(header):
            raise TruthError(f"{path}, line {n}: {len(row)} fields, expected {len(header)} ({','.join(header)})")
        records.append((f"line {n}", [c.strip() for c in row]))
    return records


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _json_entries(path: Path, text: str, limit: float):
    """The top-level list's entries one at a time (json.loads would build them all, however many the file holds)."""
    decoder = json.JSONDecoder()

    def decode(i: int, where: str = ""):
        try:
            return decoder.raw_decode(text, i)
        except json.JSONDecodeError as err:
            raise TruthError(f"{path} is not valid JSON: {err}") from None
        except RecursionError:
            raise TruthError(f"{path}{where}: JSON nested too deeply (a ground truth file is a list of lists or "
                             "objects)") from None
        except ValueError as err:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
            raise TruthError(f"{path}{where} is not usable JSON: {err}") from None

    i = _JSON_SPACE.match(text).end()
    if text[i:i + 1] != "[":
        kind = "dict" if text[i:i + 1] == "{" else type(decode(i)[0]).__name__
        raise TruthError(f"{path}: expected a JSON list of boxes, got {kind}")
    i = _JSON_SPACE.match(text, i + 1).end()
    n = 0
    if text[i:i + 1] == "]":
        i += 1
    else:
        while True:
            if n >= limit:
                raise _too_many(path, limit)
            entry, i = decode(i, f", entry {n}")
            yield entry
            n += 1
            i = _JSON_SPACE.match(text, i).end()
            if text[i:i + 1] == ",":
                i = _JSON_SPACE.match(text, i + 1).end()
            elif text[i:i + 1] == "]":
                i += 1
                break
            else:
                raise TruthError(f"{path} is not valid JSON: expected ',' or ']' after entry {n - 1} (char {i})")
    if _JSON_SPACE.match(text, i).end() != len(text):
        raise TruthError(f"{path} is not valid JSON: extra data after the list (char {i})")


def _json_records(path: Path, text: str, limit: float = math.inf) -> list[tuple[str, list]]:
    records = []
    for n, entry in enumerate(_json_entries(path, text, limit)):
        where = f"entry {n}"
        if isinstance(entry, dict):
            keys = FIELDS + SIZE_FIELDS if "height" in entry or "width" in entry else FIELDS
            missing = [k for k in keys if k not in entry]
            extra = sorted(set(entry) - set(keys))
            if missing or extra:
                raise TruthError(f"{path}, {where}: " + (f"missing field {missing[0]!r}" if missing else
                                                         f"unknown field {extra[0][:100]!r}") +
                                 f" (expected {', '.join(keys)})")
            records.append((where, [entry[k] for k in keys]))
        elif isinstance(entry, list) and len(entry) in (5, 7):
            records.append((where, entry))
        else:
            raise TruthError(f"{path}, {where}: expected an object with {', '.join(FIELDS)} or a list [index, y0, "
                             f"x0, y1, x1] (optionally height, width), got {_shown(entry)}")
    return records


_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _shown(value) -> str:
    """``repr`` of a value from a file, cut short (a field may be megabytes)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text):,} characters)"


def _as_float(value) -> float:
    """A JSON number or a decimal string as a float; NaN for anything else (bools, text, lists, huge ints)."""
    if isinstance(value, bool):
        return math.nan
    if isinstance(value, str):
        value = value.strip()
        if value.lower() in ("nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"):
            return math.nan
        if len(value) > 400 or not _DECIMAL.fullmatch(value):  # float() would take '1_0' and ' 1 ', '١'
            return math.nan
    if not isinstance(value, (int, float, str)):
        return math.nan
    try:
        return float(value)
    except (ValueError, OverflowError):
        return math.nan


def _number(path: Path, where: str, name: str, value) -> float:
    v = _as_float(value)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise TruthError(f"{path}, {where}: field {name} = {_shown(value)} is not a number in [0, 1] (boxes are "
                         "normalized)")
    return v


def _integer(path: Path, where: str, name: str, value, lo: int, hi: int) -> int:
    """An exact integer in [lo, hi]: an int, an integral float below 2**53 (3.0, 1e3), or the text of either."""
    v = None
    if isinstance(value, int) and not isinstance(value, bool):
        v = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]{1,30}\s*", value):
        v = int(value)
    else:
        f = _as_float(value)
        if math.isfinite(f) and f == int(f):
            if abs(f) >= 2**53:  # from 2**53 on a float is not an exact integer: 9007199254740993.0 reads ...992
                raise TruthError(f"{path}, {where}: field {name} = {_shown(value)} is too large to be exact as a "
                                 "decimal or exponent number; write it in digits only")
            v = int(f)
    if v is None or v < lo:
        raise TruthError(f"{path}, {where}: field {name} = {_shown(value)} is not an integer >= {lo}")
    if v > hi:
        raise TruthError(f"{path}, {where}: field {name} = {_shown(value)} is above {hi:,}, the largest "
                         f"{'sample index' if name == 'index' else 'image side'} the sampler takes")
    return v


def image_sizes(source: str | os.PathLike) -> np.ndarray:
    """int64 (n, 2) ``(height, width)`` of every image, in global-index order, of an image folder (read from the
    headers, EXIF orientation applied as the loaders apply it) or a ``.beton`` (the stored sizes of its RGB image
    field, which the FFCV loader crops). Raises ``ValueError`` naming an unreadable image or a malformed
    ``.beton``."""
    source = Path(source)
    if source.is_dir():
        from PIL import Image

        from ccrop_loaders.folder import list_images

        sizes = []
        for p, _ in list_images(source)[0]:
            try:
                with Image.open(p) as img:
                    width, height = img.size
                    if img.getexif().get(0x0112) in (5, 6, 7, 8):  # rotated a quarter turn: load_rgb swaps the sides
                        width, height = height, width
            except Exception as err:  # Pillow raises many kinds on a broken file
                raise ValueError(f"cannot read the size of {p}: {type(err).__name__}: {err}") from None
            sizes.append((height, width))
        return np.array(sizes, np.int64).reshape(-1, 2)
    if not source.is_file():
        raise FileNotFoundError(f"no image folder or .beton at {source}")
    return _beton_sizes(source)


def _beton_sizes(source: Path) -> np.ndarray:
    from .inspection import read_beton_images

    meta = read_beton_images(source)
    return np.stack([meta["height"], meta["width"]], axis=1).astype(np.int64)
