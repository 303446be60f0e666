"""ContrastiveCropRegionDecoder: region rows (header, pixels against libjpeg-turbo's decoding of the same region),
views through the torch stage against the CPU decoders', multi-crop groups, progressive resizing, bad rows."""
import numpy as np
import pytest
import torch
from ffcv.fields.basics import IntDecoder
from ffcv.loader import OrderOption
from ffcv.pipeline import PipelineSpec
from ffcv.transforms import ToDevice, ToTensor

from ccrop_loaders import BoxTable, sample_crop
from ccrop_loaders.core import ViewGroup, first_views, sample_flip
from ccrop_loaders.core.region_rows import FIXED_BYTES, RowFormat, parse_region_row
from ccrop_loaders.ffcv import (ContrastiveCropRegionDecoder, Loader, MultiCropContrastiveCropDecoder,
                                MultiViewContrastiveCropDecoder, split_groups)
from ccrop_loaders.ffcv.decoders import dct_eighths, union_region
from ccrop_loaders.ffcv.jpeg import REGION_OK, decode_region
from ccrop_loaders.tools.sample_data import random_boxes
from ccrop_loaders.trainer import ViewStage
from .conftest import NUM_IMAGES
from .test_multi_crop import jpeg_bytes

SIZE = (40, 36)  # the images' shorter sides are 60-120: 40x36 views decode at scale 1/2 or 1
SMALL = (12, 10)  # at 1/4 or 1/2
GROUPS = (ViewGroup(SIZE, 2, (0.3, 1.0)), ViewGroup((12, 12), 3, (0.05, 0.3), (0.5, 2.0)))
PAIR = (ViewGroup(SIZE, 2),)  # the "rows" decoder's groups as built
NAMES = ("rows", "views", "multi_rows", "multi_views")


@pytest.fixture(scope="module")
def boxes():
    with BoxTable.create(NUM_IMAGES) as t:
        t.write(np.arange(NUM_IMAGES), random_boxes(NUM_IMAGES, seed=0))
        t.epoch, t.seed = 2, 77
        yield t


def make_decoders(table):
    return {"rows": ContrastiveCropRegionDecoder(table, 2, output_size=SIZE),
            "views": MultiViewContrastiveCropDecoder(table, SIZE, num_views=2),
            "multi_rows": ContrastiveCropRegionDecoder(table, groups=GROUPS),
            "multi_views": MultiCropContrastiveCropDecoder(table, GROUPS)}


def loader_for(dataset, decoders):
    device = [ToTensor(), ToDevice(torch.device("cpu"), non_blocking=True)]
    pipelines = {"index": [IntDecoder()], "image": None, "label": None,
                 **{name: PipelineSpec("image", decoder, device if "rows" in name else [])
                    for name, decoder in decoders.items()}}
    return Loader(str(dataset.beton), batch_size=5, num_workers=2, order=OrderOption.SEQUENTIAL, drop_last=False,
                  pipelines=pipelines)


def epoch(loader):
    """{name: {global index: output (numpy)}} over one epoch."""
    out = {name: {} for name in NAMES}
    for indices, *batches in loader:
        for name, batch in zip(NAMES, batches):
            assert isinstance(batch, torch.Tensor) or "rows" not in name
            out[name].update({int(i): (x.numpy() if isinstance(x, torch.Tensor) else x).copy()
                              for i, x in zip(indices[:, 0], batch)})
    return out


@pytest.fixture(scope="module")
def run(jpg_dataset, boxes):
    """Two epochs of one Loader: the decoders as built, then with SMALL output sizes (progressive resizing)."""
    decoders = make_decoders(boxes)
    loader = loader_for(jpg_dataset, decoders)
    first = epoch(loader)
    decoders["rows"].output_size = SMALL
    decoders["views"].output_size = SMALL
    second = epoch(loader)
    return decoders, first, second


def stage_views(rows: dict, fmt: RowFormat, groups, sizes=None) -> dict:
    """{index: per-group uint8 (V, H, W, 3) views} from ``rows`` through the view stage (levels, rounded)."""
    indices = sorted(rows)
    batch = torch.from_numpy(np.stack([rows[i] for i in indices]))
    out = ViewStage(groups, mean=None, std=None).from_rows(batch, fmt, sizes)
    return {i: tuple(g[k].permute(0, 2, 3, 1).numpy().astype(np.uint8) for g in out) for k, i in enumerate(indices)}


def assert_close(got: np.ndarray, expected: np.ndarray) -> None:
    """The stage's tolerance: within 1 level on at least 99.9% of values, never more than 2."""
    diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 2 and (diff <= 1).mean() >= 0.999, (diff.max(), (diff <= 1).mean())


def reference_windows(table, image_shape, index, groups):
    """int64 (V, 5): (top, left, height, width, mirror) of each view as ``sample_crop``/``sample_flip`` draw them."""
    box = table.read([index])[0].astype(np.float64)
    out = []
    for group, first in zip(groups, first_views(groups)):
        for j in range(group.num_views):
            window = sample_crop(*image_shape, box, scale=group.scale, ratio=group.ratio, alpha=0.6,
                                 seed=table.seed, epoch=table.epoch, index=index, view=first + j)
            out.append((*window, sample_flip(seed=table.seed, epoch=table.epoch, index=index, view=first + j)))
    return np.array(out, dtype=np.int64)


def test_rows_hold_the_region_its_windows_and_flips(jpg_dataset, boxes, run):
    decoders, first, _ = run
    fmt = decoders["rows"].row_format
    image_shapes = [image.shape[:2] for image in jpg_dataset.images]
    assert fmt == RowFormat((max(s[0] for s in image_shapes), max(s[1] for s in image_shapes)), 2)
    scales = set()
    for index, row in first["rows"].items():
        assert row.shape == (fmt.row_bytes,)
        parsed = parse_region_row(row, fmt, index)
        windows = reference_windows(boxes, image_shapes[index], index, decoders["rows"].groups)
        layout = np.array([[*SIZE, 0]] * 2, dtype=np.int64)
        eighths = dct_eighths(windows, layout)
        scales.add(eighths)
        s = eighths / 8
        # libjpeg-turbo's crop decoding of the same region at the same DCT scale, into a plain buffer
        data = jpeg_bytes(jpg_dataset.beton, index)
        top, left, bottom, right = union_region(windows, eighths)
        buffer = np.empty(fmt.capacity[0] * fmt.capacity[1] * 3, np.uint8)
        placed = np.zeros(6, np.int64)
        assert decode_region(data.ctypes.data, data.size, eighths, *image_shapes[index], top, left, bottom, right,
                             buffer.ctypes.data, buffer.size, placed.ctypes.data) == REGION_OK
        row0, col0, rows, cols = placed[:4]
        assert parsed.region.shape == (rows, cols, 3)
        np.testing.assert_array_equal(parsed.region, buffer[:rows * cols * 3].reshape(rows, cols, 3))
        # the union itself equals a full decode at that scale
        full = np.empty_like(buffer)
        height, width = -(-image_shapes[index][0] * eighths // 8), -(-image_shapes[index][1] * eighths // 8)
        assert decode_region(data.ctypes.data, data.size, eighths, *image_shapes[index], 0, 0, height, width,
                             full.ctypes.data, full.size, placed.ctypes.data) == REGION_OK
        full = full[:height * width * 3].reshape(height, width, 3)
        np.testing.assert_array_equal(parsed.region[top - row0:bottom - row0, left - col0:right - col0],
                                      full[top:bottom, left:right])
        expected = np.column_stack([windows[:, 0] * s - row0, windows[:, 1] * s - col0, windows[:, 2] * s,
                                    windows[:, 3] * s])
        np.testing.assert_array_equal(parsed.windows, expected)
        np.testing.assert_array_equal(parsed.flips, windows[:, 4] != 0)
    assert scales == {4, 8}


def test_stage_views_equal_the_cpu_decoders(run):
    decoders, first, _ = run
    for rows, views, groups in (("rows", "views", PAIR), ("multi_rows", "multi_views", GROUPS)):
        got = stage_views(first[rows], decoders[rows].row_format, groups)
        assert got.keys() == first[views].keys() == set(range(NUM_IMAGES))
        for index, groups in got.items():
            expected = (first[views][index],) if rows == "rows" else \
                tuple(g[0] for g in split_groups(torch.from_numpy(first[views][index][None]), GROUPS))
            for g, e in zip(groups, expected):
                assert_close(g, np.asarray(e))


def test_progressive_resizing_is_a_stage_argument(run):
    decoders, _, second = run
    rows = decoders["rows"]
    assert rows.output_size == SMALL and rows.groups[0].size == SMALL
    got = stage_views(second["rows"], rows.row_format, PAIR, sizes=[SMALL])
    for index, (views,) in got.items():
        assert views.shape == (2, *SMALL, 3)
        assert_close(views, second["views"][index])


def test_raw_beton_rows_hold_the_union_of_the_windows(raw_dataset, boxes):
    decoder = ContrastiveCropRegionDecoder(boxes, 3, output_size=SIZE, flip=False)
    loader = Loader(str(raw_dataset.beton), batch_size=8, num_workers=2, order=OrderOption.SEQUENTIAL,
                    pipelines={"image": [decoder], "label": None, "index": [IntDecoder()]})
    for rows, indices in loader:
        for row, index in zip(rows, indices[:, 0]):
            image = raw_dataset.images[index]
            parsed = parse_region_row(np.asarray(row), decoder.row_format, int(index))
            windows = reference_windows(boxes, image.shape[:2], int(index), decoder.groups)
            top, left, bottom, right = union_region(windows, 8)
            np.testing.assert_array_equal(parsed.region, image[top:bottom, left:right])
            np.testing.assert_array_equal(parsed.windows[:, :2], windows[:, :2] - [top, left])
            assert not parsed.flips.any()


def test_bad_rows_are_named(run):
    decoders, first, _ = run
    fmt = decoders["rows"].row_format
    batch = torch.from_numpy(np.stack([first["rows"][i] for i in range(4)]))
    stage = ViewStage(decoders["rows"].groups)
    stage.from_rows(batch, fmt)
    bad = batch.clone()
    bad[2, FIXED_BYTES:FIXED_BYTES + 8] = torch.from_numpy(np.array([-1.0]).view(np.uint8))  # view 0's top
    with pytest.raises(ValueError, match="region row of sample 2, view 0"):
        stage.from_rows(bad, fmt)
    with pytest.raises(ValueError, match="region row of sample 1 is not a ccrop region row"):
        stage.from_rows(torch.cat([batch[:1], torch.zeros_like(batch[:1]), batch[2:]]), fmt)


def test_arguments_and_fixed_attributes(boxes):
    with pytest.raises(ValueError, match="not both"):
        ContrastiveCropRegionDecoder(boxes, 2, groups=GROUPS)
    with pytest.raises(ValueError, match="num_views"):
        ContrastiveCropRegionDecoder(boxes, 65)
    with pytest.raises(TypeError, match="BoxTable"):
        ContrastiveCropRegionDecoder(None)
    decoder = ContrastiveCropRegionDecoder(boxes, groups=GROUPS)
    with pytest.raises(RuntimeError, match="once an FFCV Loader is built"):
        decoder.row_format
    decoder.output_size = [(20, 20), (8, 8)]
    assert decoder.output_size == ((20, 20), (8, 8))
    with pytest.raises(AttributeError, match="view counts"):
        decoder.groups = GROUPS[:1]
    with pytest.raises(ValueError, match="output_size"):
        decoder.output_size = [(20, 20)] * 3
