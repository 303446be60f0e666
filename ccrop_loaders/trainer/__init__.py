"""Trainer side (torch): localization, the background box updater, the schedule, checkpoints, view augmentations."""
try:
    import torch  # noqa: F401
except ImportError as _error:
    from .._extras import missing_extra

    raise missing_extra(_error, "torch", "ccrop_loaders.trainer (localize_boxes, BoxUpdater, the schedule, "
                                          "checkpoints, augmentations)") from _error
from .augment import SSLViewAugment, byol_augment, simclr_augment
from .checkpoint import restore_table, table_state
from .localize import localize_boxes
from .schedule import ContrastiveCropSchedule
from .updater import BoxUpdater
from .view_stage import ViewStage, make_views

__all__ = ["BoxUpdater", "ContrastiveCropSchedule", "SSLViewAugment", "byol_augment", "localize_boxes", "restore_table",
           "simclr_augment", "table_state", "ViewStage", "make_views"]
