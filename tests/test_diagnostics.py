"""Box diagnostics: exact IoU and coverage on known boxes, ground-truth files and their errors, ``ccrop diagnose``."""
import json

import numpy as np
import pytest

from ccrop_loaders import BoxTable
from ccrop_loaders.cli import main as ccrop
from ccrop_loaders.diagnostics import (
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
    with pytest.raises(TruthError, match="row 1 has zero area"):
        box_diagnostics(boxes, [[0, 0, 1, 1], [0.5, 0.2, 0.5, 0.4]], (10, 10))
    with pytest.raises(TruthError, match="index 5 is not a row of the table"):
        box_diagnostics(boxes, [[0, 0, 1, 1]], (10, 10), indices=[5])
    with pytest.raises(TruthError, match="image sizes are needed"):
        box_diagnostics(boxes, [[0, 0, 1, 1]])
    with pytest.raises(TruthError, match="image_sizes must be positive"):
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
    from ccrop_loaders.objects_data import make_object_dataset

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
