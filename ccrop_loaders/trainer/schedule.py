"""When to localize and when to use the boxes: ContrastiveCrop's training schedule."""
from __future__ import annotations

from dataclasses import dataclass

from ..core import BoxTable


def _positive(name: str, value, allow_zero: bool = False) -> int:
    lo = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return value


@dataclass(frozen=True)
class ContrastiveCropSchedule:
    """RandomResizedCrop for ``warmup_epochs``, then ContrastiveCrop with boxes refreshed every ``loc_interval``.

    Defaults as the paper: warm-up and interval are 20% of ``epochs`` (20 and 20
    of 100 on ImageNet), no localization at the last epoch, unless it is the first
    epoch after warm-up (every epoch that uses boxes follows a localization). ``simccrop``: the
    fixed centre box the table was created with (``init_box=SIMCCROP_BOX``), used
    from epoch 0, never localized. Epochs count from 0.

    In the trainer, at the start of each epoch::

        if schedule.localize_at(epoch):
            ...  # localization pass: updater.update(maps, indices) per batch
            updater.flush()
        schedule.apply(table, epoch)
    """

    epochs: int
    warmup_epochs: int | None = None
    loc_interval: int | None = None
    simccrop: bool = False

    def __post_init__(self):
        epochs = _positive("epochs", self.epochs)
        warmup = round(0.2 * epochs) if self.warmup_epochs is None else self.warmup_epochs
        interval = max(1, round(0.2 * epochs)) if self.loc_interval is None else self.loc_interval
        object.__setattr__(self, "warmup_epochs", _positive("warmup_epochs", warmup, allow_zero=True))
        object.__setattr__(self, "loc_interval", _positive("loc_interval", interval))
        if self.warmup_epochs >= epochs and not self.simccrop:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be below epochs ({epochs}), "
                             "or no epoch would use ContrastiveCrop")

    def localize_at(self, epoch: int) -> bool:
        """Whether to run a localization pass before training epoch ``epoch``."""
        if self.simccrop or epoch < self.warmup_epochs or epoch >= self.epochs:
            return False
        if epoch == self.epochs - 1 and epoch != self.warmup_epochs:
            return False
        return (epoch - self.warmup_epochs) % self.loc_interval == 0

    def localization_epochs(self) -> list[int]:
        return [e for e in range(self.epochs) if self.localize_at(e)]

    def uses_boxes(self, epoch: int) -> bool:
        """False during warm-up (plain RandomResizedCrop)."""
        return self.simccrop or epoch >= self.warmup_epochs

    def apply(self, table: BoxTable, epoch: int) -> None:
        """Set the table's live controls for ``epoch``: ``epoch`` (keys the crops) and ``use_boxes``."""
        table.epoch = epoch
        table.use_boxes = self.uses_boxes(epoch)
