"""contrastive_crop_regions: DALI's union regions through the torch view stage give contrastive_crop_groups'
views (decode="union", the core's resampler) within the stage's rounding (CPU, device_id=None)."""
import numpy as np
import pytest
import torch
from nvidia.dali import fn, pipeline_def

from ccrop_loaders.core import ViewGroup
from ccrop_loaders.dali import contrastive_crop_groups
from ccrop_loaders.dali.regions import contrastive_crop_regions, regions_to_torch
from ccrop_loaders.trainer import ViewStage

GROUPS = (ViewGroup((40, 48), 2, (0.3, 1.0)), ViewGroup((16, 16), 3, (0.05, 0.3), (0.5, 2.0)))


@pytest.fixture
def outputs(folder, table):
    @pipeline_def(batch_size=len(folder), num_threads=2, device_id=None, prefetch_queue_depth=1)
    def pipe():
        jpegs, index = fn.readers.file(files=folder.paths, labels=list(range(len(folder))))
        regions = contrastive_crop_regions(jpegs, index, table, GROUPS, flip=True)
        views = contrastive_crop_groups(jpegs, index, table, GROUPS, flip=True, decode="union")
        return (*regions, *[v for group in views for v in group])

    p = pipe()
    p.build()
    region, size, windows, flips, *views = p.run()
    return regions_to_torch(region, size, windows, flips), [np.array(v.as_tensor()) for v in views]


def test_regions_through_the_stage_equal_union_views(outputs):
    (regions, windows, flips, sizes), views = outputs
    assert regions.dtype == torch.uint8 and regions.dim() == 4 and flips.any() and not flips.all()
    assert (sizes[:, 0] <= regions.shape[1]).all() and (sizes[:, 1] <= regions.shape[2]).all()
    got = ViewStage(GROUPS, mean=None, std=None).from_regions(regions, windows, flips, sizes)
    got = [v.permute(0, 2, 3, 1).numpy() for g in got for v in g.unbind(1)]
    assert len(got) == len(views) == 5
    for a, b in zip(got, views):
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        assert diff.max() <= 2 and (diff <= 1).mean() >= 0.999, (diff.max(), (diff <= 1).mean())
