"""README.md as executable documentation: every ```python block runs as written, on demo data.

The README's demo-data ```bash block (``python -m ccrop_loaders.sample_data ...``,
``ccrop convert ...``) is run first, in a temp folder, and makes the data; then each
Python block runs in its own process, from that folder, after the README's shared
block (the first Python block, "Shared by the examples below"). Markers a block may
start with: ``# continues the previous example`` (run after the block before it, in
one process) and ``# requires: gpu`` (skipped without a CUDA device).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SHARED_MARKER = "# Shared by the examples below."
CONTINUES = "# continues the previous example"
REQUIRES_GPU = "# requires: gpu"
BLOCK_TIMEOUT_S = 180


def _blocks(language: str) -> list[tuple[int, str]]:
    """(line number, code) of every ```language block in the README, in order."""
    text = README.read_text()
    return [(text[: m.start()].count("\n") + 1, m.group(1))
            for m in re.finditer(rf"^```{language}\n(.*?)^```", text, re.S | re.M)]


PYTHON = _blocks("python")
SHARED = next(code for _, code in PYTHON if code.startswith(SHARED_MARKER))
EXAMPLES = [(line, code) for line, code in PYTHON if not code.startswith(SHARED_MARKER)]


def _programs() -> list[tuple[int, str]]:
    """(first line, code) of each program to run: an example, after the one it continues if it says so."""
    programs: list[tuple[int, str]] = []
    for line, code in EXAMPLES:
        if code.startswith(CONTINUES):
            assert programs, f"README.md:{line} continues nothing"
            first, before = programs.pop()
            programs.append((first, before + "\n" + code))
        else:
            programs.append((line, code))
    return programs


def _has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")  # python, ccrop of this venv
    env["PYTHONPATH"] = str(README.parent) + os.pathsep + env.get("PYTHONPATH", "")   # this checkout's package
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    result = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    if result.returncode:
        pytest.fail(f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    """A folder holding what the README's demo-data block makes: demo_images/ and train.beton."""
    pytest.importorskip("ffcv")
    pytest.importorskip("skimage")
    if shutil.which("ccrop", path=_env()["PATH"]) is None:
        pytest.skip("the ccrop command is not installed beside this Python")
    block = next(code for _, code in _blocks("bash") if "ccrop_loaders.sample_data" in code)
    where = tmp_path_factory.mktemp("readme")
    _run(["bash", "-euo", "pipefail", "-c", block], where, "the README's demo-data block")
    assert (where / "train.beton").is_file() and len(list((where / "demo_images").rglob("*.jpg"))) == 64
    return where


def test_shared_block_comes_first():
    assert PYTHON[0][1].startswith(SHARED_MARKER), "the first Python block must be the shared one"
    assert "num_samples = 64" in SHARED, "num_samples must match the demo-data block's --images"


@pytest.mark.parametrize("line,code", _programs(), ids=[f"README.md:{line}" for line, _ in _programs()])
def test_example_runs(line: int, code: str, demo_folder: Path):
    if code.startswith(REQUIRES_GPU) and not _has_gpu():
        pytest.skip("needs a GPU")
    if "nvidia.dali" in code or "ccrop_loaders.dali" in code:
        pytest.importorskip("nvidia.dali")
    script = demo_folder / f"readme_{line}.py"
    script.write_text(SHARED + "\n# ---- README.md:%d ----\n" % line + code)
    _run([sys.executable, script.name], demo_folder, f"README.md:{line}")
