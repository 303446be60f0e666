"""Every side-by-side comparison in one run (``ccrop bench``): ``python -m benchmarks.bench [--quick] [--out DIR]``.

A thin entry point: the code lives in ``ccrop_loaders.tools.bench`` so that the installed ``ccrop`` command has it too.
Writes ``DIR/bench.json`` (machine, versions, every rate and ratio), ``DIR/bench.png`` and ``DIR/scaling.png``.
"""
import sys

from ccrop_loaders.tools.bench import main

if __name__ == "__main__":
    sys.exit(main())
