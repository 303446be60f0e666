"""The core: crop sampler, counter-based random stream, shared box table.

Imports neither FFCV, DALI nor torch.
"""
from .sampler import FULL_BOX, SIMCCROP_BOX, beta_quantiles, crop_window, sample_crop, sample_crops
from .random import stream_key, uniform
from .table import BoxTable, load_box, load_controls, table_crop_window

__all__ = ["FULL_BOX", "SIMCCROP_BOX", "beta_quantiles", "crop_window", "sample_crop", "sample_crops",
           "stream_key", "uniform", "BoxTable", "load_box", "load_controls", "table_crop_window"]
