"""README.md and docs/*.md as executable documentation: every code block runs as written.

Every ```python block and every ```bash block is a complete program: its own imports, its own data (made
inside the block, e.g. with ``ccrop_loaders.tools.sample_data.make_image_folder`` into a temp folder).

- The Python blocks of one page run in one process (imports, numba's compiled core and FFCV's compiled
  decoders are then paid once per page, not once per block), each block in a fresh namespace and a fresh
  empty working folder, so no block can lean on another's names or files. A block that hangs past
  ``BLOCK_TIMEOUT_S`` ends the page's process with every thread's traceback.
- Each bash block runs on its own with ``bash -euo pipefail`` in a fresh empty folder, this venv's ``python``
  and ``ccrop`` first on PATH.
- Fences: ```python / ```bash run; ```text, ```console and bare ``` are shown, never run. A block marked
  ```python no-run or ```bash no-run is not run; its first line must be a comment saying why
  (``# not run: ...``), and there are at most ``MAX_NO_RUN`` of them (installs, multi-node launches).
- A block whose first line is ``# requires: gpu`` is skipped without a CUDA device; blocks naming DALI are
  skipped without ``nvidia.dali``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGUAGES = ("python", "bash")
NO_RUN = "no-run"
NO_RUN_REASON = "# not run:"
REQUIRES_GPU = "# requires: gpu"
MAX_NO_RUN = 8
# Pages whose blocks are sketches owned by work in progress (not yet self-contained): reported, not run.
BLOCK_TIMEOUT_S = 240
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    flags: tuple[str, ...]
    code: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and NO_RUN not in self.flags


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order."""
    text = page.read_text()
    found = []
    for m in FENCE.finditer(text):
        info = m.group(1).split()
        found.append(Block(page, text[: m.start()].count("\n") + 1, info[0] if info else "", tuple(info[1:]),
                           m.group(2)))
    return found


ALL = [b for page in PAGES for b in blocks(page)]
PYTHON = [b for b in ALL if b.runs and b.language == "python"]
BASH = [b for b in ALL if b.runs and b.language == "bash"]


def _has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _skip_reason(block: Block) -> str | None:
    if block.code.startswith(REQUIRES_GPU) and not _has_gpu():
        return "needs a CUDA GPU"
    if "nvidia.dali" in block.code or "ccrop_loaders.dali" in block.code:
        try:
            import nvidia.dali  # noqa: F401
        except ImportError:
            return "needs nvidia.dali (the dali extra)"
    return None


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")  # python, ccrop of this venv
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")            # this checkout's package
    env.setdefault("OMP_NUM_THREADS", "2")
    env.setdefault("MPLBACKEND", "Agg")
    return env


# Runs one page's Python blocks, each in a fresh namespace and folder; writes {name: "ok" | traceback} after each.
RUNNER = textwrap.dedent('''
    import faulthandler, json, os, sys, tempfile, traceback
    spec = json.load(open(sys.argv[1]))
    results = {}
    for block in spec["blocks"]:
        results[block["name"]] = "started (the process ended inside this block)"
        json.dump(results, open(spec["results"], "w"))
        os.chdir(tempfile.mkdtemp(prefix="block_", dir=spec["work"]))
        faulthandler.dump_traceback_later(spec["timeout"], exit=True)
        try:
            exec(compile(block["code"], block["name"], "exec"), {"__name__": "__main__"})
            results[block["name"]] = "ok"
        except BaseException:
            results[block["name"]] = traceback.format_exc()
        finally:
            faulthandler.cancel_dump_traceback_later()
        json.dump(results, open(spec["results"], "w"))
        sys.stdout.flush(); sys.stderr.flush()
    os._exit(0)   # loaders' threads and pools of every block: no waiting on their shutdown
''')

_PAGE_RESULTS: dict[Path, tuple[dict[str, str], str]] = {}


def _page_results(page: Path, work: Path) -> tuple[dict[str, str], str]:
    """Run (once per test process) the page's runnable Python blocks; returns (results, the process's output)."""
    if page not in _PAGE_RESULTS:
        todo = [b for b in PYTHON if b.page == page and _skip_reason(b) is None]
        work.mkdir(parents=True, exist_ok=True)
        spec = {"blocks": [{"name": b.name, "code": b.code} for b in todo], "results": str(work / "results.json"),
                "work": str(work), "timeout": BLOCK_TIMEOUT_S}
        (work / "spec.json").write_text(json.dumps(spec))
        (work / "runner.py").write_text(RUNNER)
        proc = subprocess.run([sys.executable, str(work / "runner.py"), str(work / "spec.json")], cwd=work,
                              env=_env(), capture_output=True, text=True,
                              timeout=BLOCK_TIMEOUT_S * max(1, len(todo)) + 60)
        try:
            results = json.loads((work / "results.json").read_text())
        except (OSError, ValueError):
            results = {}
        _PAGE_RESULTS[page] = results, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return _PAGE_RESULTS[page]


def test_pages_found():
    assert (ROOT / "README.md") in PAGES and len(PAGES) >= 5, PAGES
    assert PYTHON and BASH


def test_no_run_blocks_are_few_and_say_why():
    skipped = [b for b in ALL if NO_RUN in b.flags]
    assert len(skipped) <= MAX_NO_RUN, [b.name for b in skipped]
    for b in skipped:
        assert b.code.startswith(NO_RUN_REASON), f"{b.name}: a no-run block starts with '{NO_RUN_REASON} <why>'"


def test_docs_link_targets_exist():
    """Relative links between the pages (and to repository files) point at something."""
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to a missing {target}"


@pytest.mark.parametrize("block", PYTHON, ids=[b.name for b in PYTHON])
def test_python_block_runs(block: Block, tmp_path_factory):
    reason = _skip_reason(block)
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.getbasetemp() / ("docs_" + re.sub(r"\W", "_", str(block.page.relative_to(ROOT))))
    results, output = _page_results(block.page, work)
    result = results.get(block.name, "not reached (an earlier block ended the page's process)")
    if result != "ok":
        pytest.fail(f"{block.name} failed:\n{result}\n--- the page's process: {output}")


@pytest.mark.parametrize("block", BASH, ids=[b.name for b in BASH])
def test_bash_block_runs(block: Block, tmp_path):
    reason = _skip_reason(block)
    if reason:
        pytest.skip(reason)
    if "ccrop " in block.code and shutil.which("ccrop", path=_env()["PATH"]) is None:
        pytest.skip("the ccrop command is not installed beside this Python")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=tmp_path, env=_env(),
                            capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    if result.returncode:
        pytest.fail(f"{block.name} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
