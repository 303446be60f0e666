"""``ccrop show`` and ``ccrop table``: look at a box table and the views it gives.

A *source* is a box table in one of three forms, resolved in this order:

- an existing file starting with the table file magic ``CCROPBOX`` (``BoxTable.save``);
- an existing file ending in ``.pt``/``.pth``, or any other file ``torch.load`` reads:
  a checkpoint whose ``boxes`` entry is ``table_state(table)`` output (as
  ``pipelines/train_ssl.py`` saves; a bare ``table_state`` dict works too);
- otherwise the name of a live shared table (``BoxTable.attach(name)``).

Everything here reads: a table file is loaded into a temporary shared table that
is closed and unlinked at once, a live table is attached and closed, never changed.
Imports neither FFCV nor DALI at module level; FFCV only to read a ``.beton``,
torch only for a checkpoint, matplotlib and Pillow only to draw.
"""
from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ccrop_loaders.core.checks import check_alpha
from ccrop_loaders.core.sampler import FULL_BOX, sample_crop, sample_flip
from ccrop_loaders.core.table import BoxTable, check_state
from ccrop_loaders.core.table_file import read_table_file
from ccrop_loaders.core.table_layout import FILE_MAGIC, HEADER_WORDS, controls_of, unpack_boxes

CHECKPOINT_SUFFIXES = (".pt", ".pth")
_BAR = 40  # characters of the longest histogram bar
# Figure geometry of ``ccrop show``, in inches: multiples of 1/4, so width * dpi and height * dpi are exact
# and the PNG is exactly ``show_size(...)`` pixels.
CELL_IN = 2.25  # a view panel (square)
IMAGE_IN = 3.0  # the image panel's width
HEADER_IN = 0.75  # the title band


class InspectError(Exception):
    """A problem with what the user asked for (a missing file, a bad option): ``ccrop`` prints it as one line."""


@dataclass
class TableSnapshot:
    """A copy of a table's rows and controls, and where they came from."""

    source: str
    kind: str  # "file", "checkpoint" or "live table"
    boxes: np.ndarray  # float32 (n, 4) (y0, x0, y1, x1)
    epoch: int
    seed: int
    use_boxes: bool
    writes: int | None = None  # live tables only

    def __len__(self) -> int:
        return len(self.boxes)

    def describe(self) -> str:
        return f"{self.kind} {self.source}"


# ----------------------------------------------------------------- sources


def _missing(error: ImportError, extra: str, what: str) -> InspectError:
    name = error.name or str(error)
    return InspectError(f"{what} needs {name}, which is not installed: pip install 'ccrop-loaders[{extra}]'")


def _read_table_file(path: Path) -> TableSnapshot:
    try:
        words = read_table_file(path)  # mapped read-only: no shared table is made
    except (ValueError, OSError) as err:
        raise InspectError(str(err)) from None
    return TableSnapshot(str(path), "file", unpack_boxes(words[HEADER_WORDS:]),
                         *controls_of(words))


def _read_checkpoint(path: Path) -> TableSnapshot:
    try:
        import torch
    except ImportError as err:
        raise _missing(err, "torch", f"reading the checkpoint {path}") from None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds (pickle, zip, RuntimeError)
        raise InspectError(f"{path} is neither a box table file (it lacks the {FILE_MAGIC.decode()} magic) nor a "
                           f"torch checkpoint of tensors and plain values (torch.load(weights_only=True) raised "
                           f"{type(err).__name__})") from None
    state = checkpoint.get("boxes", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or "rows" not in state:
        raise InspectError(f"checkpoint {path} has no box table: expected a 'boxes' entry holding "
                           "table_state(table) (rows, epoch, seed, use_boxes)")
    rows = state["rows"]
    state = {**state, "rows": rows.cpu().numpy() if isinstance(rows, torch.Tensor) else rows}
    try:
        rows, epoch, seed, use_boxes = check_state(state)
    except (KeyError, TypeError, ValueError) as err:
        raise InspectError(f"checkpoint {path}: {err.args[0] if err.args else err}") from None
    if rows.size == 0:
        raise InspectError(f"checkpoint {path}: its box table has no rows")
    return TableSnapshot(str(path), "checkpoint", unpack_boxes(rows), epoch, seed, use_boxes)


def _read_live(name: str) -> TableSnapshot:
    try:
        table = BoxTable.attach(name)
    except ValueError as err:  # a name attach refuses ('/' inside, leading '.', too long) or a bad header
        if "table name" in str(err):
            raise InspectError(f"no file {name!r}, and it is not a table name either: {err}") from None
        raise InspectError(str(err)) from None
    except FileNotFoundError:
        from ccrop_loaders.core.files import shm_dir

        raise InspectError(f"no file {name!r}, and no live box table of that name in {shm_dir()}") from None
    except OSError as err:
        raise InspectError(f"cannot open the box table {name!r}: {err}") from None
    try:
        return TableSnapshot(name, "live table", table.read(), table.epoch, table.seed, table.use_boxes,
                             table.writes)
    finally:
        table.close()


def _mode(path: Path, what: str) -> int | None:
    """``st_mode`` of ``path`` (symlinks followed), None if there is nothing there; InspectError naming ``what``
    when the name cannot be looked up (too long, a symlink loop, no permission)."""
    try:
        return os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise InspectError(f"cannot open {what} {str(path)!r}: {err.strerror}") from None


def read_table(source: str | os.PathLike) -> TableSnapshot:
    """The rows and controls of ``source`` (a table file, a checkpoint or a live table name; see the module doc)."""
    path = Path(source)
    mode = _mode(path, "the box table")
    if mode is not None and stat.S_ISDIR(mode):
        raise InspectError(f"{path} is a folder, not a box table file, checkpoint or table name")
    if mode is not None and stat.S_ISREG(mode):
        try:
            with open(path, "rb") as f:
                magic = f.read(len(FILE_MAGIC))
        except OSError as err:
            raise InspectError(f"cannot read {path}: {err}") from None
        if magic == FILE_MAGIC:
            return _read_table_file(path)
        return _read_checkpoint(path)
    if mode is not None or os.path.lexists(path):
        raise InspectError(f"{path} is not a regular file")
    if path.suffix in CHECKPOINT_SUFFIXES or os.sep in str(source) or (os.altsep and os.altsep in str(source)):
        raise InspectError(f"no such file: {source}")
    return _read_live(str(source))


# ----------------------------------------------------------------- statistics


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Each box's area as a fraction of its image, float64 (n,)."""
    b = boxes.astype(np.float64)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def box_aspects(boxes: np.ndarray) -> np.ndarray:
    """Each box's normalized aspect ``(x1 - x0) / (y1 - y0)`` (times the image's own W/H gives pixels);
    NaN for a box of zero width or height."""
    b = boxes.astype(np.float64)
    h, w = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((h > 0) & (w > 0), w / np.where(h > 0, h, 1), np.nan)


def full_box_count(boxes: np.ndarray) -> int:
    """Rows still exactly the full box (0, 0, 1, 1)."""
    return int(np.all(boxes == np.asarray(FULL_BOX, dtype=boxes.dtype), axis=1).sum())


def area_histogram(boxes: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges) of box areas in ``bins`` equal bins over [0, 1] (the last one closed)."""
    return np.histogram(box_areas(boxes), bins=bins, range=(0.0, 1.0))


def aspect_histogram(boxes: np.ndarray, bins: int = 10, limit: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges) of normalized aspects in ``bins`` log-spaced bins from 1/limit to limit; the first and last
    bins are open (every aspect below 1/limit counts in the first, above limit in the last). Degenerate boxes
    (zero width or height) are left out."""
    aspects = box_aspects(boxes)
    aspects = aspects[np.isfinite(aspects)]
    edges = np.geomspace(1.0 / limit, limit, bins + 1)
    counts, _ = np.histogram(np.clip(aspects, edges[0], edges[-1]), bins=edges)
    return counts, edges


def _bars(counts: np.ndarray, labels: list[str]) -> list[str]:
    top = max(int(counts.max()), 1)
    width = max(len(label) for label in labels)
    digits = len(str(int(counts.max())))
    return [f"  {label:<{width}}  {int(c):>{digits}}  {'#' * math.ceil(_BAR * int(c) / top) if c else ''}".rstrip()
            for label, c in zip(labels, counts)]


def table_report(snap: TableSnapshot, bins: int = 10) -> str:
    """``ccrop table``'s text: controls, full boxes, box-area and aspect-ratio histograms."""
    n = len(snap)
    full = full_box_count(snap.boxes)
    lines = [f"box table: {snap.describe()}",
             f"  samples     {n:,}",
             f"  epoch       {snap.epoch}",
             f"  seed        {snap.seed}",
             f"  use_boxes   {snap.use_boxes} "
             f"({'ContrastiveCrop' if snap.use_boxes else 'warm-up: RandomResizedCrop'})"]
    if snap.writes is not None:
        lines.append(f"  writes      {snap.writes}")
    lines.append(f"  full boxes  {full:,} of {n:,} ({100.0 * full / n:.1f}%) are still (0, 0, 1, 1)")
    areas = box_areas(snap.boxes)
    lines.append(f"  box area    mean {areas.mean():.3f}, median {np.median(areas):.3f}, min {areas.min():.3f}, "
                 f"max {areas.max():.3f} (fraction of the image)")
    counts, edges = area_histogram(snap.boxes, bins)
    lines.append("")
    lines.append(f"box area (fraction of the image), {bins} bins:")
    lines += _bars(counts, [f"[{lo:.2f}, {hi:.2f}{']' if i == bins - 1 else ')'}"
                            for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))])
    counts, edges = aspect_histogram(snap.boxes, bins)
    degenerate = n - int(counts.sum())
    lines.append("")
    lines.append(f"aspect ratio (box width / height in normalized coordinates), {bins} log bins"
                 + (f"; {degenerate} boxes of zero width or height left out:" if degenerate else ":"))
    labels = [f"[{lo:.2f}, {hi:.2f})" for lo, hi in zip(edges[:-1], edges[1:])]
    labels[0] = f"< {edges[1]:.2f}"
    labels[-1] = f">= {edges[-2]:.2f}"
    lines += _bars(counts, labels)
    return "\n".join(lines)


def plot_histograms(snap: TableSnapshot, out: str | os.PathLike, bins: int = 10, dpi: int = 100) -> tuple[int, int]:
    """A PNG of both histograms side by side (10 x 3.5 inches at ``dpi``); returns its (width, height) in pixels."""
    check_out(out)
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator, NullLocator

    fig, (ax_area, ax_aspect) = plt.subplots(1, 2, figsize=(10.0, 3.5))
    try:
        counts, edges = area_histogram(snap.boxes, bins)
        ax_area.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="C0", edgecolor="white")
        ax_area.set_xlim(0, 1)
        ax_area.set_xlabel("box area (fraction of the image)")
        ax_area.set_ylabel("samples")
        full = full_box_count(snap.boxes)
        ax_area.set_title(f"box area ({full} of {len(snap)} still the full box)", fontsize=10)
        counts, edges = aspect_histogram(snap.boxes, bins)
        ax_aspect.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="C1", edgecolor="white")
        ax_aspect.set_xscale("log")
        ax_aspect.set_xlim(edges[0], edges[-1])
        ticks = [t for t in (0.25, 0.5, 1.0, 2.0, 4.0) if edges[0] <= t <= edges[-1]]
        ax_aspect.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax_aspect.xaxis.set_minor_locator(NullLocator())
        for ax in (ax_area, ax_aspect):
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax_aspect.set_xlabel("box width / height (normalized; ends open)")
        ax_aspect.set_title("aspect ratio", fontsize=10)
        fig.suptitle(f"{snap.describe()}: {len(snap)} samples, epoch {snap.epoch}, seed {snap.seed}, "
                     f"use_boxes {snap.use_boxes}", fontsize=10)
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.82, wspace=0.2)
        _save(fig, out, dpi)
    finally:
        plt.close(fig)
    return fig_pixels((10.0, 3.5), dpi)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    ih = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iw = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = ih * iw
    union = box_areas(a) + box_areas(b) - inter
    same = np.all(a == b, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), np.where(same, 1.0, 0.0))


@dataclass
class TableDiff:
    total: int
    moved: np.ndarray  # indices of the rows that differ
    change: np.ndarray  # per moved row: the largest absolute coordinate change
    mean_change: np.ndarray  # per moved row: the mean absolute coordinate change
    iou: np.ndarray  # per moved row: IoU of the old and new box


def diff_tables(a: TableSnapshot, b: TableSnapshot) -> TableDiff:
    """Rows that differ between two tables of the same size, and by how much."""
    if len(a) != len(b):
        raise InspectError(f"cannot compare tables of different sizes: {a.source} has {len(a):,} samples, "
                           f"{b.source} has {len(b):,}")
    moved = np.flatnonzero(np.any(a.boxes != b.boxes, axis=1))
    delta = np.abs(a.boxes[moved].astype(np.float64) - b.boxes[moved].astype(np.float64))
    return TableDiff(len(a), moved, delta.max(axis=1) if moved.size else np.zeros(0),
                     delta.mean(axis=1) if moved.size else np.zeros(0), _iou(a.boxes[moved], b.boxes[moved]))


def diff_report(a: TableSnapshot, b: TableSnapshot, *, list_rows: int = 10) -> str:
    """``ccrop table --diff``'s text."""
    d = diff_tables(a, b)
    lines = [f"A: {a.describe()} ({len(a):,} samples, epoch {a.epoch}, seed {a.seed}, use_boxes {a.use_boxes})",
             f"B: {b.describe()} ({len(b):,} samples, epoch {b.epoch}, seed {b.seed}, use_boxes {b.use_boxes})"]
    for name in ("epoch", "seed", "use_boxes"):
        if getattr(a, name) != getattr(b, name):
            lines.append(f"  {name} changed: {getattr(a, name)} -> {getattr(b, name)}")
    lines.append(f"  full boxes  {full_box_count(a.boxes):,} -> {full_box_count(b.boxes):,}")
    n = d.moved.size
    lines.append(f"  moved       {n:,} of {d.total:,} boxes ({100.0 * n / d.total:.1f}%)")
    if n:
        def stats(values: np.ndarray, worst: str) -> str:
            extreme = values.max() if worst == "max" else values.min()
            return f"mean {values.mean():.4f}, median {np.median(values):.4f}, {worst} {extreme:.4f}"

        lines.append(f"  of the moved boxes: largest coordinate change {stats(d.change, 'max')}")
        lines.append(f"                      mean coordinate change    {stats(d.mean_change, 'max')}")
        lines.append(f"                      IoU old/new               {stats(d.iou, 'min')}")
        order = d.moved[np.argsort(-d.change, kind="stable")][:list_rows]
        first = f" (first {list_rows})" if n > list_rows else ""
        lines.append(f"  largest moves (index: A -> B, IoU){first}:")
        where = {int(i): k for k, i in enumerate(d.moved)}
        for i in order:
            fmt = lambda box: "(" + ", ".join(f"{v:.3f}" for v in box) + ")"  # noqa: E731
            lines.append(f"    {int(i)}: {fmt(a.boxes[i])} -> {fmt(b.boxes[i])}, IoU {d.iou[where[int(i)]]:.3f}")
    return "\n".join(lines)


# ----------------------------------------------------------------- images


def read_beton_images(path: Path, *, with_allocation: bool = False):
    """The metadata rows (``height``, ``width``, ``data_ptr``, ...) of a .beton's RGB image field (``image`` if
    there are several), and with ``with_allocation`` FFCV's allocation table too.

    ValueError for a file that is not a complete .beton: its header may not declare more samples than the file
    holds (FFCV's reader would allocate them all first), and it needs an RGB image field.
    """
    try:
        from ffcv.reader import Reader
        from ffcv.types import HeaderType
    except ImportError as err:
        raise _missing(err, "ffcv", f"reading the .beton {path}") from None
    file_size = Path(path).stat().st_size

    class Declared(ValueError):
        pass

    class CheckedReader(Reader):
        def read_metadata(self):
            offset = HeaderType.itemsize + int(self.field_descriptors.nbytes)
            need = int(self.num_samples) * self.metadata_type.itemsize
            if offset + need > file_size:
                raise Declared(f"{path} declares {int(self.num_samples):,} samples ({need:,} bytes of metadata) "
                               f"but is {file_size:,} bytes: not a complete .beton")
            super().read_metadata()

    try:
        reader = CheckedReader(str(path))
    except Declared:
        raise
    except Exception as err:  # ffcv asserts, and numpy raises what it raises on a file of another kind
        raise ValueError(f"{path} is not an image folder or a readable .beton ({type(err).__name__}: {err})") from None
    fields = [name for name, handler in reader.handlers.items() if type(handler).__name__ == "RGBImageField"]
    if not fields:
        raise ValueError(f"{path} has no RGB image field (fields: {', '.join(reader.field_names)})")
    meta = reader.metadata[f"f{reader.field_names.index('image' if 'image' in fields else fields[0])}"]
    return (meta, reader.alloc_table) if with_allocation else meta


class ImageSource:
    """Images by global index from an image folder (``folder.list_images`` order) or a ``.beton`` (its order)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        mode = _mode(self.path, "the images")
        if mode is not None and stat.S_ISDIR(mode):
            from ccrop_loaders.folder import list_images

            try:
                self._paths = [p for p, _ in list_images(self.path)[0]]
            except (ValueError, FileNotFoundError) as err:
                raise InspectError(str(err)) from None
            self._beton = None
            self.count = len(self._paths)
        elif mode is not None and stat.S_ISREG(mode):
            self._open_beton()
        else:
            raise InspectError(f"no image folder or .beton at {self.path}")

    def _open_beton(self) -> None:
        try:
            self._beton = read_beton_images(self.path, with_allocation=True)
        except ValueError as err:
            raise InspectError(str(err)) from None
        self.count = len(self._beton[0])

    def __len__(self) -> int:
        return self.count

    def image(self, index: int) -> np.ndarray:
        """uint8 (H, W, 3); InspectError naming the file (folder) or the sample (.beton) that does not decode."""
        if self._beton is None:
            from ccrop_loaders.folder import load_rgb

            try:
                return load_rgb(self._paths[index])
            except Exception as err:  # Pillow raises many kinds (OSError: truncated, UnidentifiedImageError, ...)
                raise InspectError(f"sample {index}: cannot decode {self._paths[index]} "
                                   f"({type(err).__name__}: {err})") from None
        meta, alloc = self._beton[0][index], self._beton[1]
        row = np.flatnonzero(alloc["ptr"] == meta["data_ptr"])
        if row.size == 0:
            raise InspectError(f"{self.path}: sample {index}'s image data is missing from the allocation table")
        with open(self.path, "rb") as f:
            f.seek(int(meta["data_ptr"]))
            data = f.read(int(alloc["size"][row[0]]))
        height, width = int(meta["height"]), int(meta["width"])
        if int(meta["mode"]) == 1:  # raw
            if len(data) < height * width * 3:
                raise InspectError(f"{self.path}: sample {index}, field image: {len(data):,} bytes of raw pixels, "
                                   f"{height}x{width} RGB needs {height * width * 3:,}")
            return np.frombuffer(data, dtype=np.uint8)[: height * width * 3].reshape(height, width, 3)
        import io

        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as img:
                return np.asarray(img.convert("RGB"))
        except Exception as err:  # as above
            raise InspectError(f"{self.path}: sample {index}, field image: cannot decode its JPEG "
                               f"({type(err).__name__}: {err})") from None

    def label(self, index: int) -> str:
        if self._beton is None:
            return str(self._paths[index].relative_to(self.path))
        return f"{self.path.name}[{index}]"


# ----------------------------------------------------------------- show


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import PIL  # noqa: F401
    except ImportError as err:
        raise _missing(err, "demo", "drawing a PNG") from None
    return plt


def check_out(out: str | os.PathLike) -> None:
    """Refuse an output path whose folder is missing or that is a folder (or cannot be looked up)."""
    out = Path(out)
    parent = _mode(out.parent, "the folder of")
    if parent is None or not stat.S_ISDIR(parent):
        raise InspectError(f"cannot write {out}: no folder {out.parent}")
    mode = _mode(out, "the output")
    if mode is not None and stat.S_ISDIR(mode):
        raise InspectError(f"cannot write {out}: it is a folder")


def _save(fig, out: str | os.PathLike, dpi: int) -> None:
    check_out(out)
    try:
        fig.savefig(out, dpi=dpi, format="png")
    except OSError as err:
        raise InspectError(f"cannot write {out}: {err}") from None


def fig_pixels(size_in: tuple[float, float], dpi: int) -> tuple[int, int]:
    """(width, height) in pixels of a figure of ``size_in`` inches saved at ``dpi`` (no tight bounding box)."""
    return int(round(size_in[0] * dpi)), int(round(size_in[1] * dpi))


def show_figsize(samples: int, views: int) -> tuple[float, float]:
    """``ccrop show``'s figure in inches: one row per sample, the image panel then one panel per view."""
    return IMAGE_IN + CELL_IN * views, HEADER_IN + CELL_IN * samples


def choose_samples(count: int, samples: int, seed: int) -> np.ndarray:
    """``min(samples, count)`` distinct global indices, sorted, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(count, size=min(samples, count), replace=False))


def view_windows(snap: TableSnapshot, index: int, height: int, width: int, *, views: int, epochs: list[int],
                 alpha: float) -> list[list[tuple[int, int, int, int]]]:
    """``[epoch][view]`` windows ``(top, left, h, w)`` of sample ``index``, as every loader draws them from this
    table: its seed, its box and ``alpha`` when ``use_boxes``, else RandomResizedCrop (full box, uniform)."""
    box, a = (snap.boxes[index], alpha) if snap.use_boxes else (FULL_BOX, 1.0)
    return [[sample_crop(height, width, box, alpha=a, seed=snap.seed, epoch=e, index=int(index), view=v)
             for v in range(views)] for e in epochs]


def crop_view(image: np.ndarray, window, size: int, flip: bool) -> np.ndarray:
    """The view: ``window`` of ``image`` resized to ``size`` x ``size`` (Pillow, bilinear with antialiasing), mirrored
    if ``flip``. The loaders' own resamplers differ from Pillow's by a grey level or two."""
    from PIL import Image

    top, left, h, w = (int(v) for v in window)
    view = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h)))
    return view[:, ::-1] if flip else view


def show(snap: TableSnapshot, images: ImageSource, out: str | os.PathLike, *, samples: int = 8, views: int = 2,
         epoch: int | None = None, epochs: int = 4, alpha: float = 0.6, seed: int = 0, size: int = 224,
         dpi: int = 100, indices=None) -> dict:
    """Draw ``ccrop show``'s grid into ``out``; returns what was drawn (``indices``, ``epochs``, ``pixels``).

    Row per sample: the image with its box (dashed white) and the windows of each view (one colour per view),
    thick for ``epoch`` (default: the table's), thin for the ``epochs - 1`` epochs after it; then the views of
    ``epoch`` (crop, resize, keyed flip) framed in their window's colour.
    """
    for name, value, lo, hi in (("samples", samples, 1, 256), ("views", views, 1, 16), ("epochs", epochs, 1, 64),
                                ("size", size, 8, 2048), ("dpi", dpi, 10, 600)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
            raise InspectError(f"--{name} must be an integer from {lo} to {hi}, got {value!r}")
    try:
        alpha = check_alpha(alpha)
    except ValueError as err:
        raise InspectError(f"--{err}") from None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise InspectError(f"--seed must be an integer from 0 to {2**64 - 1}, got {seed!r}")
    if epoch is not None and not 0 <= int(epoch) < 2**63 - epochs:
        raise InspectError(f"--epoch must be an integer from 0 to {2**63 - 1 - epochs}, got {epoch!r}")
    width_px, height_px = (round(inches * dpi) for inches in show_figsize(min(samples, len(snap)) if indices is None
                                                                          else len(indices), views))
    if width_px * height_px > 100_000_000:
        raise InspectError(f"the picture would be {width_px}x{height_px} pixels: use fewer --samples or a smaller --dpi")
    check_out(out)
    if len(images) != len(snap):
        raise InspectError(f"the table has {len(snap):,} samples but {images.path} holds {len(images):,} images: "
                           "they belong to different datasets")
    if indices is None:
        indices = choose_samples(len(snap), samples, seed)
    else:
        bad = [i for i in indices if not 0 <= int(i) < len(snap)]  # Python ints: no overflow before the check
        if bad:
            raise InspectError(f"--indices: index {int(bad[0])} is out of range for a table of {len(snap):,} "
                               f"samples (0 to {len(snap) - 1})")
        indices = np.asarray(indices, dtype=np.int64)
    first = snap.epoch if epoch is None else int(epoch)
    epoch_list = [first + k for k in range(epochs)]
    plt = _pyplot()
    from matplotlib import patheffects
    from matplotlib.patches import Rectangle

    colors = plt.cm.tab10.colors
    figsize = show_figsize(len(indices), views)
    fig, axes = plt.subplots(len(indices), 1 + views, figsize=figsize, squeeze=False,
                             gridspec_kw={"width_ratios": [IMAGE_IN / CELL_IN] + [1.0] * views})
    outline = [patheffects.withStroke(linewidth=3.2, foreground="black")]
    try:
        for row, index in enumerate(indices):
            image = images.image(int(index))
            height, width = image.shape[:2]
            windows = view_windows(snap, int(index), height, width, views=views, epochs=epoch_list, alpha=alpha)
            ax = axes[row, 0]
            ax.imshow(image)
            for k in range(len(epoch_list) - 1, -1, -1):  # the shown epoch drawn last, on top
                for v, (top, left, h, w) in enumerate(windows[k]):
                    ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, ec=colors[v % 10],
                                           lw=2.2 if k == 0 else 1.0, alpha=1.0 if k == 0 else 0.55))
            y0, x0, y1, x1 = (float(c) for c in snap.boxes[index])
            ax.add_patch(Rectangle((x0 * width - 0.5, y0 * height - 0.5), (x1 - x0) * width, (y1 - y0) * height,
                                   fill=False, ec="white", lw=1.6, ls="--", path_effects=outline))
            box = snap.boxes[index]
            ax.set_title(f"#{int(index)} {width}x{height}, box ({box[0]:.2f}, {box[1]:.2f}, {box[2]:.2f}, "
                         f"{box[3]:.2f})", fontsize=7)
            for v in range(views):
                flip = sample_flip(seed=snap.seed, epoch=first, index=int(index), view=v)
                ax = axes[row, 1 + v]
                ax.imshow(crop_view(image, windows[0][v], size, flip))
                top, left, h, w = windows[0][v]
                ax.set_title(f"view {v}: {w}x{h} at ({left}, {top}){', flipped' if flip else ''}", fontsize=7,
                             color=colors[v % 10])
                for spine in ax.spines.values():
                    spine.set_edgecolor(colors[v % 10])
                    spine.set_linewidth(2.5)
            for ax in axes[row]:
                ax.set_xticks([])
                ax.set_yticks([])
        mode = f"ContrastiveCrop, alpha {alpha:g}" if snap.use_boxes else "warm-up (use_boxes off): RandomResizedCrop"
        later = f"; thin: epochs {epoch_list[1]}-{epoch_list[-1]}" if len(epoch_list) > 1 else ""
        fig.suptitle(f"{snap.describe()}, seed {snap.seed}: {mode}\nbox dashed white; windows per view (one colour "
                     f"each), thick: epoch {first}{later}; views of epoch {first}", fontsize=8,
                     y=1 - 0.06 / figsize[1], va="top")
        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.01, top=1 - 0.55 / figsize[1], wspace=0.06, hspace=0.22)
        _save(fig, out, dpi)
    finally:
        plt.close(fig)
    return {"indices": [int(i) for i in indices], "epochs": epoch_list, "pixels": fig_pixels(figsize, dpi)}
