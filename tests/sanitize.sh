#!/usr/bin/env bash
# make sanitize: every program and test built with AddressSanitizer + UndefinedBehaviorSanitizer into
# build-san/ (its own build/ and bin/, beside symlinks to the sources, so the Makefile and the tests'
# relative bin/ paths work unchanged there), then the whole test suite and a 20-step training run of
# the default model on a synthetic corpus, under them. Any report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=build-san
mkdir -p "$root"
for d in common model data train probes tests runs docs Makefile; do ln -sfn "../$d" "$root/$d"; done

# detect_leaks=0: LeakSanitizer reports libgomp's thread pool and thread-local storage, which the
# OpenMP runtime allocates once and never frees (not ours to free); ASan still checks every access.
# max_allocation_size_mb: an allocation over 1 GB (no test needs one) is a size read from a file
# that was not checked against the file's size.
export ASAN_OPTIONS=detect_leaks=0:max_allocation_size_mb=1024:abort_on_error=0:halt_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
SAN="-O2 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"

start=$(date +%s)
# through the environment, so the Makefile's own flags are appended to these
CFLAGS="$SAN" make -C "$root" -j2 all
# test_lab trains five miniature runs with the corpus (a minute without sanitizers): left to make test
CFLAGS="$SAN" make -C "$root" -j2 test SKIP_TESTS=bin/test_lab

# 20 steps of the default model on a small synthetic corpus, a checkpoint, probes and
# bin/probe on the checkpoint
cd "$root"
rm -rf san_data san_runs
bin/prepare --synthetic bb --out san_data --tokens 60000 >/dev/null
flags=(--data_dir san_data --out_dir san_runs --run_name default --seq_len 64 --batch_size 4
       --eval_batches 1 --probe_n 4 --probe_len 64 --probe_every 10 --ckpt_every 10 --threads 2)
bin/train --config runs/default.conf "${flags[@]}" --steps 20 --warmup_steps 2 >/dev/null
bin/probe san_runs/default --step 20 >/dev/null
rm -rf san_data san_runs
echo "sanitize: clean (build, $(ls bin/test_* | wc -l) test programs, a 20-step run) in $(( $(date +%s) - start )) s"
