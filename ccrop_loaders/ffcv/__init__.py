"""FFCV adapter: ContrastiveCrop decoders reading the live BoxTable (views, or region rows for the torch view
stage), a .beton converter, a Loader that forwards decoding errors."""
try:
    import ffcv  # noqa: F401  (FFCV imports torch too)
except ImportError as _error:
    from .._extras import missing_extra

    raise missing_extra(_error, "ffcv", "ccrop_loaders.ffcv") from _error
from .decoders import (ContrastiveCropRGBImageDecoder, FullImageRGBImageDecoder, MultiCropContrastiveCropDecoder,
                       MultiViewContrastiveCropDecoder, SampleIndexDecoder)
from .loader import Loader
from .order import DistributedQuasiRandom
from .region_decoder import ContrastiveCropRegionDecoder
from .views import split_groups, split_views

__all__ = ["ContrastiveCropRGBImageDecoder", "ContrastiveCropRegionDecoder", "DistributedQuasiRandom",
           "FullImageRGBImageDecoder", "MultiCropContrastiveCropDecoder", "MultiViewContrastiveCropDecoder",
           "SampleIndexDecoder", "Loader", "split_groups", "split_views"]
