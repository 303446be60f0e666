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

beton, n = sys.argv[1], int(sys.argv[2])

def make_loader(table):
    return Loader(beton, batch_size=2, num_workers=2, order=OrderOption.RANDOM, batches_ahead=3,
                  pipelines={"image": [MultiViewContrastiveCropDecoder(table, (32, 32))], "label": None,
                             "index": [IntDecoder()]})

for how in ("break", "raise", "close", "run"):
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
    print(how, seen, flush=True)
"""


def test_leaving_the_table_while_the_loader_prefetches_never_crashes(jpg_dataset):
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT), str(jpg_dataset.beton),
                           str(len(jpg_dataset))], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode} (SIGSEGV is -11) after {done.stdout!r}\n{done.stderr[-2000:]}"
    n = str(len(jpg_dataset))
    assert done.stdout.split() == ["break", n, "raise", n, "close", n, "run", n]
