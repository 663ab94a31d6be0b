#!/usr/bin/env bash
# Runs every cmocka test program given, prints each one's summary (and the lines a test prints as
# "note: ...", such as test_torch's measured differences or why it skipped), and a final tally.
# Exits non-zero when any test program fails. Run from the repository root.
passed=0; failed=0; skipped=0; bad=()
start=$(date +%s)
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    echo "$out" | grep -E '^\[  (PASSED|FAILED)  \]|^\[  ERROR   \]|^\[  FAILED  \] |^\[  SKIPPED \] [0-9]|^note: ' |
        sed "s|^|$(basename "$t"): |"
    p=$(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    f=$(echo "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    k=$(echo "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + k))
    if [ $rc -ne 0 ]; then
        bad+=("$t"); [ "$f" -eq 0 ] && failed=$((failed + 1))
        echo "$out" | tail -n 40
    fi
done
echo "tests took $(( $(date +%s) - start )) s"
[ ${#bad[@]} -gt 0 ] && echo "failing programs: ${bad[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ ${#bad[@]} -eq 0 ]
