#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with the package (editable) and its extras.
# Usage: scripts/setup.sh [extras]   (default: dev)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
py="${PYTHON:-python3}"

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
stamp=".venv/.ccrop-installed-$extras-$(cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q -e ".[$extras]"
  touch "$stamp"
fi
