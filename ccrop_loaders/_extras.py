"""The errors for a missing optional extra or an unbuilt C extension: imported by any module, importing nothing of
ours (so no import runs upward into the package root)."""
from __future__ import annotations

import glob
import os
import sys


def missing_extra(error: ImportError, extra: str, what: str) -> ModuleNotFoundError:
    """The error for ``what`` needing a module of the ``extra`` that is not installed (``raise ... from error``)."""
    missing = error.name or str(error)
    return ModuleNotFoundError(f"{what} needs {missing}, which is not installed: from a checkout, "
                               f"pip install '.[{extra}]' (an installed package: pip install 'ccrop-loaders[{extra}]') "
                               f"({error})", name=error.name)


def missing_extension(error: ImportError, module: str, needs: str, package: str = "ffcv") -> ImportError:
    """The error for a C extension ``ccrop_loaders.<package>.<module>`` (``ffcv._jpeg_region``, ``core._resample``)
    that cannot be imported.

    Tells apart: a source tree without built extensions that shadows an installed
    copy (run from elsewhere), a source tree never built (build in place), and an
    installed copy built without it (install what it ``needs``, then reinstall).
    """
    subpackage = package
    package = os.path.dirname(os.path.realpath(__file__))
    root = os.path.dirname(package)
    here = glob.glob(os.path.join(package, subpackage, module + ".*.so")) + glob.glob(
        os.path.join(package, subpackage, module + ".so"))
    if here:  # built, but does not load (e.g. a library it links is gone)
        return ImportError(f"ccrop_loaders.{subpackage}: {here[0]} does not load ({error}); it needs {needs}: "
                           "install them and rebuild (reinstall ccrop-loaders)")
    if not os.path.exists(os.path.join(root, "setup.py")):  # an installed copy, built without it
        return ImportError(f"ccrop_loaders.{subpackage} needs its C extension {module}, which was not built when "
                           f"ccrop-loaders was installed at {package}: install {needs}, then reinstall "
                           "ccrop-loaders")
    elsewhere = [os.path.join(entry, "ccrop_loaders") for entry in sys.path
                 if os.path.realpath(entry or os.curdir) != root
                 and glob.glob(os.path.join(entry or os.curdir, "ccrop_loaders", subpackage, module + "*.so"))]
    build = "build in place with `python setup.py build_ext --inplace` or `pip install -e .`"
    if elsewhere:
        return ImportError(
            f"ccrop_loaders was imported from the source tree at {package}, which has no built extensions "
            f"({module}); an installed copy exists at {os.path.abspath(elsewhere[0])}: run from another folder "
            f"(the current folder comes first on sys.path), or {build}")
    return ImportError(f"ccrop_loaders was imported from the source tree at {package}, whose C extension "
                       f"{module} was not built: {build} (needs {needs})")
