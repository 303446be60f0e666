"""A Lightning callback running ContrastiveCrop's schedule: localization passes, the table's controls, checkpoints.

``ContrastiveCropCallback(table, schedule, localization_data)`` in
``Trainer(callbacks=[...])``: before each epoch's batches it runs the schedule's
localization pass (the module's feature maps through ``BoxUpdater``; under DDP
each rank its shard, all-gathered, every rank's table identical after), sets the
table's epoch and warm-up flag, and logs the boxes' health; the table's rows and
controls are saved with the Lightning checkpoint and restored from it.
Needs the ``lightning`` extra (``pytorch-lightning``).
"""
from __future__ import annotations

import warnings
from typing import Callable, Iterable

import torch

from ..core import BoxTable
from .checkpoint import restore_table, table_state
from .schedule import ContrastiveCropSchedule
from .updater import BoxUpdater

try:
    import pytorch_lightning as pl
except ImportError as _error:
    from .._extras import missing_extra

    raise missing_extra(_error, "lightning", "ccrop_loaders.trainer.lightning") from _error

LocalizationData = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]
Features = Callable[[pl.LightningModule, torch.Tensor], torch.Tensor]


def module_features(module: pl.LightningModule, images: torch.Tensor) -> torch.Tensor:
    """The default ``features``: ``module.features(images)``, the encoder's last feature maps (N, C, h, w)."""
    return module.features(images)


class ContrastiveCropCallback(pl.Callback):
    """ContrastiveCrop's schedule inside ``Trainer.fit``.

    ``localization_data()`` yields this rank's ``(images, indices)`` for a
    localization pass: float (N, 3, H, W) un-augmented whole images, as the
    module's input, and their global indices (the shard of this rank);
    ``features(module, images)`` gives the maps (default ``module.features``).
    ``threshold`` and ``input_size`` go to ``BoxUpdater``. The controls of an
    epoch are set before its data loader is iterated (Lightning makes the first
    epoch's iterator before ``on_train_epoch_start``): in ``on_fit_start`` for
    epoch 0, and for each next epoch in ``on_train_epoch_end``, before
    ``ModelCheckpoint`` saves, so a checkpoint holds the controls and boxes of the
    epoch a resume starts with (a resumed ``fit`` changes nothing at its start).
    ``health`` holds the ``BoxHealth`` of each pass, by epoch.
    """

    def __init__(self, table: BoxTable, schedule: ContrastiveCropSchedule, localization_data: LocalizationData, *,
                 features: Features = module_features, threshold: float = 0.1, input_size: int | None = 224):
        if not isinstance(table, BoxTable):
            raise TypeError(f"table must be a BoxTable, got {type(table).__name__}")
        if not isinstance(schedule, ContrastiveCropSchedule):
            raise TypeError(f"schedule must be a ContrastiveCropSchedule, got {type(schedule).__name__}")
        self.table, self.schedule, self.localization_data = table, schedule, localization_data
        self.features, self.threshold, self.input_size = features, threshold, input_size
        self.health: dict[int, object] = {}
        self._prepared: int | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.ckpt_path is None:  # a resume's table comes from its checkpoint, already prepared
            self._prepare(trainer, pl_module, trainer.current_epoch)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        upcoming = trainer.current_epoch + 1
        if trainer.max_epochs is None or trainer.max_epochs < 0 or upcoming < trainer.max_epochs:
            self._prepare(trainer, pl_module, upcoming)

    def _prepare(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> None:
        if self._prepared == epoch:
            return
        if self.schedule.localize_at(epoch):
            self.health[epoch] = health = self._localize(pl_module)
            if trainer.logger is not None and trainer.is_global_zero:
                trainer.logger.log_metrics({"boxes/mean_area": health.mean_area,
                                            "boxes/full_share": health.full_share}, step=trainer.global_step)
            if health.warning():
                warnings.warn(health.warning(), RuntimeWarning, stacklevel=2)
        self.schedule.apply(self.table, epoch)
        self._prepared = epoch

    @torch.no_grad()
    def _localize(self, pl_module: pl.LightningModule):
        training = pl_module.training
        pl_module.eval()
        try:
            with BoxUpdater(self.table, threshold=self.threshold, input_size=self.input_size) as updater:
                for images, indices in self.localization_data():
                    updater.update(self.features(pl_module, images.to(pl_module.device)), indices)
                updater.flush()  # a collective under DDP: every rank runs the pass
                return updater.health()
        finally:
            pl_module.train(training)

    def state_dict(self) -> dict:
        return {"boxes": table_state(self.table)}

    def load_state_dict(self, state_dict: dict) -> None:
        restore_table(self.table, state_dict["boxes"])
