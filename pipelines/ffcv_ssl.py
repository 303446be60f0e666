"""FFCV recipe: two ContrastiveCrop views for SimCLR / MoCo v2 / BYOL / SimSiam, and the localization loader."""
from __future__ import annotations

import torch
from ffcv.fields.basics import IntDecoder
from ffcv.loader import OrderOption
from ffcv.transforms import ToDevice, ToTensor

from ccrop_loaders import BoxTable
from ccrop_loaders.ffcv import FullImageRGBImageDecoder, Loader, MultiViewContrastiveCropDecoder


def ssl_loader(beton: str, table: BoxTable, *, batch_size: int, num_workers: int, device: torch.device | str = "cpu",
               size: int = 224, alpha: float = 0.6, scale: tuple[float, float] = (0.2, 1.0),
               distributed: bool = False, seed: int = 0) -> Loader:
    """Batches ``(views, label, index)``: views uint8 (B, 2, size, size, 3) on ``device`` (crop + flip done;
    colour, grayscale and blur follow on the device with ``SSLViewAugment``), label and index int64 (B, 1)."""
    return Loader(beton, batch_size=batch_size, num_workers=num_workers, order=OrderOption.RANDOM, drop_last=True,
                  distributed=distributed, seed=seed, pipelines={
                      "image": [MultiViewContrastiveCropDecoder(table, (size, size), num_views=2, flip=True,
                                                                scale=scale, alpha=alpha),
                                ToTensor(), ToDevice(torch.device(device), non_blocking=True)],
                      "label": [IntDecoder(), ToTensor()],
                      "index": [IntDecoder(), ToTensor()],
                  })


def localization_loader(beton: str, *, batch_size: int, num_workers: int, device: torch.device | str = "cpu",
                        size: int = 224, distributed: bool = False) -> Loader:
    """Batches ``(image, label, index)`` for the box update: whole images resized to ``size``, uint8 HWC,
    each sample of this rank's shard once, in order."""
    return Loader(beton, batch_size=batch_size, num_workers=num_workers, order=OrderOption.SEQUENTIAL,
                  drop_last=False, distributed=distributed, pipelines={
                      "image": [FullImageRGBImageDecoder((size, size)), ToTensor(),
                                ToDevice(torch.device(device), non_blocking=True)],
                      "label": [IntDecoder(), ToTensor()],
                      "index": [IntDecoder(), ToTensor()],
                  })
