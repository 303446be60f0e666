"""Install paths: a missing extra names the extra to install; a source tree without built extensions says so;
a wheel ships the C extensions; ``ccrop demo`` and ``python -m ccrop_loaders.sample_data`` take their options."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ccrop_loaders"


def _python(code: str, *, cwd: Path | None = None, pythonpath: str | None = None, timeout: int = 120):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, "-c", code], cwd=cwd or REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _without(modules: tuple[str, ...], code: str):
    """Run ``code`` with ``modules`` unimportable (``sys.modules[name] = None`` makes ``import name`` raise)."""
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    return _python(prelude + code)


@pytest.mark.parametrize("missing,code,extra", [
    (("ffcv",), "import ccrop_loaders.ffcv", "ffcv"),
    (("torch",), "import ccrop_loaders.ffcv", "ffcv"),  # FFCV imports torch
    (("ffcv",), "from ccrop_loaders.tools.cli import main; main(['convert', 'a', 'b.beton'])", "ffcv"),
    (("nvidia.dali",), "import ccrop_loaders.dali", "dali"),
    (("torch",), "from ccrop_loaders import localize_boxes", "torch"),
    (("torch",), "import ccrop_loaders as cc; cc.BoxUpdater", "torch"),
    (("torch",), "from ccrop_loaders.dali import ContrastiveCropIterator", "torch"),
    (("skimage",), "from ccrop_loaders.tools.cli import main; main(['demo', '--out', '/nonexistent/ccrop-demo'])",
     "demo"),
    (("torch",), "from ccrop_loaders.tools.cli import main; main(['demo', '--out', '/nonexistent/ccrop-demo'])", "demo"),
    (("skimage",), "import runpy; sys.argv = ['x', '/nonexistent/ccrop-images']; "
                   "runpy.run_module('ccrop_loaders.sample_data', run_name='__main__')", "demo"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 12 else None)
def test_missing_extra_names_the_extra(missing, code, extra):
    if "dali" in code and "nvidia.dali" not in missing:
        pytest.importorskip("nvidia.dali")
    result = _without(missing, code)
    assert result.returncode != 0, result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert f".[{extra}]'" in last, result.stderr[-3000:]  # from a checkout: pip install -e '.[extra]'
    assert missing[0] in last, last


def test_core_and_cli_import_without_the_extras():
    result = _without(("torch", "ffcv", "nvidia.dali", "skimage", "matplotlib"),
                      "import ccrop_loaders as cc, ccrop_loaders.cli, ccrop_loaders.demo, ccrop_loaders.sample_data\n"
                      "cc.sample_crop(10, 10); ccrop_loaders.cli.main(['clean', '--dry-run', '--dir', '/tmp'])")
    assert result.returncode == 0, result.stderr[-3000:]


def _copy_package(to: Path, *, with_extensions: bool) -> Path:
    ignore = ["__pycache__", "*.pyc"] + ([] if with_extensions else ["*.so"])
    shutil.copytree(PACKAGE, to / "ccrop_loaders", ignore=shutil.ignore_patterns(*ignore))
    return to / "ccrop_loaders"


@pytest.fixture
def built():
    pytest.importorskip("ffcv")
    if not list((PACKAGE / "ffcv").glob("_jpeg_region*.so")) or not list((PACKAGE / "core").glob("_resample*.so")):
        pytest.skip("the C extensions are not built in this checkout")


def test_source_tree_shadowing_an_installed_copy_says_so(tmp_path, built):
    installed = _copy_package(tmp_path / "site", with_extensions=True)
    source = tmp_path / "src"
    _copy_package(source, with_extensions=False)
    shutil.copy(REPO / "setup.py", source / "setup.py")
    # from the source tree's root (the current folder comes first on sys.path), the installed copy on the path too
    result = _python("import ccrop_loaders.ffcv", cwd=source, pythonpath=str(tmp_path / "site"))
    message = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0 and "ImportError" in message, result.stderr[-3000:]
    assert f"source tree at {source / 'ccrop_loaders'}" in message, message
    assert f"installed copy exists at {installed}" in message, message
    assert "run from another folder" in message and "build_ext --inplace" in message, message
    assert "apt install" not in message, message
    # from another folder the installed copy is imported and works
    elsewhere = _python("import ccrop_loaders.ffcv.jpeg as j, ccrop_loaders.core.resample; print(j.__file__)",
                        cwd=tmp_path, pythonpath=str(tmp_path / "site"))
    assert elsewhere.returncode == 0 and str(installed) in elsewhere.stdout, elsewhere.stderr[-3000:]


def test_unbuilt_source_tree_and_unbuilt_install(tmp_path, built):
    source = tmp_path / "src"
    _copy_package(source, with_extensions=False)
    shutil.copy(REPO / "setup.py", source / "setup.py")
    result = _python("import ccrop_loaders.ffcv", cwd=source)
    message = result.stderr.strip().splitlines()[-1]
    assert "was not built" in message and "build_ext --inplace" in message and "installed copy" not in message, \
        message
    installed = _copy_package(tmp_path / "site", with_extensions=False)  # an install whose build skipped them
    result = _python("import ccrop_loaders.ffcv", cwd=tmp_path, pythonpath=str(tmp_path / "site"))
    message = result.stderr.strip().splitlines()[-1]
    assert f"installed at {installed}" in message and "reinstall" in message and "apt install" in message, message


def _can_compile_extensions() -> bool:
    include = sysconfig.get_paths()["include"]
    return (shutil.which(os.environ.get("CC", "cc")) is not None and Path(include, "Python.h").exists()
            and any(Path(d, "jpeglib.h").exists() for d in ("/usr/include", "/usr/local/include")))


@pytest.mark.skipif(not _can_compile_extensions(), reason="needs a C compiler, Python.h and libjpeg's headers")
def test_wheel_ships_the_c_extensions(tmp_path):
    pytest.importorskip("setuptools")
    source = tmp_path / "src"  # a clean copy: building never writes into the checkout
    _copy_package(source, with_extensions=False)
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    wheel, = (tmp_path / "dist").glob("ccrop_loaders-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("ffcv/_jpeg_region", "core/_resample"):
        assert any(n.startswith(f"ccrop_loaders/{module}") and n.endswith(".so") for n in names), names


def test_ccrop_demo_takes_the_demo_options():
    result = subprocess.run([sys.executable, "-m", "ccrop_loaders.cli", "demo", "--help"], capture_output=True,
                            text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0 and "--images" in result.stdout and "--out" in result.stdout, result.stderr
    result = _python("from ccrop_loaders.tools.cli import main; main(['demo', '--images', '2'])")
    assert result.returncode != 0 and "--images must be at least 6" in result.stderr, result.stderr[-2000:]


def test_sample_data_writes_an_image_folder(tmp_path):
    pytest.importorskip("skimage")
    pytest.importorskip("PIL")
    result = subprocess.run([sys.executable, "-m", "ccrop_loaders.sample_data", str(tmp_path / "imgs"), "--images",
                             "3"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list((tmp_path / "imgs").glob("*/*.jpg"))) == 3
    assert "wrote 3 JPEGs" in result.stdout
