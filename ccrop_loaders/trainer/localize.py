"""Semantic-aware localization: feature maps -> one object box per image (torch)."""
from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F


def _first_true(mask: torch.Tensor) -> torch.Tensor:
    """Index of the first True along the last dim of a bool (N, L) tensor (0 where none)."""
    return mask.to(torch.uint8).argmax(dim=1)


def check_feature_maps(feature_maps) -> None:
    """Refuse anything but a floating-point torch.Tensor (N, C, h, w) with C, h, w >= 1."""
    if not isinstance(feature_maps, torch.Tensor):
        raise TypeError(f"feature_maps must be a torch.Tensor (N, C, h, w), got {type(feature_maps).__name__}")
    if feature_maps.dim() != 4 or feature_maps.shape[2] < 1 or feature_maps.shape[3] < 1:
        raise ValueError(f"feature_maps must have shape (N, C, h, w) with h, w >= 1, got {tuple(feature_maps.shape)}")
    if feature_maps.shape[1] < 1:
        raise ValueError(f"feature_maps must have C >= 1 channels, got shape {tuple(feature_maps.shape)} (C = 0)")
    if not feature_maps.is_floating_point():
        raise ValueError(f"feature_maps must be floating point, got {feature_maps.dtype}")


def _size_pair(input_size) -> tuple[int, int]:
    """``input_size`` (an int, or a pair of ints, each >= 1) as (H, W)."""
    items = tuple(input_size) if isinstance(input_size, Iterable) else (input_size, input_size)
    if len(items) != 2 or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                                  for s in items):
        raise ValueError(f"input_size must be a positive int or a pair (H, W) of positive ints, got {input_size!r}")
    return int(items[0]), int(items[1])


def localize_boxes(
    feature_maps: torch.Tensor,
    *,
    threshold: float = 0.1,
    input_size: Sequence[int] | int | None = None,
) -> torch.Tensor:
    """Object boxes from the encoder's last feature maps, as ContrastiveCrop's localization.

    ``feature_maps``: float (N, C, h, w). Per image: sum over channels, min-max
    normalize to [0, 1], upsample bilinearly (align_corners=False) to
    ``input_size`` (H, W) (None: keep (h, w)); rows/columns whose max exceeds
    ``threshold`` are active; the box spans the first to the last active row and
    column divided by H and W. Returns float32 (N, 4) ``(y0, x0, y1, x1)`` in
    [0, 1] on the maps' device. A constant, empty (all-zero) or non-finite map
    gives the full box (0, 0, 1, 1). Vectorized over the batch.
    """
    check_feature_maps(feature_maps)
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be a number in [0, 1), got {threshold!r}")
    threshold = float(threshold)
    n, _, h, w = feature_maps.shape
    size = (h, w) if input_size is None else _size_pair(input_size)
    height, width = size

    maps = feature_maps.float().sum(dim=1).reshape(n, h * w)
    lo = maps.amin(dim=1, keepdim=True)
    hi = maps.amax(dim=1, keepdim=True)
    valid = torch.isfinite(maps).all(dim=1) & (hi > lo).squeeze(1)
    maps = ((maps - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))).reshape(n, 1, h, w)
    if size != (h, w):
        maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    maps = maps[:, 0]
    rows = maps.amax(dim=2) > threshold  # (N, H)
    cols = maps.amax(dim=1) > threshold  # (N, W)
    valid &= rows.any(dim=1) & cols.any(dim=1)

    y0 = _first_true(rows)
    y1 = height - 1 - _first_true(rows.flip(1))
    x0 = _first_true(cols)
    x1 = width - 1 - _first_true(cols.flip(1))
    boxes = torch.stack([y0 / height, x0 / width, y1 / height, x1 / width], dim=1).float()
    full = torch.tensor([0.0, 0.0, 1.0, 1.0], device=boxes.device)
    return torch.where(valid[:, None], boxes, full)
