"""View groups for multi-crop (SwAV, DINO, iBOT): several output sizes and scale ranges from one decode.

A group is ``num_views`` views of one output ``size`` and ``scale``/``ratio``
range. Groups are numbered in order and their views consecutively: group g's
view j is the sampler's view ``first_views(groups)[g] + j``, so every view of an
image has its own keyed window and flip, and the same (seed, epoch, index, view)
gives the same window on every backend.

``use_boxes`` chooses, per group, ContrastiveCrop (the centre drawn in the
table's box, Beta(alpha, alpha)) or plain RandomResizedCrop whatever the table
says. The default is ContrastiveCrop for every group: a small local view drawn
from the background shares nothing with the global views, and the box keeps
local views on the object, which is the method's point; set ``use_boxes=False``
on the local group to reproduce a recipe whose local crops are plain RRC.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .checks import check_count, check_range, check_size

# Caps checked before anything is built or allocated (ViewGroup, check_groups and every decoder and op that takes
# sizes): a view of at most MAX_VIEW_PIXELS pixels (8192 x 8192), at most MAX_VIEWS views per sample, and at most
# MAX_SAMPLE_BYTES bytes (uint8 RGB) of views per sample.
MAX_VIEW_PIXELS = 1 << 26
MAX_VIEWS = 1024
MAX_SAMPLE_BYTES = 1 << 30


@dataclass(frozen=True)
class ViewGroup:
    """``num_views`` views of ``size`` (height, width) pixels, areas in ``scale`` and aspect ratios in ``ratio``.

    ``use_boxes``: ContrastiveCrop from the table's boxes (True) or plain
    RandomResizedCrop for this group always (False). Checked when built.
    """

    size: tuple[int, int]
    num_views: int = 2
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    use_boxes: bool = True

    def __post_init__(self) -> None:
        size = self.size
        if _is_integer(size):  # one side (numpy integers too): a square
            size = (size, size)
        # a string would be read character by character ("96" -> 9 x 6, scale "12" -> (1, 2)) and True as 1:
        # refused, not guessed
        if _has_text_or_bool(size):
            raise ValueError(f"ViewGroup.size must be (height, width) with positive integers, got {self.size!r}")
        object.__setattr__(self, "size", check_view_size("ViewGroup.size", size))
        object.__setattr__(self, "num_views", check_count("ViewGroup.num_views", self.num_views))
        if self.num_views > MAX_VIEWS:
            raise ValueError(f"ViewGroup.num_views must be at most MAX_VIEWS ({MAX_VIEWS}), got {self.num_views}")
        for name in ("scale", "ratio"):
            if _has_text_or_bool(getattr(self, name)):
                raise ValueError(f"ViewGroup.{name} must be a pair of numbers (lo, hi), got {getattr(self, name)!r}")
            object.__setattr__(self, name, check_range(f"ViewGroup.{name}", getattr(self, name)))
        if not isinstance(self.use_boxes, (bool, np.bool_)):
            raise ValueError(f"ViewGroup.use_boxes must be True or False, got {self.use_boxes!r}")
        object.__setattr__(self, "use_boxes", bool(self.use_boxes))


def _has_text_or_bool(value) -> bool:
    """Whether ``value`` is, or holds, a string, bytes or a bool (which int() and float() would take)."""
    odd = (str, bytes, bool, np.bool_)
    if isinstance(value, odd):
        return True
    try:
        return any(isinstance(v, odd) for v in value)
    except TypeError:  # not iterable: the checks that follow refuse it
        return False


def _is_integer(value) -> bool:
    """An int or numpy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_view_size(name: str, size: Sequence[int]) -> tuple[int, int]:
    """An output size ``(height, width)`` of positive integers of at most ``MAX_VIEW_PIXELS`` pixels, or ValueError
    naming ``name``."""
    h, w = check_size(name, size)
    if h * w > MAX_VIEW_PIXELS:
        raise ValueError(f"{name} must be at most MAX_VIEW_PIXELS ({MAX_VIEW_PIXELS}) pixels, got {h} x {w}")
    return h, w


def check_groups(groups: Sequence[ViewGroup]) -> tuple[ViewGroup, ...]:
    """A non-empty sequence of ``ViewGroup``s as a tuple, or a TypeError/ValueError naming the bad entry; their
    views together within ``MAX_VIEWS`` and ``MAX_SAMPLE_BYTES``."""
    if isinstance(groups, ViewGroup) or not isinstance(groups, Sequence) or isinstance(groups, (str, bytes)):
        raise TypeError(f"groups must be a list of ViewGroup, got {type(groups).__name__}")
    if not groups:
        raise ValueError("groups must hold at least one ViewGroup")
    for g, group in enumerate(groups):
        if not isinstance(group, ViewGroup):
            raise TypeError(f"groups[{g}] must be a ViewGroup, got {type(group).__name__}")
    views = sum(g.num_views for g in groups)
    if views > MAX_VIEWS:
        raise ValueError(f"the groups hold {views} views per sample, more than MAX_VIEWS ({MAX_VIEWS})")
    size = sample_bytes(groups)
    if size > MAX_SAMPLE_BYTES:
        raise ValueError(f"the groups' views take {size:,} bytes per sample, more than MAX_SAMPLE_BYTES "
                         f"({MAX_SAMPLE_BYTES:,})")
    return tuple(groups)


def sample_bytes(groups: Sequence[ViewGroup]) -> int:
    """Bytes of one sample's views (uint8 RGB) over ``groups``."""
    return sum(g.num_views * g.size[0] * g.size[1] * 3 for g in groups)


def first_views(groups: Sequence[ViewGroup]) -> list[int]:
    """The sampler view number of each group's first view: groups in order, views numbered consecutively."""
    starts, view = [], 0
    for group in check_groups(groups):
        starts.append(view)
        view += group.num_views
    return starts


def multi_crop_groups(global_size: int = 224, local_size: int = 96, *, num_global: int = 2, num_local: int = 6,
                      split: float = 0.14, min_scale: float = 0.05, local_use_boxes: bool = True
                      ) -> tuple[ViewGroup, ViewGroup]:
    """SwAV/DINO's multi-crop: ``num_global`` views of ``global_size`` at scale (split, 1) and ``num_local`` of
    ``local_size`` at (min_scale, split). Defaults: 2 x 224 at (0.14, 1) and 6 x 96 at (0.05, 0.14)."""
    return (ViewGroup((global_size, global_size), num_global, (split, 1.0)),
            ViewGroup((local_size, local_size), num_local, (min_scale, split), use_boxes=local_use_boxes))
