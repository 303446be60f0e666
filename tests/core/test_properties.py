"""Property tests of the core over every public parameter's accepted range (issue 23, "Also").

``sample_crop``, ``sample_crops``, ``ViewGroup`` and ``beta_quantiles``: whatever
their checks accept gives in-image windows and finite numbers; whatever they
refuse is a ValueError or TypeError naming the parameter, never another
exception, a NaN or a signal. Fixed seeds (derandomize), bounded examples.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccrop_loaders.core import ViewGroup, beta_quantiles, sample_crop, sample_crops
from ccrop_loaders.core.groups import MAX_VIEW_PIXELS, MAX_VIEWS, check_groups
from ccrop_loaders.core.checks import ALPHA_RANGE, check_alpha
from ccrop_loaders.core.sampler import QUANTILE_KNOTS



def fast(examples: int) -> settings:
    """Bounded, derandomized (a fixed seed), no deadline, no example database."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


HALF = QUANTILE_KNOTS // 2
MAX_SIDE = 2**31 - 1

# ----------------------------------------------------------------- strategies of accepted values

# alpha: log-uniform over ALPHA_RANGE, its ends included
alphas = st.one_of(st.sampled_from([ALPHA_RANGE[0], ALPHA_RANGE[1], 1.0]),
                   st.floats(math.log10(ALPHA_RANGE[0]), math.log10(ALPHA_RANGE[1])).map(lambda e: 10.0 ** e)
                   .filter(lambda a: ALPHA_RANGE[0] <= a <= ALPHA_RANGE[1]))
# (lo, hi) with 0 < lo <= hi, both finite: every pair check_range accepts, extremes included
positive = st.floats(min_value=5e-324, max_value=1.7e308, allow_nan=False, allow_infinity=False)
pairs = st.tuples(positive, positive).map(lambda p: (min(p), max(p)))
sides = st.one_of(st.integers(1, 64), st.integers(1, MAX_SIDE), st.sampled_from([1, 2, MAX_SIDE]))
unit = st.floats(0.0, 1.0)
boxes = st.tuples(unit, unit, unit, unit).map(lambda b: (min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]),
                                                         max(b[1], b[3])))
keys = {"seed": st.integers(0, 2**64 - 1), "epoch": st.integers(0, 2**63 - 1), "index": st.integers(0, 2**63 - 1),
        "view": st.integers(0, 2**31 - 1)}


def assert_in_image(window, height, width, what):
    top, left, h, w = (int(v) for v in window)
    assert 0 <= top and 0 <= left and 1 <= h and 1 <= w and top + h <= height and left + w <= width, (what, window)


# ----------------------------------------------------------------- beta_quantiles / check_alpha


@fast(40)
@given(alpha=alphas)
def test_the_quantile_table_is_finite_monotone_in_0_1_and_symmetric_over_the_accepted_range(alpha):
    q = beta_quantiles(alpha)
    assert q.shape == (QUANTILE_KNOTS + 1,) and q.dtype == np.float64 and not q.flags.writeable
    assert np.isfinite(q).all()
    assert (q >= 0).all() and (q <= 1).all()
    assert (np.diff(q) >= 0).all()
    assert q[0] == 0.0 and q[HALF] == 0.5 and q[-1] == 1.0
    np.testing.assert_allclose(q + q[::-1], 1.0, rtol=0, atol=1e-15)
    u = np.arange(QUANTILE_KNOTS + 1) / QUANTILE_KNOTS
    # Beta(a, a) spreads to the ends for a < 1 and gathers at the centre for a > 1 (alphas near 0 once gave 1/2)
    if alpha < 1:
        assert (q[:HALF] <= u[:HALF] + 1e-12).all()
    elif alpha > 1:
        assert (q[1:HALF] >= u[1:HALF] - 1e-12).all()


@fast(25)
@given(a=alphas, b=alphas)
def test_lower_quantiles_grow_with_alpha(a, b):
    """Beta(a, a)'s quantiles below 1/2 rise towards 1/2 as a grows: across the whole range, within scipy's
    accuracy (3e-8). The alphas near 0 that gave a table of 1/2 everywhere break this."""
    lo, hi = sorted((a, b))
    assert (beta_quantiles(lo)[:HALF] <= beta_quantiles(hi)[:HALF] + 1e-7).all()


@pytest.mark.parametrize("alpha", [0, -1, 3e-308, 1e-308, 5e-324, 9.9e-7, 1.01e8, 1e12, 1e308, math.inf, -math.inf,
                                   math.nan, True, "0.6", None, "nan"])
def test_alphas_outside_the_range_are_refused_naming_alpha(alpha):
    with pytest.raises(ValueError, match="alpha must be") as info:
        check_alpha(alpha)
    assert "1e-06" in str(info.value) and "1e+08" in str(info.value)
    with pytest.raises(ValueError, match="alpha"):
        beta_quantiles(alpha)
    with pytest.raises(ValueError, match="alpha"):
        sample_crop(100, 100, alpha=alpha)
    with pytest.raises(ValueError, match="alpha"):
        sample_crops([100], [100], [[0, 0, 1, 1]], [0], alpha=alpha)


# ----------------------------------------------------------------- sample_crop / sample_crops


@fast(300)
@given(height=sides, width=sides, box=boxes, scale=pairs, ratio=pairs, alpha=alphas, **keys)
def test_sample_crop_gives_in_image_windows_for_every_accepted_value(height, width, box, scale, ratio, alpha, seed,
                                                                     epoch, index, view):
    window = sample_crop(height, width, box, scale=scale, ratio=ratio, alpha=alpha, seed=seed, epoch=epoch,
                         index=index, view=view)
    assert all(isinstance(v, int) for v in window)
    assert_in_image(window, height, width, (height, width, box, scale, ratio, alpha))


@fast(60)
@given(data=st.data(), n=st.integers(0, 12), views=st.integers(1, 5), scale=pairs, ratio=pairs, alpha=alphas,
       seed=keys["seed"], epoch=keys["epoch"])
def test_sample_crops_gives_in_image_windows_equal_to_sample_crop(data, n, views, scale, ratio, alpha, seed, epoch):
    heights = data.draw(st.lists(sides, min_size=n, max_size=n))
    widths = data.draw(st.lists(sides, min_size=n, max_size=n))
    box_rows = data.draw(st.lists(boxes, min_size=n, max_size=n))
    indices = data.draw(st.lists(keys["index"], min_size=n, max_size=n))
    out = sample_crops(np.array(heights, np.int64), np.array(widths, np.int64), np.array(box_rows, np.float64).reshape(n, 4),
                       np.array(indices, np.int64), views=views, scale=scale, ratio=ratio, alpha=alpha, seed=seed,
                       epoch=epoch)
    assert out.shape == (n, views, 4) and out.dtype == np.int32
    for i in range(n):
        for v in range(views):
            assert_in_image(out[i, v], heights[i], widths[i], (i, v))
            assert tuple(int(x) for x in out[i, v]) == sample_crop(
                heights[i], widths[i], box_rows[i], scale=scale, ratio=ratio, alpha=alpha, seed=seed, epoch=epoch,
                index=indices[i], view=v)


# anything at all: accepted (then in-image) or refused with a ValueError/TypeError, nothing else
specials = st.sampled_from([math.inf, -math.inf, math.nan, 0, -1, 0.5, 1.5, 2**31, 2**63, 2**64, 2**70, 1e308,
                            5e-324, -0.0, "8", b"8", True, False, np.bool_(True), np.int64(3), np.float32(0.5), None])
scalars = st.one_of(specials, st.integers(-2**70, 2**70), st.floats())
anything = st.one_of(scalars, st.text(max_size=4), st.tuples(scalars, scalars), st.lists(scalars, max_size=5))


@fast(300)
@given(name=st.sampled_from(["height", "width", "box", "scale", "ratio", "alpha", "seed", "epoch", "index", "view"]),
       value=anything)
def test_sample_crop_refuses_anything_else_naming_the_parameter(name, value):
    kwargs = {"height": 50, "width": 60}
    kwargs[name] = value
    try:
        window = sample_crop(**kwargs)
    except (ValueError, TypeError) as err:
        assert name in str(err), (name, value, err)
        return
    assert_in_image(window, int(kwargs["height"]), int(kwargs["width"]), (name, value))


# ----------------------------------------------------------------- ViewGroup


sizes = st.one_of(st.integers(1, 8192), st.tuples(st.integers(1, 4096), st.integers(1, 4096)),
                  st.tuples(st.integers(1, MAX_VIEW_PIXELS), st.just(1)))


@fast(200)
@given(size=sizes, num_views=st.integers(1, MAX_VIEWS), scale=pairs, ratio=pairs, use_boxes=st.booleans(),
       height=sides, width=sides, alpha=alphas, index=keys["index"])
def test_every_accepted_view_group_gives_in_image_windows(size, num_views, scale, ratio, use_boxes, height, width,
                                                          alpha, index):
    try:
        group = ViewGroup(size, num_views, scale, ratio, use_boxes)
    except ValueError as err:  # only the documented cap on view pixels may refuse these
        assert "MAX_VIEW_PIXELS" in str(err), err
        return
    h, w = group.size
    assert 1 <= h and 1 <= w and h * w <= MAX_VIEW_PIXELS and 1 <= group.num_views <= MAX_VIEWS
    for v in range(min(group.num_views, 3)):
        window = sample_crop(height, width, scale=group.scale, ratio=group.ratio, alpha=alpha if use_boxes else 1.0,
                             index=index, view=v)
        assert_in_image(window, height, width, (group, v))
    try:
        check_groups([group, group])
    except ValueError as err:
        assert "MAX_VIEWS" in str(err) or "MAX_SAMPLE_BYTES" in str(err), err


@fast(300)
@given(field=st.sampled_from(["size", "num_views", "scale", "ratio", "use_boxes"]), value=anything)
def test_a_view_group_refuses_anything_else_naming_the_field(field, value):
    kwargs = {"size": 8}
    kwargs[field] = value
    try:
        group = ViewGroup(**kwargs)
    except (ValueError, TypeError) as err:
        assert f"ViewGroup.{field}" in str(err), (field, value, err)
        return
    h, w = group.size
    assert isinstance(h, int) and isinstance(w, int) and 1 <= h and 1 <= w and h * w <= MAX_VIEW_PIXELS
    assert isinstance(group.num_views, int) and 1 <= group.num_views <= MAX_VIEWS
    for lo, hi in (group.scale, group.ratio):
        assert math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi
    assert isinstance(group.use_boxes, bool)
