"""FFCV adapter: ContrastiveCrop decoders reading the live BoxTable, a .beton converter, a Loader that
forwards decoding errors."""
from .decoders import (ContrastiveCropRGBImageDecoder, FullImageRGBImageDecoder, MultiViewContrastiveCropDecoder,
                       SampleIndexDecoder)
from .loader import Loader
from .views import split_views

__all__ = ["ContrastiveCropRGBImageDecoder", "FullImageRGBImageDecoder", "MultiViewContrastiveCropDecoder",
           "SampleIndexDecoder", "Loader", "split_views"]
