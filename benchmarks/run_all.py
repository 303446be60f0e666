"""Run every benchmark whose backend is installed: ``python -m benchmarks.run_all``."""
import importlib
import importlib.util

BENCHMARKS = [("benchmarks.core_bench", None), ("benchmarks.ffcv_bench", "ffcv"), ("benchmarks.dali_bench", "nvidia.dali"),
              ("benchmarks.trainer_bench", "torch"), ("benchmarks.augment_bench", "torch"),
              ("benchmarks.stress_bench", "nvidia.dali"), ("benchmarks.bench", None)]


def main() -> None:
    for module, needs in BENCHMARKS:
        if needs and importlib.util.find_spec(needs) is None:
            print(f"\n== {module}: skipped ({needs} is not installed)")
            continue
        importlib.import_module(module).main()


if __name__ == "__main__":
    main()
