"""``ccrop bench``: a quick run writes a JSON record holding every comparison with its ratio and charts that decode
to their stated size; --help; bad arguments and --device gpu without a GPU give one-line errors (exit 2)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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


def _bench_args(out, *extra: str):
    """``ccrop bench``'s parsed arguments, as the CLI hands them to ``run``."""
    import argparse

    from ccrop_loaders.tools.bench import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--out", str(out), *extra])


def _refused_fast(args, message: str) -> None:
    from ccrop_loaders.tools.bench import BenchError, run

    started = time.monotonic()
    with pytest.raises(BenchError) as error:
        run(args)
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)
    assert time.monotonic() - started < 5, "refused only after working"


@pytest.mark.parametrize("make, message", [
    (lambda out: os.mkfifo(out / "bench.json"), "bench.json is a FIFO, not a regular file"),
    (lambda out: (out / "scaling.png").mkdir(), "scaling.png is a directory"),
    (lambda out: os.symlink("/dev/null", out / "bench.png"), "bench.png is a character device"),
])
def test_outputs_the_run_cannot_replace_are_refused_before_it(tmp_path, make, message):
    """A FIFO named bench.json: the whole run completed, then blocked forever writing it."""
    out = tmp_path / "out"
    out.mkdir()
    make(out)
    _refused_fast(_bench_args(out, "--quick"), message)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_folder_it_cannot_write_in_is_refused_before_the_run():
    """``--out /sys/kernel`` ran 48 s, then ended in a PermissionError traceback."""
    if not os.path.isdir("/sys/kernel"):
        pytest.skip("no /sys/kernel")
    _refused_fast(_bench_args("/sys/kernel", "--quick"), "cannot write in --out /sys/kernel")


@pytest.mark.parametrize("extra, message", [
    (["--quick", "--batch-size", "100000"], "--batch-size must be at most --images (64), got 100,000"),
    (["--images", "8", "--batch-size", "9"], "--batch-size must be at most --images (8), got 9"),
    (["--images", "100000000"], "--images must be at most 20,000, got 100,000,000"),
    (["--threads", "100000"], "--threads must be at most"),
    (["--rounds", "1000000"], "--rounds must be at most 100"),
    (["--passes", "1000000"], "--passes must be at most 100"),
])
def test_sizes_and_counts_are_bounded_before_anything_is_made(tmp_path, extra, message):
    """``--batch-size 100000`` with 8 images reached 24 GB resident before the OOM killer."""
    _refused_fast(_bench_args(tmp_path / "out", *extra), message)
    assert not (tmp_path / "out").exists()


def test_threads_are_bounded_by_what_numba_allows(tmp_path):
    from numba import config

    _refused_fast(_bench_args(tmp_path / "out", "--threads", str(config.NUMBA_NUM_THREADS + 1)),
                  f"--threads must be at most {config.NUMBA_NUM_THREADS}, the threads numba may run")


def test_the_cli_prints_the_refusal_as_one_line(tmp_path, capsys):
    os.mkfifo(tmp_path / "bench.json")
    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ccrop bench: --out {tmp_path}: bench.json is a FIFO") and err.count("\n") == 1, err


def test_outputs_are_written_atomically(tmp_path, monkeypatch):
    """The charts and bench.json go beside their targets and are renamed over them: a failure leaves the old
    files whole and no temp file behind (shown on the charts, with a figure that fails while being saved)."""
    pytest.importorskip("matplotlib")
    from ccrop_loaders.tools.bench import report

    (tmp_path / "bench.png").write_bytes(b"old chart")
    record = {"settings": {"sizes": [256]}, "results": [], "comparisons": [], "scaling": []}

    def broken_savefig(self, path, **kwargs):
        Path(path).write_bytes(b"half a chart")
        raise OSError(28, "No space left on device")

    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="No space left"):
        report.plot(record, tmp_path)
    assert (tmp_path / "bench.png").read_bytes() == b"old chart"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.png"]


def test_a_run_replaces_its_outputs_atomically(tmp_path, monkeypatch, capsys):
    """The whole run with every contender skipped (no images made, nothing timed): bench.json and the chart replace
    the old files by rename (a symlinked bench.json is written through, the link kept), no temp file left."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("skimage")
    from ccrop_loaders.tools.bench import contenders, data, run

    def missing(*args, **kwargs):
        raise ImportError("left out by the test")

    for name in ("dali_contender", "dali_contenders", "ffcv_contenders", "ffcv_multiview", "libjpeg_contender",
                 "libjpeg_region_contender",
                 "original_contender", "pillow_contender"):
        monkeypatch.setattr(contenders, name, missing)
    made = data.ImageSet(256, None, [], [], [], np.zeros((0, 2), np.int64), "none: the test makes no images")
    monkeypatch.setattr(data, "prepare", lambda root, images, sizes, workers: {sizes[0]: made})
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "kept.json").write_text("old")
    os.symlink(tmp_path / "kept.json", out / "bench.json")
    (out / "bench.png").write_bytes(b"old chart")
    record = run(_bench_args(out, "--quick", "--scaling", "none"))
    assert (out / "bench.json").is_symlink()
    assert json.loads((tmp_path / "kept.json").read_text())["seconds"] == record["seconds"]
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == ["bench.json", "bench.png"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
