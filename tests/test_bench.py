"""``ccrop bench``: a quick run writes a JSON record holding every comparison with its ratio and charts that decode
to their stated size; --help; bad arguments and --device gpu without a GPU give one-line errors (exit 2)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ccrop_loaders.tools.bench import COMPARISONS, _comparisons
from ccrop_loaders.tools.cli import main

REPO = Path(__file__).resolve().parents[1]


def _ccrop(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ccrop_loaders.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_quick_run_writes_every_comparison_and_charts(tmp_path):
    pytest.importorskip("ffcv")
    pytest.importorskip("nvidia.dali")
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    from PIL import Image

    out = tmp_path / "bench"
    started = time.monotonic()
    done = _ccrop("bench", "--quick", "--out", str(out), timeout=240)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"ccrop bench --quick took {took:.0f} s")  # under a minute on 2 quiet cores
    record = json.loads((out / "bench.json").read_text())

    machine = record["machine"]
    assert machine["cpu"] and machine["cores"] >= 1 and machine["resampler_simd"] in (0, 1, 2)
    for name in ("ffcv", "numba", "numpy", "torch", "Pillow"):
        assert machine["versions"][name], name
    assert machine["versions"]["nvidia-dali-cuda120"] or machine["versions"]["nvidia-dali"]
    assert record["date"] and record["settings"]["quick"] and record["settings"]["sizes"] == [256]
    assert record["skipped"] == []

    keys = {r["key"] for r in record["results"]}
    assert {"ffcv_ccrop", "ffcv_rrc", "ffcv_ccrop_2v", "ffcv_rrc_x2", "ffcv_decode_only", "bare_libjpeg",
            "bare_pillow", "original_pil", "dali_cpu_ccrop_once", "dali_cpu_rrc_random_crop",
            "dali_cpu_rrc_decode_once"} <= keys
    assert all(r["rate"] > 0 and r["threads"] == record["settings"]["threads"] for r in record["results"])
    expected = {key for key, *_ in COMPARISONS if "gpu" not in key}
    comparisons = {c["key"]: c for c in record["comparisons"]}
    assert set(comparisons) == expected
    for c in comparisons.values():
        assert c["ratio"] > 0 and c["ratio"] == pytest.approx(c["ours_rate"] / c["baseline_rate"]), c

    views = {(r["threads"], r["views"]) for r in record["scaling"] if r["backend"] == "ffcv"}
    threads = record["settings"]["threads"]
    assert {(1, 1), (1, 2), (threads, 1), (threads, 2)} <= views

    assert set(record["files"]) == {"chart", "scaling"}
    for entry in record["files"].values():
        with Image.open(out / entry["path"]) as img:
            img.load()
            assert img.size == (entry["width"], entry["height"])
    assert "ratio FFCV two views" in done.stdout and str(out / "bench.json") in done.stdout


def test_help():
    done = _ccrop("bench", "--help")
    assert done.returncode == 0
    for option in ("--quick", "--out", "--images", "--threads", "--sizes", "--device", "--scaling"):
        assert option in done.stdout


@pytest.mark.parametrize("args,message", [
    (["--threads", "0"], "argument --threads: must be at least 1, got 0"),
    (["--threads", "two"], "argument --threads: must be an integer"),
    (["--sizes", "abc"], "argument --sizes: must be comma-separated integers"),
    (["--sizes", "256,16"], "argument --sizes: must be at least 32"),
    (["--images", "2"], "argument --images: must be at least 8"),
    (["--device", "tpu"], "argument --device: invalid choice"),
])
def test_bad_arguments_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ccrop bench: {message}") and err.count("\n") == 1, err


def test_gpu_without_gpu_one_line(tmp_path):
    pytest.importorskip("nvidia.dali")
    from ccrop_loaders.tools.bench.contenders import dali_gpu_count

    if dali_gpu_count() > 0:
        pytest.skip("a GPU is present")
    done = _ccrop("bench", "--device", "gpu", "--quick", "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.startswith("ccrop bench: --device gpu: no CUDA GPU") and done.stderr.count("\n") == 1, \
        done.stderr
    assert not (tmp_path / "out").exists()  # refused before anything is made


def test_comparison_with_a_missing_contender_has_no_ratio():
    results = [{"size": 256, "key": "ffcv_ccrop", "rate": 10.0}, {"size": 256, "key": "ffcv_rrc", "rate": 8.0},
               {"size": 256, "key": "dali_cpu_ccrop_once", "rate": 5.0}]
    out = {c["key"]: c for c in _comparisons(results, [256], "cpu")}
    assert out["ffcv_one_view"]["ratio"] == pytest.approx(1.25)
    assert out["dali_two_views_cpu"]["ratio"] is None
    assert out["dali_two_views_cpu"]["missing"] == ["dali_cpu_ccrop_slice", "dali_cpu_rrc_decode_once",
                                                    "dali_cpu_rrc_random_crop"]
    assert "dali_two_views_gpu" not in out
    assert "dali_two_views_gpu" in {c["key"] for c in _comparisons(results, [256], "gpu")}
