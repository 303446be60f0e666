"""benchmarks/multicrop_bench.py, a tiny run: every contender builds and runs, every row is printed."""
import pytest

pytest.importorskip("ffcv")
pytest.importorskip("skimage")

from benchmarks.multicrop_bench import main  # noqa: E402


def test_tiny_run_prints_every_row(capsys):
    main(["--images", "16", "--batch-size", "8", "--rounds", "1", "--passes", "1", "--workers", "1",
          "--resolutions", "128"])
    out = capsys.readouterr().out
    for row in ("two-view 224 pair", "multi-crop 2 x 224 + 6 x 96, one decode", "cost ratio multi-crop / pair",
                "its 2 x 224 group alone", "its 6 x 96 group alone"):
        assert row in out, row
