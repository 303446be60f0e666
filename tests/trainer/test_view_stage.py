"""The torch view stage against the C resampler: same pixels (float32, float16), mirror, groups, sizes, bad rows."""
import numpy as np
import pytest
import torch

from ccrop_loaders.core.groups import ViewGroup, multi_crop_groups
from ccrop_loaders.core.region_rows import FIXED_BYTES, WINDOW_BYTES, RowFormat, write_region_row
from ccrop_loaders.core.resample import resize_crop, scratch_size
from ccrop_loaders.trainer import ViewStage, make_views
from ccrop_loaders.trainer.augment import IMAGENET_MEAN, IMAGENET_STD

GROUPS = (ViewGroup((37, 41), 2), ViewGroup((13, 9), 3))  # multi-crop: two sizes from one call
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def windows_for(rng, h, w, count):
    """Random windows with the hard cases: extreme ratios, 1-px, fractional, touching the region's border."""
    out = []
    for v in range(count):
        kind = v % 6
        if kind == 0:
            out.append((0.0, 0.0, float(h), float(w)))  # the whole region, border to border
        elif kind == 1:
            out.append((float(rng.integers(h)), float(rng.integers(w)), 1.0, 1.0))  # one pixel
        elif kind == 2:  # extreme ratios: a full-height sliver or a full-width strip
            if rng.integers(2):
                out.append((0.0, rng.uniform(0, w - 0.3), float(h), 0.3 + rng.uniform(0, min(1.0, w - 0.3))))
            else:
                out.append((rng.uniform(0, h - 0.3), 0.0, 0.3, float(w)))
        elif kind == 3:  # at the bottom-right border
            ch, cw = rng.uniform(0.5, h), rng.uniform(0.5, w)
            out.append((h - ch, w - cw, ch, cw))
        else:
            ch, cw = rng.uniform(0.2, h), rng.uniform(0.2, w)
            out.append((rng.uniform(0, h - ch), rng.uniform(0, w - cw), ch, cw))
    return np.array(out)


def batch(seed=0, b=12, capacity=(90, 110), views=5):
    """(rows uint8 (b, row_bytes), fmt, samples): each sample (region, windows, flips)."""
    rng = np.random.default_rng(seed)
    fmt = RowFormat(capacity, views)
    rows = rng.integers(0, 256, (b, fmt.row_bytes), dtype=np.uint8)  # the block's unused part is garbage
    samples = []
    for i in range(b):
        h, w = int(rng.integers(1, capacity[0] + 1)), int(rng.integers(1, capacity[1] + 1))
        if i < 2:
            h, w = capacity  # regions filling the capacity: windows at the block's edge
        y, x = np.mgrid[:h, :w]
        smooth = (128 + 100 * np.sin(y / 7.0 + i)[..., None] * np.cos(x / 5.0)[..., None] * [1, 0.5, -1])
        region = np.where(rng.random((h, w, 1)) < 0.5, smooth, rng.integers(0, 256, (h, w, 3))).astype(np.uint8)
        windows, flips = windows_for(rng, h, w, views), rng.integers(0, 2, views).astype(bool)
        write_region_row(rows[i], *capacity, region, windows, flips)
        samples.append((region, windows, flips))
    return torch.from_numpy(rows), fmt, samples


def reference(samples, groups, sizes=None):
    """resize_crop of every view: per group uint8 (B, V, 3, H, W)."""
    sizes = sizes or [g.size for g in groups]
    out = []
    first = 0
    for group, size in zip(groups, sizes):
        views = np.empty((len(samples), group.num_views, *size, 3), np.uint8)
        for i, (region, windows, flips) in enumerate(samples):
            scratch = np.empty(scratch_size(*region.shape[:2], size), np.int64)
            for j in range(group.num_views):
                resize_crop(region, *windows[first + j], flips[first + j], views[i, j], scratch)
        out.append(views.transpose(0, 1, 4, 2, 3))
        first += group.num_views
    return out


def agreement(ours, expected):
    """(share within 1 level, share equal, max difference) over every value of every group."""
    diff = np.concatenate([np.abs(o.float().cpu().numpy() - e).ravel() for o, e in zip(ours, expected)])
    return float((diff <= 1).mean()), float((diff == 0).mean()), float(diff.max())


def levels_stage(**options):
    return ViewStage(GROUPS, mean=None, std=None, **options)


@pytest.fixture(scope="module")
def data():
    rows, fmt, samples = batch()
    return rows, fmt, samples, reference(samples, GROUPS)


def test_float32_views_are_the_c_resamplers_within_a_level(data):
    rows, fmt, samples, expected = data
    views = levels_stage().from_rows(rows, fmt)
    assert [tuple(v.shape) for v in views] == [(12, 2, 3, 37, 41), (12, 3, 3, 13, 9)]
    within, equal, most = agreement(views, expected)
    print(f"float32: {within:.5f} within 1 level, {equal:.5f} equal, max {most:.0f}")
    assert within >= 0.999 and most <= 2 and equal > 0.99


def test_float16_products_stay_within_two_levels(data):
    rows, fmt, samples, expected = data
    within, equal, most = agreement(levels_stage(compute_dtype=torch.float16).from_rows(rows, fmt), expected)
    print(f"float16 products: {within:.5f} within 1 level, {equal:.5f} equal, max {most:.0f}")
    assert within >= 0.999 and most <= 2


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_outputs_hold_the_float32_levels_exactly(data, dtype):
    rows, fmt, _, _ = data
    for ours, full in zip(levels_stage(dtype=dtype).from_rows(rows, fmt), levels_stage().from_rows(rows, fmt)):
        assert ours.dtype == dtype
        torch.testing.assert_close(ours.float(), full, rtol=0, atol=0)


def test_mirrored_views_are_the_unmirrored_ones_reversed(data):
    rows, fmt, samples, _ = data
    flipped = rows.clone()
    flips = flipped[:, FIXED_BYTES + WINDOW_BYTES * 5:FIXED_BYTES + WINDOW_BYTES * 5 + 5]
    flips ^= 1
    for a, b in zip(levels_stage(round_levels=False).from_rows(rows, fmt),
                    levels_stage(round_levels=False).from_rows(flipped, fmt)):
        torch.testing.assert_close(a, b.flip(-1), rtol=0, atol=1e-4)


def test_progressive_resizing_is_a_call_argument(data):
    rows, fmt, samples, _ = data
    sizes = [(64, 48), 7]
    views = levels_stage().from_rows(rows, fmt, sizes)
    assert [tuple(v.shape[-2:]) for v in views] == [(64, 48), (7, 7)]
    within, _, most = agreement(views, reference(samples, GROUPS, [(64, 48), (7, 7)]))
    assert within >= 0.999 and most <= 2


def test_extreme_scales_take_the_wide_path_and_upscales_are_bilinear():
    rows, fmt, samples = batch(seed=3, b=4, capacity=(300, 260), views=2)
    groups = (ViewGroup((5, 3), 1), ViewGroup((250, 270), 1))  # a downscale beyond 16x; an upscale of small ones
    views = ViewStage(groups, mean=None, std=None).from_rows(rows, fmt)
    within, _, most = agreement(views, reference(samples, groups))
    assert within >= 0.999 and most <= 2


def test_padded_regions_give_the_rows_views(data):
    rows, fmt, samples, _ = data
    regions = rows[:, fmt.header_bytes:].reshape(len(samples), *fmt.capacity, 3)
    windows = torch.from_numpy(np.stack([s[1] for s in samples]))
    flips = torch.from_numpy(np.stack([s[2] for s in samples]))
    region_sizes = torch.tensor([s[0].shape[:2] for s in samples])
    stage = levels_stage()
    for a, b in zip(stage.from_regions(regions, windows, flips, region_sizes), stage.from_rows(rows, fmt)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    whole = stage.from_regions(regions[:2], windows[:2], flips[:2])  # regions filling the padded shape
    for a, b in zip(whole, stage.from_rows(rows[:2], fmt)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_normalization_dtype_and_channels_last(data):
    rows, fmt, _, _ = data
    levels = levels_stage().from_rows(rows, fmt)
    stage = ViewStage(GROUPS, dtype=torch.bfloat16, channels_last=True)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    for ours, level in zip(stage.from_rows(rows, fmt), levels):
        assert ours.dtype == torch.bfloat16 and ours.stride(2) == 1
        assert ours.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(ours.float(), (level / 255 - mean) / std, rtol=1e-2, atol=1e-2)
    assert make_views(rows, fmt, GROUPS)[0].is_contiguous()


def set_field(rows, what, sample):
    rows = rows.clone()
    header = rows[sample, :FIXED_BYTES].numpy().view(np.int32)
    if what == "magic":
        header[0] = 1
    elif what == "capacity":
        header[4] = 7
    elif what == "region":
        header[6] = 1000
    elif what == "window":
        rows[sample, FIXED_BYTES + 2 * WINDOW_BYTES:FIXED_BYTES + 3 * WINDOW_BYTES].numpy().view(np.float64)[0] = -1
    elif what == "nan":
        rows[sample, FIXED_BYTES:FIXED_BYTES + WINDOW_BYTES].numpy().view(np.float64)[2] = np.nan
    elif what == "outside":  # inside the capacity, outside the region
        region_w = int(header[7])
        rows[sample, FIXED_BYTES + 4 * WINDOW_BYTES:FIXED_BYTES + 5 * WINDOW_BYTES].numpy().view(
            np.float64)[1:4:2] = (region_w - 0.5, 1.0)
    elif what == "flip":
        rows[sample, FIXED_BYTES + 5 * WINDOW_BYTES + 3] = 9
    return rows


@pytest.mark.parametrize("what, words", [
    ("magic", "is not a ccrop region row"), ("capacity", "capacity 90x7"), ("region", "region 1000x"),
    ("window", "view 2: window (top, left, height, width) = (-1.0"), ("nan", "view 0: window"),
    ("outside", "view 4: window"), ("flip", "view 3: mirror byte 9"),
])
def test_a_bad_row_raises_naming_its_sample(data, what, words):
    rows, fmt, samples, expected = data
    bad = set_field(rows, what, 7)
    with pytest.raises(ValueError) as error:
        levels_stage().from_rows(bad, fmt)
    assert "sample 7" in str(error.value) and words in str(error.value), str(error.value)
    unchecked = levels_stage(check=False).from_rows(bad, fmt)  # nothing waits: the bad sample's views are NaN
    for ours, exp in zip(unchecked, expected):
        assert ours[7].isnan().all() and not ours[:7].isnan().any()
        assert (ours[:7] - torch.from_numpy(exp[:7]).float()).abs().max() <= 2


def test_bad_regions_and_arguments_are_refused(data):
    rows, fmt, samples, _ = data
    stage = levels_stage()
    regions = torch.zeros(2, 20, 30, 3, dtype=torch.uint8)
    windows = torch.tensor([[[0, 0, 20, 30.0]] * 5] * 2)
    flips = torch.zeros(2, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match="sample 1, view 0: window .* outside the region 10x30"):
        stage.from_regions(regions, windows, flips, torch.tensor([[20, 30], [10, 30]]))
    with pytest.raises(ValueError, match="sample 0: region 21x30 is empty or exceeds the padded shape 20x30"):
        stage.from_regions(regions, windows, flips, torch.tensor([[21, 30], [10, 30]]))
    with pytest.raises(ValueError, match="rows must be a uint8 tensor"):
        stage.from_rows(rows.float(), fmt)
    with pytest.raises(ValueError, match="rows of .* bytes"):
        stage.from_rows(rows[:, :-1], fmt)
    with pytest.raises(ValueError, match="one size per group"):
        stage.from_rows(rows, fmt, [224])
    with pytest.raises(ValueError, match="at most 4096"):
        stage.from_rows(rows, fmt, [5000, 5])
    with pytest.raises(ValueError, match="windows must be a float tensor"):
        stage.from_regions(regions, windows[:, :4], flips)
    with pytest.raises(ValueError, match="dtype"):
        ViewStage(GROUPS, dtype=torch.uint8)
    with pytest.raises(ValueError, match="compute_dtype"):
        ViewStage(GROUPS, compute_dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="mean and std"):
        ViewStage(GROUPS, mean=None)


def test_an_empty_batch_gives_empty_views(data):
    _, fmt, _, _ = data
    rows = torch.zeros(0, fmt.row_bytes, dtype=torch.uint8)
    assert [tuple(v.shape) for v in levels_stage().from_rows(rows, fmt)] == [(0, 2, 3, 37, 41), (0, 3, 3, 13, 9)]


def test_flops_count_both_products():
    stage = ViewStage(multi_crop_groups())
    b, (hp, wp) = 256, (500, 500)
    rows_pass = 256 * (2 * 224 + 6 * 96) * hp * 3 * wp * 2
    cols_pass = 256 * (2 * 224 * 224 + 6 * 96 * 96) * 3 * wp * 2
    assert stage.flops(b, (hp, wp)) == rows_pass + cols_pass


@CUDA
@pytest.mark.parametrize("compute_dtype", [torch.float32, torch.float16])
def test_cuda_views_are_the_c_resamplers(data, compute_dtype):
    rows, fmt, samples, expected = data
    stage = levels_stage(compute_dtype=compute_dtype)
    views = stage.from_rows(rows.cuda(), fmt)
    assert all(v.is_cuda for v in views)
    within, equal, most = agreement(views, expected)
    print(f"CUDA {compute_dtype}: {within:.5f} within 1 level, {equal:.5f} equal, max {most:.0f}")
    assert within >= 0.999 and most <= 2
    if compute_dtype == torch.float32:
        for a, b in zip(views, stage.from_rows(rows, fmt)):
            assert (a.cpu() - b).abs().max() <= 1


@CUDA
def test_cuda_bad_rows_raise_and_unchecked_ones_are_nan(data):
    rows, fmt, _, _ = data
    bad = set_field(rows, "outside", 3).cuda()
    with pytest.raises(ValueError, match="sample 3, view 4"):
        levels_stage().from_rows(bad, fmt)
    views = levels_stage(check=False).from_rows(bad, fmt)
    assert views[0][3].isnan().all() and not views[0][:3].isnan().any()
