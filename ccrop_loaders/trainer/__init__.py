"""Trainer side (torch): localization, the background box updater, the schedule, checkpoints, view augmentations."""
from .augment import SSLViewAugment, byol_augment, simclr_augment
from .checkpoint import restore_table, table_state
from .localize import localize_boxes
from .schedule import ContrastiveCropSchedule
from .updater import BoxUpdater

__all__ = ["BoxUpdater", "ContrastiveCropSchedule", "SSLViewAugment", "byol_augment", "localize_boxes", "restore_table",
           "simclr_augment", "table_state"]
