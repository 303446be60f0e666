"""``ccrop show`` and ``ccrop table`` (ccrop_loaders/inspection.py) on demo data with known boxes."""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")
torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from ccrop_loaders import FULL_BOX, BoxTable, sample_crop, table_state  # noqa: E402
from ccrop_loaders.tools.cli import main  # noqa: E402
from ccrop_loaders.tools.inspection import (InspectError, read_table, show_figsize,  # noqa: E402
                                      view_windows)
from ccrop_loaders.tools.sample_data import make_image_folder  # noqa: E402

# Three full boxes, three others (areas 0.35, 0.25, 0.24; aspects 1.4, 1.0, 0.667).
BOXES = np.array([[0, 0, 1, 1], [0.1, 0.2, 0.6, 0.9], [0, 0, 1, 1], [0.25, 0.25, 0.75, 0.75], [0, 0, 1, 1],
                  [0.3, 0.1, 0.9, 0.5]])
MOVED = ([1, 3], [[0, 0, 1, 1], [0.2, 0.2, 0.7, 0.8]])  # two rows changed between table A and B


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    make_image_folder(root / "images", 6, shorter_side=(60, 90))
    with BoxTable.create(6) as table:
        table.write(np.arange(6), BOXES)
        table.epoch, table.seed = 3, 7
        table.save(root / "a.boxes")
        torch.save({"boxes": table_state(table), "epoch": 3}, root / "a.pt")
        table.write(*MOVED)
        table.save(root / "b.boxes")
    with BoxTable.create(8) as table:
        table.save(root / "eight.boxes")
    return root


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def bins(text: str, heading: str) -> dict[str, int]:
    """Histogram rows after ``heading`` in a report: label -> count."""
    block = text.split(heading, 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    return {m.group(1): int(m.group(2)) for m in (re.match(r"\s+(.+?)\s+(\d+)(?:\s+#+)?$", line) for line in block)
            if m}


@pytest.mark.parametrize("source", ["a.boxes", "a.pt"])
def test_table_report_counts(data, capsys, source):
    rc, out, err = run(capsys, "table", data / source)
    assert rc == 0 and err == ""
    assert re.search(r"samples\s+6\n", out) and re.search(r"epoch\s+3\n", out) and re.search(r"seed\s+7\n", out)
    assert re.search(r"use_boxes\s+True", out) and "writes" not in out  # writes: live tables only
    assert "full boxes  3 of 6 (50.0%)" in out
    areas = bins(out, "box area (fraction of the image)")
    assert len(areas) == 10 and sum(areas.values()) == 6
    assert areas["[0.20, 0.30)"] == 2 and areas["[0.30, 0.40)"] == 1 and areas["[0.90, 1.00]"] == 3
    aspects = bins(out, "aspect ratio")
    assert len(aspects) == 10 and aspects["[1.00, 1.32)"] == 4 and aspects["[1.32, 1.74)"] == 1
    assert aspects["[0.57, 0.76)"] == 1


def test_table_live_and_plot(data, capsys, tmp_path):
    name = f"ccrop-test-inspect-{os.getpid()}-{secrets.token_hex(3)}"
    with BoxTable.create(6, name=name) as table:
        table.write(np.arange(6), BOXES)
        table.write([0], [[0.5, 0.5, 1, 1]])
        rc, out, err = run(capsys, "table", name, "--plot", tmp_path / "hist.png")
        assert np.allclose(table.read()[0], [0.5, 0.5, 1, 1], atol=1e-4) and table.writes == 2  # read, not changed
    assert rc == 0 and err == ""
    assert f"live table {name}" in out and re.search(r"writes\s+2\n", out) and "full boxes  2 of 6" in out
    assert "wrote" in out and "(1000x350 pixels)" in out
    with Image.open(tmp_path / "hist.png") as png:
        assert png.size == (1000, 350)


def test_table_diff(data, capsys):
    rc, out, err = run(capsys, "table", "--diff", data / "a.pt", data / "b.boxes")
    assert rc == 0 and err == ""
    assert "moved       2 of 6 boxes (33.3%)" in out and "full boxes  3 -> 4" in out
    # row 1 (0.1, 0.2, 0.6, 0.9) -> full: largest change 0.4, IoU 0.35; row 3: 0.05 each, IoU 0.225 / 0.325
    assert "largest coordinate change mean 0.2250, median 0.2250, max 0.4000" in out
    assert "IoU old/new               mean 0.5211, median 0.5211, min 0.3500" in out
    rc, out, _ = run(capsys, "table", "--diff", data / "a.boxes", data / "a.pt")
    assert rc == 0 and "moved       0 of 6 boxes" in out and "IoU" not in out


def test_show_folder(data, capsys, tmp_path):
    out_png = tmp_path / "show.png"
    rc, out, err = run(capsys, "show", data / "a.pt", data / "images", "--samples", 3, "--views", 3, "--dpi", 40,
                       "--size", 32, "--out", out_png)
    assert rc == 0 and err == ""
    width_in, height_in = show_figsize(3, 3)
    expected = (round(width_in * 40), round(height_in * 40))
    assert expected == (390, 300)  # (3 + 2.25 * 3) x (0.75 + 2.25 * 3) inches at 40 dpi
    with Image.open(out_png) as png:
        assert png.size == expected
    assert f"({expected[0]}x{expected[1]} pixels)" in out and "3 views, epochs 3-6" in out
    rc, out, _ = run(capsys, "show", data / "a.boxes", data / "images", "--indices", "0,5", "--epochs", 1, "--dpi",
                     20, "--out", out_png)
    assert rc == 0 and "samples 0, 5" in out and "epochs 3-3" in out
    with Image.open(out_png) as png:
        assert png.size == (round(show_figsize(2, 2)[0] * 20), round(show_figsize(2, 2)[1] * 20))


def test_windows_follow_the_table(data):
    snap = read_table(data / "a.boxes")
    got = view_windows(snap, 1, 80, 100, views=2, epochs=[3, 4], alpha=0.6)
    assert got == [[sample_crop(80, 100, BOXES[1], alpha=0.6, seed=7, epoch=e, index=1, view=v) for v in range(2)]
                   for e in (3, 4)]
    snap.use_boxes = False  # warm-up: plain RandomResizedCrop
    got = view_windows(snap, 1, 80, 100, views=1, epochs=[3], alpha=0.6)
    assert got == [[sample_crop(80, 100, FULL_BOX, alpha=1.0, seed=7, epoch=3, index=1, view=0)]]


def test_show_beton(data, capsys, tmp_path):
    pytest.importorskip("ffcv")
    from ccrop_loaders.ffcv.convert import convert_folder

    beton = tmp_path / "raw.beton"
    convert_folder(data / "images", beton, workers=1, write_mode="raw")
    capsys.readouterr()  # convert's progress bars
    from_beton, from_folder = tmp_path / "beton.png", tmp_path / "folder.png"
    for images, out_png in ((beton, from_beton), (data / "images", from_folder)):
        rc, out, err = run(capsys, "show", data / "a.boxes", images, "--samples", 2, "--dpi", 30, "--out", out_png)
        assert rc == 0 and err == "", err
    with Image.open(from_beton) as a, Image.open(from_folder) as b:  # raw pixels: the same picture
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_show_refuses_a_forged_beton_before_allocating(data, capsys, tmp_path):
    pytest.importorskip("ffcv")
    import struct

    from ccrop_loaders.ffcv.convert import convert_folder

    beton = tmp_path / "a.beton"
    convert_folder(data / "images", beton, workers=1)
    forged = bytearray(beton.read_bytes())
    struct.pack_into("<Q", forged, 8, 2**40)  # num_samples: FFCV's reader allocated 32 TiB of metadata for it
    (tmp_path / "b.beton").write_bytes(bytes(forged))
    capsys.readouterr()
    rc, out, err = run(capsys, "show", data / "a.boxes", tmp_path / "b.beton", "--out", tmp_path / "x.png")
    assert rc == 2 and "declares 1,099,511,627,776 samples" in err and "not a complete .beton" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["table", "{d}/missing.pt"], "no such file: {d}/missing.pt"),
    (["table", "no-such-table-{pid}"], "no file 'no-such-table-{pid}', and no live box table of that name"),
    (["table", "{d}/images"], "is a folder"),
    (["table", "{d}/images/astronaut/00000.jpg"], "is neither a box table file"),
    (["table"], "give one table"),
    (["table", "--diff", "{d}/a.boxes", "{d}/eight.boxes"],
     "cannot compare tables of different sizes: {d}/a.boxes has 6 samples, {d}/eight.boxes has 8"),
    (["show", "{d}/a.boxes", "{d}/images", "--samples", "0"], "--samples must be at least 1, got 0"),
    (["show", "{d}/a.boxes", "{d}/images", "--views", "0"], "--views must be an integer from 1 to 16"),
    (["show", "{d}/a.boxes", "{d}/images", "--views", "1000000"], "--views must be an integer from 1 to 16"),
    (["show", "{d}/a.boxes", "{d}/images", "--epochs", "100000000"], "--epochs must be an integer from 1 to 64"),
    (["show", "{d}/a.boxes", "{d}/images", "--size", "100000"], "--size must be an integer from 8 to 2048"),
    (["show", "{d}/a.boxes", "{d}/images", "--dpi", "100000"], "--dpi must be an integer from 10 to 600"),
    (["table", "{d}/a.boxes", "--bins", "100000000"], "--bins must be from 1 to 1000"),
    (["table", "{d}/a.boxes", "--plot", "{d}/nodir/h.png"], "no folder"),
    (["show", "{d}/a.boxes", "{d}/nowhere"], "no image folder or .beton at {d}/nowhere"),
    (["show", "{d}/eight.boxes", "{d}/images"], "the table has 8 samples but"),
    (["show", "{d}/a.boxes", "{d}/images", "--indices", "6"], "index 6 is out of range"),
    (["show", "{d}/a.boxes", "{d}/images", "--out", "{d}/no/dir/x.png"], "no folder {d}/no/dir"),
    (["show", "no-such-table-{pid}", "{d}/images"], "no live box table of that name"),
    (["show", "{d}/a.boxes", "{d}/images", "--seed", "-1"], "--seed must be an integer from 0 to"),
    (["show", "{d}/a.boxes", "{d}/images", "--indices", "99999999999999999999"],
     "--indices: index 99999999999999999999 is out of range for a table of 6 samples"),
    (["show", "{d}/a.boxes", "{d}/images", "--indices", "-99999999999999999999"], "--indices: index -9999"),
    (["show", "{d}/a.boxes", "{d}/images", "--alpha", "1e308"], "--alpha must be from 1e-06 to 1e+08"),
    (["show", "{d}/a.boxes", "{d}/images", "--alpha", "3e-308"], "--alpha must be from 1e-06 to 1e+08"),
    (["show", "{d}/a.boxes", "{d}/images", "--alpha", "nan"], "--alpha must be from 1e-06 to 1e+08"),
    (["table", "x" * 300], "File name too long"),
    (["table", "{d}/" + "x" * 300 + ".pt"], "File name too long"),
    (["show", "{d}/a.boxes", "{d}/" + "y" * 300], "File name too long"),
    (["show", "{d}/a.boxes", "{d}/images", "--out", "{d}/" + "z" * 300 + ".png"], "File name too long"),
    (["table", "{d}/a.boxes", "--plot", "{d}/" + "z" * 300 + ".png"], "File name too long"),
])
def test_errors_are_one_line(data, capsys, argv, message):
    fill = lambda s: s.format(d=data, pid=os.getpid())  # noqa: E731
    rc, out, err = run(capsys, *map(fill, argv))
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"ccrop {argv[0]}: "), err
    assert fill(message) in err


def test_an_image_that_does_not_decode_is_named(data, capsys, tmp_path):
    """A truncated JPEG in the folder was ``OSError: Truncated File Read`` (no file named), a traceback."""
    import shutil

    shutil.copytree(data / "images", tmp_path / "images")
    files = sorted((tmp_path / "images").rglob("*.jpg"))
    damaged = files[2]
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    rc, out, err = run(capsys, "show", data / "a.boxes", tmp_path / "images", "--indices", "2", "--dpi", 30,
                       "--out", tmp_path / "x.png")
    assert rc == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"ccrop show: sample 2: cannot decode {damaged}"), err
    assert not (tmp_path / "x.png").exists()


def test_a_zeroed_jpeg_inside_a_beton_names_the_sample(data, capsys, tmp_path):
    """A zeroed JPEG inside a .beton was ``UnidentifiedImageError``, a traceback naming no sample."""
    pytest.importorskip("ffcv")
    from ccrop_loaders.ffcv.convert import convert_folder
    from ccrop_loaders.tools.inspection import read_beton_images

    beton = tmp_path / "a.beton"
    convert_folder(data / "images", beton, workers=1)
    capsys.readouterr()
    meta, alloc = read_beton_images(beton, with_allocation=True)
    ptr = int(meta[4]["data_ptr"])
    size = int(alloc["size"][np.flatnonzero(alloc["ptr"] == ptr)[0]])
    with open(beton, "r+b") as f:
        f.seek(ptr)
        f.write(bytes(size))
    rc, out, err = run(capsys, "show", data / "a.boxes", beton, "--indices", "1,4", "--dpi", 30,
                       "--out", tmp_path / "x.png")
    assert rc == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"ccrop show: {beton}: sample 4, field image: cannot decode its JPEG"), err


@pytest.mark.parametrize("command", ["show", "table"])
def test_help(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: ccrop {command}")


def test_read_table_checks_checkpoints(tmp_path):
    torch.save({"model": {}}, tmp_path / "nobox.pt")
    with pytest.raises(InspectError, match="has no box table"):
        read_table(tmp_path / "nobox.pt")


def test_no_ffcv_or_dali_import():
    code = ("import sys, ccrop_loaders.inspection, ccrop_loaders.cli; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('ffcv', 'nvidia', 'torch', 'matplotlib')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_checkpoints_are_checked_as_load_state_dict_checks_them(tmp_path):
    """One check of a table state (core.table.check_state) for ccrop table and BoxTable.load_state_dict."""
    with BoxTable.create(4) as table:
        state = table_state(table)
    bad_row = {**state, "rows": state["rows"].clone()}
    bad_row["rows"][2] = (1 << 32) - 0 + 5  # y0 = 5/65535 > y1 = 1/65535
    for name, broken, match in (("version", {**state, "version": 2}, "format version 2"),
                                ("row", bad_row, "row 2 has y0 > y1"),
                                ("count", {**state, "num_samples": 5}, "declares 5 samples but holds 4")):
        torch.save({"boxes": broken}, tmp_path / f"{name}.pt")
        with pytest.raises(InspectError, match=match):
            read_table(tmp_path / f"{name}.pt")
        with BoxTable.create(4) as other, pytest.raises(ValueError, match=match):
            other.load_state_dict({**broken, "rows": broken["rows"].numpy()})
