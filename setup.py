"""The one compiled piece: FFCV's region decoder (libjpeg-turbo's libjpeg API). Metadata lives in setup.cfg.

Optional, so the core and the DALI adapter install without libjpeg headers;
``ccrop_loaders.ffcv`` says what to install when it was not built.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("ccrop_loaders.ffcv._jpeg_region", ["ccrop_loaders/ffcv/jpeg_region.c"],
                             libraries=["jpeg"], extra_compile_args=["-O2"], optional=True)])
