"""The small trainer end to end on demo data: warm-up, localization, ContrastiveCrop, checkpoint, resume."""
import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")

from ccrop_loaders.tools.sample_data import make_image_folder  # noqa: E402


@pytest.mark.parametrize("backend, method", [("ffcv", "moco"), ("dali", "simclr")])
def test_tiny_run_localizes_trains_and_resumes(backend, method, tmp_path):
    pytest.importorskip("ffcv" if backend == "ffcv" else "nvidia.dali")
    from pipelines.train_ssl import main

    data = tmp_path / "images"
    make_image_folder(data, 48, shorter_side=(80, 120))
    ckpt = tmp_path / "run" / "ckpt.pt"
    common = ["--backend", backend, "--method", method, "--tiny", "--data", str(data), "--checkpoint", str(ckpt)]
    first = main(common)
    assert first["localized_at"] == [1, 2]
    assert all(math.isfinite(loss) for loss in first["losses"]) and len(first["losses"]) == 4
    moved = np.abs(first["boxes_after"] - first["boxes_before"]).max(axis=1) > 1e-3
    assert moved.mean() > 0.5  # the localization pass rewrote the boxes
    assert first["use_boxes"] and first["table_epoch"] == 3
    assert sorted(first["boxes_at"]) == [1, 2] and np.array_equal(first["boxes_at"][2], first["boxes_after"])
    assert len(first["seconds"]["train"]) == 4 and len(first["seconds"]["localize"]) == 2
    health = first["health"]  # issue 24.4: each pass's box health, the second against the first
    assert sorted(health) == [1, 2] and health[1].changed_share > 0.5 and health[2].changed_share is not None
    assert abs(health[2].mean_area - float(np.mean((first["boxes_after"][:, 2] - first["boxes_after"][:, 0])
                                                   * (first["boxes_after"][:, 3] - first["boxes_after"][:, 1])))) < 1e-3

    resumed = main([*common, "--resume", "--epochs", "5"])
    np.testing.assert_array_equal(resumed["boxes_before"], first["boxes_after"])  # rows came back
    assert len(resumed["losses"]) == 1 and resumed["use_boxes"] and resumed["table_epoch"] == 4

    other = tmp_path / "other-images"
    make_image_folder(other, 48, shorter_side=(80, 120), seed=9)
    with pytest.raises(SystemExit, match="trained on other images"):
        main([*common[:-4], "--data", str(other), "--checkpoint", str(ckpt), "--resume", "--epochs", "6"])
    if backend == "ffcv":  # refused before converting: the run's .beton is still the one of its images
        record = json.loads((ckpt.parent / "train.beton.source.json").read_text())
        assert record["source"] == str(data.resolve())


def test_resume_without_a_checkpoint_fails_before_any_work(tmp_path, capsys):
    from pipelines.train_ssl import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--tiny", "--checkpoint", str(tmp_path / "missing.pt"), "--resume"])
    assert "there is no checkpoint at" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_tiny_batches_cover_every_sample_on_any_number_of_ranks():
    from pipelines.train_ssl import tiny_batch_size

    for ranks in (1, 2, 3, 4, 6):
        batch = tiny_batch_size(48, ranks)
        assert (48 // ranks) % batch == 0 and batch <= 16
    assert tiny_batch_size(48, 1) == 16 and tiny_batch_size(48, 2) == 12


def test_a_missing_data_folder_is_refused_and_nothing_is_written(tmp_path):
    from pipelines.train_ssl import main

    with pytest.raises(SystemExit, match="no image folder at"):
        main(["--tiny", "--data", str(tmp_path / "typo"), "--checkpoint", str(tmp_path / "run" / "ckpt.pt")])
    assert not any(tmp_path.iterdir())
