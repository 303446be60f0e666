"""Table lifetimes under a running FFCV Loader: leaving ``with BoxTable`` while it prefetches never crashes."""
import subprocess
import sys
import textwrap

SCRIPT = """
import gc, sys
import numpy as np
from ffcv.fields.basics import IntDecoder
from ffcv.loader import OrderOption
from ccrop_loaders import BoxTable
from ccrop_loaders.ffcv import Loader, MultiViewContrastiveCropDecoder

beton, n, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def make_loader(table):
    return Loader(beton, batch_size=2, num_workers=2, order=OrderOption.RANDOM, batches_ahead=3,
                  pipelines={"image": [MultiViewContrastiveCropDecoder(table, (32, 32))], "label": None,
                             "index": [IntDecoder()]})

loader = None
try:
    with BoxTable.create(n) as table:
        loader = make_loader(table)
        for step, (views, index) in enumerate(loader):
            if step == 1:
                if how == "break":
                    break
                if how == "raise":
                    raise KeyError("user error")
                if how == "close":
                    table.close()
                    table.unlink()
                    del table
                    gc.collect()
except KeyError:
    pass
gc.collect()
seen = 0
for views, index in loader:  # the table's name is gone; the loader still holds its mapping
    seen += len(index)
print("ok", seen, flush=True)
"""


def _run(dataset, how):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT), str(dataset.beton), str(len(dataset)), how],
                          capture_output=True, text=True, timeout=300)


def test_leaving_the_table_while_the_loader_prefetches_never_crashes(jpg_dataset):
    for how in ("break", "raise", "close", "run"):
        done = _run(jpg_dataset, how)
        assert done.returncode == 0, f"{how}: exit {done.returncode} (SIGSEGV is -11)\n{done.stderr[-2000:]}"
        assert done.stdout.split() == ["ok", str(len(jpg_dataset))], how
