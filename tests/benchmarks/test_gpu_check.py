"""benchmarks/gpu_check.sh without a GPU, DALI or FFCV: the dry run goes through every step and skips cleanly."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def run(tmp_path, *args, timeout=240):
    """The script with DALI and FFCV made unimportable (as on the GPU machine), this interpreter, OUT=tmp_path."""
    blocked = tmp_path / "blocked"
    (blocked / "nvidia").mkdir(parents=True, exist_ok=True)
    for module in (blocked / "ffcv.py", blocked / "nvidia" / "__init__.py"):
        module.write_text("raise ImportError('not installed on the GPU machine')\n")
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path),
               PYTHONPATH=os.pathsep.join([str(blocked), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_the_dry_run_goes_through_every_step_and_skips_what_is_absent(tmp_path):
    done = run(tmp_path, "--device", "cpu")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "pip install" not in SCRIPT.read_text()  # nothing is installed
    for line in ("DALI is not installed: its GPU tests and benchmark are skipped",
                 "FFCV is not installed: its parts are skipped",
                 "float32 products: values within 1 level", "2 x 48, float32 products: per batch",
                 "rows not holding their batch's boxes          0 of 32"):
        assert line in out, line
    table = out[out.index("== gpu_check --device cpu"):].splitlines()[1:]
    assert [row.split("  ")[1].strip() for row in table] == [
        "build C extensions", "CUDA tests: view stage, BoxUpdater", "view stage: agreement, cost, FLOPs, bytes",
        "BoxUpdater CUDA path", "DALI GPU tests and benchmark", "FFCV"]
    assert "failed" not in "\n".join(table) and "timed out" not in "\n".join(table)
    assert (tmp_path / "gpu_check.txt").read_text() == out


def test_without_cuda_the_gpu_run_says_so_and_stops(tmp_path):
    done = run(tmp_path, timeout=60)
    assert done.returncode == 1 and "torch sees no CUDA GPU" in done.stdout
    assert run(tmp_path, "--device", "tpu", timeout=10).returncode == 2
