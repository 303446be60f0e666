"""Moved to ``ccrop_loaders.tools.sample_data``: this import path and ``python -m ccrop_loaders.sample_data`` keep working."""
import sys

from .tools import sample_data as _moved

if __name__ == "__main__":
    sys.exit(_moved.main())
sys.modules[__name__] = _moved
