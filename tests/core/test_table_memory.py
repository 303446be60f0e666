"""``BoxTable.read`` and ``unpack_boxes`` allocate their output and nothing more (issue 23.15: reading 14.2M rows
briefly took 13x the table, about 1.46 GB, in index, word, uint64 and float64 temporaries)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from ccrop_loaders.core import BoxTable
from ccrop_loaders.core.table_layout import COORDINATE_SCALE, unpack_boxes


def reference_unpack(rows: np.ndarray) -> np.ndarray:
    """The arithmetic every reader agrees on: each 16-bit level over 65535 in float64, then float32."""
    shifts = np.array([0, 16, 32, 48], dtype=np.uint64)
    return ((((rows[:, None] >> shifts) & np.uint64(0xFFFF)).astype(np.float64)) / COORDINATE_SCALE).astype(np.float32)


def test_every_level_unpacks_bit_for_bit_as_before():
    q = np.arange(65536, dtype=np.uint64)
    rows = q | (q[::-1] << np.uint64(16)) | (q << np.uint64(32)) | (q[::-1] << np.uint64(48))
    np.testing.assert_array_equal(unpack_boxes(rows).view(np.uint32), reference_unpack(rows).view(np.uint32))


def test_read_all_and_some_rows_equal_the_reference():
    rng = np.random.default_rng(5)
    lo = rng.uniform(0, 0.5, (1000, 2))
    boxes = np.concatenate([lo, lo + rng.uniform(0, 0.5, (1000, 2))], axis=1)
    with BoxTable.create(1000) as table:
        table.write(np.arange(1000), boxes)
        rows = table.state_dict()["rows"].view(np.uint64)
        np.testing.assert_array_equal(table.read(), reference_unpack(rows))
        some = np.array([999, 0, 7, 7])
        np.testing.assert_array_equal(table.read(some), reference_unpack(rows[some]))
        assert table.read(np.zeros(0, np.int64)).shape == (0, 4)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc/self/clear_refs")
def test_reading_every_row_allocates_only_the_output():
    rows = 2_000_000  # output 32 MB; the old read's temporaries peaked near 6x that over the table
    code = f"""
import numpy as np
from ccrop_loaders.core import BoxTable

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

with BoxTable.create(2) as small:
    small.read()  # compiled before measuring
with BoxTable.create({rows}) as table:
    current = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak (VmHWM) to the current resident size
    boxes = table.read()
    print(max(status("VmHWM") - current, 0), boxes.nbytes)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    growth, output = map(int, done.stdout.split())
    assert growth <= output * 1.25 + (8 << 20), f"read() grew the peak by {growth:,} bytes for a {output:,}-byte output"
