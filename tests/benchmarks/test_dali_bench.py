"""benchmarks/dali_bench.py, a tiny run: every contender builds and runs, every row is printed."""
import pytest

pytest.importorskip("nvidia.dali")
pytest.importorskip("skimage")

from benchmarks.dali_bench import main  # noqa: E402


def test_tiny_run_prints_every_row(capsys):
    main(["--images", "16", "--batch-size", "8", "--rounds", "1"])
    out = capsys.readouterr().out
    for row in ("DALI RRC: image_random_crop x2", "decode='once'", "decode='slice'", "decode='union'",
                "ratio best ContrastiveCrop / best DALI RRC", "multi-crop 2x224 + 6x96, decode='union'"):
        assert row in out, row
