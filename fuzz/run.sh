#!/usr/bin/env bash
# make fuzz [FUZZ_SECONDS=30] [FUZZ_ONLY="checkpoint shard"]: builds one libFuzzer program per parser of outside input (the list of
# tests/fuzz_feed.c) into build-fuzz/ with clang, ASan and UBSan, and runs each for FUZZ_SECONDS,
# starting from its committed corpus tests/fuzz_corpus/<parser>/. New interesting inputs go to
# build-fuzz/corpus/<parser>/; a crash, leak, hang (-timeout) or huge allocation (-rss_limit_mb,
# -malloc_limit_mb) stops the run and leaves build-fuzz/crash-* or leak-* / timeout-* to add to the
# corpus once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true # the rest: the parsers to run (default: all)
command -v clang >/dev/null || { echo "fuzz: needs clang and libclang-rt-14-dev (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
out=build-fuzz
mkdir -p "$out/obj"
flags=(-O1 -g -std=c11 -fopenmp -march=native -D_GNU_SOURCE -fsanitize=address,undefined -fno-sanitize-recover=all
       -fno-omit-frame-pointer $(pkg-config --cflags stb libcjson))
libs=($(pkg-config --libs stb libcjson zlib) -lm)
parsers=${*:-$(grep -o '{"[a-z]*", feed_[a-z]*}' tests/fuzz_feed.c | sed 's/{"\([a-z]*\)".*/\1/')}

# the library and the feed functions, once, instrumented for coverage (fuzzer-no-link)
objs=()
for src in $(ls common/*.c model/*.c data/*.c train/*.c probes/*.c probes/report/*.c tests/fuzz_feed.c | grep -v '/main_'); do
    obj="$out/obj/${src//\//_}.o"
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ]; then clang "${flags[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"; fi
    objs+=("$obj")
done

failed=0
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
for p in $parsers; do
    clang "${flags[@]}" -fsanitize=fuzzer -DFUZZ_PARSER="\"$p\"" fuzz/target.c "${objs[@]}" "${libs[@]}" -o "$out/fuzz_$p"
    mkdir -p "$out/corpus/$p" "tests/fuzz_corpus/$p"
    echo "fuzz: $p for $seconds s"
    (cd "$out" && OMP_NUM_THREADS=1 ./"fuzz_$p" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 \
        -malloc_limit_mb=512 -max_len=65536 -print_final_stats=0 "corpus/$p" "../tests/fuzz_corpus/$p" 2>&1 |
        grep -E '^Done [0-9]+ runs|ERROR|SUMMARY|Test unit written' || true)
    # libFuzzer names what it found crash-*, leak-*, timeout-*, oom-* in its working directory
    found=$(find "$out" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \))
    if [ -n "$found" ]; then
        mkdir -p "$out/found/$p"
        mv $found "$out/found/$p/"
        echo "fuzz: $p: failing inputs in $out/found/$p/ (fix the parser, then add them to tests/fuzz_corpus/$p/)" >&2
        failed=1
    fi
done
[ $failed -eq 0 ] || exit 1
echo "fuzz: every parser ran $seconds s without a crash, leak, hang or huge allocation"
