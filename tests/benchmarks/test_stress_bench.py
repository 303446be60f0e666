"""The stress benchmark, bounded: a process rewriting every box while FFCV and DALI read the table."""
import pytest

pytest.importorskip("ffcv")
pytest.importorskip("nvidia.dali")

from benchmarks.stress_bench import stress  # noqa: E402


def test_readers_see_whole_rows_and_windows_inside_their_images_while_a_writer_rewrites(tmp_path):
    report = stress(epochs=3, num_images=24, workers=2, work=tmp_path)
    assert report.ffcv_views == 72 and report.dali_windows == 72
    assert report.ffcv_bad == 0 and report.dali_bad == 0 and report.outside == 0
    assert report.writes > 100 and report.saw_a + report.saw_b > 0
