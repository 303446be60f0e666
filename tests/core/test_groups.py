import numpy as np
import pytest

from ccrop_loaders.core import BoxTable, ViewGroup, beta_quantiles, first_views, multi_crop_groups, sample_crop
from ccrop_loaders.core import table_crop_window


def test_groups_number_their_views_consecutively():
    groups = multi_crop_groups()
    assert [(g.size, g.num_views, g.scale, g.use_boxes) for g in groups] == [
        ((224, 224), 2, (0.14, 1.0), True), ((96, 96), 6, (0.05, 0.14), True)]
    assert first_views(groups) == [0, 2]
    assert first_views([ViewGroup(32, 3), ViewGroup((16, 8), 1), ViewGroup(8, 4)]) == [0, 3, 4]
    assert ViewGroup(32).size == (32, 32)


@pytest.mark.parametrize("kwargs, field", [(dict(size=0), "size"), (dict(size=(3, 2.5)), "size"),
                                           (dict(size=8, num_views=0), "num_views"),
                                           (dict(size=8, scale=(0.5, 0.2)), "scale"),
                                           (dict(size=8, ratio=(0, 1)), "ratio"),
                                           (dict(size=8, use_boxes="yes"), "use_boxes")])
def test_a_bad_group_names_its_field(kwargs, field):
    with pytest.raises(ValueError, match=f"ViewGroup.{field}"):
        ViewGroup(**kwargs)


@pytest.mark.parametrize("groups, error", [([], ValueError), (ViewGroup(8), TypeError), ([ViewGroup(8), (8, 2)], TypeError)])
def test_bad_group_lists_are_refused(groups, error):
    with pytest.raises(error, match="groups"):
        first_views(groups)


def test_an_unboxed_group_is_rrc_keyed_like_the_view_whatever_the_table_says():
    with BoxTable.create(4) as table:
        table.seed = 7
        box = (0.0, 0.2, 0.4, 1.0)  # exact at 1/65535
        table.write([2], [box])
        table.use_boxes = True
        quantiles = beta_quantiles(0.6)
        args = (0.05, 0.14, np.log(3 / 4), np.log(4 / 3), quantiles)
        for view in range(8):
            boxed = table_crop_window(table.address, 4, 2, view, 300, 400, *args)
            assert boxed == table_crop_window(table.address, 4, 2, view, 300, 400, *args, True)
            assert boxed == sample_crop(300, 400, box, scale=(0.05, 0.14), alpha=0.6, seed=7, index=2, view=view)
            plain = table_crop_window(table.address, 4, 2, view, 300, 400, *args, False)
            assert plain == sample_crop(300, 400, (0, 0, 1, 1), scale=(0.05, 0.14), alpha=1.0, seed=7, index=2, view=view)


def test_caps_are_checked_before_anything_is_built():
    """Sizes and counts far past any buffer were expanded first (issue 23.4): refused by name, at once."""
    from ccrop_loaders.core.groups import MAX_SAMPLE_BYTES, MAX_VIEWS, check_groups
    with pytest.raises(ValueError, match="MAX_VIEWS"):
        ViewGroup(1, MAX_VIEWS + 1)
    with pytest.raises(ValueError, match="MAX_VIEW_PIXELS"):
        ViewGroup(10 ** 12, 8)
    with pytest.raises(ValueError, match="MAX_VIEWS"):
        check_groups([ViewGroup(8, MAX_VIEWS), ViewGroup(8, 1)])
    with pytest.raises(ValueError, match="MAX_SAMPLE_BYTES"):
        check_groups([ViewGroup(8192, 3), ViewGroup(8192, 3)])
    assert 3 * 8192 * 8192 * 3 <= MAX_SAMPLE_BYTES  # one such group alone is fine
    check_groups([ViewGroup(8192, 3)])
