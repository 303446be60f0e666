"""The core: crop sampler, counter-based random stream, view groups, shared box table, resampler.

Imports neither FFCV, DALI nor torch.
"""
from .sampler import FULL_BOX, SIMCCROP_BOX, beta_quantiles, crop_window, sample_crop, sample_crops, sample_flip
from .groups import ViewGroup, first_views, multi_crop_groups
from .random import flip_draw, stream_key, uniform
from .table import BoxTable
from .table_layout import load_box, load_controls
from .windows import table_crop_window, table_flip

__all__ = ["ViewGroup", "first_views", "multi_crop_groups", "FULL_BOX", "SIMCCROP_BOX", "beta_quantiles",
           "crop_window", "sample_crop", "sample_crops", "sample_flip", "flip_draw", "stream_key", "uniform",
           "BoxTable", "load_box", "load_controls", "table_crop_window", "table_flip"]
