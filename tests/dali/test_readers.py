"""The ready pipelines: sharding, global indices, labels, errors, parallel external-source workers."""
import re
import shutil
import traceback

import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def, types

pytest.importorskip("torch")  # the iterator hands out torch tensors

from ccrop_loaders import BoxTable, sample_crop
from ccrop_loaders.dali import ExternalSourceReader, FolderFiles, external_source_pipeline, file_reader_pipeline
from ccrop_loaders.dali.iterator import ContrastiveCropIterator  # noqa: E402

SIZE = (32, 32)


def epoch_indices(pipe) -> list[list[int]]:
    it = ContrastiveCropIterator(pipe)
    out = []
    for _ in range(2):
        seen = []
        for batch in it:
            seen += batch["index"].tolist()
        out.append(seen)
    return out


def test_two_shards_cover_the_dataset_once_per_epoch(folder, table):
    files = FolderFiles.from_folder(folder.root)
    shards = [epoch_indices(file_reader_pipeline(files, table, batch_size=4, num_threads=1, size=SIZE,
                                                 shard_id=s, num_shards=2, last_batch="partial", seed=4))
              for s in range(2)]
    for epoch in range(2):
        together = shards[0][epoch] + shards[1][epoch]
        assert sorted(together) == list(range(len(folder)))
    assert shards[0][0] != shards[0][1]  # reshuffled every epoch


def test_batches_carry_global_index_label_and_its_views(folder, table):
    pipe = file_reader_pipeline(folder.root, table, batch_size=5, num_threads=2, size=SIZE, flip=False, seed=7)
    it = ContrastiveCropIterator(pipe)
    assert len(it) == len(folder) // 5
    for batch in it:
        assert [v.shape for v in batch["views"]] == [(5, *SIZE, 3)] * 2
        for s, i in enumerate(batch["index"].tolist()):
            assert batch["label"][s] == folder.labels[i]
            # The view is the crop of *this* index's image: compare against a direct crop-resize.
            from PIL import Image

            h, w = folder.images[i].shape[:2]
            top, left, ch, cw = sample_crop(h, w, table.read([i])[0], index=i, view=1, seed=table.seed,
                                            epoch=table.epoch)
            ref = np.asarray(Image.fromarray(folder.images[i]).resize(SIZE, Image.BILINEAR,
                                                                      box=(left, top, left + cw, top + ch)))
            assert np.abs(batch["views"][1][s].numpy().astype(int) - ref).mean() < 4.0


def test_refuses_a_table_of_the_wrong_size(folder):
    with BoxTable.create(len(folder) - 1) as small:
        with pytest.raises(ValueError, match=f"{len(folder) - 1} rows but the dataset has {len(folder)}"):
            file_reader_pipeline(folder.root, small, batch_size=4)


@pytest.mark.parametrize("shard_id, num_shards, last_batch, match", [
    (2, 2, "drop", r"shard_id must be in \[0, 2\)"),
    (0, 3, "partial", "do not split evenly over 3 shards"),
    (0, 100, "drop", "leaves shards empty"),
    (0, 1, "pad", "last_batch must be one of"),
])
def test_refuses_bad_sharding(folder, table, shard_id, num_shards, last_batch, match):
    with pytest.raises(ValueError, match=match):
        file_reader_pipeline(folder.root, table, batch_size=4, shard_id=shard_id, num_shards=num_shards,
                             last_batch=last_batch)


def test_undecodable_image_is_named_or_skipped(folder, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(folder.root, root)
    files = FolderFiles.from_folder(root)
    victim = files.files[6]
    data = open(victim, "rb").read()
    with open(victim, "wb") as f:
        f.write(data[: len(data) // 3])
    with BoxTable.create(files.num_samples) as table:
        pipe = file_reader_pipeline(files, table, batch_size=len(folder), num_threads=1, size=SIZE, shuffle=False)
        with pytest.raises(ValueError, match=rf"cannot decode {victim} \(sample index 6\)"):
            next(iter(ContrastiveCropIterator(pipe)))
    checked = FolderFiles.from_folder(root, check_images=True, workers=1)
    # the readable images, numbered as `ccrop convert` numbers the .beton it writes from this folder
    assert [str(p) for p, _ in checked.skipped] == [victim] and checked.num_samples == len(folder) - 1
    assert checked.files == [f for f in files.files if f != victim] and list(checked.indices) == list(range(15))
    with BoxTable.create(checked.num_samples) as table:
        pipe = file_reader_pipeline(checked, table, batch_size=3, num_threads=1, size=SIZE, last_batch="partial")
        (seen,) = epoch_indices(pipe)[:1]
        assert sorted(seen) == list(range(len(folder) - 1))


class JpegBytes:
    """Picklable loader for the external source: the encoded file of a global index."""

    def __init__(self, paths):
        self.paths = paths

    def __call__(self, index: int) -> bytes:
        with open(self.paths[index], "rb") as f:
            return f.read()


@pytest.mark.filterwarnings("ignore:The external source node")  # this test reads only index and windows
def test_external_source_workers_see_the_parents_writes(folder, table):
    reader = ExternalSourceReader(JpegBytes(folder.paths), len(folder), table, batch_size=4, shuffle=False,
                                  labels=folder.labels, flip=False)

    @pipeline_def(batch_size=4, num_threads=1, device_id=None, py_num_workers=2, py_start_method="spawn",
                  prefetch_queue_depth=1)
    def pipe():
        encoded, index, label, windows, rois = fn.external_source(
            source=reader, num_outputs=5, batch=False, parallel=True,
            dtype=[types.UINT8, types.INT64, types.INT64, types.INT32, types.FLOAT])
        return index, windows

    p = pipe()
    p.build()

    def windows_by_index(count):
        got = {}
        for _ in range(count):
            index, windows = p.run()
            got.update({int(np.array(index[s])[0]): np.array(windows[s]) for s in range(len(index))})
        return got

    first = windows_by_index(1)
    for i, w in first.items():
        h, wd = folder.images[i].shape[:2]
        assert w.tolist() == [list(sample_crop(h, wd, table.read([i])[0], index=i, view=v, seed=table.seed,
                                               epoch=table.epoch)) for v in range(2)]
    table.write(np.arange(len(folder)), np.tile([0.0, 0.0, 0.05, 0.05], (len(folder), 1)))
    table.epoch = 12
    later = windows_by_index(3)  # batches 2-4: past the one-batch prefetch queue of the workers
    checked = 0
    for i, w in later.items():
        if i < 8:  # batch 2 may have been prefetched before the write
            continue
        h, wd = folder.images[i].shape[:2]
        assert w.tolist() == [list(sample_crop(h, wd, (0.0, 0.0, 0.05, 0.05), index=i, view=v, seed=table.seed,
                                               epoch=12)) for v in range(2)]
        checked += 1
    assert checked == 8


@pytest.mark.parametrize("decode", ["auto", "union"])  # union: from the windows the workers computed
def test_external_source_pipeline_yields_views(folder, table, decode):
    reader = ExternalSourceReader(JpegBytes(folder.paths), len(folder), table, batch_size=4, seed=1,
                                  labels=folder.labels)
    it = ContrastiveCropIterator(external_source_pipeline(reader, num_threads=1, py_num_workers=1, size=SIZE,
                                                          decode=decode))
    seen = []
    for batch in it:
        assert [v.shape for v in batch["views"]] == [(4, *SIZE, 3)] * 2
        assert batch["label"].tolist() == [folder.labels[i] for i in batch["index"].tolist()]
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(len(folder)))


KILL_WORKER = """
import os, signal, sys, time
from ccrop_loaders import BoxTable
from ccrop_loaders.dali import ExternalSourceReader, external_source_pipeline
from ccrop_loaders.dali.iterator import ContrastiveCropIterator
from tests.dali.test_readers import JpegBytes

paths = sys.argv[1:]
with BoxTable.create(len(paths)) as table:
    reader = ExternalSourceReader(JpegBytes(paths), len(paths), table, batch_size=2)
    pipe = external_source_pipeline(reader, num_threads=1, py_num_workers=2, size=(16, 16))
    it = ContrastiveCropIterator(pipe)
    for epoch in range(1000):
        for n, batch in enumerate(it):
            if epoch == 0 and n == 1:
                os.kill(pipe._py_pool.pids()[0], signal.SIGKILL)
print("no error")
"""


def test_killed_external_source_worker_is_an_error_not_a_hang(folder):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", KILL_WORKER, *folder.paths], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0, done.stdout
    assert "DALI external-source worker process pid" in done.stderr and "killed by SIGKILL" in done.stderr, \
        done.stderr[-3000:]


def damaged(kind: str, path: str) -> bytes:
    """The bytes of JPEG ``path`` damaged as ``kind``."""
    import io
    import struct

    from PIL import Image

    data = open(path, "rb").read()
    noise = np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes()
    if kind == "empty":
        return b""
    if kind == "random":
        return noise
    if kind == "truncated":
        return data[: len(data) // 3]
    if kind == "gif":
        buf = io.BytesIO()
        Image.open(path).save(buf, format="GIF")
        return buf.getvalue()
    assert kind == "huge_header"
    i = 2
    while not 0xC0 <= data[i + 1] <= 0xC2:  # walk the segments to the frame header
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return data[:i + 5] + struct.pack(">HH", 12000, 12000) + data[i + 9:]


@pytest.mark.parametrize("decode", ["once", "slice"])
@pytest.mark.parametrize("kind", ["empty", "truncated"])
def test_damaged_file_is_named_file_reader(folder, tmp_path, kind, decode):
    root = tmp_path / "copy"
    shutil.copytree(folder.root, root)
    files = FolderFiles.from_folder(root)
    victim = files.files[6]
    bad = damaged(kind, victim)
    open(victim, "wb").write(bad)
    with BoxTable.create(files.num_samples) as table:
        pipe = file_reader_pipeline(files, table, batch_size=4, num_threads=1, size=SIZE, shuffle=False,
                                    decode=decode)
        with pytest.raises(ValueError, match=rf"cannot decode {victim} \(sample index 6\)"):
            for _ in ContrastiveCropIterator(pipe):
                pass


@pytest.mark.parametrize("decode", ["once", "slice"])
@pytest.mark.parametrize("kind", ["empty", "random", "truncated", "gif", "huge_header"])
def test_damaged_sample_is_named_external_source(folder, table, tmp_path, kind, decode):
    paths = list(folder.paths)
    paths[6] = str(tmp_path / "damaged.jpg")
    open(paths[6], "wb").write(damaged(kind, folder.paths[6]))
    reader = ExternalSourceReader(JpegBytes(paths), len(paths), table, batch_size=4, shuffle=False)
    pipe = external_source_pipeline(reader, num_threads=1, py_num_workers=1, size=SIZE, decode=decode)
    with pytest.raises(Exception) as info:  # DALI's iterator runs the first batches when it is made
        for _ in ContrastiveCropIterator(pipe):
            pass
    chain = "".join(traceback.format_exception(info.value))  # a worker's error arrives chained to DALI's
    assert re.search(r"sample (index )?6\b", chain), chain


def test_external_source_refuses_a_table_of_the_wrong_size(folder):
    with BoxTable.create(len(folder) + 1) as big:
        with pytest.raises(ValueError, match="rows but the dataset has"):
            ExternalSourceReader(JpegBytes(folder.paths), len(folder), big, batch_size=4)
