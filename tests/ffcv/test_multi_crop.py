"""MultiCropContrastiveCropDecoder: view groups of several sizes from one decode per image, and split_groups."""
import ffcv.loader
import numpy as np
import pytest
import torch
from ffcv.fields.basics import IntDecoder
from ffcv.loader import OrderOption
from ffcv.reader import Reader
from ffcv.transforms import ToTensor

from ccrop_loaders import BoxTable, sample_crop
from ccrop_loaders.core import ViewGroup, first_views, multi_crop_groups, sample_flip
from ccrop_loaders.ffcv import (ContrastiveCropRGBImageDecoder, Loader, MultiCropContrastiveCropDecoder,
                                MultiViewContrastiveCropDecoder, split_groups, split_views)
from ccrop_loaders.ffcv.jpeg import REGION_OK, decode_region
from ccrop_loaders.core.resample import resize_crop, scratch_size
from ccrop_loaders.tools.sample_data import random_boxes
from .conftest import epoch_outputs

# the images' shorter sides are 60-120: the global views decode at scale 1/2 or 1, the local ones alone at 1/4 or 1/2
GLOBAL = ViewGroup((40, 36), 2, (0.3, 1.0))
LOCAL = ViewGroup((12, 12), 3, (0.05, 0.3), (0.5, 2.0))
GROUPS = (GLOBAL, LOCAL)


def per_group(outputs, groups=GROUPS):
    """{global index: (one (V_g, H_g, W_g, 3) array per group)}."""
    return {index: tuple(g[0] for g in split_groups(sample[None], groups)) for index, sample in outputs.items()}


def windows(table, image, index, groups=GROUPS, alpha=0.6):
    """[(group, view, window)] as ``sample_crop`` draws them: group g's view j is view first_views[g] + j."""
    out = []
    for g, (group, first) in enumerate(zip(groups, first_views(groups))):
        boxed = table.use_boxes and group.use_boxes
        box = table.read([index])[0].astype(np.float64) if boxed else (0, 0, 1, 1)
        for j in range(group.num_views):
            out.append((g, j, sample_crop(*image.shape[:2], box, scale=group.scale, ratio=group.ratio,
                                          alpha=alpha if boxed else 1.0, seed=table.seed, epoch=table.epoch,
                                          index=index, view=first + j)))
    return out


def crop_resize(image, window, size, mirror=False):
    out = np.empty((*size, 3), np.uint8)
    resize_crop(image, *window, mirror, out, np.empty(scratch_size(*image.shape[:2], size), np.int64))
    return out


def flipped(table, index, group, view):
    return sample_flip(seed=table.seed, epoch=table.epoch, index=index, view=first_views(GROUPS)[group] + view)


def test_layout_and_split_groups(table):
    decoder = MultiCropContrastiveCropDecoder(table, GROUPS)
    assert decoder.num_views == 5 and decoder.output_size == ((40, 36), (12, 12))
    assert decoder.total_bytes == 2 * 40 * 36 * 3 + 3 * 12 * 12 * 3
    assert decoder.group_offsets == (0, 2 * 40 * 36 * 3)
    batch = torch.arange(4 * decoder.total_bytes, dtype=torch.int64).to(torch.uint8).reshape(4, -1)
    big, small = split_groups(batch, GROUPS)
    assert big.shape == (4, 2, 40, 36, 3) and small.shape == (4, 3, 12, 12, 3)
    # views of the batch, no copy
    assert big.data_ptr() == batch.data_ptr() and small.data_ptr() == batch.data_ptr() + decoder.group_offsets[1]
    assert torch.equal(small[2, 1].flatten(), batch[2, decoder.group_offsets[1] + 12 * 12 * 3:][:12 * 12 * 3])
    assert split_views(small)[1].shape == (4, 3, 12, 12)
    big_np, _ = split_groups(batch.numpy(), GROUPS)
    assert np.shares_memory(big_np, batch.numpy()) and np.array_equal(big_np, big.numpy())
    with pytest.raises(ValueError, match=f"uint8 \\(B, {decoder.total_bytes}\\)"):
        split_groups(batch[:, 1:], GROUPS)
    with pytest.raises(ValueError, match="uint8"):
        split_groups(batch.to(torch.int16), GROUPS)
    with pytest.raises(ValueError, match="contiguous"):
        split_groups(torch.zeros(decoder.total_bytes, 4, dtype=torch.uint8).T, GROUPS)


@pytest.mark.parametrize("use_boxes", [True, False])
def test_views_are_each_groups_windows_resized_and_flipped(raw_dataset, table, use_boxes):
    """Raw pixels: exact. Each view has its group's size, scale and ratio, its own keyed window and flip; a group
    with use_boxes=False is RandomResizedCrop whatever the table says."""
    groups = (GLOBAL, ViewGroup(LOCAL.size, LOCAL.num_views, LOCAL.scale, LOCAL.ratio, use_boxes=use_boxes))
    got = per_group(epoch_outputs(raw_dataset, MultiCropContrastiveCropDecoder(table, groups, flip=True)), groups)
    assert sorted(got) == list(range(len(raw_dataset)))
    mirrored = 0
    for index, views in got.items():
        image = raw_dataset.images[index]
        for g, j, window in windows(table, image, index, groups):
            flip = flipped(table, index, g, j)
            np.testing.assert_array_equal(views[g][j], crop_resize(image, window, groups[g].size, flip))
            mirrored += flip
    assert 0 < mirrored < 5 * len(raw_dataset)


def test_groups_equal_the_multi_view_and_single_view_decoders(raw_dataset, table):
    multi = per_group(epoch_outputs(raw_dataset, MultiCropContrastiveCropDecoder(table, GROUPS, alpha=0.3, flip=False)))
    pair = epoch_outputs(raw_dataset, MultiViewContrastiveCropDecoder(table, GLOBAL.size, num_views=2,
                                                                      scale=GLOBAL.scale, alpha=0.3, flip=False))
    singles = [epoch_outputs(raw_dataset, ContrastiveCropRGBImageDecoder(table, LOCAL.size, scale=LOCAL.scale,
                                                               ratio=LOCAL.ratio, alpha=0.3, view=2 + j))
               for j in range(LOCAL.num_views)]
    for index, (big, small) in multi.items():
        np.testing.assert_array_equal(big, pair[index])
        for j, single in enumerate(singles):
            np.testing.assert_array_equal(small[j], single[index])


def test_use_boxes_off_in_the_table_makes_every_group_rrc(raw_dataset, table):
    table.use_boxes = False
    got = per_group(epoch_outputs(raw_dataset, MultiCropContrastiveCropDecoder(table, GROUPS, flip=False)))
    for index, views in got.items():
        image = raw_dataset.images[index]
        for g, j, window in windows(table, image, index):
            np.testing.assert_array_equal(views[g][j], crop_resize(image, window, GROUPS[g].size))


def jpeg_bytes(beton, index):
    reader = Reader(str(beton))
    ptr = int(reader.metadata["f0"]["data_ptr"][index])
    size = int(reader.alloc_table["size"][reader.alloc_table["ptr"] == ptr][0])
    with open(beton, "rb") as f:
        f.seek(ptr)
        return np.frombuffer(f.read(size), np.uint8)


def one_decode(data, image_shape, views, eighths):
    """Decode the union of ``views`` ([(window, size)]) once at eighths/8, then crop-resize each view from it."""
    s = eighths / 8
    top = min(w[0] for w, _ in views)
    left = min(w[1] for w, _ in views)
    bottom = max(w[0] + w[2] for w, _ in views)
    right = max(w[1] + w[3] for w, _ in views)
    buffer = np.empty(image_shape[0] * image_shape[1] * 3, np.uint8)
    placed = np.zeros(6, np.int64)
    code = decode_region(data.ctypes.data, data.size, eighths, *image_shape[:2], int(np.floor(top * s)),
                         int(np.floor(left * s)), int(np.ceil(bottom * s)), int(np.ceil(right * s)),
                         buffer.ctypes.data, buffer.size, placed.ctypes.data)
    assert code == REGION_OK
    row0, col0, rows, cols = placed[:4]
    decoded = buffer[: rows * cols * 3].reshape(rows, cols, 3)
    return [crop_resize(decoded, (w[0] * s - row0, w[1] * s - col0, w[2] * s, w[3] * s), size) for w, size in views]


def smallest_eighths(views):
    """The smallest DCT scale in (1, 2, 4, 8)/8 keeping every window at least its own output size."""
    return min(m for m in (1, 2, 4, 8) if all(w[2] * m / 8 >= size[0] and w[3] * m / 8 >= size[1]
                                               for w, size in views) or m == 8)


@pytest.mark.parametrize("dct_scaling", [True, False])
def test_jpeg_is_decoded_once_over_the_union_of_all_groups(jpg_dataset, table, dct_scaling):
    """Bit-exact against one decode of the union of every group's windows, at the scale every group's size allows;
    with DCT scaling, decoding the local group on its own (at its own smaller scale) gives other local views: the
    test has power."""
    got = per_group(epoch_outputs(jpg_dataset, MultiCropContrastiveCropDecoder(table, GROUPS, flip=False,
                                                                     dct_scaling=dct_scaling)))
    scales, differs = set(), 0
    for index, views in got.items():
        image = jpg_dataset.images[index]
        data = jpeg_bytes(jpg_dataset.beton, index)
        drawn = windows(table, image, index)
        every = [(w, GROUPS[g].size) for g, _, w in drawn]
        eighths = smallest_eighths(every) if dct_scaling else 8
        scales.add(eighths)
        for (g, j, _), expected in zip(drawn, one_decode(data, image.shape, every, eighths)):
            np.testing.assert_array_equal(views[g][j], expected)
        if dct_scaling:
            local = [(w, LOCAL.size) for g, _, w in drawn if g == 1]
            alone = one_decode(data, image.shape, local, smallest_eighths(local))
            differs += any(not np.array_equal(views[1][j], view) for j, view in enumerate(alone))
    assert (differs > 0 and len(scales) > 1) if dct_scaling else scales == {8}


def test_batches_through_a_loader_with_threads_and_shuffling(jpg_dataset, table):
    groups = multi_crop_groups(32, 16, num_local=4)
    reference = epoch_outputs(jpg_dataset, MultiCropContrastiveCropDecoder(table, groups))
    loader = Loader(str(jpg_dataset.beton), batch_size=7, num_workers=2, order=OrderOption.RANDOM, seed=5,
                    drop_last=False, pipelines={"image": [MultiCropContrastiveCropDecoder(table, groups), ToTensor()],
                                                "label": None, "index": [IntDecoder(), ToTensor()]})
    seen = set()
    for batch, indices in loader:
        assert isinstance(batch, torch.Tensor)
        big, small = split_groups(batch, groups)
        assert big.shape[1:] == (2, 32, 32, 3) and small.shape[1:] == (4, 16, 16, 3)
        crops = [*split_views(big), *split_views(small)]  # DINO's list: global views, then local ones
        assert [c.shape[1:] for c in crops] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 4
        for b, index in enumerate(indices[:, 0].tolist()):
            seen.add(index)
            np.testing.assert_array_equal(batch[b].numpy(), reference[index])
    assert seen == set(range(len(jpg_dataset)))


@pytest.mark.parametrize("groups, error, words", [
    ([], ValueError, "at least one"), (GLOBAL, TypeError, "list of ViewGroup"),
    ([GLOBAL, (12, 12)], TypeError, r"groups\[1\] must be a ViewGroup"), ("abc", TypeError, "list of ViewGroup"),
])
def test_bad_groups_refused(table, groups, error, words):
    with pytest.raises(error, match=words):
        MultiCropContrastiveCropDecoder(table, groups)


def test_bad_arguments_refused(table):
    with pytest.raises(TypeError, match="BoxTable"):
        MultiCropContrastiveCropDecoder(np.zeros((3, 4)), GROUPS)
    with pytest.raises(ValueError, match="alpha"):
        MultiCropContrastiveCropDecoder(table, GROUPS, alpha=0)
    with pytest.raises(ValueError, match="size"):
        ViewGroup((0, 12))


def test_table_size_mismatch_refused_when_loader_is_built(raw_dataset):
    with BoxTable.create(len(raw_dataset) + 1) as wrong:
        with pytest.raises(ValueError, match=f"{len(raw_dataset) + 1} rows but the dataset has {len(raw_dataset)}"):
            Loader(str(raw_dataset.beton), batch_size=4, order=OrderOption.SEQUENTIAL,
                   pipelines={"image": [MultiCropContrastiveCropDecoder(wrong, GROUPS)]})


@pytest.mark.parametrize("loader_class, recompile", [(Loader, False), (ffcv.loader.Loader, True)],
                         ids=["Loader-recompile-False", "ffcv-Loader-recompile-True"])
def test_settable_between_epochs_and_fixed_attributes(raw_dataset, table, loader_class, recompile):
    """alpha, flip and groups of the same sizes apply from the next iter(loader), as a fresh decoder's views;
    sizes, view counts, the table and dct_scaling are fixed."""
    changed = (ViewGroup(GLOBAL.size, 2, (0.6, 1.0), use_boxes=False), ViewGroup(LOCAL.size, 3, (0.1, 0.2)))
    fresh = epoch_outputs(raw_dataset, MultiCropContrastiveCropDecoder(table, changed, alpha=0.1, flip=False))
    decoder = MultiCropContrastiveCropDecoder(table, GROUPS, alpha=0.6, flip=True)
    loader = loader_class(str(raw_dataset.beton), batch_size=5, num_workers=2, order=OrderOption.SEQUENTIAL,
                          drop_last=False, recompile=recompile,
                          pipelines={"image": [decoder], "label": None, "index": [IntDecoder()]})

    def epoch():
        return {int(i): np.array(s) for images, indices in loader for s, i in zip(images, indices[:, 0])}

    first = epoch()
    decoder.alpha, decoder.flip, decoder.groups = 0.1, False, changed
    second = epoch()
    assert second.keys() == fresh.keys()
    for index in fresh:
        np.testing.assert_array_equal(second[index], fresh[index])
        assert not np.array_equal(second[index], first[index])
    for name, value, words in [("output_size", (20, 20), "output sizes"), ("num_views", 4, "new Loader"),
                               ("table", table, "new Loader"), ("dct_scaling", False, "new Loader"),
                               ("groups", (ViewGroup((20, 20), 2), LOCAL), "size, num_views"),
                               ("groups", (GLOBAL, ViewGroup(LOCAL.size, 4)), "size, num_views")]:
        with pytest.raises(AttributeError, match=words):
            setattr(decoder, name, value)
    assert decoder.groups == changed
    with pytest.raises(ValueError, match="alpha"):
        decoder.alpha = -1
    assert decoder.alpha == 0.1


# ---- review: hostile groups, odd shapes, mixed storage ----

@pytest.mark.parametrize("kwargs", [dict(size="96"), dict(size=b"ab"), dict(size=(True, True)), dict(size=True),
                                    dict(size=(np.True_, 5)), dict(size=96, scale="12"), dict(size=96, ratio=(True, 2)),
                                    dict(size=(96, 96), use_boxes=1)])
def test_view_group_refuses_text_and_bools(kwargs):
    """A string was read character by character (size "96" became 9 x 6, scale "12" (1, 2)) and True as 1."""
    with pytest.raises(ValueError, match="ViewGroup"):
        ViewGroup(**kwargs)


def test_view_group_takes_numpy_integers_and_bools():
    """ViewGroup(96) worked but ViewGroup(np.int64(96)) (a size read off an array or config) was refused."""
    group = ViewGroup(np.int64(96), np.int64(3), np.array([0.1, 0.5]), use_boxes=np.False_)
    assert group == ViewGroup((96, 96), 3, (0.1, 0.5), use_boxes=False)
    assert type(group.size[0]) is int and group.use_boxes is False and type(group.use_boxes) is bool
    assert multi_crop_groups(np.int64(64), np.int32(32))[1].size == (32, 32)


def test_groups_no_buffer_can_hold_are_refused_clearly(table):
    """It was numpy's 'Python int too large to convert to C long' from deep inside the constructor."""
    with pytest.raises(ValueError, match="MAX_VIEW_PIXELS"):
        MultiCropContrastiveCropDecoder(table, [ViewGroup((2 ** 31, 2 ** 31), 4)])


def test_sizes_are_checked_before_anything_is_expanded(table):
    """ViewGroup(1, 10**18) grew memory without bound; (1000, 10**13) ended in an empty MemoryError (issue 23.4)."""
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for size, views, match in ((1, 10 ** 18, "MAX_VIEWS"), (10 ** 13, 1000, "MAX_VIEW_PIXELS"),
                               (10 ** 12, 8, "MAX_VIEW_PIXELS")):
        with pytest.raises(ValueError, match=match):
            MultiCropContrastiveCropDecoder(table, [ViewGroup(size, views)])
    with pytest.raises(ValueError, match="MAX_SAMPLE_BYTES"):  # each group fits, together they do not
        MultiCropContrastiveCropDecoder(table, [ViewGroup(8192, 3), ViewGroup(8192, 3)])
    with pytest.raises(ValueError, match="MAX_SAMPLE_BYTES"):
        MultiViewContrastiveCropDecoder(table, (8192, 8192), num_views=6)
    decoder = MultiViewContrastiveCropDecoder(table, (32, 32))
    with pytest.raises(ValueError, match="MAX_VIEW_PIXELS"):
        decoder.output_size = (10 ** 9, 10 ** 9)
    assert decoder.output_size == (32, 32)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: nothing was allocated


@pytest.mark.parametrize("name", ["flip", "dct_scaling"])
@pytest.mark.parametrize("value", ["False", "off", 0, 1, None])
def test_flags_take_bools_only(table, name, value):
    """flip="False" and dct_scaling="False" were True, decoder.flip = "off" stayed True (issue 23.7)."""
    with pytest.raises(TypeError, match=name):
        MultiCropContrastiveCropDecoder(table, GROUPS, **{name: value})
    with pytest.raises(TypeError, match=name):
        MultiViewContrastiveCropDecoder(table, (32, 32), **{name: value})
    decoder = MultiViewContrastiveCropDecoder(table, (32, 32), flip=np.bool_(True))
    if name == "flip":
        with pytest.raises(TypeError, match="flip"):
            decoder.flip = value
        assert decoder.flip is True
    decoder.flip = np.bool_(False)
    assert decoder.flip is False


def test_split_groups_empty_batches_and_non_arrays():
    """numpy gives an empty (0, N) array strides (0, 0): the empty batch was refused as 'not contiguous'."""
    total = sum(g.num_views * g.size[0] * g.size[1] * 3 for g in GROUPS)
    for batch in (np.zeros((0, total), np.uint8), torch.zeros((0, total), dtype=torch.uint8)):
        big, small = split_groups(batch, GROUPS)
        assert tuple(big.shape) == (0, 2, 40, 36, 3) and tuple(small.shape) == (0, 3, 12, 12, 3)
    with pytest.raises(TypeError, match="torch tensor or a numpy array"):
        split_groups([[0] * total], GROUPS)


ODD_SHAPES = [(1, 1), (2, 3), (7, 300), (300, 7), (9, 700), (700, 9), (64, 64), (33, 97), (3, 1), (120, 80)]
ODD_GROUPS = (ViewGroup((1, 1), 1), ViewGroup((7, 300), 2, (0.05, 0.3)), ViewGroup((300, 7), 1, use_boxes=False),
              ViewGroup((40, 40), 3, (0.2, 1.0), (0.5, 2.0)))


@pytest.fixture(scope="module")
def odd_betons(tmp_path_factory):
    """The ODD_SHAPES images as raw, jpg and mixed ('proportion': some raw, some JPEG) .betons."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    rng = np.random.default_rng(4)
    images = [np.clip(np.kron(rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)), np.ones((8, 8, 1)))[:h, :w]
                      + rng.integers(-12, 12, (h, w, 3)), 0, 255).astype(np.uint8) for h, w in ODD_SHAPES]

    class Samples:
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return images[i], i

    root = tmp_path_factory.mktemp("odd")
    for mode in ("raw", "jpg", "proportion"):
        np.random.seed(0)  # FFCV draws each sample's storage in 'proportion' mode from numpy's global generator
        field = RGBImageField(write_mode=mode, jpeg_quality=95, compress_probability=0.5)
        DatasetWriter(str(root / f"{mode}.beton"), {"image": field, "label": IntField()},
                      num_workers=1).from_indexed_dataset(Samples())
    return root, images


def test_odd_sizes_and_mixed_storage_through_a_shuffling_loader(odd_betons):
    """1x1, 7x300, 300x7 views of 1x1 to 700x9 images (upscaled and downscaled), through FFCV's Loader with 2
    threads, RANDOM / QUASI_RANDOM orders, drop_last and an indices subset: raw samples exactly their windows
    resized; in the mixed .beton every sample is what its own storage's .beton gives."""
    root, images = odd_betons
    n = len(images)
    with BoxTable.create(n) as table:
        table.write(np.arange(n), random_boxes(n, seed=1))
        table.epoch, table.seed = 3, 11

        def epoch(mode, **kw):
            options = dict(batch_size=3, num_workers=2, order=OrderOption.RANDOM, drop_last=False, seed=2) | kw
            loader = Loader(str(root / f"{mode}.beton"), **options,
                            pipelines={"image": [MultiCropContrastiveCropDecoder(table, ODD_GROUPS), ToTensor()],
                                       "label": [IntDecoder(), ToTensor()]})
            return {int(i): s.numpy().copy() for batch, indices in loader for s, i in zip(batch, indices[:, 0])}

        raw, jpg, mixed = epoch("raw"), epoch("jpg"), epoch("proportion")
        assert sorted(raw) == sorted(jpg) == sorted(mixed) == list(range(n))
        for index, sample in raw.items():
            image = images[index]
            views = split_groups(sample[None], ODD_GROUPS)
            for g, j, window in windows(table, image, index, ODD_GROUPS):
                flip = sample_flip(seed=table.seed, epoch=table.epoch, index=index, view=first_views(ODD_GROUPS)[g] + j)
                np.testing.assert_array_equal(views[g][0, j], crop_resize(image, window, ODD_GROUPS[g].size, flip))
        modes = Reader(str(root / "proportion.beton")).metadata["f0"]["mode"]
        assert set(modes) == {0, 1}  # both storages present: the test has power
        for index, sample in mixed.items():
            np.testing.assert_array_equal(sample, (raw if modes[index] == 1 else jpg)[index])
        subset = epoch("jpg", order=OrderOption.QUASI_RANDOM, os_cache=False, drop_last=True, indices=[9, 0, 4, 7, 2])
        assert len(subset) == 3 and set(subset) <= {9, 0, 4, 7, 2}
        for index, sample in subset.items():
            np.testing.assert_array_equal(sample, jpg[index])
