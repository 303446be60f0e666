"""Moved to ``ccrop_loaders.tools.cli``: this import path and ``python -m ccrop_loaders.cli`` keep working."""
import sys

from .tools import cli as _moved

if __name__ == "__main__":
    sys.exit(_moved.main())
sys.modules[__name__] = _moved
