"""A small SimCLR LightningModule on ContrastiveCrop views, with ``ContrastiveCropCallback`` running the schedule.

    python -m pipelines.lightning_ssl --images 64 --epochs 4       # demo data, CPU, about a minute

The views here come from a plain torch ``Dataset`` over an image folder that
crops with the core (``sample_crop`` keyed by the live table, ``resize_crop``),
so the example needs neither FFCV nor DALI; swap in an FFCV ``Loader`` with
``MultiViewContrastiveCropDecoder`` or ``ContrastiveCropIterator`` for speed:
the callback only needs the table and a localization pass's data.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ccrop_loaders import BoxTable, ContrastiveCropSchedule, sample_crop
from ccrop_loaders.core import sample_flip
from ccrop_loaders.core.resample import resize_crop, scratch_size
from ccrop_loaders.folder import FolderFiles, load_rgb
from ccrop_loaders.trainer.augment import IMAGENET_MEAN, IMAGENET_STD
from ccrop_loaders.trainer.lightning import ContrastiveCropCallback
from pipelines.train_ssl import SSLModel, info_nce

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1) * 255
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(image).permute(2, 0, 1).float() - MEAN) / STD


class TableViews(Dataset):
    """Two ContrastiveCrop views (float (3, size, size), normalized) and the global index of each image, read from
    the live ``table`` when the sample is loaded (``num_workers=0``: the controls of the epoch being trained)."""

    def __init__(self, files: FolderFiles, table: BoxTable, size: int):
        self.images = [load_rgb(p) for p in files.files]
        self.table, self.size = table, size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image, table = self.images[index], self.table
        box = table.read([index])[0] if table.use_boxes else (0.0, 0.0, 1.0, 1.0)
        views = []
        for view in range(2):
            top, left, h, w = sample_crop(*image.shape[:2], box, alpha=0.6 if table.use_boxes else 1.0,
                                          seed=table.seed, epoch=table.epoch, index=index, view=view)
            out = np.empty((self.size, self.size, 3), np.uint8)
            flip = sample_flip(seed=table.seed, epoch=table.epoch, index=index, view=view)
            resize_crop(image, top, left, h, w, int(flip), out,
                        np.empty(scratch_size(h, w, (self.size, self.size)), np.int64))
            views.append(_to_tensor(out))
        return views[0], views[1], index


class WholeImages(Dataset):
    """Each image resized whole to ``size`` (the localization input) and its global index."""

    def __init__(self, files: FolderFiles, size: int):
        self.images = [load_rgb(p) for p in files.files]
        self.size = size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        out = np.empty((self.size, self.size, 3), np.uint8)
        h, w = image.shape[:2]
        resize_crop(image, 0, 0, h, w, 0, out, np.empty(scratch_size(h, w, (self.size, self.size)), np.int64))
        return _to_tensor(out), index


class SimCLR(pl.LightningModule):
    """SimCLR (InfoNCE over the batch) with ``pipelines.train_ssl``'s encoder; ``features`` gives the maps."""

    def __init__(self, arch: str = "tiny", lr: float = 0.05, temperature: float = 0.2):
        super().__init__()
        self.model, self.lr, self.temperature = SSLModel(arch), lr, temperature

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.features(images)

    def training_step(self, batch, batch_idx):
        view1, view2, _ = batch
        loss = info_nce(self.model(view1), self.model(view2), None, self.temperature)
        self.log("loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


class LocalizationBatches:
    """This rank's whole images for a localization pass, ``(images, indices)`` batches (a ``DistributedSampler``
    shard under DDP); picklable, for DDP's spawned processes."""

    def __init__(self, files: FolderFiles, size: int, batch_size: int):
        self.files, self.size, self.batch_size = files, size, batch_size

    def __call__(self) -> DataLoader:
        dataset = WholeImages(self.files, self.size)
        sampler = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            sampler = DistributedSampler(dataset, shuffle=False)
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler)


def build(folder: Path, table: BoxTable, *, epochs: int, size: int = 32, batch_size: int = 16,
          warmup_epochs: int | None = None, loc_interval: int | None = None, threshold: float = 0.1, **trainer):
    """The module, its data loader, the callback and a ``Trainer`` (``trainer``: more ``Trainer`` options)."""
    files = FolderFiles.from_folder(folder)
    table.check_dataset_size(files.num_samples)
    schedule = ContrastiveCropSchedule(epochs, warmup_epochs, loc_interval)
    callback = ContrastiveCropCallback(table, schedule, LocalizationBatches(files, size, batch_size),
                                       threshold=threshold, input_size=size)
    loader = DataLoader(TableViews(files, table, size), batch_size=batch_size, shuffle=True, drop_last=True)
    options = dict(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False)
    options.update(trainer)
    return SimCLR(), loader, callback, pl.Trainer(callbacks=[callback], **options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="image folder (default: demo images)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--loc-threshold", type=float, default=0.1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data
        if folder is None:
            from ccrop_loaders.tools.sample_data import make_image_folder

            folder = Path(tmp) / "images"
            make_image_folder(folder, args.images, shorter_side=(48, 80), seed=0)
        with BoxTable.create(FolderFiles.from_folder(folder).num_samples) as table:
            module, loader, callback, trainer = build(folder, table, epochs=args.epochs, threshold=args.loc_threshold,
                                                      enable_progress_bar=True)
            trainer.fit(module, loader)
            for epoch, health in callback.health.items():
                print(f"localization before epoch {epoch}: {health}")


if __name__ == "__main__":
    main()
