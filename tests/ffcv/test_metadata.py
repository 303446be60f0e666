"""A .beton whose image metadata is damaged or forged: refused naming the sample, before anything is allocated."""
import re
import shutil

import numpy as np
import pytest
from ffcv.fields.basics import IntDecoder
from ffcv.loader import OrderOption
from ffcv.reader import Reader

from ccrop_loaders.ffcv import FullImageRGBImageDecoder, Loader, MultiViewContrastiveCropDecoder


def forged_copy(dataset, tmp_path, index, **fields):
    """A copy of ``dataset``'s .beton with sample ``index``'s metadata fields (mode, height, width) replaced."""
    path = tmp_path / "forged.beton"
    shutil.copy(dataset.beton, path)
    metadata = Reader(str(dataset.beton)).metadata
    data = bytearray(path.read_bytes())
    start = bytes(data).find(metadata.tobytes())
    assert start > 0
    record = metadata[index:index + 1].copy()
    for name, value in fields.items():
        record["f0"][name] = value
    at = start + index * metadata.dtype.itemsize
    data[at: at + metadata.dtype.itemsize] = record.tobytes()
    path.write_bytes(bytes(data))
    return path


def epoch(beton, decoder):
    loader = Loader(str(beton), batch_size=4, num_workers=2, order=OrderOption.SEQUENTIAL,
                    pipelines={"image": [decoder], "label": None, "index": [IntDecoder()]})
    return [len(index) for _, index in loader]


@pytest.mark.parametrize("fields, words", [
    ({"mode": 9}, "sample (global index) 7 an unknown storage mode"),
    ({"height": 0}, "sample (global index) 7 a size below 1 pixel"),
    ({"height": 65535, "width": 65535}, "sample (global index) 7 more than REGION_MAX_PIXELS"),
])
def test_impossible_metadata_is_refused_when_the_loader_plans(jpg_dataset, table, tmp_path, fields, words):
    beton = forged_copy(jpg_dataset, tmp_path, 7, **fields)
    for decoder in (MultiViewContrastiveCropDecoder(table, (16, 16)), FullImageRGBImageDecoder((16, 16))):
        with pytest.raises(ValueError, match=re.escape(words)):
            epoch(beton, decoder)


def test_jpeg_bytes_labelled_raw_are_named(jpg_dataset, table, tmp_path):
    beton = forged_copy(jpg_dataset, tmp_path, 7, mode=1)
    with pytest.raises(ValueError, match=r"sample \(global index\) 7: its raw pixels in the .beton are not the "
                                         r"\d+x\d+x3 bytes its metadata says"):
        epoch(beton, MultiViewContrastiveCropDecoder(table, (16, 16)))
    assert sum(epoch(jpg_dataset.beton, MultiViewContrastiveCropDecoder(table, (16, 16)))) == len(jpg_dataset)
    np.testing.assert_array_equal(Reader(str(jpg_dataset.beton)).metadata["f0"]["mode"], 0)  # the original is intact
