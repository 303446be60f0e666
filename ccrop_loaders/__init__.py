"""ccrop-loaders: ContrastiveCrop views for FFCV and NVIDIA DALI.

The core (``sample_crop``, ``sample_crops``, ``BoxTable``) imports neither FFCV,
DALI nor torch; ``localize_boxes`` imports torch on first use.
"""
from .core import FULL_BOX, SIMCCROP_BOX, BoxTable, sample_crop, sample_crops

__all__ = ["FULL_BOX", "SIMCCROP_BOX", "BoxTable", "localize_boxes", "sample_crop", "sample_crops"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "localize_boxes":
        from .trainer.localize import localize_boxes

        return localize_boxes
    raise AttributeError(f"module 'ccrop_loaders' has no attribute {name!r}")
