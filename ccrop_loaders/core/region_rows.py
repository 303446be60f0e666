"""Region rows: one fixed-size uint8 row per sample holding a decoded region and its views' windows and flips.

A decoder (FFCV, DALI) writes a row per sample; the torch view stage
(``ccrop_loaders.trainer.view_stage``) makes every view from a batch of rows.
The format, version 1, little-endian, all rows of a batch alike::

    bytes  0..31          8 int32: MAGIC, VERSION, header_bytes, capacity_height, capacity_width,
                          num_views, region_height, region_width
    bytes 32..32+32V      float64 (V, 4): each view's window (top, left, height, width), in pixels of the
                          region, fractions allowed; it must lie inside the region and be non-empty
    next V bytes          uint8 (V,): each view's mirror bit (0 or 1)
    up to header_bytes    zeros (header_bytes = 32 + 33 V rounded up to a multiple of 64)
    header_bytes..end     uint8 (capacity_height, capacity_width, 3): the pixel block, RGB, row stride
                          capacity_width * 3; the region is its top-left region_height x region_width
                          corner, the rest is never read (any values)

so ``row_bytes = header_bytes + capacity_height * capacity_width * 3``. Views
are numbered as ``groups.first_views`` numbers them (groups in order). A
decoder may decode straight into ``row_pixels(row, ...)`` and then write the
header with ``write_region_header``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

MAGIC = 0x57524343  # b"CCRW" read as a little-endian int32
VERSION = 1
FIXED_BYTES = 32  # the 8 int32 fields
WINDOW_BYTES = 32  # 4 float64 per view
MAX_VIEWS = 64
MAX_CAPACITY = 1 << 14  # per side, pixels

# row_status codes (the torch stage computes the same ones on the rows' device)
ROW_OK, ROW_BAD_MAGIC, ROW_BAD_FORMAT, ROW_BAD_REGION, ROW_BAD_WINDOW, ROW_BAD_FLIP = range(6)


@numba.njit(inline="always", cache=True)
def header_bytes(num_views: int) -> int:
    """Bytes of a row's header for ``num_views`` views: 32 + 33 V rounded up to a multiple of 64."""
    return (FIXED_BYTES + (WINDOW_BYTES + 1) * num_views + 63) // 64 * 64


@dataclass(frozen=True)
class RowFormat:
    """The geometry shared by a batch of rows: pixel block ``capacity`` (height, width) and ``num_views``."""

    capacity: tuple[int, int]
    num_views: int

    def __post_init__(self) -> None:
        try:
            h, w = (int(v) for v in self.capacity)
            ok = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
                     and float(v) == int(v) for v in self.capacity)
        except (TypeError, ValueError):
            ok = False
        if not ok or not (1 <= h <= MAX_CAPACITY and 1 <= w <= MAX_CAPACITY):
            raise ValueError(f"RowFormat.capacity must be (height, width), integers from 1 to {MAX_CAPACITY}, "
                             f"got {self.capacity!r}")
        views = self.num_views
        if isinstance(views, (bool, np.bool_)) or not isinstance(views, (int, np.integer)) \
                or not 1 <= views <= MAX_VIEWS:
            raise ValueError(f"RowFormat.num_views must be an integer from 1 to {MAX_VIEWS}, got {views!r}")
        object.__setattr__(self, "capacity", (h, w))
        object.__setattr__(self, "num_views", int(views))

    @property
    def header_bytes(self) -> int:
        return header_bytes(self.num_views)

    @property
    def row_bytes(self) -> int:
        return self.header_bytes + self.capacity[0] * self.capacity[1] * 3


@numba.njit(cache=True)
def row_pixels(row, capacity_height, capacity_width):
    """The pixel block of ``row`` (uint8 (row_bytes,)), its last capacity_height * capacity_width * 3 bytes, as a
    uint8 (capacity_height, capacity_width, 3) view; the region is its top-left corner."""
    size = capacity_height * capacity_width * 3
    return row[row.shape[0] - size:].reshape(capacity_height, capacity_width, 3)


@numba.njit(cache=True)
def write_region_header(row, capacity_height, capacity_width, region_height, region_width, windows, flips):
    """Write the header of ``row`` (uint8 (row_bytes,)) for a region_height x region_width region and
    ``windows`` (V, 4) float (top, left, height, width) in region pixels, ``flips`` (V,) (nonzero: mirrored).

    Raises ValueError where the row's length, the region or a window is not one the format accepts."""
    views = windows.shape[0]
    if windows.shape[1] != 4 or flips.shape[0] != views or views < 1 or views > MAX_VIEWS:
        raise ValueError("write_region_header: windows must be (V, 4) and flips (V,), 1 <= V <= 64")
    start = header_bytes(views)
    if row.shape[0] != start + capacity_height * capacity_width * 3:
        raise ValueError("write_region_header: the row's length is not header_bytes + capacity pixels * 3")
    if not (1 <= region_height <= capacity_height and 1 <= region_width <= capacity_width):
        raise ValueError("write_region_header: the region must have at least one pixel and fit the capacity")
    row[:start] = 0
    fields = row[:FIXED_BYTES].view(np.int32)
    fields[0] = MAGIC
    fields[1], fields[2], fields[3], fields[4] = VERSION, start, capacity_height, capacity_width
    fields[5], fields[6], fields[7] = views, region_height, region_width
    window_values = row[FIXED_BYTES:FIXED_BYTES + WINDOW_BYTES * views].view(np.float64)
    for v in range(views):
        top, left, height, width = windows[v, 0], windows[v, 1], windows[v, 2], windows[v, 3]
        if not (height > 0 and width > 0 and top >= 0 and left >= 0 and top + height <= region_height
                and left + width <= region_width):
            raise ValueError("write_region_header: every window must be non-empty and lie inside the region")
        for k in range(4):
            window_values[4 * v + k] = windows[v, k]
        row[FIXED_BYTES + WINDOW_BYTES * views + v] = 1 if flips[v] else 0


@numba.njit(cache=True)
def write_region_row(row, capacity_height, capacity_width, region, windows, flips):
    """Write ``region`` (uint8 (h, w, 3)) and its views' ``windows`` (V, 4) and ``flips`` (V,) into ``row``
    (uint8 (row_bytes,) for ``capacity_height`` x ``capacity_width`` and V views)."""
    write_region_header(row, capacity_height, capacity_width, region.shape[0], region.shape[1], windows, flips)
    row_pixels(row, capacity_height, capacity_width)[:region.shape[0], :region.shape[1]] = region


@numba.njit(cache=True)
def row_status(row, capacity_height, capacity_width, num_views):
    """``(code, view)``: ROW_OK or the first problem of ``row`` (uint8 (row_bytes,)) for the expected format;
    ``view`` names the bad window or flip (else -1)."""
    if row.shape[0] < FIXED_BYTES:
        return ROW_BAD_FORMAT, -1
    fields = row[:FIXED_BYTES].view(np.int32)
    if fields[0] != MAGIC or fields[1] != VERSION:
        return ROW_BAD_MAGIC, -1
    start = header_bytes(num_views)
    if (fields[2] != start or fields[3] != capacity_height or fields[4] != capacity_width or fields[5] != num_views
            or row.shape[0] != start + capacity_height * capacity_width * 3):
        return ROW_BAD_FORMAT, -1
    region_height, region_width = fields[6], fields[7]
    if not (1 <= region_height <= capacity_height and 1 <= region_width <= capacity_width):
        return ROW_BAD_REGION, -1
    windows = row[FIXED_BYTES:FIXED_BYTES + WINDOW_BYTES * num_views].view(np.float64)
    for v in range(num_views):
        top, left, height, width = windows[4 * v], windows[4 * v + 1], windows[4 * v + 2], windows[4 * v + 3]
        if not (height > 0 and width > 0 and top >= 0 and left >= 0 and top + height <= region_height
                and left + width <= region_width):  # NaN fails every comparison
            return ROW_BAD_WINDOW, v
    for v in range(num_views):
        if row[FIXED_BYTES + WINDOW_BYTES * num_views + v] > 1:
            return ROW_BAD_FLIP, v
    return ROW_OK, -1


def row_problem(header: np.ndarray, row_bytes: int, fmt: RowFormat, code: int, view: int, sample: int) -> str:
    """The message for status ``(code, view)`` of a row of ``row_bytes`` whose first bytes are ``header`` (uint8,
    at least ``fmt.header_bytes`` of them), naming ``sample``."""
    header = np.ascontiguousarray(header, dtype=np.uint8).reshape(-1)
    if len(header) < fmt.header_bytes:  # a short row: what it lacks reads as zeros
        header = np.concatenate([header, np.zeros(fmt.header_bytes - len(header), np.uint8)])
    fields = header[:FIXED_BYTES].view(np.int32)
    cap_h, cap_w = fmt.capacity
    where = f"region row of sample {sample}"
    if code == ROW_BAD_MAGIC:
        return (f"{where} is not a ccrop region row (magic {int(fields[0]) & 0xFFFFFFFF:#010x}, version {fields[1]}; "
                f"expected {MAGIC:#010x}, version {VERSION})")
    if code == ROW_BAD_FORMAT:
        return (f"{where}: header says header_bytes {fields[2]}, capacity {fields[3]}x{fields[4]}, {fields[5]} views "
                f"in a row of {row_bytes} bytes; expected {fmt.header_bytes}, {cap_h}x{cap_w}, {fmt.num_views} views "
                f"in rows of {fmt.row_bytes} bytes")
    if code == ROW_BAD_REGION:
        return f"{where}: region {fields[6]}x{fields[7]} is empty or exceeds the capacity {cap_h}x{cap_w}"
    if code == ROW_BAD_WINDOW:
        window = header[FIXED_BYTES + WINDOW_BYTES * view: FIXED_BYTES + WINDOW_BYTES * (view + 1)].view(np.float64)
        return (f"{where}, view {view}: window (top, left, height, width) = {tuple(float(v) for v in window)} is "
                f"empty, not finite or outside the region {fields[6]}x{fields[7]}")
    if code == ROW_BAD_FLIP:
        flip = header[FIXED_BYTES + WINDOW_BYTES * fmt.num_views + view]
        return f"{where}, view {view}: mirror byte {flip} is not 0 or 1"
    return f"{where}: status {code}"


@dataclass(frozen=True)
class RegionRow:
    """A parsed row: ``region`` uint8 (h, w, 3) (a view of the row), ``windows`` float64 (V, 4), ``flips`` bool (V,)."""

    region: np.ndarray
    windows: np.ndarray
    flips: np.ndarray


def parse_region_row(row: np.ndarray, fmt: RowFormat, sample: int = 0) -> RegionRow:
    """``row`` (uint8 (fmt.row_bytes,)) as a RegionRow, or ValueError naming ``sample`` and the problem."""
    row = np.ascontiguousarray(row, dtype=np.uint8).reshape(-1)
    code, view = row_status(row, fmt.capacity[0], fmt.capacity[1], fmt.num_views)
    if code != ROW_OK:
        raise ValueError(row_problem(row, len(row), fmt, code, view, sample))
    fields = row[:FIXED_BYTES].view(np.int32)
    v = fmt.num_views
    windows = row[FIXED_BYTES: FIXED_BYTES + WINDOW_BYTES * v].view(np.float64).reshape(v, 4).copy()
    flips = row[FIXED_BYTES + WINDOW_BYTES * v: FIXED_BYTES + (WINDOW_BYTES + 1) * v].astype(bool)
    region = row_pixels(row, fmt.capacity[0], fmt.capacity[1])[: fields[6], : fields[7]]
    return RegionRow(region, windows, flips)
