"""WebDataset shards (ccrop_loaders.shards) and the DALI pipeline over them (dali.webdataset)."""
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from ccrop_loaders import BoxTable, sample_crop
from ccrop_loaders.dali import ContrastiveCropIterator, webdataset_pipeline
from ccrop_loaders.folder import FolderFiles
from ccrop_loaders.shards import ShardFiles, write_shards

from .conftest import NUM_IMAGES


@pytest.fixture(scope="module")
def shards(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("wds") / "shards"
    write_shards(folder.root, out, samples_per_shard=5)
    return out


def _epochs(pipe, count=2):
    it = ContrastiveCropIterator(pipe)
    return [[(int(i), int(lab)) for batch in it for i, lab in zip(batch["index"], batch["label"])]
            for _ in range(count)]


def test_shards_hold_each_file_with_its_folder_index(folder, shards):
    record = json.loads((shards / "shards.json").read_text())
    assert record["num_samples"] == NUM_IMAGES and [s["samples"] for s in record["shards"]] == [5, 5, 5, 1]
    files = FolderFiles.from_folder(folder.root, check_images=True)
    with tarfile.open(shards / "shard-000001.tar") as tar:
        names = tar.getnames()
        assert names[:3] == ["000000005.jpg", "000000005.cls", "000000005.idx"]
        assert tar.extractfile("000000005.jpg").read() == Path(files.files[5]).read_bytes()
        assert int(np.frombuffer(tar.extractfile("000000005.idx").read(), np.int64)[0]) == 5
        assert int(np.frombuffer(tar.extractfile("000000005.cls").read(), np.int64)[0]) == files.labels[5]
    with pytest.raises(ValueError, match="other files"):
        (shards.parent / "taken").mkdir()
        (shards.parent / "taken" / "notes.txt").write_text("mine")
        write_shards(folder.root, shards.parent / "taken")
    assert (shards.parent / "taken" / "notes.txt").read_text() == "mine"


def test_indices_come_from_the_members_and_ranks_cover_the_data_once(folder, shards):
    with BoxTable.create(NUM_IMAGES) as table:
        table.epoch, table.seed = 2, 9
        pipe = webdataset_pipeline(shards, table, batch_size=4, num_threads=1, size=(32, 32), shuffle=True,
                                   last_batch="partial")
        labels = dict(zip(range(NUM_IMAGES), folder.labels))
        for epoch in _epochs(pipe):
            assert sorted(i for i, _ in epoch) == list(range(NUM_IMAGES))
            assert all(labels[i] == lab for i, lab in epoch)
        for world in (2, 4):
            seen = []
            for rank in range(world):
                pipe = webdataset_pipeline(shards, table, batch_size=2, num_threads=1, size=(16, 16),
                                           shard_id=rank, num_shards=world, last_batch="drop")
                first, second = _epochs(pipe)
                assert sorted(first) == sorted(second)  # stick_to_shard: each rank keeps its share
                seen += [i for i, _ in first]
            assert sorted(seen) == list(range(NUM_IMAGES))  # exactly once per epoch, over the ranks


def test_views_are_the_samplers_windows(folder, shards):
    """The view of a sample is its keyed window of its own image (the index read from its member)."""
    from ccrop_loaders.core.resample import resize_crop, scratch_size

    with BoxTable.create(NUM_IMAGES) as table:
        table.epoch, table.seed = 2, 9
        pipe = webdataset_pipeline(shards, table, batch_size=4, num_threads=1, size=(32, 32), flip=False)
        batch = next(iter(ContrastiveCropIterator(pipe)))
        for view, index in zip(batch["views"][1], batch["index"]):
            index = int(index)
            image = folder.images[index]
            top, left, ch, cw = sample_crop(*image.shape[:2], table.read([index])[0], index=index, view=1, seed=9,
                                            epoch=2)
            expected = np.empty((32, 32, 3), np.uint8)
            resize_crop(image, top, left, ch, cw, 0, expected, np.empty(scratch_size(ch, cw, (32, 32)), np.int64))
            assert np.abs(view.numpy().astype(int) - expected).max() <= 1  # DALI's decode vs Pillow's: rounding


def test_damaged_member_names_shard_and_key(folder, shards, tmp_path):
    import shutil

    copy = tmp_path / "damaged"
    shutil.copytree(shards, copy)
    tar_path = copy / "shard-000001.tar"
    data = bytearray(tar_path.read_bytes())
    with tarfile.open(tar_path) as tar:
        member = tar.getmember("000000007.jpg")
        start = member.offset_data + member.size // 2
    data[start:start + 64] = b"\xff\x01" * 32  # markers that cannot be inside entropy-coded data
    tar_path.write_bytes(bytes(data))
    with BoxTable.create(NUM_IMAGES) as table:
        pipe = webdataset_pipeline(copy, table, batch_size=4, num_threads=1, size=(16, 16), shuffle=False)
        with pytest.raises(ValueError, match=r"shard-000001\.tar:000000007 \(sample index 7\)"):
            _epochs(pipe, 1)
    del pipe  # no reader maps the shard when it is cut
    truncated = tmp_path / "truncated"
    shutil.copytree(shards, truncated)
    cut = truncated / "shard-000001.tar"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"shard-000001\.tar is damaged or truncated"):
        ShardFiles.open(truncated)


def test_ccrop_convert_format_wds(folder, tmp_path, capsys):
    from ccrop_loaders.tools.cli import main

    assert main(["convert", "--format", "wds", str(folder.root), str(tmp_path / "s"), "--samples-per-shard", "8"]) == 0
    assert ShardFiles.open(tmp_path / "s").num_samples == NUM_IMAGES and "in 2 shards" in capsys.readouterr().out
    assert main(["convert", "--format", "wds", str(folder.root), str(tmp_path / "t"), "--max-resolution", "64"]) == 2
    assert "apply to a .beton only" in capsys.readouterr().err and not (tmp_path / "t").exists()
