"""The method-validation benchmark, --quick: both arms through the recipe's trainer, every figure in the JSON."""
import json
import math

import pytest

pytest.importorskip("ffcv")
pytest.importorskip("torch")
pytest.importorskip("skimage")

from benchmarks.method_bench import knn_accuracy, main, table  # noqa: E402


def test_quick_run_reports_every_figure(tmp_path, capsys):
    result = main(["--quick", "--no-dali", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "method_bench.json").read_text())
    assert saved["settings"]["seeds"] == [0] and [(r["crop"], r["backend"]) for r in saved["runs"]] == [
        ("rrc", "ffcv"), ("ccrop", "ffcv")]
    rrc, ccrop = saved["runs"]
    assert rrc["localized_at"] == [] and rrc["seconds"]["localize"] == 0
    assert ccrop["localized_at"] == [1] and list(saved["iou_per_pass"]) == ["1"]
    assert 0 < saved["full_box_iou"] < 0.45 and 0 <= saved["iou_per_pass"]["1"]["mean"] <= 1
    c = saved["consistency"]
    assert c["ccrop_truth"]["mean"] > c["rrc"]["mean"] > 0  # true boxes keep the object in both views more often
    for arm in ("rrc", "ccrop", "random_encoder"):
        assert 0 <= saved["knn_accuracy"][arm]["mean"] <= 1
    assert 0 < saved["seconds"]["localize_share"]["mean"] < 1 and math.isfinite(saved["seconds"]["total"])
    assert "k-NN accuracy, held-out images" in capsys.readouterr().out
    assert table(result).splitlines()[0].startswith("method validation: 180 images, 3 epochs, 1 seed(s)")
    assert not [p for p in tmp_path.iterdir() if p.name != "method_bench.json"]  # the data was temporary


def test_knn_votes_by_weighted_neighbours():
    import numpy as np
    import torch

    train = torch.eye(3)
    labels = np.array([0, 1, 1])
    test = torch.tensor([[1.0, 0, 0], [0, 0.6, 0.8]])
    assert knn_accuracy(train, labels, test, np.array([0, 1]), 2) == 1.0
    assert knn_accuracy(train, labels, test, np.array([1, 1]), 2) == 0.5
