"""Suite-wide pytest configuration: the ``slow`` marker (``make test-fast`` deselects it) and, with
``CCROP_TEST_COUNTS=1`` (or a path), counts of what the suite builds and compiles in this process.

The counts are what makes the suite slow: DALI pipelines built (``Pipeline.build``), DALI ``numba_function`` ops
(each compiles a new cfunc for its run and setup functions), FFCV Loaders (each compiles its pipeline) and numba
compilations (every dispatcher compile, with the time spent at the outermost level). They are printed after the run
per test file (and written as JSON where ``CCROP_TEST_COUNTS`` is a path); subprocesses are not counted.
"""
from __future__ import annotations

import inspect
import json
import os
import threading
import time
from collections import defaultdict

import pytest

COUNTS_ENV = "CCROP_TEST_COUNTS"
_counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
_current = ["(collection)"]
_patched: set[str] = set()
_local = threading.local()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long test (builds, compiles or runs a subprocess for seconds); "
                                       "`make test-fast` (-m 'not slow') deselects it, `make test` runs it")
    if os.environ.get(COUNTS_ENV):
        _install_numba_listener()
    _patch_available()


# --- DALI numba_function: one compilation per distinct function ------------------------------------------------
# DALI's numba_function compiles a new cfunc (and a dozen eval'd helper lambdas) for the run and setup functions of
# every op of every pipeline built, even when the function is the same code over the same constants. numba freezes a
# closure's variables and a function's globals into the compiled code, so two functions with the same code, the same
# closure values (arrays by dtype, shape and bytes) and the same globals compile to the same machine code: the suite
# compiles each such function once per process and hands DALI the same cfunc address again (DALI only stores it).
# CCROP_TEST_FRESH_NUMBA=1 turns this off (every op compiled afresh, as in an application).
FRESH_ENV = "CCROP_TEST_FRESH_NUMBA"
_UNKEYED = object()


def _freeze(value, depth: int = 0):
    """A hashable key for a value numba freezes into compiled code, or ``_UNKEYED`` where none is safe."""
    import numpy as np

    if depth > 8:
        return _UNKEYED
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, np.generic)):
        return (type(value).__name__, value.tobytes() if isinstance(value, np.generic) else value)
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, np.ascontiguousarray(value).tobytes())
    if isinstance(value, (tuple, list)):
        items = tuple(_freeze(v, depth + 1) for v in value)
        return _UNKEYED if any(i is _UNKEYED for i in items) else (type(value).__name__, items)
    if inspect.isfunction(value):
        return _function_key(value, depth + 1)
    # modules, dispatchers, ctypes functions, types: the object itself (kept alive by the memo, so its id is unique)
    return ("object", id(value))


def _function_key(fn, depth: int = 0):
    code = fn.__code__
    closure = tuple(_freeze(cell.cell_contents, depth) for cell in fn.__closure__ or ())
    names = tuple((name, _freeze(fn.__globals__[name], depth)) for name in code.co_names if name in fn.__globals__)
    if any(k is _UNKEYED for k in closure) or any(k is _UNKEYED for _, k in names):
        return _UNKEYED
    return ("function", code, closure, names, _freeze(fn.__defaults__, depth))


def _memoize_dali_numba(share: bool) -> None:
    from nvidia.dali.plugin.numba import NumbaFunction

    memo: dict = {}
    run_cpu, setup_cpu = NumbaFunction._get_run_fn_cpu, NumbaFunction._get_setup_fn_cpu

    def cached(key, keep, compile_):
        if not share or key[1] is _UNKEYED:
            _add("numba_function compilations")
            return compile_()
        if key not in memo:
            memo[key] = (compile_(), keep)  # keep: the function, so that every id in its key stays unique
            _add("numba_function compilations")
        else:
            _add("numba_function compilations shared")
        return memo[key][0]

    def get_run_fn_cpu(self, run_fn, out_types, in_types, outs_ndim, ins_ndim, batch_processing):
        key = ("run", _function_key(run_fn), tuple(out_types), tuple(in_types), tuple(outs_ndim), tuple(ins_ndim),
               bool(batch_processing))
        return cached(key, run_fn, lambda: run_cpu(self, run_fn, out_types, in_types, outs_ndim, ins_ndim,
                                                   batch_processing))

    def get_setup_fn_cpu(self, setup_fn):
        if setup_fn is None:
            return setup_cpu(self, setup_fn)
        return cached(("setup", _function_key(setup_fn)), setup_fn, lambda: setup_cpu(self, setup_fn))

    NumbaFunction._get_run_fn_cpu = get_run_fn_cpu
    NumbaFunction._get_setup_fn_cpu = get_setup_fn_cpu
    if not share:
        return
    # The helper lambdas DALI evals for every op (a carray view per input and output, five placeholders) depend
    # only on (dtype, ndim): one dispatcher each, so a cfunc compiled later reuses their compiled code.
    lambdas: dict = {}
    carray = NumbaFunction._get_carray_eval_lambda

    def get_carray_eval_lambda(self, dtype, ndim):
        if (dtype, ndim) not in lambdas:
            lambdas[dtype, ndim] = carray(self, dtype, ndim)
        return lambdas[dtype, ndim]

    def get_carrays_eval_lambda(self, types, ndim):
        if "placeholder" not in lambdas:
            lambdas["placeholder"] = NumbaFunction._get_carrays_eval_lambda_dali(self, [], [])[0]
        ret = [self._get_carray_eval_lambda(dtype, n) for dtype, n in zip(types, ndim)]
        return tuple(ret + [lambdas["placeholder"]] * (6 - len(types)))

    NumbaFunction._get_carrays_eval_lambda_dali = NumbaFunction._get_carrays_eval_lambda
    NumbaFunction._get_carray_eval_lambda = get_carray_eval_lambda
    NumbaFunction._get_carrays_eval_lambda = get_carrays_eval_lambda


def _add(name: str, value: float = 1) -> None:
    _counts[_current[0]][name] += value


def _install_numba_listener() -> None:
    from numba.core import event

    class Compiles(event.Listener):
        def on_start(self, ev):
            depth = getattr(_local, "depth", 0)
            if depth == 0:
                _local.start = time.perf_counter()
            _local.depth = depth + 1

        def on_end(self, ev):
            _local.depth -= 1
            _add("numba compiles")
            if _local.depth == 0:
                _add("numba compile s", time.perf_counter() - _local.start)

    event.register("numba:compile", Compiles())


def _wrap(owner, name: str, counter: str) -> None:
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        _add(counter)
        return original(*args, **kwargs)

    setattr(owner, name, counted)


def _patch_available() -> None:
    """Count DALI and FFCV builds once their modules are imported (never importing them here first)."""
    import sys

    if "dali" not in _patched and "nvidia.dali.plugin.numba" in sys.modules:
        from nvidia.dali.pipeline import Pipeline
        from nvidia.dali.plugin.numba import NumbaFunction

        _patched.add("dali")
        original_build = Pipeline.build

        def build(self, *args, **kwargs):
            if not getattr(self, "_built", False):
                _add("dali pipeline builds")
            return original_build(self, *args, **kwargs)

        Pipeline.build = build
        _wrap(NumbaFunction, "__init__", "dali numba_function ops")
        _memoize_dali_numba(share=not os.environ.get(FRESH_ENV))
    if "ffcv" not in _patched and "ffcv.loader" in sys.modules:
        import ffcv.loader.loader as loader_module

        _patched.add("ffcv")
        _wrap(loader_module.Loader, "__init__", "ffcv Loader builds")


# --- which library modules a run exercises (CCROP_TEST_MODULES=path: make test-fast must touch every module) ------
MODULES_ENV = "CCROP_TEST_MODULES"
_exercised: set[str] = set()


def _start_module_trace() -> None:
    import sys

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ccrop_loaders") + os.sep

    def profile(frame, event, arg):
        if event == "call":
            code = frame.f_code
            if code.co_filename.startswith(root):
                _exercised.add(os.path.relpath(code.co_filename, os.path.dirname(root))
                               + (" (imported)" if code.co_name == "<module>" else ""))

    sys.setprofile(profile)
    threading.setprofile(profile)


def _library_modules() -> list[str]:
    base = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = []
    for folder, _, files in os.walk(os.path.join(base, "ccrop_loaders")):
        found += [os.path.relpath(os.path.join(folder, f), base) for f in files if f.endswith(".py")]
    return sorted(found)


def pytest_sessionstart(session):
    if os.environ.get(MODULES_ENV):
        _start_module_trace()


def pytest_collection_finish(session):
    _patch_available()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _patch_available()
    _current[0] = item.nodeid.split("::")[0]
    yield


def pytest_terminal_summary(terminalreporter):
    modules = os.environ.get(MODULES_ENV)
    if modules:
        import sys

        sys.setprofile(None)
        everything = _library_modules()
        # exercised: a function of the module ran in this process; imported: only its module code did
        missed = [m for m in everything if m not in _exercised]
        imported_only = [m for m in missed if m + " (imported)" in _exercised]
        never = [m for m in missed if m not in imported_only]
        terminalreporter.write_line(f"library modules with a function run in this process: "
                                    f"{len(everything) - len(missed)} of {len(everything)}; imported only: "
                                    f"{', '.join(imported_only) or 'none'}; not imported: {', '.join(never) or 'none'}")
        with open(modules, "w") as f:
            json.dump({"exercised": sorted(m for m in _exercised if not m.endswith(")")),
                       "imported only": imported_only, "not imported": never}, f, indent=1)
    target = os.environ.get(COUNTS_ENV)
    if not target:
        return
    names = ["dali pipeline builds", "dali numba_function ops", "numba_function compilations", "ffcv Loader builds",
             "numba compiles", "numba compile s"]
    rows = {file: {n: _counts[file].get(n, 0) for n in names} for file in sorted(_counts)}
    total = {n: sum(r[n] for r in rows.values()) for n in names}
    write = terminalreporter.write_line
    write("")
    write("builds and compiles in this process (" + ", ".join(names) + ")")
    for file, row in [*rows.items(), ("TOTAL", total)]:
        write(f"{file:60s} " + " ".join(f"{row[n]:8.0f}" if n != "numba compile s" else f"{row[n]:8.1f}"
                                         for n in names))
    if target not in ("1", "yes", "true"):
        with open(target, "w") as f:
            json.dump({"files": rows, "total": total}, f, indent=1)
