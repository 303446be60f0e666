"""Union regions for the torch view stage: DALI decodes each sample's windows' union, the stage makes the views.

``contrastive_crop_regions`` (inside a ``@pipeline_def``) decodes, per sample,
only the union of its views' windows (``decode="union"``'s region: libjpeg-turbo
crop decoding on the CPU, nvJPEG ROI decoding with ``device="gpu"``) and pads
the batch's regions to one shape (``fn.pad``, the batch's largest region, on
the decode's device) so that it leaves DALI as one dense tensor. With each
sample's region size, its windows in region pixels and its mirror bits,
``ViewStage(groups).from_regions(...)`` makes the views ``contrastive_crop_groups``
makes with ``decode="union"`` and the core's resampler, within the stage's
rounding. ``regions_to_torch`` turns the CPU outputs into the stage's tensors.

DALI hands out variable-size samples only as a list of tensors: the padding is
a copy of every region's bytes (``benchmarks/region_bench.py`` times it).
"""
from __future__ import annotations

from collections.abc import Sequence

from nvidia.dali import fn, types
from nvidia.dali.data_node import DataNode

from ..core import BoxTable, ViewGroup
from ..core.groups import check_groups
from ..core.windows import view_params
from .gates import checked_images
from .graph import check_pipeline_device
from .windows import union_and_local_rois, windows_and_rois


def contrastive_crop_regions(jpegs: DataNode, indices: DataNode, table: BoxTable | str, groups: Sequence[ViewGroup],
                             *, alpha: float = 0.6, flip: bool = False, device: str = "cpu"
                             ) -> tuple[DataNode, DataNode, DataNode, DataNode]:
    """Per sample of encoded ``jpegs``: ``(region, region_size, windows, flips)``.

    ``region``: uint8 HWC, the union of the windows of every view of
    ``groups`` (windows as ``contrastive_crop_groups`` draws them, the same
    ``alpha``, ``flip``), decoded on ``device`` (``"gpu"``: ``mixed``) and
    zero-padded at the bottom and right to the batch's largest region;
    ``region_size`` int32 (2,) its (height, width) before padding; ``windows``
    float32 (V, 4) each view's (top, left, height, width) in region pixels;
    ``flips`` uint8 (V,) its mirror bit. All but ``region`` are CPU outputs.
    """
    groups = check_groups(groups)
    block = view_params(groups, alpha, flip)
    device = check_pipeline_device(device)
    jpegs = checked_images(jpegs, indices)
    shapes = fn.peek_image_shape(jpegs)
    windows, rois = windows_and_rois(shapes, indices, table, block)
    sizes = [g.size for g in groups for _ in range(g.num_views)]
    union, local = union_and_local_rois(windows, rois, shapes, sizes, False)
    region = fn.decoders.image_slice(jpegs, union[0], union[1], axes=[0, 1],
                                     device="cpu" if device == "cpu" else "mixed", output_type=types.RGB)
    # local ROIs are (y_start, x_start, y_end, x_end), mirrored where x_start > x_end
    y0, x0, y1, x1 = local[:, 0], local[:, 1], local[:, 2], local[:, 3]
    mirrored = x0 > x1
    left = fn.cast(mirrored, dtype=types.FLOAT) * (x1 - x0) + x0
    width = fn.cast(mirrored, dtype=types.FLOAT) * 2.0 * (x0 - x1) + (x1 - x0)
    local_windows = fn.stack(y0, left, y1 - y0, width, axis=1)
    return (fn.pad(region, axes=[0, 1]), fn.cast(union[1], dtype=types.INT32), local_windows,
            fn.cast(mirrored, dtype=types.UINT8))


def regions_to_torch(region, region_size, windows, flips):
    """The CPU outputs of ``contrastive_crop_regions`` (DALI TensorLists) as ``ViewStage.from_regions``'s
    arguments: ``(regions uint8 (B, Hp, Wp, 3), windows float64 (B, V, 4), flips uint8 (B, V), region_sizes int64
    (B, 2))``, torch CPU tensors (the dense batches are copied once out of DALI's buffers)."""
    import numpy as np
    import torch

    def dense(batch, dtype):
        return torch.from_numpy(np.array(batch.as_tensor(), dtype=dtype))

    return (dense(region, np.uint8), dense(windows, np.float64), dense(flips, np.uint8),
            dense(region_size, np.int64))
