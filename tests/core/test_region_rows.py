"""Region rows: the header and pixel block round-trip, a decoder may write the block in place, bad rows are named."""
import numpy as np
import pytest

from ccrop_loaders.core.region_rows import (FIXED_BYTES, MAGIC, ROW_BAD_FLIP, ROW_BAD_FORMAT, ROW_BAD_MAGIC,
                                            ROW_BAD_REGION, ROW_BAD_WINDOW, ROW_OK, VERSION, WINDOW_BYTES, RowFormat,
                                            parse_region_row, row_pixels, row_problem, row_status, write_region_header,
                                            write_region_row)

FMT = RowFormat((9, 11), 3)
WINDOWS = np.array([[0.0, 0.0, 7.0, 10.0], [1.5, 2.25, 3.0, 0.5], [6.0, 9.0, 1.0, 1.0]])
FLIPS = np.array([True, False, True])


def written(region=None):
    region = np.arange(7 * 10 * 3, dtype=np.uint8).reshape(7, 10, 3) if region is None else region
    row = np.full(FMT.row_bytes, 77, np.uint8)  # stale bytes from an earlier sample
    write_region_row(row, *FMT.capacity, region, WINDOWS, FLIPS)
    return row, region


def test_a_row_round_trips_with_the_stated_layout():
    row, region = written()
    assert FMT.header_bytes == 192 and FMT.row_bytes == 192 + 9 * 11 * 3
    fields = row[:FIXED_BYTES].view(np.int32)
    assert list(fields) == [MAGIC, VERSION, 192, 9, 11, 3, 7, 10]
    assert row[:4].tobytes() == b"CCRW"
    np.testing.assert_array_equal(row[FIXED_BYTES:FIXED_BYTES + 3 * WINDOW_BYTES].view(np.float64).reshape(3, 4),
                                  WINDOWS)
    assert list(row[FIXED_BYTES + 3 * WINDOW_BYTES:][:3]) == [1, 0, 1]
    assert not row[FIXED_BYTES + 3 * WINDOW_BYTES + 3:192].any()  # the header's padding is zeroed
    block = row[192:].reshape(9, 11, 3)
    np.testing.assert_array_equal(block[:7, :10], region)  # row stride: the capacity's width
    parsed = parse_region_row(row, FMT)
    np.testing.assert_array_equal(parsed.region, region)
    np.testing.assert_array_equal(parsed.windows, WINDOWS)
    np.testing.assert_array_equal(parsed.flips, FLIPS)
    assert row_status(row, 9, 11, 3) == (ROW_OK, -1)


def test_a_decoder_may_decode_into_the_pixel_block_then_write_the_header():
    row = np.zeros(FMT.row_bytes, np.uint8)
    region = np.random.default_rng(0).integers(0, 256, (9, 4, 3), dtype=np.uint8)
    row_pixels(row, 9, 11)[:9, :4] = region
    write_region_header(row, 9, 11, 9, 4, np.array([[0, 0, 9, 4.0]] * 3), np.zeros(3, np.uint8))
    np.testing.assert_array_equal(parse_region_row(row, FMT).region, region)


@pytest.mark.parametrize("region_shape, windows, words", [
    ((10, 10, 3), WINDOWS, "fit the capacity"),
    ((7, 10, 3), WINDOWS + [[0, 0, 0.5, 0], [0, 0, 0, 0], [0, 0, 0, 0]], "inside the region"),
    ((7, 10, 3), np.array([[0, 0, 0, 1.0]] * 3), "inside the region"),
    ((7, 10, 3), np.array([[0, 0, np.nan, 1.0]] * 3), "inside the region"),
    ((7, 10, 3), WINDOWS[:2], "flips (V,)"),
])
def test_the_writer_refuses_what_the_format_does_not_hold(region_shape, windows, words):
    row = np.zeros(FMT.row_bytes, np.uint8)
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        write_region_row(row, 9, 11, np.zeros(region_shape, np.uint8), windows, FLIPS)
    with pytest.raises(ValueError, match="length"):
        write_region_row(row[:-1], 9, 11, np.zeros((7, 10, 3), np.uint8), WINDOWS, FLIPS)


def corrupt(what):
    row, _ = written()
    fields = row[:FIXED_BYTES].view(np.int32)
    if what == "magic":
        fields[0] = 0
    elif what == "capacity":
        fields[3] = 8
    elif what == "region":
        fields[7] = 12
    elif what == "window":
        row[FIXED_BYTES + WINDOW_BYTES:FIXED_BYTES + 2 * WINDOW_BYTES].view(np.float64)[3] = 9.0
    elif what == "flip":
        row[FIXED_BYTES + 3 * WINDOW_BYTES + 2] = 2
    return row


@pytest.mark.parametrize("what, code, view, words", [
    ("magic", ROW_BAD_MAGIC, -1, "is not a ccrop region row"),
    ("capacity", ROW_BAD_FORMAT, -1, "capacity 8x11"),
    ("region", ROW_BAD_REGION, -1, "region 7x12 is empty or exceeds the capacity 9x11"),
    ("window", ROW_BAD_WINDOW, 1, "view 1: window (top, left, height, width) = (1.5, 2.25, 3.0, 9.0)"),
    ("flip", ROW_BAD_FLIP, 2, "view 2: mirror byte 2"),
])
def test_a_bad_row_is_named_with_its_problem(what, code, view, words):
    row = corrupt(what)
    assert row_status(row, 9, 11, 3) == (code, view)
    with pytest.raises(ValueError) as error:
        parse_region_row(row, FMT, sample=41)
    assert "sample 41" in str(error.value) and words in str(error.value)
    assert words in row_problem(row[:FMT.header_bytes], FMT.row_bytes, FMT, code, view, 41)


def test_a_row_of_the_wrong_length_is_refused():
    row, _ = written()
    assert row_status(row[:-3], 9, 11, 3)[0] == ROW_BAD_FORMAT
    assert row_status(row[:10], 9, 11, 3)[0] == ROW_BAD_FORMAT
    with pytest.raises(ValueError, match="in rows of 489 bytes"):
        parse_region_row(row[:10], FMT)


@pytest.mark.parametrize("capacity, views", [((0, 5), 2), ((5, 1 << 15), 2), ((5, 5), 0), ((5, 5), 65),
                                             ((5, 5), True), (("5", 5), 2), ((5.5, 5), 2)])
def test_row_format_checks_its_geometry(capacity, views):
    with pytest.raises(ValueError, match="RowFormat"):
        RowFormat(capacity, views)
