#!/usr/bin/env bash
# Installs what sinktrace needs from Debian when it is missing (as root), or prints the command.
set -euo pipefail
need=(gcc make pkg-config libcmocka-dev libstb-dev libcjson-dev)
command -v npm >/dev/null 2>&1 || need+=(npm)
# MPI=1 (make deps MPI=1): Open MPI for the data-parallel bin/train
[ "${MPI:-}" = 1 ] && need+=(openmpi-bin libopenmpi-dev)
# FUZZ=1 (make fuzz runs it): clang with libFuzzer and its sanitizer runtimes
[ "${FUZZ:-}" = 1 ] && need+=(clang libclang-rt-14-dev)
missing=()
for p in "${need[@]}"; do
    case "$p" in
        gcc|make|npm) command -v "$p" >/dev/null 2>&1 || missing+=("$p") ;;
        *) dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p") ;;
    esac
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: everything is installed"
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    echo "deps: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
    echo "deps: missing ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
