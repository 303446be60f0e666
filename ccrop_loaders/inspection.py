"""Moved to ``ccrop_loaders.tools.inspection``: this import path keeps working."""
import sys

from .tools import inspection as _moved

sys.modules[__name__] = _moved
