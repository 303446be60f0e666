"""The torch view stage: every view of a batch from its decoded regions, on their device, with core/resample.c's filter.

Input: region rows (``core.region_rows``, uint8 (B, row_bytes)) or regions
padded to a batch shape (uint8 (B, Hp, Wp, 3)) with their windows (B, V, 4)
(top, left, height, width) in region pixels, floats allowed, and mirror bits
(B, V). Each group of views (``ViewGroup``: number of views, output size) is
two batched matrix products: rows, then columns, with the triangle filter's
taps computed as ``resample.c`` computes them (support, centre, limits, the
cumulative rounding of the weights to its fixed point, the wide path beyond
16x downscales); a mirrored view takes its column weights reversed. The sums
lose what the C code's vertical pass truncates, on average, and are rounded
to levels 0..255 as the C code rounds (floor(x + 0.5)), then normalized, cast
and laid out. Output: one (B, V_g, 3, H_g, W_g) tensor per
group, NCHW or channels-last strides.

The float32 products follow torch's matmul precision (TF32 off, torch's
default, for the stated agreement with the C resampler). With ``check=True``
the rows' headers are checked on their device and the verdicts copied to the
host (one small copy, which waits for the rows): a bad row raises naming its
sample. With ``check=False`` nothing waits and a bad sample's views are NaN.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from ..core.groups import ViewGroup, check_groups
from ..core.region_rows import (FIXED_BYTES, MAGIC, ROW_BAD_FLIP, ROW_BAD_FORMAT, ROW_BAD_MAGIC, ROW_BAD_REGION,
                                ROW_BAD_WINDOW, ROW_OK, VERSION, WINDOW_BYTES, RowFormat, row_problem)
from ..core.checks import check_size
from .augment import IMAGENET_MEAN, IMAGENET_STD

OUTPUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
COMPUTE_DTYPES = (torch.float32, torch.float16)
MAX_OUTPUT_SIDE = 4096
# resample.c's fixed point: coefficients sum to 1 << bits; a pass with more than NARROW_TAPS taps is "wide"
ROW_BITS, COL_BITS, WIDE_BITS, NARROW_TAPS = 15, 14, 22, 34


class ViewStage:
    """Makes the views of ``groups`` (their ``num_views`` and default ``size``; scale and ratio are the decoder's).

    ``mean``/``std``: per channel, on the 0..1 scale (out = (level / 255 - mean) / std), or both None for levels
    0..255. ``dtype``: the output's (float32, float16, bfloat16); ``compute_dtype``: the products' (float32, or
    float16 for speed on a GPU, less exact). ``channels_last``: channel-fastest strides. ``round_levels``: round
    to levels before normalizing, as the CPU decoders' uint8 views are (False: the exact filtered values).
    """

    def __init__(self, groups: Sequence[ViewGroup], *, mean: Sequence[float] | None = IMAGENET_MEAN,
                 std: Sequence[float] | None = IMAGENET_STD, dtype: torch.dtype = torch.float32,
                 compute_dtype: torch.dtype = torch.float32, channels_last: bool = False, round_levels: bool = True,
                 check: bool = True):
        self.groups = check_groups(groups)
        self.num_views = sum(g.num_views for g in self.groups)
        if dtype not in OUTPUT_DTYPES:
            raise ValueError(f"dtype must be one of {OUTPUT_DTYPES}, got {dtype!r}")
        if compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}, got {compute_dtype!r}")
        if (mean is None) != (std is None):
            raise ValueError("mean and std must both be given or both be None")
        if mean is not None:
            mean, std = [float(m) for m in mean], [float(s) for s in std]
            if len(mean) != 3 or len(std) != 3 or not all(math.isfinite(v) for v in mean + std) \
                    or min(std) <= 0:
                raise ValueError(f"mean and std must be 3 finite numbers each, std > 0, got {mean!r}, {std!r}")
            # out = level * scale + shift
            self._scale = [1.0 / (255.0 * s) for s in std]
            self._shift = [-m / s for m, s in zip(mean, std)]
        else:
            self._scale = self._shift = None
        self.dtype, self.compute_dtype = dtype, compute_dtype
        self.channels_last, self.round_levels, self.check = bool(channels_last), bool(round_levels), bool(check)
        self._cache: dict = {}

    def output_sizes(self, sizes: Sequence | None = None) -> list[tuple[int, int]]:
        """Each group's output (height, width): ``sizes`` (one per group, (h, w) or a side) or the groups' own."""
        if sizes is None:
            return [g.size for g in self.groups]
        sizes = list(sizes)
        if len(sizes) != len(self.groups):
            raise ValueError(f"sizes must give one size per group ({len(self.groups)}), got {len(sizes)}")
        checked = [check_size(f"sizes[{g}]", (s, s) if _is_side(s) else s) for g, s in enumerate(sizes)]
        for g, (h, w) in enumerate(checked):
            if max(h, w) > MAX_OUTPUT_SIDE:
                raise ValueError(f"sizes[{g}] = {h}x{w}: sides are at most {MAX_OUTPUT_SIDE}")
        return checked

    def flops(self, batch: int, capacity: tuple[int, int], sizes: Sequence | None = None) -> int:
        """Multiply-adds times two of one call on ``batch`` regions padded to ``capacity`` (height, width)."""
        hp, wp = capacity
        return sum(2 * batch * g.num_views * h * 3 * wp * (hp + w)
                   for g, (h, w) in zip(self.groups, self.output_sizes(sizes)))

    def from_rows(self, rows: torch.Tensor, fmt: RowFormat, sizes: Sequence | None = None
                  ) -> tuple[torch.Tensor, ...]:
        """The views of ``rows`` (uint8 (B, fmt.row_bytes), any device): one (B, V_g, 3, H_g, W_g) per group."""
        if not isinstance(rows, torch.Tensor) or rows.dtype != torch.uint8 or rows.dim() != 2:
            raise ValueError(f"rows must be a uint8 tensor (B, row_bytes), got {_describe(rows)}")
        if rows.shape[1] != fmt.row_bytes or fmt.num_views != self.num_views:
            raise ValueError(f"rows of {rows.shape[1]} bytes with {fmt.num_views} views: this stage's groups have "
                             f"{self.num_views} views and the format's rows are {fmt.row_bytes} bytes")
        sizes = self.output_sizes(sizes)
        b, v, hb = rows.shape[0], fmt.num_views, fmt.header_bytes
        header = torch.empty((b, hb), dtype=torch.uint8, device=rows.device).copy_(rows[:, :hb])  # strides (hb, 1)
        fields = header[:, :FIXED_BYTES].view(torch.int32).long()
        windows = header[:, FIXED_BYTES:FIXED_BYTES + WINDOW_BYTES * v].view(torch.float64).view(b, v, 4)
        flips = header[:, FIXED_BYTES + WINDOW_BYTES * v:FIXED_BYTES + (WINDOW_BYTES + 1) * v]
        region_hw = fields[:, 6:8]
        code, view = _window_status(region_hw, fmt.capacity, windows, flips)
        bad_format = ((fields[:, 2] != hb) | (fields[:, 3] != fmt.capacity[0]) | (fields[:, 4] != fmt.capacity[1])
                      | (fields[:, 5] != v))
        code = torch.where(bad_format, ROW_BAD_FORMAT, code)
        code = torch.where((fields[:, 0] != MAGIC) | (fields[:, 1] != VERSION), ROW_BAD_MAGIC, code)
        if self.check:
            _raise_first(code, view, lambda s, c, w: row_problem(header[s].cpu().numpy(), rows.shape[1], fmt, c, w, s))
        pixels = rows[:, hb:].reshape(b, *fmt.capacity, 3)
        return self._views(pixels, region_hw, windows, flips, code != ROW_OK, sizes)

    def from_regions(self, regions: torch.Tensor, windows: torch.Tensor, flips: torch.Tensor,
                     region_sizes: torch.Tensor | None = None, sizes: Sequence | None = None
                     ) -> tuple[torch.Tensor, ...]:
        """The views of ``regions`` (uint8 (B, Hp, Wp, 3), each region at the top-left, ``region_sizes`` int
        (B, 2) (height, width), default Hp x Wp), ``windows`` float (B, V, 4), ``flips`` bool or 0/1 (B, V)."""
        if not isinstance(regions, torch.Tensor) or regions.dtype != torch.uint8 or regions.dim() != 4 \
                or regions.shape[3] != 3:
            raise ValueError(f"regions must be a uint8 tensor (B, Hp, Wp, 3), got {_describe(regions)}")
        b, hp, wp = regions.shape[:3]
        device = regions.device
        if not isinstance(windows, torch.Tensor) or not windows.dtype.is_floating_point \
                or tuple(windows.shape) != (b, self.num_views, 4):
            raise ValueError(f"windows must be a float tensor ({b}, {self.num_views}, 4), got {_describe(windows)}")
        if not isinstance(flips, torch.Tensor) or flips.dtype.is_floating_point or flips.dtype.is_complex \
                or tuple(flips.shape) != (b, self.num_views):
            raise ValueError(f"flips must be a bool or integer tensor ({b}, {self.num_views}), got {_describe(flips)}")
        if region_sizes is None:
            region_sizes = torch.tensor([[hp, wp]], device=device).expand(b, 2)
        elif not isinstance(region_sizes, torch.Tensor) or region_sizes.dtype.is_floating_point \
                or tuple(region_sizes.shape) != (b, 2):
            raise ValueError(f"region_sizes must be an integer tensor ({b}, 2), got {_describe(region_sizes)}")
        sizes = self.output_sizes(sizes)
        windows, region_hw = windows.to(device, torch.float64), region_sizes.to(device, torch.int64)
        flips = flips.to(device).long()
        code, view = _window_status(region_hw, (hp, wp), windows, flips)
        if self.check:
            _raise_first(code, view, lambda s, c, w: _region_problem(s, c, w, region_hw, windows, flips, (hp, wp)))
        return self._views(regions, region_hw, windows, flips, code != ROW_OK, sizes)

    def _views(self, pixels, region_hw, windows, flips, bad, sizes) -> tuple[torch.Tensor, ...]:
        """Views of checked inputs; ``bad`` samples' views are NaN (their windows replaced so indices stay valid)."""
        b, hp, wp = pixels.shape[:3]
        device, cd = pixels.device, self.compute_dtype
        safe = torch.ones(4, dtype=torch.float64, device=device)
        safe[:2] = 0  # the window (0, 0, 1, 1)
        windows = torch.where(bad[:, None, None], safe, windows)
        region_hw = torch.where(bad[:, None], 1, region_hw)
        flips = flips.bool() & ~bad[:, None]
        image = torch.empty((b, hp, 3, wp), dtype=cd, device=device)
        image.copy_(pixels.permute(0, 1, 3, 2))  # rows of channel-major pixels: the column pass is one matmul
        image = image.view(b, hp, 3 * wp)
        outputs, first = [], 0
        for group, (oh, ow) in zip(self.groups, sizes):
            n = group.num_views
            win = windows[:, first:first + n].reshape(b * n, 4)
            hw = region_hw.repeat_interleave(n, dim=0)
            first += n
            top, left, height, width = win.unbind(1)
            row0 = torch.floor(top)
            row_end = torch.clamp(torch.maximum(-torch.floor(-(top + height)), row0 + 1), max=hw[:, 0].double())
            zeros = torch.zeros_like(top)
            rows, truncation = _taps(top, height, oh, row0, row_end, zeros, hp, ROW_BITS, zeros.bool(), cd)
            col0 = torch.floor(left)
            col_end = torch.clamp(torch.maximum(-torch.floor(-(left + width)), col0 + 1), max=hw[:, 1].double())
            mirrored = flips[:, first - n:first].reshape(b * n)
            cols, _ = _taps(left - col0, width, ow, zeros, col_end - col0, col0, wp, COL_BITS, mirrored, cd)
            mid = torch.bmm(rows.view(b, n * oh, hp), image).view(b * n, oh * 3, wp)
            levels = torch.bmm(mid, cols.transpose(1, 2)).view(b, n, oh, 3, ow)
            outputs.append(self._finish(levels, truncation.view(b, n, oh, 1, 1).to(cd), bad))
        return tuple(outputs)

    def _finish(self, levels: torch.Tensor, truncation: torch.Tensor, bad: torch.Tensor) -> torch.Tensor:
        """levels (B, V, H, 3, W) less truncation (B, V, H, 1, 1), compute dtype -> the output: rounded,
        normalized, cast, laid out, NaN if bad."""
        b, n, oh, _, ow = levels.shape
        if self.round_levels:
            levels = levels.sub_(truncation - 0.5).floor_().clamp_(0, 255)
        else:
            levels = levels.sub_(truncation)
        if self._scale is not None:
            scale, shift = self._constants(levels.device, levels.dtype)
            levels = levels.mul_(scale).add_(shift)
        if self.channels_last:
            out = torch.empty((b, n, oh, ow, 3), dtype=self.dtype, device=levels.device).permute(0, 1, 4, 2, 3)
        else:
            out = torch.empty((b, n, 3, oh, ow), dtype=self.dtype, device=levels.device)
        out.copy_(levels.permute(0, 1, 3, 2, 4))
        return out if self.check else out.masked_fill_(bad.view(b, 1, 1, 1, 1), math.nan)

    def _constants(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalization's scale and shift (3, 1) on ``device``, made once per device and dtype."""
        key = (device, dtype)
        if key not in self._cache:
            self._cache[key] = tuple(torch.tensor(v, dtype=dtype).view(3, 1).to(device)
                                     for v in (self._scale, self._shift))
        return self._cache[key]


def make_views(rows: torch.Tensor, fmt: RowFormat, groups: Sequence[ViewGroup], sizes: Sequence | None = None,
               **options) -> tuple[torch.Tensor, ...]:
    """``ViewStage(groups, **options).from_rows(rows, fmt, sizes)``: one (B, V_g, 3, H_g, W_g) tensor per group."""
    return ViewStage(groups, **options).from_rows(rows, fmt, sizes)


def _taps(start, extent, out_size: int, lo_limit, hi_limit, base, length: int, bits: int, mirrored, dtype
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense weights (N, out_size, length) of resample.c's ``filter_taps`` for N spans [start, start + extent).

    All float64 (N,): taps stay in [lo_limit, hi_limit) of the span's frame; input i of that frame is column
    ``base + i`` of the result. Coefficients are the C code's integers (cumulative rounding to 1 << bits, or to
    1 << WIDE_BITS for a pass with more than NARROW_TAPS taps) divided by their sum. ``mirrored`` (N,) bool:
    output o takes output (out_size - 1 - o)'s taps.

    Also returns, float64 (N, out_size) in levels, what the C vertical pass loses on average when it truncates
    each product ((v << 8) * c) >> 16 (not the wide pass: it rounds once): the mean of (v * c mod 256) / 256 over
    levels v is (256 - gcd(c, 256)) / 512 units of its Q7 sums. It applies to a row pass only.
    """
    scale = extent / out_size
    support = torch.clamp(scale, min=1.0)
    bits = torch.where(torch.ceil(support) * 2 + 2 > NARROW_TAPS, WIDE_BITS, bits).double()
    inverse = (1.0 / support).float()
    most = 2 * math.ceil(max(length / out_size, 1.0)) + 2  # windows lie in the padded region: a bound for all
    o = torch.arange(out_size, dtype=torch.float64, device=start.device)
    center = start[:, None] + (o + 0.5) * scale[:, None]
    lo = torch.maximum(torch.floor(center - support[:, None] + 0.5), lo_limit[:, None])
    hi = torch.minimum(torch.floor(center + support[:, None] + 0.5), hi_limit[:, None])
    count = torch.maximum(hi, lo + 1) - lo
    offset = (lo - center + 0.5).float()
    k = torch.arange(most, device=start.device)
    weights = 1.0 - torch.abs((offset[..., None] + k.float()) * inverse[:, None, None])
    inside = k < count[..., None]
    weights = torch.where(inside, torch.clamp(weights, min=0.0), 0.0).double()
    cumulative = torch.cumsum(weights, dim=2)
    total = cumulative.gather(2, (count.long() - 1)[..., None])
    one = torch.exp2(bits)[:, None, None]
    upto = torch.where(k < count[..., None] - 1, torch.floor(cumulative * (one / total) + 0.5), one)
    ints = torch.diff(upto, dim=2, prepend=torch.zeros_like(upto[..., :1]))
    lost = (256 - torch.gcd(ints.long(), torch.full_like(ints, 256, dtype=torch.long))).sum(2) / (512.0 * 128.0)
    truncation = torch.where((bits == WIDE_BITS)[:, None], 0.0, lost)
    coef = ints / one
    index = torch.clamp((base[:, None, None] + lo[..., None]).long() + k, 0, length - 1)
    coef = torch.where(mirrored[:, None, None], coef.flip(1), coef)
    index = torch.where(mirrored[:, None, None], index.flip(1), index)
    dense = torch.zeros((len(start), out_size, length), dtype=dtype, device=start.device)
    return dense.scatter_add_(2, index, coef.to(dtype)), truncation


def _window_status(region_hw, capacity, windows, flips):
    """Per sample (code, view) of region sizes (B, 2), windows float64 (B, V, 4) and flips (B, V) (ROW_* codes)."""
    h, w = region_hw[:, 0:1].double(), region_hw[:, 1:2].double()
    top, left, height, width = windows.unbind(2)
    inside = (height > 0) & (width > 0) & (top >= 0) & (left >= 0) & (top + height <= h) & (left + width <= w)
    bad_flip = (flips != 0) & (flips != 1)
    region_ok = (region_hw[:, 0] >= 1) & (region_hw[:, 0] <= capacity[0]) & (region_hw[:, 1] >= 1) \
        & (region_hw[:, 1] <= capacity[1])
    code = torch.where(bad_flip.any(1), ROW_BAD_FLIP, ROW_OK)
    code = torch.where((~inside).any(1), ROW_BAD_WINDOW, code)
    code = torch.where(region_ok, code, ROW_BAD_REGION)
    view = torch.where(code == ROW_BAD_WINDOW, (~inside).int().argmax(1), bad_flip.int().argmax(1))
    return code, view


def _raise_first(code: torch.Tensor, view: torch.Tensor, problem) -> None:
    """One copy to the host; ValueError with ``problem(sample, code, view)`` of the first bad sample."""
    status = torch.stack([code, view], 1).cpu()
    bad = (status[:, 0] != ROW_OK).nonzero()
    if len(bad):
        s = int(bad[0, 0])
        raise ValueError(problem(s, int(status[s, 0]), int(status[s, 1])) + f" ({len(bad)} bad samples in the batch)")


def _region_problem(sample, code, view, region_hw, windows, flips, capacity) -> str:
    h, w = (int(v) for v in region_hw[sample].cpu())
    where = f"regions: sample {sample}"
    if code == ROW_BAD_REGION:
        return f"{where}: region {h}x{w} is empty or exceeds the padded shape {capacity[0]}x{capacity[1]}"
    if code == ROW_BAD_WINDOW:
        window = tuple(float(v) for v in windows[sample, view].cpu())
        return (f"{where}, view {view}: window (top, left, height, width) = {window} is empty, not finite or "
                f"outside the region {h}x{w}")
    return f"{where}, view {view}: mirror value {int(flips[sample, view])} is not 0 or 1"


def _is_side(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__
