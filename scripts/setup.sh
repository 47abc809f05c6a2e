#!/usr/bin/env bash
# Creates .venv with lineup and its pinned dependencies, then makes sure Fashion-MNIST is present.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
PIP="$VENV/bin/python -m pip"
TORCH_VERSION=$(sed -n 's/^torch==//p' constraints.txt)

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    # Order matters: a plain `pip install torch` on Linux pulls a multi-GB CUDA build.
    # 1. a wheel already on this machine (pip's find-links; its dependencies come with the package install
    #    below, from the configured indexes), 2. a CUDA build only where a GPU is,
    # 3. otherwise the CPU-only wheel from PyTorch's own index.
    if $PIP install --no-index --no-deps "torch==$TORCH_VERSION" 2>/dev/null; then
        rm -f "$VENV/.lineup-installed"  # so that the install below brings torch's dependencies
    elif command -v nvidia-smi >/dev/null 2>&1; then
        $PIP install "torch==$TORCH_VERSION"
    else
        $PIP install "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
    fi
fi

if [ ! -f "$VENV/.lineup-installed" ] || [ pyproject.toml -nt "$VENV/.lineup-installed" ] \
    || [ constraints.txt -nt "$VENV/.lineup-installed" ]; then
    $PIP install -q -c constraints.txt -e ".[dev,mnist5k,ray]"
    touch "$VENV/.lineup-installed"
fi

# Fashion-MNIST: Debian's package where apt and root are available, else lineup's checksummed download.
if ! "$VENV/bin/lineup" data check fashion-mnist >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null || true
    fi
    "$VENV/bin/lineup" data check fashion-mnist >/dev/null 2>&1 || "$VENV/bin/lineup" data fetch fashion-mnist
fi

# Chromium for the report's browser test (tests/test_report_browser.py is skipped without it).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
    && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 || true
fi
