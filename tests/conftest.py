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
    if os.environ.get(MODULES_ENV):
        _start_module_trace()
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
                _exercised.add(os.path.relpath(code.co_filename, os.path.dirname(root.rstrip(os.sep)))
                               + (" (imported)" if code.co_name == "<module>" else ""))

    sys.setprofile(profile)
    threading.setprofile(profile)


def _library_modules() -> list[str]:
    base = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = []
    for folder, _, files in os.walk(os.path.join(base, "ccrop_loaders")):
        found += [os.path.relpath(os.path.join(folder, f), base) for f in files if f.endswith(".py")]
    return sorted(found)


# --- the slow tests: `make test-fast` (-m "not slow") leaves them out, `make test` (and CI) runs them -------------
# Node-id prefixes, each a test (every parametrization) or a file, that took seconds on 2 shared cores (pytest
# --durations after the shared compilations above). What they check is still exercised in the fast set by a cheaper
# test of the same module; the modules a fast run touches: CCROP_TEST_MODULES=path make test-fast.
SLOW = (
    # DALI: subprocesses, worker processes, many-view and every-mode pipelines, every damaged-file kind
    "tests/dali/test_resize.py::test_views_fail_the_batch_when_memory_runs_out",
    "tests/dali/test_resize.py::test_one_resize_op_whatever_the_view_count",
    "tests/dali/test_damaged_files.py::test_a_pipeline_built_after_an_ffcv_loader_still_compiles",
    "tests/dali/test_damaged_files.py::test_no_false_positives",
    "tests/dali/test_damaged_files.py::test_external_source_corrupt_middle_is_named",
    "tests/dali/test_damaged_files.py::test_file_reader_names_the_file_and_index",
    "tests/dali/test_readers.py::test_killed_external_source_worker_is_an_error_not_a_hang",
    "tests/dali/test_readers.py::test_damaged_sample_is_named_external_source",
    "tests/dali/test_readers.py::test_external_source_workers_see_the_parents_writes",
    "tests/dali/test_readers.py::test_external_source_pipeline_yields_views",
    "tests/dali/test_readers.py::test_undecodable_image_is_named_or_skipped",
    "tests/dali/test_regions.py",
    "tests/dali/test_groups.py::test_decode_modes_and_decoded_variant_agree",
    "tests/dali/test_groups.py::test_views_are_the_core_resize_of_the_decoded_image",
    "tests/dali/test_union.py::test_union_pixels_equal_once",
    "tests/dali/test_union.py::test_union_pixels_with_dali_resize",
    "tests/dali/test_webdataset.py::test_indices_come_from_the_members_and_ranks_cover_the_data_once",
    "tests/dali/test_webdataset.py::test_damaged_member_names_shard_and_key",
    # FFCV: every Loader build compiles its pipeline (seconds); distributed runs and subprocesses
    "tests/ffcv/test_ffcv_imagenet.py",
    "tests/ffcv/test_lifetime.py",
    "tests/ffcv/test_order.py::test_gloo_ranks_split_every_epoch",
    "tests/ffcv/test_decoders.py::test_same_views_whatever_workers_order_and_rank",
    "tests/ffcv/test_decoders.py::test_multi_view_equals_single_views_and_flip_mirrors",
    "tests/ffcv/test_decoders.py::test_corrupt_jpeg_raises_naming_the_sample",
    "tests/ffcv/test_multi_crop.py::test_odd_sizes_and_mixed_storage_through_a_shuffling_loader",
    "tests/ffcv/test_multi_crop.py::test_settable_between_epochs_and_fixed_attributes",
    "tests/ffcv/test_multi_crop.py::test_groups_equal_the_multi_view_and_single_view_decoders",
    "tests/ffcv/test_multi_crop.py::test_batches_through_a_loader_with_threads_and_shuffling",
    "tests/ffcv/test_convert.py::test_a_waiter_gives_up_on_a_conversion_without_signs_of_life",
    "tests/ffcv/test_convert.py::test_convert_skips_and_lists_unreadable_files",
    "tests/ffcv/test_jpeg.py::test_loader_refuses_a_beton_with_a_forged_jpeg_naming_sample_and_sizes",
    "tests/ffcv/test_jpeg.py::test_forged_huge_jpeg_is_refused_quickly_without_allocating",
    "tests/ffcv/test_progressive_resizing.py::test_changed_parameters_give_a_fresh_decoders_views",
    "tests/ffcv/test_region_decoder.py::test_raw_beton_rows_hold_the_union_of_the_windows",
    "tests/ffcv/test_metadata.py::test_jpeg_bytes_labelled_raw_are_named",
    "tests/ffcv/test_sanitizers.py",
    # the recipe end to end (train_ssl subprocesses, torchrun), distributed trainer runs
    "tests/pipelines/test_resume.py",
    "tests/pipelines/test_torchrun.py",
    "tests/pipelines/test_train_ssl.py",
    "tests/pipelines/test_epoch_boundaries.py",
    "tests/trainer/test_distributed_faults.py",
    "tests/trainer/test_lightning.py::test_ddp_two_gloo_processes_localize_their_shards",
    "tests/trainer/test_updater.py::test_two_gloo_ranks_end_with_identical_tables",
    # the docs' blocks (whole runs of the CLI and the loaders), the install checks that build and install, the
    # quick benchmark, a SIGKILL loop
    "tests/test_docs.py",
    "tests/test_bench.py::test_quick_run_writes_every_comparison_and_charts",
    "tests/test_install.py::test_source_tree_shadowing_an_installed_copy_says_so",
    "tests/test_install.py::test_unbuilt_source_tree_and_unbuilt_install",
    "tests/test_install.py::test_wheel_ships_the_c_extensions",
    "tests/core/test_files.py::test_sigkill_during_save_leaves_the_old_or_the_new_file_and_no_litter",
    # benchmark runs
    "tests/benchmarks/test_method_bench.py::test_quick_run_reports_every_figure",
    "tests/benchmarks/test_dali_bench.py::test_tiny_run_prints_every_row",
    "tests/benchmarks/test_gpu_check.py::test_the_dry_run_goes_through_every_step_and_skips_what_is_absent",
    "tests/benchmarks/test_gpu_check.py::test_without_cuda_the_gpu_run_says_so_and_stops",
    "tests/benchmarks/test_stress_bench.py",
    "tests/benchmarks/test_multicrop_bench.py",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith(SLOW):
            item.add_marker(pytest.mark.slow)


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


def mount_tiny_tmpfs(folder, request, size: str = "1m") -> None:
    """Mount a tmpfs of ``size`` on ``folder`` for the test (a nearly full disk), unmounted after it; skips the test
    where mounting is not allowed (not root)."""
    import subprocess

    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(folder)], check=False))

