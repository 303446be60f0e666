"""The compiled pieces of the FFCV adapter, both reached through ctypes. Metadata lives in setup.cfg.

- ``_jpeg_region``: region decoding with libjpeg-turbo's libjpeg API;
- ``_resample``: the antialiased crop-resize (AVX-512 or AVX2, with a portable fallback).

Optional, so the core and the DALI adapter install without libjpeg headers or a
compiler; ``ccrop_loaders.ffcv`` says what to install when one was not built.
"""
from setuptools import Extension, setup

setup(ext_modules=[
    Extension("ccrop_loaders.ffcv._jpeg_region", ["ccrop_loaders/ffcv/jpeg_region.c"], libraries=["jpeg"],
              extra_compile_args=["-O2"], optional=True),
    Extension("ccrop_loaders.ffcv._resample", ["ccrop_loaders/ffcv/resample.c"], libraries=["m"],
              extra_compile_args=["-O3", "-Wall"], optional=True),
])
