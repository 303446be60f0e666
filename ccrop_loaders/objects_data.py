"""Moved to ``ccrop_loaders.tools.objects_data``: this import path and ``python -m ccrop_loaders.objects_data`` keep working."""
import sys

from .tools import objects_data as _moved

if __name__ == "__main__":
    sys.exit(_moved.main())
sys.modules[__name__] = _moved
