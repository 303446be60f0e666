"""Turning a multi-view or multi-crop batch into per-view or per-group image tensors."""
from __future__ import annotations

from typing import Sequence, TypeVar

import numpy as np
import torch

from ..core import ViewGroup
from ..core.groups import check_groups

Batch = TypeVar("Batch", torch.Tensor, np.ndarray)


def split_views(batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """uint8 (B, V, H, W, 3) from ``MultiViewContrastiveCropDecoder`` -> V tensors (B, 3, H, W).

    No copy: each view is a channels-last strided view of ``batch``, on its device.
    """
    if batch.dim() != 5 or batch.shape[-1] != 3:
        raise ValueError(f"expected a (B, V, H, W, 3) batch of views, got shape {tuple(batch.shape)}")
    return tuple(batch[:, v].permute(0, 3, 1, 2) for v in range(batch.shape[1]))


def split_groups(batch: Batch, groups: Sequence[ViewGroup]) -> tuple[Batch, ...]:
    """uint8 (B, total_bytes) from ``MultiCropContrastiveCropDecoder(table, groups)`` -> one uint8
    (B, V_g, H_g, W_g, 3) per group, in group order.

    No copy: each group is a view of ``batch`` (a torch tensor on any device, or
    a numpy array); ``split_views`` turns a group into V_g (B, 3, H, W) tensors.
    """
    groups = check_groups(groups)
    total = sum(g.num_views * g.size[0] * g.size[1] * 3 for g in groups)
    numpy = isinstance(batch, np.ndarray)
    if not numpy and not isinstance(batch, torch.Tensor):
        raise TypeError(f"batch must be a torch tensor or a numpy array, got {type(batch).__name__}")
    if batch.ndim != 2 or batch.shape[1] != total or batch.dtype != (np.uint8 if numpy else torch.uint8):
        raise ValueError(f"expected a uint8 (B, {total}) batch holding these groups' views, got {batch.dtype} of shape "
                         f"{tuple(batch.shape)}")
    # an empty batch has no bytes to be contiguous (numpy gives it strides (0, 0))
    if batch.shape[0] > 0 and (batch.strides[1] if numpy else batch.stride(1)) != 1:
        raise ValueError("a sample's bytes must be contiguous in the batch (a (B, total_bytes) row per sample)")
    out, at = [], 0
    for g in groups:
        size = g.num_views * g.size[0] * g.size[1] * 3
        part = batch[:, at: at + size]
        shape = (batch.shape[0], g.num_views, *g.size, 3)
        out.append(part.reshape(shape) if numpy else part.view(shape))
        at += size
    return tuple(out)
