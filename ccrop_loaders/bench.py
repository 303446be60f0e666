"""Moved to ``ccrop_loaders.tools.bench``: this import path and ``python -m ccrop_loaders.bench`` keep working."""
import sys

from .tools import bench as _moved

if __name__ == "__main__":
    sys.exit(_moved.main())
sys.modules[__name__] = _moved
