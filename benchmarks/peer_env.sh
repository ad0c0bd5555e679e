#!/usr/bin/env bash
# Create .venv-peer/ (git-ignored) with the peer DeepCTR-Torch 0.3.0, for benchmarks/models.py.
# torch is installed first so that pip takes the CPU build of torch 2.13.0 found on this disk.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-peer}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet torch==2.13.0
"$VENV/bin/python" -m pip install --quiet deepctr-torch==0.3.0 scikit-learn pandas
"$VENV/bin/python" -c "import torch, sys; print('peer venv ready:', sys.executable, torch.__version__)"
