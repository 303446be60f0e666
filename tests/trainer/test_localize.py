import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ccrop_loaders import localize_boxes


def reference_boxes(feature_maps, threshold, input_size):
    """The official per-image loop (min-max normalize, bilinear upsample, first/last active row/column)."""
    n, _, h, w = feature_maps.shape
    maps = feature_maps.sum(1).view(n, -1)
    maps = maps - maps.min(1, keepdim=True)[0]
    maps = maps / maps.max(1, keepdim=True)[0]
    maps = F.interpolate(maps.view(n, 1, h, w), size=input_size, mode="bilinear")
    height, width = input_size
    boxes = []
    for hmap in maps:
        hmap = hmap.squeeze(0)
        rows = torch.nonzero((hmap.max(1)[0] > threshold).int()).view(-1)
        cols = torch.nonzero((hmap.max(0)[0] > threshold).int()).view(-1)
        boxes.append([rows[0] / height, cols[0] / width, rows[-1] / height, cols[-1] / width])
    return torch.tensor(boxes)


def test_known_region_gives_its_exact_box():
    maps = torch.zeros(2, 8, 7, 7)
    maps[0, :, 2:5, 1:6] = 1.0  # rows 2..4, columns 1..5 active
    maps[1, 3, 6, 0] = 5.0  # a single active cell in the bottom-left corner
    boxes = localize_boxes(maps)
    expected = torch.tensor([[2 / 7, 1 / 7, 4 / 7, 5 / 7], [6 / 7, 0, 6 / 7, 0]])
    torch.testing.assert_close(boxes, expected)
    assert boxes.dtype == torch.float32 and boxes.shape == (2, 4)


def test_known_region_upsampled():
    # a 7x7 map upsampled to 224 (factor 32): a step edge's bilinear ramp crosses 0.1 at a known pixel
    maps = torch.zeros(1, 1, 7, 7)
    maps[0, 0, 3, 3] = 1.0
    box = localize_boxes(maps, input_size=224, threshold=0.1)[0]
    # along one axis the upsampled profile is 1 at pixel 111.5 (centre of cell 3), falling linearly to 0 at
    # 111.5 +- 32; it exceeds 0.1 for |p - 111.5| < 28.8, i.e. pixels 83..140
    torch.testing.assert_close(box, torch.tensor([83 / 224, 83 / 224, 140 / 224, 140 / 224]))


@pytest.mark.parametrize("shape, size, threshold", [
    ((16, 64, 7, 7), (224, 224), 0.1),
    ((8, 32, 4, 6), (96, 128), 0.3),
    ((5, 3, 14, 14), (14, 14), 0.05),
])
def test_matches_per_image_reference(shape, size, threshold):
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(shape, generator=g) ** 4  # peaky, so boxes are not all full
    ours = localize_boxes(maps, threshold=threshold, input_size=size)
    torch.testing.assert_close(ours, reference_boxes(maps, threshold, size))
    assert not torch.all(ours == torch.tensor([0.0, 0.0, 1.0, 1.0]))


@pytest.mark.parametrize("fill", [0.0, 3.0, float("nan"), float("inf")])
def test_degenerate_maps_give_the_full_box(fill):
    maps = torch.rand(3, 4, 7, 7)
    maps[1] = fill
    boxes = localize_boxes(maps, input_size=224)
    torch.testing.assert_close(boxes[1], torch.tensor([0.0, 0.0, 1.0, 1.0]))
    assert torch.isfinite(boxes).all()


def test_single_nan_makes_that_map_full():
    maps = torch.rand(2, 4, 7, 7)
    maps[0, 2, 3, 3] = float("nan")
    boxes = localize_boxes(maps)
    torch.testing.assert_close(boxes[0], torch.tensor([0.0, 0.0, 1.0, 1.0]))


def test_boxes_are_valid_for_the_table():
    from ccrop_loaders import BoxTable

    boxes = localize_boxes(torch.randn(32, 16, 7, 7), input_size=224)
    with BoxTable.create(32) as table:
        table.write(np.arange(32), boxes.numpy())
        np.testing.assert_allclose(table.read(), boxes.numpy(), atol=1e-4)


def test_input_size_takes_numpy_ints_and_lists():
    maps = torch.rand(2, 3, 7, 7) ** 4
    expected = localize_boxes(maps, input_size=(32, 48))
    torch.testing.assert_close(localize_boxes(maps, input_size=[np.int64(32), 48]), expected)
    torch.testing.assert_close(localize_boxes(maps, input_size=np.int32(32)), localize_boxes(maps, input_size=(32, 32)))


def test_empty_batch():
    assert localize_boxes(torch.zeros(0, 4, 7, 7)).shape == (0, 4)


@pytest.mark.parametrize("maps, kw, words", [
    (torch.zeros(4, 7, 7), {}, "(N, C, h, w)"),
    (torch.zeros(2, 3, 0, 7), {}, "h, w >= 1"),
    (torch.zeros(2, 3, 7, 7, dtype=torch.int64), {}, "floating point"),
    (torch.zeros(2, 3, 7, 7), {"threshold": 1.5}, "threshold"),
    (torch.zeros(2, 3, 7, 7), {"threshold": "0.1"}, "threshold must be a number in [0, 1), got '0.1'"),
    (torch.zeros(2, 3, 7, 7), {"input_size": (0, 5)}, "input_size"),
    (torch.zeros(2, 3, 7, 7), {"input_size": 2.5},
     "input_size must be a positive int or a pair (H, W) of positive ints, got 2.5"),
    (torch.zeros(2, 3, 7, 7), {"input_size": (224.0, 224)}, "pair (H, W) of positive ints, got (224.0, 224)"),
    (torch.zeros(2, 3, 7, 7), {"input_size": (224,)}, "pair (H, W) of positive ints, got (224,)"),
    (torch.zeros(2, 3, 7, 7), {"input_size": True}, "positive int or a pair (H, W) of positive ints, got True"),
    (torch.zeros(2, 0, 7, 7), {}, "feature_maps must have C >= 1 channels"),
    (np.zeros((2, 3, 7, 7)), {}, "torch.Tensor"),
])
def test_bad_input(maps, kw, words):
    with pytest.raises((ValueError, TypeError)) as info:
        localize_boxes(maps, **kw)
    assert words in str(info.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_the_maps_device():
    maps = torch.rand(4, 8, 7, 7, device="cuda") ** 4
    boxes = localize_boxes(maps, input_size=224)
    assert boxes.device.type == "cuda"
    torch.testing.assert_close(boxes.cpu(), localize_boxes(maps.cpu(), input_size=224))
