"""The recipe under torchrun as the README runs it: both backends, 2 and 3 ranks, with and without --checkpoint."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.mark.parametrize("backend, ranks, checkpoint", [
    ("ffcv", 2, True), ("ffcv", 3, False), ("dali", 2, False), ("dali", 3, True),
])
def test_torchrun_tiny_run_ends_cleanly_on_every_rank(backend, ranks, checkpoint, tmp_path):
    pytest.importorskip("ffcv" if backend == "ffcv" else "nvidia.dali")
    command = [str(TORCHRUN), "--standalone", f"--nproc_per_node={ranks}", "-m", "pipelines.train_ssl",
               "--backend", backend, "--tiny", "--epochs", "2"]
    if checkpoint:
        command += ["--checkpoint", str(tmp_path / "run" / "ckpt.pt")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2],
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    out = done.stdout.replace("\r", "\n")
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"epoch 0: loss [\d.]+ \(\d+ steps, RandomResizedCrop\)", out)
    assert re.search(r"epoch 1: loss [\d.]+ \(\d+ steps, ContrastiveCrop\)", out)
    assert "localized at epochs [1]" in out and "note: each epoch trains on" not in out  # every sample, once
    assert out.count("boxes: ") == 1  # rank 0 speaks
    if checkpoint:
        assert (tmp_path / "run" / "ckpt.pt").is_file()
