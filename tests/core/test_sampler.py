import math

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ccrop_loaders import SIMCCROP_BOX, sample_crop, sample_crops
from ccrop_loaders.core.sampler import QUANTILE_KNOTS, beta_quantiles

from .reference import contrastive_crop, random_resized_crop

N_DRAWS = 20_000
FIELDS = ("top", "left", "height", "width")


def keyed(height, width, box, n=N_DRAWS, **kw):
    idx = np.arange(n)
    return sample_crops(np.full(n, height), np.full(n, width), np.tile(box, (n, 1)), idx, **kw)[:, 0]


def assert_same_distribution(ours, theirs, label):
    for f, name in enumerate(FIELDS):
        res = stats.ks_2samp(ours[:, f], theirs[:, f])
        assert res.pvalue > 1e-3, f"{label}: {name} differs from the spec (KS D={res.statistic:.4f}, p={res.pvalue:.2g})"


@pytest.mark.parametrize(
    "height, width, box, alpha",
    [
        (375, 500, (0.2, 0.3, 0.6, 0.7), 0.6),
        (500, 333, (0.0, 0.0, 1.0, 1.0), 0.6),
        (224, 224, (0.1, 0.5, 0.4, 0.9), 0.1),
        (480, 640, SIMCCROP_BOX, 2.0),
        (300, 900, (0.5, 0.5, 0.5, 0.5), 0.6),
        (64, 64, (0.0, 0.8, 0.3, 1.0), 1.0),
    ],
)
def test_distribution_matches_spec(height, width, box, alpha):
    rng = np.random.default_rng(1234)
    theirs = np.array([contrastive_crop(rng, height, width, box, alpha=alpha) for _ in range(N_DRAWS)])
    ours = keyed(height, width, box, alpha=alpha, seed=7)
    assert_same_distribution(ours, theirs, f"{height}x{width} box={box} alpha={alpha}")


def test_alpha_one_full_box_is_random_resized_crop():
    rng = np.random.default_rng(99)
    height, width = 900, 1200
    theirs = np.array([random_resized_crop(rng, height, width) for _ in range(N_DRAWS)])
    ours = keyed(height, width, (0, 0, 1, 1), alpha=1.0, seed=3)
    assert_same_distribution(ours, theirs, "RandomResizedCrop")


def test_beta_quantiles_are_beta():
    for alpha in (0.1, 0.6, 2.0):
        q = beta_quantiles(alpha)
        assert q.shape == (QUANTILE_KNOTS + 1,) and q[0] == 0 and q[-1] == 1
        assert np.all(np.diff(q) >= 0)
        # the knots are exact quantiles: the Beta CDF at knot i is i / K (where float64 can tell
        # a knot from the ends: for alpha = 0.1 the outer knots lie within 1e-30 of 0 and 1)
        u = np.arange(QUANTILE_KNOTS + 1) / QUANTILE_KNOTS
        inner = (q > 1e-9) & (q < 1 - 1e-9)
        assert inner.sum() > QUANTILE_KNOTS * 0.8
        np.testing.assert_allclose(stats.beta.cdf(q[inner], alpha, alpha), u[inner], atol=1e-9)
    np.testing.assert_array_equal(beta_quantiles(1.0), np.arange(QUANTILE_KNOTS + 1) / QUANTILE_KNOTS)


def test_beta_position_is_u_shaped_for_small_alpha():
    # alpha = 0.1 pushes the crop centre to the box's edges: most tops at the ends of their range
    crops = keyed(1000, 1000, (0.2, 0.2, 0.8, 0.8), alpha=0.1, scale=(0.25, 0.25), ratio=(1, 1))
    top = crops[:, 0]  # h = 500, range [200 - 250, 800 - 250] clamped to [0, 500]
    assert top.min() >= 0 and top.max() <= 500
    near_ends = np.mean((top < 50) | (top > 450))
    assert near_ends > 0.7


def test_same_key_same_window_and_keys_differ():
    a = sample_crop(375, 500, (0.2, 0.3, 0.6, 0.7), seed=5, epoch=2, index=11, view=1)
    assert a == sample_crop(375, 500, (0.2, 0.3, 0.6, 0.7), seed=5, epoch=2, index=11, view=1)
    others = {sample_crop(375, 500, (0.2, 0.3, 0.6, 0.7), seed=s, epoch=e, index=i, view=v)
              for s, e, i, v in [(6, 2, 11, 1), (5, 3, 11, 1), (5, 2, 12, 1), (5, 2, 11, 0)]}
    assert a not in others


def test_batch_equals_single_calls():
    rng = np.random.default_rng(0)
    n = 50
    heights, widths = rng.integers(1, 600, n), rng.integers(1, 600, n)
    y = np.sort(rng.random((n, 2)), axis=1)
    x = np.sort(rng.random((n, 2)), axis=1)
    boxes = np.stack([y[:, 0], x[:, 0], y[:, 1], x[:, 1]], axis=1)
    indices = rng.integers(0, 10**9, n)
    out = sample_crops(heights, widths, boxes, indices, views=3, alpha=0.3, seed=9, epoch=4)
    assert out.shape == (n, 3, 4) and out.dtype == np.int32
    for i in range(n):
        for v in range(3):
            assert tuple(out[i, v]) == sample_crop(heights[i], widths[i], boxes[i], alpha=0.3, seed=9, epoch=4,
                                                   index=indices[i], view=v)


def test_independent_of_thread_count():
    n = 4000
    rng = np.random.default_rng(1)
    args = (rng.integers(1, 800, n), rng.integers(1, 800, n), np.tile([0.1, 0.2, 0.7, 0.9], (n, 1)),
            rng.permutation(n))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = sample_crops(*args, views=2, seed=1)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = sample_crops(*args, views=2, seed=1)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)


def assert_inside(crops, heights, widths, label=""):
    top, left, h, w = (crops[..., f] for f in range(4))
    hh, ww = heights[:, None], widths[:, None]
    ok = (top >= 0) & (left >= 0) & (h >= 1) & (w >= 1) & (top + h <= hh) & (left + w <= ww)
    assert ok.all(), f"{label}: crop outside the image at {np.argwhere(~ok)[0]}"


def test_every_crop_inside_the_image_1e5_cases():
    rng = np.random.default_rng(2024)
    total = 0
    for trial in range(200):
        n = 250
        tiny = trial % 4 == 0
        heights = rng.integers(1, 8 if tiny else 3000, n)
        widths = rng.integers(1, 8 if tiny else 3000, n)
        corners = rng.choice([0.0, 1.0, 0.5], (n, 4)) if trial % 3 == 0 else rng.random((n, 4))
        ys, xs = np.sort(corners[:, [0, 2]], axis=1), np.sort(corners[:, [1, 3]], axis=1)
        boxes = np.stack([ys[:, 0], xs[:, 0], ys[:, 1], xs[:, 1]], axis=1)
        if trial % 5 == 0:
            boxes[:, 2], boxes[:, 3] = boxes[:, 0], boxes[:, 1]  # zero-area boxes
        s_lo = rng.uniform(0.01, 1.0)
        scale = (s_lo, rng.uniform(s_lo, 1.5))
        r_lo = math.exp(rng.uniform(-3, 1))
        ratio = (r_lo, r_lo * math.exp(rng.uniform(0, 3)))
        crops = sample_crops(heights, widths, boxes, rng.integers(0, 2**40, n), views=2, scale=scale, ratio=ratio,
                             alpha=float(rng.choice([0.05, 0.6, 1.0, 3.0])), seed=trial)
        assert_inside(crops, heights, widths, f"trial {trial} scale={scale} ratio={ratio}")
        total += crops.shape[0] * crops.shape[1]
    assert total >= 10**5


@settings(max_examples=300, deadline=None)
@given(
    height=st.integers(1, 5000), width=st.integers(1, 5000),
    y=st.tuples(st.floats(0, 1), st.floats(0, 1)), x=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    s_lo=st.floats(0.001, 1.0), r_lo=st.floats(0.01, 10.0), alpha=st.floats(0.01, 10.0),
    index=st.integers(0, 2**63 - 1),
)
def test_crop_inside_the_image_hypothesis(height, width, y, x, s_lo, r_lo, alpha, index):
    box = (min(y), min(x), max(y), max(x))
    top, left, h, w = sample_crop(height, width, box, scale=(s_lo, 1.0), ratio=(r_lo, r_lo * 2), alpha=alpha,
                                  index=index)
    assert 0 <= top and 0 <= left and 1 <= h and 1 <= w and top + h <= height and left + w <= width


@pytest.mark.parametrize("height, width, kw, expected", [
    (1, 1, {}, (0, 0, 1, 1)),
    (1, 5000, {}, None),
    (5000, 1, {}, None),
    (300, 400, {"scale": (1.0, 1.0), "ratio": (4 / 3, 4 / 3)}, (0, 0, 300, 400)),
    (100, 10, {}, (43, 0, 13, 10)),  # no try fits: torchvision's central fallback
])
def test_degenerate_images(height, width, kw, expected):
    for index in range(50):
        window = sample_crop(height, width, (0.5, 0.5, 0.5, 0.5), index=index, **kw)
        top, left, h, w = window
        assert 0 <= top and 0 <= left and top + h <= height and left + w <= width and h >= 1 and w >= 1
        if expected is not None:
            assert window == expected


@pytest.mark.parametrize("call, error, words", [
    (lambda: sample_crop(0, 10), ValueError, "height"),
    (lambda: sample_crop(10.5, 10), TypeError, "height"),
    (lambda: sample_crop(10, 10, (0.5, 0, 0.4, 1)), ValueError, "y0"),
    (lambda: sample_crop(10, 10, (0, 0, 1, float("nan"))), ValueError, "x1"),
    (lambda: sample_crop(10, 10, (0, 0, 1, 1.5)), ValueError, "outside [0, 1]"),
    (lambda: sample_crop(10, 10, (0, 0, 1)), ValueError, "box"),
    (lambda: sample_crop(10, 10, alpha=0), ValueError, "alpha"),
    (lambda: sample_crop(10, 10, scale=(0.5, 0.2)), ValueError, "scale"),
    (lambda: sample_crop(10, 10, ratio=(0, 1)), ValueError, "ratio"),
    (lambda: sample_crop(10, 10, index=-1), ValueError, "index"),
    (lambda: sample_crops([10], [10], [[0, 0, 1, 1]], [0.5]), ValueError, "integer"),
    (lambda: sample_crops([10, 10], [10], [[0, 0, 1, 1]], [0]), ValueError, "rows"),
    (lambda: sample_crops([10], [0], [[0, 0, 1, 1]], [0]), ValueError, "widths[0]"),
    (lambda: sample_crops([10], [10], [[0, 0, 2, 1]], [0]), ValueError, "row 0, field y1"),
])
def test_bad_input_is_named(call, error, words):
    with pytest.raises(error, match=None) as info:
        call()
    assert words in str(info.value)


@pytest.mark.parametrize("heights, indices, words", [
    ([2**31], [0], "heights[0] = 2147483648 (expected an integer in [1, 2147483647])"),
    ([10], np.array([2**63], dtype=np.uint64), "indices[0] = 9223372036854775808"),
    ([10], [-1], "indices[0] = -1"),
])
def test_sample_crops_refuses_what_sample_crop_refuses(heights, indices, words):
    with pytest.raises(ValueError) as info:
        sample_crops(heights, [10], [[0, 0, 1, 1]], indices)
    assert words in str(info.value)
    with pytest.raises((ValueError, TypeError)):
        sample_crop(heights[0], 10, index=int(np.asarray(indices)[0]))


def test_sample_crops_takes_uint64_indices_in_range():
    idx = np.array([0, 7, 2**40], dtype=np.uint64)
    np.testing.assert_array_equal(sample_crops([50] * 3, [60] * 3, [[0, 0, 1, 1]] * 3, idx),
                                  sample_crops([50] * 3, [60] * 3, [[0, 0, 1, 1]] * 3, idx.astype(np.int64)))
