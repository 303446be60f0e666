"""Box diagnostics: exact IoU and coverage on known boxes, ground-truth files and their errors, ``ccrop diagnose``."""
import json

import numpy as np
import pytest

from ccrop_loaders import BoxTable
from ccrop_loaders.tools.cli import main as ccrop
from ccrop_loaders.core.sampler import sample_crops
from ccrop_loaders.tools.diagnostics import (
    Truth,
    TruthError,
    box_diagnostics,
    box_iou,
    object_coverage,
    read_truth,
    view_consistency,
)


def test_iou_of_known_boxes():
    a = [[0, 0, 0.5, 0.5], [0, 0, 0.5, 1], [0, 0, 0.5, 0.5], [0.2, 0.2, 0.2, 0.4]]
    b = [[0, 0, 1, 1], [0.25, 0, 0.75, 1], [0.5, 0.5, 1, 1], [0.2, 0.2, 0.2, 0.4]]
    np.testing.assert_allclose(box_iou(a, b), [0.25, 1 / 3, 0.0, 1.0])


def test_coverage_of_known_windows():
    windows = [[0, 0, 50, 50], [0, 0, 100, 100], [25, 25, 50, 50], [50, 0, 50, 100]]
    truth = [[0, 0, 1, 1], [0.5, 0.5, 0.6, 0.6], [0, 0, 0.5, 0.5], [0.25, 0, 0.75, 1]]
    np.testing.assert_allclose(object_coverage(windows, truth, [[100, 100]] * 4), [0.25, 1.0, 0.25, 0.5])


# With scale (0.25, 0.25) and ratio (1, 1) on 100x100 images every window is 50x50; a table box in the top-left
# corner pins it at (0, 0) whatever the Beta draws (the allowed top-left range clamps to [0, 0]).
FIXED = {"scale": (0.25, 0.25), "ratio": (1.0, 1.0)}


@pytest.mark.parametrize("truth, coverage, expected", [
    ([0, 0, 0.5, 0.5], 0.3, 1.0),        # the window holds the whole object
    ([0.5, 0.5, 1, 1], 0.3, 0.0),        # none of it
    ([0.25, 0.25, 0.75, 0.75], 0.3, 0.0),  # a quarter of it: below 30%
    ([0.25, 0.25, 0.75, 0.75], 0.25, 1.0),  # a quarter counts at 25% (>=)
])
def test_consistency_of_pinned_windows(truth, coverage, expected):
    got = view_consistency([[0, 0, 0.1, 0.1]] * 8, [truth] * 8, [[100, 100]] * 8, coverage=coverage, **FIXED)
    assert got == expected


def test_rrc_windows_a_quarter_of_the_image_hold_a_quarter_of_a_whole_image_object():
    full = [[0, 0, 1, 1]] * 16
    sizes = [[100, 100]] * 16
    assert view_consistency(full, full, sizes, alpha=1.0, coverage=0.25, **FIXED) == 1.0
    assert view_consistency(full, full, sizes, alpha=1.0, coverage=0.3, **FIXED) == 0.0


def test_box_diagnostics_on_a_table_and_on_arrays():
    truth = np.array([[0, 0, 0.1, 0.1], [0.9, 0.9, 1, 1]])  # objects in opposite corners
    with BoxTable.create(3) as table:
        table.write([0, 1], [[0, 0, 0.1, 0.1], [0.5, 0.5, 1, 1]])  # row 2 stays the full box
        table.seed = 7
        d = box_diagnostics(table, truth, (100, 100), epochs=range(3), **FIXED)
        rows = table.read()
    assert d.samples == 2 and d.pairs == 6 and d.coverage == 0.3
    assert d.mean_iou == pytest.approx((1.0 + 0.04) / 2, abs=1e-4)  # uint16 rows: 1/65535 resolution
    assert d.full_box_iou == pytest.approx(0.01) and d.located == 1.0
    # with the true boxes the 50x50 windows are pinned on the corners: both views hold the whole object
    assert d.consistency_truth == 1.0
    same = box_diagnostics(rows, Truth(np.array([0, 1]), truth, np.array([[100, 100]] * 2)), epochs=range(3), seed=7,
                           **FIXED)
    assert same == d


def test_box_diagnostics_refuses_what_it_cannot_use():
    boxes = np.array([[0, 0, 1, 1]] * 2)
    with pytest.raises(ValueError, match="alpha must be from 1e-06 to 1e"):
        box_diagnostics(boxes, [[0, 0, 1, 1]], (10, 10), alpha=1e308)
    with pytest.raises(TruthError, match="row 1 has zero area"):
        box_diagnostics(boxes, [[0, 0, 1, 1], [0.5, 0.2, 0.5, 0.4]], (10, 10))
    with pytest.raises(TruthError, match="index 5 is not a row of the table"):
        box_diagnostics(boxes, [[0, 0, 1, 1]], (10, 10), indices=[5])
    with pytest.raises(TruthError, match="image sizes are needed"):
        box_diagnostics(boxes, [[0, 0, 1, 1]])
    with pytest.raises(TruthError, match="image_sizes must be integers \\(height, width\\) from 1 to"):
        box_diagnostics(boxes, [[0, 0, 1, 1]], [[10, 0]])


def test_read_truth_csv_and_json_agree(tmp_path):
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("index,y0,x0,y1,x1,height,width\n2,0.1,0.2,0.5,0.6,80,100\n0,0,0,1,1,64,64\n")
    json_file = tmp_path / "t.json"
    json_file.write_text(json.dumps([{"index": 0, "y0": 0, "x0": 0, "y1": 1, "x1": 1, "height": 64, "width": 64},
                                     [2, 0.1, 0.2, 0.5, 0.6, 80, 100]]))
    for path in (csv_file, json_file):
        t = read_truth(path)
        np.testing.assert_array_equal(t.indices, [0, 2])
        np.testing.assert_allclose(t.boxes, [[0, 0, 1, 1], [0.1, 0.2, 0.5, 0.6]])
        np.testing.assert_array_equal(t.sizes, [[64, 64], [80, 100]])
    (tmp_path / "plain.csv").write_text("index,y0,x0,y1,x1\n0,0,0,1,1\n")
    assert read_truth(tmp_path / "plain.csv").sizes is None


@pytest.mark.parametrize("name, text, message", [
    ("a.csv", "idx,y0,x0,y1,x1\n0,0,0,1,1\n", "line 1: the header must be"),
    ("a.csv", "index,y0,x0,y1,x1\n0,0,0,1,1\n1,0,0,1\n", "line 3: 4 fields, expected 5"),
    ("a.csv", "index,y0,x0,y1,x1\n0,0,zero,1,1\n", "line 2: field x0 = 'zero' is not a number in"),
    ("a.csv", "index,y0,x0,y1,x1\n0,0,0,1.5,1\n", "line 2: field y1 = '1.5' is not a number in"),
    ("a.csv", "index,y0,x0,y1,x1\n0,0.6,0,0.4,1\n", "line 2: y0 = 0.6 must be below y1 = 0.4"),
    ("a.csv", "index,y0,x0,y1,x1\n-1,0,0,1,1\n", "line 2: field index = '-1' is not an integer >= 0"),
    ("a.csv", "index,y0,x0,y1,x1\n3,0,0,1,1\n3,0,0,1,1\n", "line 3: index 3 was given before \\(line 2\\)"),
    ("a.csv", "index,y0,x0,y1,x1,height,width\n0,0,0,1,1,0,5\n", "line 2: field height = '0' is not an integer"),
    ("a.json", '[{"index": 0, "y0": 0, "x0": 0, "y1": 1}]', "entry 0: missing field 'x1'"),
    ("a.json", '[[0, 0, 0, 1, 1], {"index": 1, "y0": 0, "x0": 0, "y1": 1, "x1": 1, "z": 2}]',
     "entry 1: unknown field 'z'"),
    ("a.json", '[[0, 0, 0, 1]]', "entry 0: expected an object"),
    ("a.json", '[[0.5, 0, 0, 1, 1]]', "entry 0: field index = 0.5 is not an integer"),
    ("a.json", '{"0": [0, 0, 1, 1]}', "expected a JSON list"),
    ("a.json", '[[0, 0, 0, 1, 1', "is not valid JSON"),
    ("a.csv", "index,y0,x0,y1,x1\n", "no ground-truth rows"),
])
def test_malformed_truth_is_refused_naming_row_and_field(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TruthError, match=message):
        read_truth(path)


def test_ccrop_diagnose(tmp_path, capsys):
    with BoxTable.create(4) as table:
        table.write([0, 1], [[0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]])
        table.save(tmp_path / "boxes.table")
    truth = tmp_path / "truth.csv"
    truth.write_text("index,y0,x0,y1,x1\n0,0,0,0.5,0.5\n1,0.25,0.25,0.75,0.75\n3,0,0,1,1\n")
    out = tmp_path / "d.json"
    assert ccrop(["diagnose", str(tmp_path / "boxes.table"), "--truth", str(truth), "--sizes", "64x96",
                  "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "box IoU with ground truth   table 1.000   full image 0.500" in printed
    figures = json.loads(out.read_text())
    assert figures["samples"] == 3 and figures["pairs"] == 12
    assert figures["mean_iou"] == pytest.approx(1.0, abs=1e-4) and figures["full_box_iou"] == pytest.approx(0.5)

    assert ccrop(["diagnose", str(tmp_path / "boxes.table"), "--truth", str(truth)]) == 2
    assert "has no height and width columns" in capsys.readouterr().err
    truth.write_text("index,y0,x0,y1,x1\n9,0,0,1,1\n")
    assert ccrop(["diagnose", str(tmp_path / "boxes.table"), "--truth", str(truth), "--sizes", "8x8"]) == 2
    assert "index 9 is not a row of the table (4 samples" in capsys.readouterr().err
    assert ccrop(["diagnose", str(tmp_path / "boxes.table"), "--truth", str(truth), "--sizes", "huge"]) == 2
    assert "neither HxW" in capsys.readouterr().err
    assert ccrop(["diagnose", str(tmp_path / "boxes.table"), "--truth", str(truth), "--sizes", str(truth)]) == 2
    assert f"--sizes {truth}: cannot read the image sizes" in capsys.readouterr().err
    truth.write_text("index,y0,x0,y1,x1\n0,0,0,1,1\n")
    assert ccrop(["diagnose", str(tmp_path / "boxes.table"), "--truth", str(truth), "--sizes", "8x8", "--json",
                  str(tmp_path / "no" / "d.json")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_ccrop_diagnose_reads_sizes_from_the_image_folder(tmp_path, capsys):
    pytest.importorskip("skimage")
    from ccrop_loaders.tools.objects_data import make_object_dataset

    data = make_object_dataset(tmp_path / "objects", 18, heldout=0, show=False)
    with BoxTable.create(18) as table:
        table.write(np.arange(18), data.boxes["train"])  # perfect localization
        table.save(tmp_path / "boxes.table")
    plain = tmp_path / "truth.csv"  # the truth without its size columns: the sizes come from the folder
    plain.write_text("\n".join(",".join(line.split(",")[:5]) for line in data.truth["train"].read_text().splitlines()))
    out = tmp_path / "d.json"
    assert ccrop(["diagnose", str(tmp_path / "boxes.table"), "--truth", str(plain), "--sizes",
                  str(data.folders["train"]), "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["mean_iou"] == pytest.approx(1.0, abs=1e-3)
    assert figures["consistency_ccrop"] == pytest.approx(figures["consistency_truth"], abs=0.03)
    assert figures["consistency_truth"] > figures["consistency_rrc"]
    own = tmp_path / "own.json"  # the truth's own size columns: the same sizes, the same figures
    assert ccrop(["diagnose", str(tmp_path / "boxes.table"), "--truth", str(data.truth["train"]), "--json",
                  str(own)]) == 0
    assert json.loads(own.read_text()) == figures
    capsys.readouterr()


# ----------------------------------------------------------------- hostile inputs (review of issue 16)


@pytest.mark.parametrize("name, data, message", [
    # indices beyond int64 were an OverflowError traceback; floats beyond 2**53 silently rounded
    ("a.csv", b"index,y0,x0,y1,x1\n1180591620717411303424,0,0,1,1\n", "line 2: field index = .* is above 9,223"),
    ("a.json", b"[[1180591620717411303424, 0, 0, 1, 1]]", "entry 0: field index = .* is above 9,223"),
    ("a.json", b"[[" + b"1" * 400 + b", 0, 0, 1, 1]]", r"entry 0: field index = '?1111.*\(400 characters\) is above"),
    ("a.csv", b"index,y0,x0,y1,x1\n1e20,0,0,1,1\n", "line 2: field index = '1e20' is too large to be exact"),
    ("a.csv", b"index,y0,x0,y1,x1\n9007199254740993.0,0,0,1,1\n", "too large to be exact"),
    ("a.csv", b"index,y0,x0,y1,x1\n1_0,0,0,1,1\n", "line 2: field index = '1_0' is not an integer >= 0"),
    ("a.csv", b"index,y0,x0,y1,x1\n0,0,0,1_0,1\n", "line 2: field y1 = '1_0' is not a number in"),
    ("a.csv", b"index,y0,x0,y1,x1,height,width\n0,0,0,1,1,99999999999,5\n", "field height = .* is above 2,147"),
    ("a.csv", b"index,y0,x0,y1,x1,height,width\n0,0,0,1,1,1e30,5\n", "field height = '1e30' is too large"),
    ("a.json", b"[[0, 0, 0, 1e400, 1]]", "entry 0: field y1 = inf is not a number"),
    ("a.json", b"[[0, 0, 0, " + b"1" * 400 + b", 1]]", "entry 0: field y1 = .* is not a number in"),
    # a JSON nested deeper than Python recurses was a RecursionError traceback
    ("a.json", b"[" * 100_000, "a.json, entry 0: JSON nested too deeply"),
    ("a.json", b"[[" + b"1" * 5000 + b", 0, 0, 1, 1]]", "a.json, entry 0 is not usable JSON: Exceeds the limit"),
    # a field over csv's size limit was a _csv.Error traceback; NUL bytes are refused at once
    ("a.csv", b"index,y0,x0,y1,x1\n0," + b"1" * 200_000 + b",0,1,1\n", "line 2: not CSV"),
    ("a.csv", b"index,y0,x0,y1,x1\n0,0\0,0,1,1\n", "holds a NUL byte \\(at byte 21\\)"),
    ("a.csv", b"index,y0,x0,y1,x1\n\xff,0,0,1,1\n", "is not UTF-8 text \\(byte 18"),
])
def test_hostile_truth_is_a_one_line_error(tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(TruthError, match=message):
        read_truth(path)


def test_bom_crlf_and_quoted_newlines_are_read(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"\xef\xbb\xbfindex,y0,x0,y1,x1\r\n\"1\",0,0,1,1\r\n0,0,0,0.5,0.5\r\n")
    t = read_truth(tmp_path / "a.csv")  # Excel's UTF-8 CSV: a BOM before the header was refused
    np.testing.assert_array_equal(t.indices, [0, 1])
    assert t.where == ["line 3", "line 2"] and t.source == str(tmp_path / "a.csv")
    (tmp_path / "a.json").write_bytes(b"\xef\xbb\xbf[[0, 0, 0, 1, 1]]")
    assert read_truth(tmp_path / "a.json").indices.tolist() == [0]
    (tmp_path / "b.csv").write_text("index,y0,x0,y1,x1\n1,0,0,1,1\n\n\"\n0\",0,0,1,1\n")
    assert read_truth(tmp_path / "b.csv").where == ["line 5", "line 2"]  # physical lines, quoted newline included


def test_truth_that_is_not_a_regular_file_is_refused_without_reading(tmp_path):
    import os
    import resource

    os.mkfifo(tmp_path / "fifo")  # read_text blocked forever on a FIFO
    with pytest.raises(TruthError, match="fifo is a FIFO, not a regular file"):
        read_truth(tmp_path / "fifo")
    with pytest.raises(TruthError, match="/dev/zero is a character device"):  # read_text allocated until killed
        read_truth("/dev/zero")
    with pytest.raises(TruthError, match="is a directory"):
        read_truth(tmp_path)
    os.symlink(tmp_path / "loop1", tmp_path / "loop2")
    os.symlink(tmp_path / "loop2", tmp_path / "loop1")
    with pytest.raises(TruthError, match="symlink loop"):
        read_truth(tmp_path / "loop1")
    with pytest.raises(TruthError, match="cannot read the ground truth .*No such file"):
        read_truth(tmp_path / "missing.csv")
    sparse = tmp_path / "sparse.csv"
    with open(sparse, "wb") as f:
        f.truncate(2 << 30)  # 2 GiB of nothing: refused by its size, nothing read
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TruthError, match="sparse.csv is 2,147,483,648 bytes; ground truth files are at most"):
        read_truth(sparse)
    with open(sparse, "wb") as f:
        f.truncate(64 << 20)  # under the limit: the first chunk's NUL stops it
    with pytest.raises(TruthError, match="holds a NUL byte \\(at byte 0\\)"):
        read_truth(sparse)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: no 2 GiB read


def test_unreadable_truth(tmp_path, monkeypatch):
    import errno

    import ccrop_loaders.tools.diagnostics as diagnostics

    path = tmp_path / "t.csv"
    path.write_text("index,y0,x0,y1,x1\n0,0,0,1,1\n")

    def denied(file, *args, **kwargs):  # what opening a mode-000 file gives anyone but root (the tests run as root)
        raise PermissionError(errno.EACCES, "Permission denied", str(file))

    monkeypatch.setattr(diagnostics, "open_regular", denied)
    with pytest.raises(TruthError, match="cannot read the ground truth .*Permission denied"):
        read_truth(path)


def test_box_diagnostics_refuses_empty_duplicate_and_oversized_input():
    boxes = np.array([[0, 0, 1, 1]] * 3, float)
    with pytest.raises(TruthError, match="no ground-truth boxes"):  # was every figure NaN
        box_diagnostics(boxes, np.zeros((0, 4)), (10, 10))
    with pytest.raises(TruthError, match="ground truth row 2: index 0 has a ground-truth box already "
                                         "\\(ground truth row 0\\)"):  # was counted twice
        box_diagnostics(boxes, boxes, (10, 10), indices=[0, 1, 0])
    with pytest.raises(ValueError, match="epochs must be one or more integers"):  # was numpy's 'need at least one'
        box_diagnostics(boxes, boxes, (10, 10), epochs=[])
    with pytest.raises(TruthError, match="from 1 to 2147483647, .* holding 10 to 1099511627776"):
        box_diagnostics(boxes, boxes, (2**40, 10))


def test_out_of_table_index_names_the_file_and_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("index,y0,x0,y1,x1\n0,0,0,1,1\n7,0,0,1,1\n")
    with pytest.raises(TruthError, match=f"{path}, line 3: index 7 is not a row of the table \\(4 samples"):
        box_diagnostics(np.array([[0, 0, 1, 1]] * 4, float), read_truth(path), (10, 10))


def test_exactly_the_coverage_counts_whatever_the_rounding():
    # 63 of 210 pixels is exactly 30%, but (0.95625 - 0.51875) * 480 rounds to 0.29999999999999993 of it
    assert object_coverage([[0, 249, 10, 63]], [[0, 0.51875, 1, 0.95625]], [[10, 480]])[0] < 0.3
    windows_at_the_object = [[0, 249, 10, 63]]
    from ccrop_loaders.tools.diagnostics import COVERAGE_TOLERANCE

    held = object_coverage(windows_at_the_object, [[0, 0.51875, 1, 0.95625]], [[10, 480]]) >= 0.3 - COVERAGE_TOLERANCE
    assert held.all()
    # through view_consistency: on 312x480 images, scale 0.65 and ratio 1 give 312x312 windows, pinned at (0, 0) by a
    # corner box; they hold columns 249-312 of an object spanning columns 249-459: 63 of 210, exactly 30%
    pinned = {"scale": (0.65, 0.65), "ratio": (1.0, 1.0)}
    truth = [[0, 0.51875, 1, 0.95625]] * 4
    sizes = [[312, 480]] * 4
    assert object_coverage([[0, 0, 312, 312]], truth[:1], sizes[:1])[0] < 0.3
    windows = sample_crops(np.array([312] * 4), np.array([480] * 4), np.array([[0, 0, 0.01, 0.01]] * 4), np.arange(4),
                           views=2, scale=(0.65, 0.65), ratio=(1.0, 1.0))
    assert (windows == [0, 0, 312, 312]).all()
    assert view_consistency([[0, 0, 0.01, 0.01]] * 4, truth, sizes, coverage=0.3, **pinned) == 1.0  # was 0.0


def test_tiny_and_extreme_images_and_determinism():
    truth = np.array([[0.25, 0.25, 0.75, 0.75]] * 6)
    one = box_diagnostics(truth, truth, (1, 1))
    assert one.consistency_rrc == one.consistency_truth == 1.0  # a 1x1 window holds every object of a 1x1 image
    thin = box_diagnostics(truth, truth, (1, 100_000))  # the central fallback: a 1x1 window, 1/50000 of the object
    assert thin.consistency_rrc == thin.consistency_ccrop == 0.0
    again = box_diagnostics(truth, truth, (1, 100_000))
    assert again == thin and box_diagnostics(truth, truth, (300, 200), seed=3) == box_diagnostics(
        truth, truth, (300, 200), seed=3)


def test_identical_disjoint_and_nested_boxes():
    a = [[0.1, 0.2, 0.7, 0.9], [0, 0, 0.5, 0.5], [0, 0, 1, 1]]
    b = [[0.1, 0.2, 0.7, 0.9], [0.5, 0.5, 1, 1], [0.25, 0.25, 0.75, 0.75]]
    assert box_iou(a, b).tolist() == [1.0, 0.0, 0.25]


def test_ccrop_diagnose_hostile_cli_inputs(tmp_path, capsys):
    import os

    with BoxTable.create(4) as table:
        table.save(tmp_path / "boxes.table")
    tab = str(tmp_path / "boxes.table")
    truth = tmp_path / "truth.csv"
    truth.write_text("index,y0,x0,y1,x1\n0,0,0,1,1\n")
    cases = [  # each was a traceback or a hang, or (--alpha) figures of NaN windows and exit 0
        (["--sizes", "99999999999999999999x5"], "height and width must be from 1 to 2,147,483,647"),
        (["--sizes", "2147483648x5"], "height and width must be from 1 to"),
        (["--sizes", "8x8", "--alpha", "1e308"], "--alpha must be from 1e-06 to 1e+08"),
        (["--sizes", "8x8", "--alpha", "3e-308"], "--alpha must be from 1e-06 to 1e+08"),
        (["--sizes", "8x8", "--coverage", "nan"], "--coverage must be in (0, 1]"),
        (["--sizes", "x" * 300], "neither HxW"),
        (["--sizes", "8x8", "--json", str(tmp_path / ("j" * 300))], "File name too long"),
    ]
    os.mkfifo(tmp_path / "fifo")
    cases += [(["--sizes", "8x8", "--json", str(tmp_path / "fifo")], "it is a FIFO, not a regular file"),
              (["--sizes", "8x8", "--json", str(tmp_path)], "it is a directory"),
              (["--sizes", "8x8", "--json", "/dev/null"], "it is a character device")]
    for extra, message in cases:
        assert ccrop(["diagnose", tab, "--truth", str(truth), *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert ccrop(["diagnose", tab, "--truth", str(tmp_path / "fifo"), "--sizes", "8x8"]) == 2
    assert "ground truth file" in capsys.readouterr().err
    # --json over a symlink: written through atomically (the link kept), no temp file left
    (tmp_path / "real.json").write_text("old")
    os.symlink("real.json", tmp_path / "link.json")
    assert ccrop(["diagnose", tab, "--truth", str(truth), "--sizes", "8x8", "--json", str(tmp_path / "link.json")]) == 0
    assert (tmp_path / "link.json").is_symlink() and json.loads((tmp_path / "real.json").read_text())["samples"] == 1
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    capsys.readouterr()


def test_sizes_from_a_folder_name_the_broken_image_and_follow_exif(tmp_path):
    from PIL import Image

    from ccrop_loaders.tools.diagnostics import image_sizes
    from ccrop_loaders.folder import load_rgb

    folder = tmp_path / "imgs"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # a phone photo turned a quarter: the loaders see it 20 high, 10 wide
    Image.new("RGB", (20, 10)).save(folder / "a.jpg", exif=exif)
    Image.new("RGB", (7, 5)).save(folder / "b.jpg")
    assert image_sizes(folder).tolist() == [list(load_rgb(folder / "a.jpg").shape[:2]), [5, 7]] == [[20, 10], [5, 7]]
    (folder / "c.jpg").write_bytes((folder / "b.jpg").read_bytes()[:30])
    with pytest.raises(ValueError, match="cannot read the size of .*c.jpg"):
        image_sizes(folder)


def test_sizes_from_a_forged_beton_are_refused_before_allocating(tmp_path):
    pytest.importorskip("ffcv")
    import struct

    from PIL import Image

    from ccrop_loaders.tools.diagnostics import image_sizes
    from ccrop_loaders.ffcv.convert import convert_folder

    (tmp_path / "imgs").mkdir()
    for i in range(3):
        Image.new("RGB", (10 + i, 8)).save(tmp_path / "imgs" / f"{i}.jpg")
    convert_folder(tmp_path / "imgs", tmp_path / "a.beton", workers=1)
    assert image_sizes(tmp_path / "a.beton").tolist() == [[8, 10], [8, 11], [8, 12]]
    data = bytearray((tmp_path / "a.beton").read_bytes())
    struct.pack_into("<Q", data, 8, 2**40)  # num_samples: numpy allocated 32 TiB before reading
    (tmp_path / "b.beton").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="declares 1,099,511,627,776 samples .* not a complete .beton"):
        image_sizes(tmp_path / "b.beton")


@pytest.mark.parametrize("text, message", [
    ("[[0, 0, 0, 1, 1] [1, 0, 0, 1, 1]]", "expected ',' or ']' after entry 0"),
    ("[[0, 0, 0, 1, 1]] x", "extra data after the list"),
    ("[[0, 0, 0, 1, 1],]", "is not valid JSON: Expecting value"),
    ("  \n ", "is not valid JSON: Expecting value"),
    ('"boxes"', "expected a JSON list of boxes, got str"),
    ("[]", "no ground-truth rows"),
])
def test_json_read_entry_by_entry_keeps_its_errors(tmp_path, text, message):
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(TruthError, match=message):
        read_truth(path)


def test_more_rows_than_the_table_are_refused_before_parsing_them(tmp_path):
    import resource
    import subprocess
    import sys

    rows = 4_000_000
    (tmp_path / "t.json").write_text("[" + ",".join(["[0,0,0,1,1]"] * rows) + "]")
    (tmp_path / "t.csv").write_text("index,y0,x0,y1,x1\n" + "0,0,0,1,1\n" * rows)
    for name in ("t.json", "t.csv"):
        with pytest.raises(TruthError, match=f"{name} holds more than 4 rows, but the table has 4 samples"):
            read_truth(tmp_path / name, max_rows=4)
    # in a fresh process: json.loads and a list of every CSV row took ~1 GB for these 48 MB
    code = ("import sys; from ccrop_loaders.tools.diagnostics import read_truth, TruthError\n"
            "try: read_truth(sys.argv[1], max_rows=4)\nexcept TruthError: pass\n")
    for name in ("t.json", "t.csv"):
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True)
        assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < max(before, 0) + 450_000  # KiB
    t = read_truth(_small(tmp_path), max_rows=2)
    assert len(t.indices) == 2  # exactly the table's count is fine


def _small(tmp_path):
    path = tmp_path / "small.csv"
    path.write_text("index,y0,x0,y1,x1\n0,0,0,1,1\n1,0,0,1,1\n")
    return path
