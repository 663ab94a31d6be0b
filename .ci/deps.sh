#!/usr/bin/env bash
# Installs what sinktrace needs from Debian when it is missing (as root), or prints the command.
set -euo pipefail
# zlib1g-dev: crc32, the checksum of every binary file (common/binfile.h) and of the data fingerprint
need=(gcc make pkg-config libcmocka-dev libstb-dev libcjson-dev zlib1g-dev)
command -v npm >/dev/null 2>&1 || need+=(npm)
# MPI=1 (make deps MPI=1): Open MPI for the data-parallel bin/train
[ "${MPI:-}" = 1 ] && need+=(openmpi-bin libopenmpi-dev)
# FUZZ=1 (make fuzz runs it): clang with libFuzzer and its sanitizer runtimes
[ "${FUZZ:-}" = 1 ] && need+=(clang libclang-rt-14-dev)
# PYTHON=1 (make deps PYTHON=1; CI): the PyTorch twin python/sinktrace_torch.py, its parity check in
# make test (skipped without them) and make bench-torch, all run by /usr/bin/python3:
#   python3-torch        PyTorch itself
#   python3-numpy        reads the safetensors files of bin/export
#   libopenblas0-openmp  an optimised BLAS for torch's matrix products; without one Debian's torch uses
#                        the reference BLAS, and make bench-torch would time that
# installed without their recommends (libtorch-dev, build-essential, ...: headers the twin never uses)
lean=()
[ "${PYTHON:-}" = 1 ] && lean+=(python3-torch python3-numpy libopenblas0-openmp)
# BROWSER=1 (CI): chromium, the headless browser tests/test_viewer.c loads report.html in (it skips
# without one); without its recommends (fonts and desktop integration the headless page never uses)
[ "${BROWSER:-}" = 1 ] && lean+=(chromium)
missing=()
missing_lean=()
for p in "${need[@]}"; do
    case "$p" in
        gcc|make|npm) command -v "$p" >/dev/null 2>&1 || missing+=("$p") ;;
        *) dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p") ;;
    esac
done
for p in "${lean[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing_lean+=("$p"); done
if [ ${#missing[@]} -eq 0 ] && [ ${#missing_lean[@]} -eq 0 ]; then
    echo "deps: everything is installed"
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    echo "deps: installing ${missing[*]} ${missing_lean[*]}"
    apt-get update -qq
    export DEBIAN_FRONTEND=noninteractive
    [ ${#missing[@]} -eq 0 ] || apt-get install -y -qq "${missing[@]}"
    [ ${#missing_lean[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${missing_lean[@]}"
else
    run=""
    [ ${#missing[@]} -eq 0 ] || run="sudo apt-get install ${missing[*]}"
    [ ${#missing_lean[@]} -eq 0 ] || run="${run:+$run; }sudo apt-get install --no-install-recommends ${missing_lean[*]}"
    echo "deps: missing ${missing[*]} ${missing_lean[*]}; run: $run" >&2
    exit 1
fi
