"""The compiled pieces, both reached through ctypes. Metadata lives in setup.cfg.

- ``ffcv._jpeg_region``: region decoding with libjpeg-turbo's libjpeg API (the FFCV adapter);
- ``core._resample``: the antialiased crop-resize (AVX-512 or AVX2, with a portable fallback), used by the FFCV
  decoders and DALI's CPU views.

Optional, so the package installs without libjpeg headers or a compiler; ``ccrop_loaders.ffcv`` and
``ccrop_loaders.core.resample`` say what to install when one was not built.
"""
from setuptools import Extension, setup

setup(ext_modules=[
    Extension("ccrop_loaders.ffcv._jpeg_region", ["ccrop_loaders/ffcv/jpeg_region.c"], libraries=["jpeg"],
              extra_compile_args=["-O2"], optional=True),
    Extension("ccrop_loaders.core._resample", ["ccrop_loaders/core/resample.c"], libraries=["m"],
              extra_compile_args=["-O3", "-Wall"], optional=True),
])
