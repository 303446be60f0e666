"""Box health (core.health): mean area, whole-image share, change since the last pass, the collapse warning."""
import numpy as np
import pytest

from ccrop_loaders import FULL_BOX, SIMCCROP_BOX, BoxTable
from ccrop_loaders.core.health import COLLAPSE_AREA, box_health
from ccrop_loaders.core.table_layout import pack_boxes


def test_figures_of_known_boxes():
    rows = pack_boxes(np.array([FULL_BOX, SIMCCROP_BOX, (0.0, 0.0, 0.5, 1.0), FULL_BOX]))
    health = box_health(rows)
    assert health.samples == 4 and health.full_share == 0.5
    assert health.mean_area == pytest.approx((1 + 0.25 + 0.5 + 1) / 4, abs=1e-4)
    assert health.changed_share is None and health.warning() is None  # 0.69 < COLLAPSE_AREA
    later = box_health(pack_boxes(np.array([FULL_BOX, FULL_BOX, FULL_BOX, FULL_BOX])), rows)
    assert later.changed_share == 0.5 and later.area_change == pytest.approx(1 - health.mean_area, abs=1e-4)
    assert later.mean_area > COLLAPSE_AREA and "raise it" in later.warning() and "--loc-threshold" in later.warning()
    assert "changed" in str(later)
    with pytest.raises(ValueError, match="previous pass has 2 rows"):
        box_health(rows, rows[:2])


def test_table_packed_rows_are_its_words():
    with BoxTable.create(5) as table:
        table.write([1, 3], np.array([SIMCCROP_BOX, (0.1, 0.2, 0.3, 0.4)]))
        assert np.array_equal(table.packed_rows(), table.words[8:])
        assert box_health(table.packed_rows()).full_share == pytest.approx(0.6)
