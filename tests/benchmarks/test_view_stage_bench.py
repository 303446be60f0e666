"""benchmarks/view_stage_bench.py, a tiny run: agreement, cost, FLOPs and bytes rows are printed, the goals met."""
from benchmarks.view_stage_bench import main


def test_tiny_run_prints_every_row(capsys):
    main(["--device", "cpu", "--batch", "4", "--max-side", "96", "--rounds", "1", "--agreement-batch", "3",
          "--size", "48", "--threads", "1"])
    out = capsys.readouterr().out
    for row in ("float32 products: values within 1 level", "float16 products: largest difference",
                "2 x 48, float32 products: per batch", "2 x 48 + 6 x 20: FLOPs per batch",
                "2 x 48: region row, bytes per sample", "2 x 48: ratio row / views"):
        assert row in out, row
    assert "27776" in next(line for line in out.splitlines() if "2 x 48: region row" in line)  # 128 + 96 * 96 * 3
    assert "FAIL" not in out
