#!/usr/bin/env bash
# The GPU machine's check, with nothing installed (no pip, no package index): torch with CUDA, numba, numpy and,
# where there is one, a C compiler. In order, each step under its own time limit and all under 8 minutes:
#   1. build the C extensions in place (setup.py build_ext --inplace; the optional JPEG one may fail), or say why not;
#   2. the CUDA tests: the torch view stage against the CPU resampler, the BoxUpdater's CUDA path (needs pytest);
#   3. the view stage on CUDA: agreement with the C resampler, cost per batch for 256 x 2 x 224 and DINO's
#      2 x 224 + 6 x 96 from 500-px regions, FLOPs, bytes per sample (benchmarks/view_stage_bench.py);
#   4. BoxUpdater with CUDA maps and CUDA index buffers overwritten after update (benchmarks/updater_cuda_check.py);
#   5. DALI's GPU tests and benchmark, FFCV: one line each saying they are skipped when not installed.
# Then one table: every step, its status and seconds. Exit 1 if a step failed.
# Usage: bash benchmarks/gpu_check.sh [--device cpu]
#   --device cpu: the dry run of the same steps on a machine without a GPU, small and quick (CUDA tests skip,
#   nothing is built: the extensions already in the tree are used).
# PYTHON picks the interpreter (default python3); $OUT/gpu_check.txt gets a copy of the output when OUT is set.
set -uo pipefail
cd "$(dirname "$0")/.."
device=cuda
case "${1:-}" in
  "") ;;
  --device)
    device=${2:-}
    [[ $device == cpu || $device == cuda ]] || { echo "--device takes cpu or cuda" >&2; exit 2; } ;;
  *) echo "usage: bash benchmarks/gpu_check.sh [--device cpu|cuda]" >&2; exit 2 ;;
esac
py=${PYTHON:-python3}
log="${OUT:-/tmp}/gpu_check.txt"
budget=470  # seconds for every step together: under 8 minutes with the start and the table
names=() statuses=() times=() failed=0

record() { names+=("$1"); statuses+=("$2"); times+=("${3:--}"); }

# step NAME LIMIT_S COMMAND...: run COMMAND under min(LIMIT_S, what is left of the budget); record how it went
step() {
  local name=$1 limit=$2 left rc t0
  shift 2
  left=$(( budget - SECONDS ))
  if (( left < 15 )); then record "$name" "skipped: the 8-minute budget is spent"; return; fi
  (( limit > left )) && limit=$left
  echo; echo "### $name"
  t0=$SECONDS
  timeout "$limit" "$@"
  rc=$?
  case $rc in
    0) record "$name" ok $(( SECONDS - t0 )) ;;
    124) record "$name" "timed out after ${limit} s" $(( SECONDS - t0 )); failed=1 ;;
    *) record "$name" "failed (exit $rc)" $(( SECONDS - t0 )); failed=1 ;;
  esac
}

has() { "$py" -c "import $1" >/dev/null 2>&1; }

# the resampler without setuptools: the compiler and Python's headers are enough
build_resampler() {
  local include suffix cc
  include=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  suffix=$("$py" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
  cc=$(command -v "${CC:-cc}" || command -v gcc)
  [[ -f $include/Python.h ]] || { echo "no Python.h in $include: the resampler cannot be built"; return 1; }
  "$cc" -O3 -Wall -shared -fPIC -I"$include" ccrop_loaders/core/resample.c -lm \
    -o "ccrop_loaders/core/_resample$suffix"
}

main() {
  echo "gpu_check --device $device, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  else
    echo "nvidia-smi: not found"
  fi
  if ! "$py" -c "import numpy, numba, torch; print('python', __import__('sys').version.split()[0], '| torch',
torch.__version__, '| CUDA', torch.cuda.is_available(), '| numba', numba.__version__, '| numpy', numpy.__version__)"
  then
    echo "$py lacks numpy, numba or torch: nothing to check"; return 1
  fi
  if [[ $device == cuda ]] && ! "$py" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "torch sees no CUDA GPU: run 'bash benchmarks/gpu_check.sh --device cpu' for the dry run"; return 1
  fi

  if [[ $device == cpu ]]; then
    record "build C extensions" "skipped: dry run (the tree's own extensions are used)"
  elif command -v "${CC:-cc}" >/dev/null || command -v gcc >/dev/null; then
    step "build C extensions" 120 "$py" setup.py -q build_ext --inplace
    has ccrop_loaders.core.resample || step "build the resampler with cc (setup.py failed)" 60 build_resampler
  else
    echo "no C compiler (cc, gcc): the extensions are not built"
    record "build C extensions" "skipped: no C compiler"
  fi
  if has ccrop_loaders.core.resample; then
    echo "resampler: built (the stage's pixels are checked against it)"
  else
    echo "resampler (ccrop_loaders.core._resample) not importable: the agreement steps below fail"
  fi
  if has ccrop_loaders.ffcv._jpeg_region; then echo "JPEG region extension: built"
  else echo "JPEG region extension: not built (optional here: it needs libjpeg headers; FFCV is not used)"; fi

  if has pytest; then
    step "CUDA tests: view stage, BoxUpdater" 150 "$py" -m pytest -q -rs -p no:cacheprovider \
      tests/trainer/test_view_stage.py tests/trainer/test_updater.py -k cuda
  else
    echo "pytest is not installed: the CUDA tests do not run (the benchmark's agreement rows check the same pixels)"
    record "CUDA tests: view stage, BoxUpdater" "skipped: no pytest"
  fi

  if [[ $device == cuda ]]; then
    step "view stage: agreement, cost, FLOPs, bytes" 180 "$py" -m benchmarks.view_stage_bench --device cuda
    step "BoxUpdater CUDA path" 60 "$py" -m benchmarks.updater_cuda_check --device cuda
  else
    step "view stage: agreement, cost, FLOPs, bytes" 120 "$py" -m benchmarks.view_stage_bench --device cpu \
      --batch 4 --max-side 96 --size 48 --rounds 1 --agreement-batch 3 --threads 1
    step "BoxUpdater CUDA path" 60 "$py" -m benchmarks.updater_cuda_check --device cpu --batch 16 --batches 2 \
      --rounds 1
  fi

  if has nvidia.dali; then
    if [[ $device == cuda ]]; then
      step "DALI GPU tests" 120 "$py" -m pytest -q -rs -p no:cacheprovider tests/dali -k "gpu or mixed_decode"
      step "DALI benchmark on the GPU" 90 "$py" -m benchmarks.dali_bench --device gpu --images 512 \
        --batch-size 128 --threads "$(( $(nproc) < 8 ? $(nproc) : 8 ))" --rounds 3
    else
      record "DALI GPU tests and benchmark" "skipped: dry run"
    fi
  else
    echo "DALI is not installed: its GPU tests and benchmark are skipped"
    record "DALI GPU tests and benchmark" "skipped: DALI not installed"
  fi
  if has ffcv; then
    echo "FFCV is installed: it has no GPU step here yet (the region decoder, issue 21 part 1, will add one)"
    record "FFCV" "skipped: no GPU step yet"
  else
    echo "FFCV is not installed: its parts are skipped"
    record "FFCV" "skipped: FFCV not installed"
  fi

  echo
  echo "== gpu_check --device $device: $SECONDS s in all"
  local i
  for i in "${!names[@]}"; do
    printf '  %-44s %6s s   %s\n' "${names[$i]}" "${times[$i]}" "${statuses[$i]}"
  done
  return $failed
}

main 2>&1 | tee "$log"
