"""Moved to ``ccrop_loaders.tools.diagnostics``: this import path keeps working."""
import sys

from .tools import diagnostics as _moved

sys.modules[__name__] = _moved
