#!/usr/bin/env bash
# On a GPU machine (e.g. a lent H200): install what the DALI paths need (no torch: the CUDA build is several
# GB), run the GPU tests (among them decode="union" and multi-crop against the CPU), then `ccrop bench --device gpu`
# (DALI on the GPU and, in the same table, on the CPU), then benchmarks/dali_bench.py on the GPU (the decode modes
# once/slice/union against DALI's RRC pairs, and multi-crop 2x224 + 6x96 against a pair). Under 8 minutes: only
# the GPU tests run (the CPU ones run in CI), and each step has its own time limit.
# Usage: bash benchmarks/gpu_check.sh   (figures are printed; $OUT/gpu_check.txt gets a copy when OUT is set)
set -euo pipefail
cd "$(dirname "$0")/.."
log="${OUT:-/tmp}/gpu_check.txt"
venv=/tmp/ccrop-gpu-venv
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  [ -x $venv/bin/python ] || python3 -m venv $venv
  $venv/bin/pip install -q -e ".[dali]" pytest hypothesis Pillow scikit-image tqdm matplotlib
  $venv/bin/python -c "from nvidia.dali.backend import GetCUDADeviceCount as n; print('DALI sees', n(), 'GPU(s)')"
  timeout 150 $venv/bin/python -m pytest -q -rs tests/dali -k "gpu or mixed_decode"
  threads=$(( $(nproc) < 8 ? $(nproc) : 8 ))
  # one table: DALI on the GPU and on the CPU, the Pillow decode ceiling (FFCV and torch are not installed here:
  # their contenders are listed as skipped); bench.json and the charts go to $OUT/bench (or /tmp/ccrop-gpu-bench)
  bench_dir=${OUT:+$OUT/bench}
  timeout 180 $venv/bin/ccrop bench --device gpu --images 512 --batch-size 128 --threads "$threads" \
    --rounds 3 --sizes 256,512 --scaling none --out "${bench_dir:-/tmp/ccrop-gpu-bench}"
  # decode="auto" on the GPU follows this table (ccrop_loaders.dali.ops.AUTO_DECODE): the fastest pair's mode
  timeout 90 $venv/bin/python -m benchmarks.dali_bench --device gpu --images 512 --batch-size 128 \
    --threads "$threads" --rounds 3
} 2>&1 | tee "$log"
