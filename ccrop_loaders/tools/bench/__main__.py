"""``python -m ccrop_loaders.tools.bench``: the same as ``ccrop bench``."""
import sys

from . import main

sys.exit(main())
