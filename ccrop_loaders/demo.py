"""Moved to ``ccrop_loaders.tools.demo``: this import path and ``python -m ccrop_loaders.demo`` keep working."""
import sys

from .tools import demo as _moved

if __name__ == "__main__":
    sys.exit(_moved.main())
sys.modules[__name__] = _moved
