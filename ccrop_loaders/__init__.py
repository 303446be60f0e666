"""ccrop-loaders: ContrastiveCrop views for FFCV and NVIDIA DALI.

The core (``sample_crop``, ``sample_crops``, ``BoxTable``) imports neither FFCV,
DALI nor torch; the trainer side (``localize_boxes``, ``BoxUpdater``,
``ContrastiveCropSchedule``, ``table_state``, ``restore_table``) imports torch on first use.
"""
from .core import FULL_BOX, SIMCCROP_BOX, BoxTable, ViewGroup, first_views, multi_crop_groups, sample_crop, sample_crops

_TRAINER = ("BoxUpdater", "ContrastiveCropSchedule", "localize_boxes", "restore_table", "table_state")
__all__ = ["FULL_BOX", "SIMCCROP_BOX", "BoxTable", "ViewGroup", "first_views", "multi_crop_groups", "sample_crop", "sample_crops", *_TRAINER]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _TRAINER:
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'ccrop_loaders' has no attribute {name!r}")
