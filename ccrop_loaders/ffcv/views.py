"""Turning a multi-view batch into per-view image tensors."""
from __future__ import annotations

import torch


def split_views(batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """uint8 (B, V, H, W, 3) from ``MultiViewContrastiveCropDecoder`` -> V tensors (B, 3, H, W).

    No copy: each view is a channels-last strided view of ``batch``, on its device.
    """
    if batch.dim() != 5 or batch.shape[-1] != 3:
        raise ValueError(f"expected a (B, V, H, W, 3) batch of views, got shape {tuple(batch.shape)}")
    return tuple(batch[:, v].permute(0, 3, 1, 2) for v in range(batch.shape[1]))
