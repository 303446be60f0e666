import io

import numpy as np
import pytest
import torch

from ccrop_loaders import SIMCCROP_BOX, BoxTable, ContrastiveCropSchedule, restore_table, table_state


def test_paper_defaults():
    s = ContrastiveCropSchedule(100)
    assert (s.warmup_epochs, s.loc_interval) == (20, 20)
    assert s.localization_epochs() == [20, 40, 60, 80]
    assert not s.uses_boxes(19) and s.uses_boxes(20)
    assert not ContrastiveCropSchedule(10, warmup_epochs=3, loc_interval=3).localize_at(9)  # never the last epoch
    assert ContrastiveCropSchedule(10, warmup_epochs=3, loc_interval=3).localization_epochs() == [3, 6]
    # a warm-up that ends at the last epoch: that epoch is localized first, never ContrastiveCrop without boxes
    assert ContrastiveCropSchedule(2, warmup_epochs=1, loc_interval=1).localization_epochs() == [1]
    for epochs in range(1, 30):
        for warmup in range(epochs):
            s = ContrastiveCropSchedule(epochs, warmup_epochs=warmup, loc_interval=max(1, epochs // 5))
            first_boxes = next(e for e in range(epochs) if s.uses_boxes(e))
            assert s.localize_at(first_boxes), (epochs, warmup)


def test_simccrop_and_apply():
    s = ContrastiveCropSchedule(10, simccrop=True)
    assert s.localization_epochs() == [] and s.uses_boxes(0)
    with BoxTable.create(4, init_box=SIMCCROP_BOX) as table:
        ContrastiveCropSchedule(10).apply(table, 1)
        assert (table.epoch, table.use_boxes) == (1, False)
        s.apply(table, 1)
        assert table.use_boxes


@pytest.mark.parametrize("kwargs, match", [({"epochs": 0}, "epochs"), ({"epochs": 5, "warmup_epochs": 5}, "below"),
                                           ({"epochs": 5, "loc_interval": 0}, "loc_interval")])
def test_bad_schedules(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ContrastiveCropSchedule(**kwargs)


def test_resume_restores_rows_and_controls():
    with BoxTable.create(6) as table, BoxTable.create(6) as resumed:
        table.write([2, 5], [[0.1, 0.2, 0.5, 0.6], [0.0, 0.3, 0.9, 1.0]])
        table.epoch, table.seed, table.use_boxes = 41, 7, True
        resumed.use_boxes = False
        buffer = io.BytesIO()
        torch.save({"model": {}, "boxes": table_state(table)}, buffer)
        buffer.seek(0)
        restore_table(resumed, torch.load(buffer, weights_only=True)["boxes"])
        np.testing.assert_array_equal(resumed.read(), table.read())
        assert (resumed.epoch, resumed.seed, resumed.use_boxes) == (41, 7, True)


def test_checkpoint_of_another_dataset_is_refused():
    with BoxTable.create(6) as table, BoxTable.create(7) as other:
        other.write([0], [[0.1, 0.1, 0.2, 0.2]])
        before = other.read()
        with pytest.raises(ValueError, match="has 6 rows but this table has 7"):
            restore_table(other, table_state(table))
        state = table_state(table)
        state["rows"] = state["rows"].clone()
        state["rows"][0] = 65535  # y0 = 1, x0 = y1 = x1 = 0: y0 > y1
        with BoxTable.create(6) as same:
            with pytest.raises(ValueError, match="corrupt"):
                restore_table(same, state)
            np.testing.assert_array_equal(same.read(), np.tile([0, 0, 1, 1], (6, 1)))
        np.testing.assert_array_equal(other.read(), before)
