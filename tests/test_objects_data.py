"""The object dataset: deterministic, boxes on the pasted objects, truth files the diagnostics read."""
import numpy as np
import pytest

pytest.importorskip("skimage")

from ccrop_loaders.tools.diagnostics import read_truth  # noqa: E402
from ccrop_loaders.folder import list_images  # noqa: E402
from ccrop_loaders.tools.objects_data import OBJECTS, make_object_dataset  # noqa: E402


def test_dataset_is_deterministic_balanced_and_its_truth_matches_the_files(tmp_path):
    data = make_object_dataset(tmp_path / "a", 27, heldout=9, seed=3, show=False)
    again = make_object_dataset(tmp_path / "b", 27, heldout=9, seed=3, show=False)
    assert data.classes == sorted(OBJECTS)
    for split, count in (("train", 27), ("heldout", 9)):
        np.testing.assert_array_equal(data.boxes[split], again.boxes[split])
        samples, classes = list_images(data.folders[split])
        assert classes == data.classes and len(samples) == count
        np.testing.assert_array_equal(data.labels[split], [label for _, label in samples])
        assert np.bincount(data.labels[split]).tolist() == [count // 9] * 9
        areas = np.prod(data.boxes[split][:, 2:] - data.boxes[split][:, :2], axis=1)
        assert areas.min() > 0.02 and areas.max() <= 0.45  # 5-40% drawn; the mask's box is a little smaller
        assert data.sizes[split].min() >= 64 and data.sizes[split].max() <= 128
        truth = read_truth(data.truth[split])
        np.testing.assert_array_equal(truth.indices, np.arange(count))
        np.testing.assert_allclose(truth.boxes, data.boxes[split], atol=1e-6)
        np.testing.assert_array_equal(truth.sizes, data.sizes[split])
    a = (tmp_path / "a" / "train" / "cat" / "00002.jpg").read_bytes()
    assert a == (tmp_path / "b" / "train" / "cat" / "00002.jpg").read_bytes()
    other = make_object_dataset(tmp_path / "c", 27, heldout=0, seed=4, show=False)
    assert "heldout" not in other.folders and not np.array_equal(other.boxes["train"], data.boxes["train"])


def test_a_folder_with_other_files_is_refused_and_a_rerun_is_fine(tmp_path, capsys):
    from ccrop_loaders.tools.objects_data import main

    first = make_object_dataset(tmp_path / "d", 12, heldout=0, show=False)
    again = make_object_dataset(tmp_path / "d", 12, heldout=0, show=False)  # same files rewritten
    np.testing.assert_array_equal(first.boxes["train"], again.boxes["train"])
    # fewer images than before: the old 00009.jpg.. stayed and the listing had files this run never made (KeyError)
    with pytest.raises(ValueError, match="already holds astronaut/00009.jpg, which this run would not write"):
        make_object_dataset(tmp_path / "d", 5, heldout=0, show=False)
    (tmp_path / "e" / "train" / "aaa").mkdir(parents=True)  # a class folder of other data shifted every label
    with pytest.raises(ValueError, match="already holds aaa"):
        make_object_dataset(tmp_path / "e", 9, heldout=0, show=False)
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "e"), "--images", "9", "--heldout", "0"])
    assert exit_.value.code == 2 and "already holds aaa" in capsys.readouterr().err
    assert list((tmp_path / "e" / "train").iterdir()) == [tmp_path / "e" / "train" / "aaa"]  # nothing written


def test_one_image_and_tiny_sizes():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        one = make_object_dataset(Path(d) / "one", 1, heldout=0, show=False)
        assert one.labels["train"].tolist() == [0] and list_images(one.folders["train"])[1] == ["astronaut"]
        tiny = make_object_dataset(Path(d) / "tiny", 18, heldout=0, size=(8, 8), show=False)
        assert (tiny.sizes["train"] == 8).all() and (tiny.boxes["train"][:, 2:] > tiny.boxes["train"][:, :2]).all()


def test_the_folder_check_does_not_list_every_image_to_come(tmp_path):
    import time

    from ccrop_loaders.tools.objects_data import _check_split_folder

    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "00002.jpg").touch()
    start = time.perf_counter()
    _check_split_folder(tmp_path, sorted(OBJECTS), 10**12)  # a set of every path to come took memory and time
    assert time.perf_counter() - start < 1
    for bad in ("cat/00003.jpg", "cat/2.jpg", "cat/00002.png", "cat/x/00002.jpg", "zebra"):
        path = tmp_path / bad
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        with pytest.raises(ValueError, match="already holds"):
            _check_split_folder(tmp_path, sorted(OBJECTS), 10**12)
        path.unlink()
        if path.parent != tmp_path / "cat" and path.parent != tmp_path:
            path.parent.rmdir()
    with pytest.raises(ValueError, match="already holds cat"):  # class 2 is not written with 2 images
        _check_split_folder(tmp_path, sorted(OBJECTS), 2)


def test_truth_csv_is_replaced_atomically_and_a_fifo_is_refused(tmp_path):
    import os

    from ccrop_loaders.tools.objects_data import write_truth

    os.mkfifo(tmp_path / "t.csv")  # open(..., "w") blocked forever
    with pytest.raises(ValueError, match="it is a FIFO"):
        write_truth(tmp_path / "t.csv", np.array([[0, 0, 1, 1.0]]))
    write_truth(tmp_path / "u.csv", np.array([[0, 0, 1, 1.0]]), np.array([[8, 9]]))
    assert (tmp_path / "u.csv").read_bytes() == (b"index,y0,x0,y1,x1,height,width\r\n"
                                                 b"0,0.000000,0.000000,1.000000,1.000000,8,9\r\n")


def _outside(tmp_path):
    """A file and a folder outside the output folder, which no run may touch."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.bin").write_bytes(b"precious")
    return outside


@pytest.mark.parametrize("where", ["train/astronaut/00000.jpg", "train/cat", "train", "train_truth.csv",
                                   "heldout_truth.csv"])
def test_a_symlink_in_the_output_folder_is_refused_never_written_through(tmp_path, where):
    """A link inside OUT pointing outside was overwritten with JPEG bytes (or the truth CSV)."""
    import os

    outside = _outside(tmp_path)
    out = tmp_path / "out"
    link = out / where
    link.parent.mkdir(parents=True, exist_ok=True)
    target = outside if where in ("train/cat", "train") else outside / "precious.bin"
    os.symlink(target, link)
    with pytest.raises(ValueError, match=f"{link} is a symlink: objects_data writes only its own"):
        make_object_dataset(out, 9, heldout=1, show=False)
    assert sorted(p.name for p in outside.iterdir()) == ["precious.bin"]
    assert (outside / "precious.bin").read_bytes() == b"precious"
    assert [p for p in out.rglob("*") if not p.is_symlink() and p.is_file()] == []  # nothing written


def test_a_fifo_in_the_output_folder_is_refused_naming_it(tmp_path, capsys):
    import os

    from ccrop_loaders.tools.objects_data import main

    fifo = tmp_path / "out" / "train" / "astronaut" / "00000.jpg"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "out"), "--images", "9", "--heldout", "0"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1, err
    assert f"{fifo} is a FIFO: objects_data writes only its own regular files" in err


def test_images_are_written_beside_and_renamed_not_in_place(tmp_path):
    """A hard link (a regular file) in OUT keeps the outside file's bytes: the run renames a new file over the
    name, it does not open the old one and write into it."""
    import os

    outside = _outside(tmp_path)
    first = make_object_dataset(tmp_path / "out", 9, heldout=0, show=False)
    image = tmp_path / "out" / "train" / "cat" / "00002.jpg"
    made = image.read_bytes()
    image.unlink()
    os.link(outside / "precious.bin", image)
    again = make_object_dataset(tmp_path / "out", 9, heldout=0, show=False)
    assert (outside / "precious.bin").read_bytes() == b"precious"
    assert image.read_bytes() == made and os.stat(image).st_nlink == 1
    np.testing.assert_array_equal(first.boxes["train"], again.boxes["train"])
    assert not [p for p in (tmp_path / "out").rglob("*.tmp")]


@pytest.mark.parametrize("argv, message", [(["--seed", "-1"], "--seed must be at least 0, got -1"),
                                           (["--images", "0"], "--images must be at least 1, got 0"),
                                           (["--heldout", "-2"], "--heldout must be at least 0, got -2")])
def test_bad_options_are_one_line_naming_the_option(tmp_path, capsys, argv, message):
    from ccrop_loaders.tools.objects_data import main

    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err == f"python -m ccrop_loaders.objects_data: {message}\n", err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        make_object_dataset(tmp_path / "out", 9, seed=-1, show=False)


def test_sample_data_never_writes_through_a_link_and_names_its_options(tmp_path, capsys):
    """The demo folder writer had the same faults: a link in OUT written through, ``--seed -1`` numpy's error."""
    import os

    from ccrop_loaders.tools.sample_data import main, make_image_folder

    outside = _outside(tmp_path)
    made = make_image_folder(tmp_path / "out", 3, shorter_side=(20, 30))
    first = made[1][0]
    kept = first.read_bytes()
    first.unlink()
    os.link(outside / "precious.bin", first)  # a regular file sharing the outside file's bytes: renamed over
    assert make_image_folder(tmp_path / "out", 3, shorter_side=(20, 30)) == made
    assert first.read_bytes() == kept and (outside / "precious.bin").read_bytes() == b"precious"
    first.unlink()
    os.symlink(outside / "precious.bin", first)
    with pytest.raises(ValueError, match=f"{first} is a symlink: sample_data writes only its own"):
        make_image_folder(tmp_path / "out", 3, shorter_side=(20, 30))
    assert (outside / "precious.bin").read_bytes() == b"precious" and first.is_symlink()
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "other"), "--seed", "-1"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err == "python -m ccrop_loaders.sample_data: --seed must be at least 0, got -1\n"
    assert not (tmp_path / "other").exists()
