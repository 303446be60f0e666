"""The core's resampler inside DALI graphs (``dali.resize``): one compiled op whatever the view count, and no
allocation inside an op that could fail silently."""
import subprocess
import sys
import textwrap

import pytest
from nvidia.dali import fn, pipeline_def

import ccrop_loaders.dali.gates as gates
import ccrop_loaders.dali.resize as resize
import ccrop_loaders.dali.windows as windows
from ccrop_loaders.core import ViewGroup
from ccrop_loaders.dali import contrastive_crop_groups

from .conftest import NUM_IMAGES


def _count_numba_ops(monkeypatch) -> list:
    calls = []
    for module in (gates, resize, windows):
        real = module.numba_function

        def counting(*args, _real=real, **kwargs):
            calls.append(kwargs["run_fn"])
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, "numba_function", counting)
    return calls


@pytest.mark.parametrize("decode", ["once", "union"])
def test_one_resize_op_whatever_the_view_count(folder, table, monkeypatch, decode):
    """6 / 60 / 300 views took 14 / 49 / 159 s to define: one op per 6 views, each compiled apart (issue 23.9).
    Defining (not building) a pipeline calls numba_function the same number of times for 2 views as for 300."""
    counts = {}
    for views in (2, 300):
        calls = _count_numba_ops(monkeypatch)
        groups = [ViewGroup(16, views // 2, (0.3, 1.0)), ViewGroup(8, views - views // 2, (0.05, 0.3))]

        @pipeline_def(batch_size=2, num_threads=1, device_id=None)
        def pipe():
            jpegs, index = fn.readers.file(files=folder.paths[:2], labels=[0, 1])
            out = contrastive_crop_groups(jpegs, index, table, groups, decode=decode)
            return tuple(v for group in out for v in group)

        pipe()  # defines the graph: every numba_function op is compiled here
        counts[views] = len(calls)
        monkeypatch.undo()
    assert counts[2] == counts[300] <= 5, counts


def test_views_fail_the_batch_when_memory_runs_out(tmp_path):
    """A resize scratch that could not be allocated inside the op gave all-zero views and exit 0 (issue 23.2):
    nothing inside an op allocates now, and what DALI cannot allocate fails the batch."""
    code = textwrap.dedent(f"""
        import resource, sys
        import numpy as np
        from nvidia.dali import fn, pipeline_def
        from ccrop_loaders import BoxTable
        from ccrop_loaders.dali import contrastive_crop_views
        from ccrop_loaders.folder import list_images
        from ccrop_loaders.tools.sample_data import make_image_folder
        make_image_folder({str(tmp_path / 'imgs')!r}, 2, shorter_side=(200, 200), seed=1)
        paths = [str(p) for p, _ in list_images({str(tmp_path / 'imgs')!r})[0]]
        table = BoxTable.create(2)
        @pipeline_def(batch_size=2, num_threads=1, device_id=None, prefetch_queue_depth=1)
        def pipe():
            jpegs, index = fn.readers.file(files=paths, labels=[0, 1])
            return tuple(contrastive_crop_views(jpegs, index, table, size=(2048, 2048), num_views=2))
        p = pipe(); p.build()
        pages = int(open("/proc/self/statm").read().split()[0])
        limit = pages * 4096 + int(sys.argv[1]) * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            out = p.run()
        except RuntimeError as error:
            print("failed:", str(error).strip().splitlines()[-3:]); sys.exit(3)
        views = np.asarray(out[0].as_tensor()).reshape(2, -1)
        print("zero views:", int((views.max(axis=1) == 0).sum())); sys.exit(0)
    """)
    for room_mib, expected in ((8, 3), (1024, 0)):
        result = subprocess.run([sys.executable, "-c", code, str(room_mib)], capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == expected, (room_mib, result.stdout, result.stderr[-2000:])
        assert ("failed:" if expected else "zero views: 0") in result.stdout, result.stdout


def test_view_sizes_are_capped_when_the_graph_is_defined(folder, table):
    @pipeline_def(batch_size=2, num_threads=1, device_id=None)
    def pipe(size, views):
        jpegs, index = fn.readers.file(files=folder.paths[:2], labels=[0, 1])
        return tuple(v for g in contrastive_crop_groups(jpegs, index, table, [ViewGroup(size, views)]) for v in g)

    for size, views, match in ((10 ** 12, 2, "MAX_VIEW_PIXELS"), (8, 10 ** 6, "MAX_VIEWS"),
                               (8192, 6, "MAX_SAMPLE_BYTES")):
        with pytest.raises(ValueError, match=match):
            pipe(size, views)
    assert NUM_IMAGES == len(table)
