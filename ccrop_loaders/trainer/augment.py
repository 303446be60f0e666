"""SSL view augmentations after the crop, batched on the views' device with per-sample random parameters.

As kornia's augmentations: ``sample_params`` draws every sample's parameters
(what torchvision's ``get_params`` does per image), ``apply`` uses them, so a batch
is transformed in a handful of tensor ops, on the GPU when the views are there.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LUMA = (0.299, 0.587, 0.114)


@dataclass
class ViewAugmentParams:
    """Per-sample parameters, each a tensor of length B: what ``apply`` does to sample i."""

    jitter: torch.Tensor        # bool: colour jitter applied
    brightness: torch.Tensor    # float factors
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor           # float, in turns ([-0.5, 0.5])
    order: torch.Tensor         # int64 (4,): the jitter order for this batch (0 b, 1 c, 2 s, 3 h)
    grayscale: torch.Tensor     # bool
    blur: torch.Tensor          # bool
    sigma: torch.Tensor         # float, pixels
    solarize: torch.Tensor      # bool


class SSLViewAugment(torch.nn.Module):
    """The paper's ImageNet recipe after the crop (and flip, which the loaders fuse into the crop):
    colour jitter (0.4, 0.4, 0.4, 0.1) with p = 0.8, grayscale p = 0.2, Gaussian blur
    sigma in [0.1, 2] with p = 0.5, optional solarize; then normalize.

    Input: uint8 (B, H, W, 3) views as the loaders give them, or float (B, 3, H, W)
    in [0, 1]. Output: float32 (B, 3, H, W), normalized with ``mean``/``std``.
    ``generator`` (on the views' device) makes the draws reproducible.
    """

    def __init__(self, *, jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1), jitter_p: float = 0.8,
                 grayscale_p: float = 0.2, blur_p: float = 0.5, blur_sigma: tuple[float, float] = (0.1, 2.0),
                 blur_kernel: int = 23, solarize_p: float = 0.0, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 generator: torch.Generator | None = None):
        super().__init__()
        for name, p in (("jitter_p", jitter_p), ("grayscale_p", grayscale_p), ("blur_p", blur_p),
                        ("solarize_p", solarize_p)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if blur_kernel < 1 or blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be a positive odd integer, got {blur_kernel}")
        if not 0 < blur_sigma[0] <= blur_sigma[1]:
            raise ValueError(f"blur_sigma must be (lo, hi) with 0 < lo <= hi, got {blur_sigma}")
        self.jitter, self.jitter_p, self.grayscale_p = tuple(float(v) for v in jitter), jitter_p, grayscale_p
        self.blur_p, self.blur_sigma, self.blur_kernel, self.solarize_p = blur_p, blur_sigma, blur_kernel, solarize_p
        self.generator = generator
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def sample_params(self, batch: int, device: torch.device | str = "cpu") -> ViewAugmentParams:
        g = self.generator

        def uniform(lo, hi):
            return lo + (hi - lo) * torch.rand(batch, device=device, generator=g)

        def coin(p):
            return torch.rand(batch, device=device, generator=g) < p

        b, c, s, h = self.jitter
        return ViewAugmentParams(
            jitter=coin(self.jitter_p), brightness=uniform(max(0.0, 1 - b), 1 + b),
            contrast=uniform(max(0.0, 1 - c), 1 + c), saturation=uniform(max(0.0, 1 - s), 1 + s),
            hue=uniform(-h, h), order=torch.randperm(4, device=device, generator=g),
            grayscale=coin(self.grayscale_p), blur=coin(self.blur_p), sigma=uniform(*self.blur_sigma),
            solarize=coin(self.solarize_p))

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        x = _as_float_nchw(views)
        return self.apply(x, self.sample_params(x.shape[0], x.device))

    def apply(self, x: torch.Tensor, params: ViewAugmentParams) -> torch.Tensor:
        """float (B, 3, H, W) in [0, 1] -> augmented and normalized float (B, 3, H, W)."""
        if params.jitter.any():
            jittered = x
            for op in params.order.tolist():
                jittered = _JITTER_OPS[op](jittered, params)
            x = torch.where(params.jitter.view(-1, 1, 1, 1), jittered, x)
        if params.grayscale.any():
            x = torch.where(params.grayscale.view(-1, 1, 1, 1), _gray(x).expand_as(x), x)
        if params.blur.any():
            chosen = params.blur.nonzero().flatten()
            x = x.index_copy(0, chosen, _gaussian_blur(x[chosen], params.sigma[chosen], self.blur_kernel))
        if params.solarize.any():
            x = torch.where(params.solarize.view(-1, 1, 1, 1) & (x >= 0.5), 1.0 - x, x)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)


def simclr_augment(**kwargs) -> SSLViewAugment:
    """SimCLR / MoCo v2 / SimSiam (the paper's ImageNet recipe): both views alike."""
    return SSLViewAugment(**kwargs)


def byol_augment(view: int, **kwargs) -> SSLViewAugment:
    """BYOL's asymmetric views: view 0 always blurred, never solarized; view 1 blurred 10%, solarized 20%."""
    if view not in (0, 1):
        raise ValueError(f"view must be 0 or 1, got {view}")
    return SSLViewAugment(blur_p=1.0 if view == 0 else 0.1, solarize_p=0.0 if view == 0 else 0.2, **kwargs)


def _as_float_nchw(views: torch.Tensor) -> torch.Tensor:
    if views.dim() != 4:
        raise ValueError(f"views must be (B, H, W, 3) uint8 or (B, 3, H, W) float, got shape {tuple(views.shape)}")
    if views.dtype == torch.uint8:
        if views.shape[3] != 3:
            raise ValueError(f"uint8 views must be channels-last (B, H, W, 3), got {tuple(views.shape)}")
        return views.permute(0, 3, 1, 2).float().div_(255.0)
    if views.shape[1] != 3:
        raise ValueError(f"float views must be (B, 3, H, W), got {tuple(views.shape)}")
    return views.float()


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _per_sample(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def _brightness(x, p):
    return (x * _per_sample(p.brightness)).clamp_(0, 1)


def _contrast(x, p):
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return (mean + (x - mean) * _per_sample(p.contrast)).clamp_(0, 1)


def _saturation(x, p):
    gray = _gray(x)
    return (gray + (x - gray) * _per_sample(p.saturation)).clamp_(0, 1)


def _hue(x, p):
    """Hue shift by ``p.hue`` turns, in HSV as torchvision's ColorJitter."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    h = torch.where(maxc == r, ((g - b) / safe) % 6, torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = torch.where(delta > 0, h / 6.0, torch.zeros_like(h))
    h = (h + p.hue.view(-1, 1, 1)) % 1.0
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    v = maxc
    k = lambda n: (n + h * 6) % 6  # noqa: E731
    f = lambda n: v - v * s * torch.clamp(torch.minimum(k(n), 4 - k(n)), 0, 1)  # noqa: E731
    return torch.stack([f(5), f(3), f(1)], dim=1)


_JITTER_OPS = (_brightness, _contrast, _saturation, _hue)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Separable Gaussian blur, sigma per sample, reflect padding: float (B, 3, H, W)."""
    b, c, h, w = x.shape
    half = min(kernel // 2, h - 1, w - 1)  # reflect padding needs pad < side
    kernel = 2 * half + 1
    pos = torch.arange(-half, half + 1, device=x.device, dtype=x.dtype)
    weights = torch.exp(-0.5 * (pos[None] / sigma[:, None].to(x.dtype)) ** 2)
    weights = (weights / weights.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, K)
    flat = x.reshape(1, b * c, h, w)
    flat = F.conv2d(F.pad(flat, (0, 0, half, half), mode="reflect"), weights.view(b * c, 1, kernel, 1), groups=b * c)
    flat = F.conv2d(F.pad(flat, (half, half, 0, 0), mode="reflect"), weights.view(b * c, 1, 1, kernel), groups=b * c)
    return flat.view(b, c, h, w)
