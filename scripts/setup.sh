#!/usr/bin/env bash
# Create .venv with the pinned dependencies (idempotent; quick when nothing changed).
#   scripts/setup.sh          the service and train_or_import.py (requirements-train.txt)
#   scripts/setup.sh --dev    plus test and load-test tools
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
TORCH="torch==2.13.0+cpu"
# The CPU build of torch lives on PyTorch's own index, not on PyPI. Machines with a
# local wheel (pip's find-links) or a mirror use that; set TORCH_INDEX_URL to override.
TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

if ! .venv/bin/python -c 'import torch, sys; sys.exit(torch.__version__ != "2.13.0+cpu")' 2>/dev/null; then
    echo "setup: installing $TORCH" >&2
    "${PIP[@]}" install "$TORCH" 2>/dev/null || "${PIP[@]}" install "$TORCH" --extra-index-url "$TORCH_INDEX_URL"
fi

reqs=requirements-train.txt
[ "${1:-}" = "--dev" ] && reqs=requirements-dev.txt
stamp=".venv/.installed-$(sha256sum requirements*.txt | sha256sum | cut -c1-16)-$(basename $reqs .txt)"
if [ ! -f "$stamp" ]; then
    echo "setup: installing $reqs" >&2
    "${PIP[@]}" install -r "$reqs"
    touch "$stamp"
fi
