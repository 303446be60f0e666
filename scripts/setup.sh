#!/usr/bin/env bash
# Idempotent set-up: system libraries FFCV builds against, then .venv with the package (editable) and extras.
# Usage: scripts/setup.sh [extras]   (default: dev,ffcv,dali)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev,ffcv,dali}"
py="${PYTHON:-python3}"

# FFCV 1.0.2 compiles against libjpeg-turbo (TurboJPEG API) and OpenCV; our region decoder
# (ccrop_loaders/ffcv/jpeg_region.c) against libjpeg-turbo's libjpeg API (libjpeg-dev).
if [[ "$extras" == *ffcv* ]]; then
  missing=()
  for pkg in pkg-config libturbojpeg0-dev libjpeg-dev libopencv-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
# A CPU machine takes torch 2.13.0 (CPU wheel); a GPU machine keeps the torch it has or gets the default build.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    .venv/bin/pip install -q torch
  else
    .venv/bin/pip install -q torch==2.13.0
  fi
fi
stamp=".venv/.ccrop-installed-${extras//,/-}-$(cat setup.cfg setup.py pyproject.toml ccrop_loaders/ffcv/*.c | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q -e ".[$extras]"
  touch "$stamp"
fi
