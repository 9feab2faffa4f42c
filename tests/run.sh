#!/usr/bin/env bash
# Runs every unit test program and every CLI test script; each prints lines
# "PASS name" / "FAIL name". A program that dies without reporting counts as a failure.
# The last line is "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
export PROMPTKD=$PWD/$BUILD/promptkd
passed=0
failed=0
failed_names=()
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT

run_one() { # name, command...
    local name=$1; shift
    local log="$log_dir/$(echo "$name" | tr '/' '_').log"
    local t0=$(date +%s%N)
    timeout 900 "$@" >"$log" 2>&1
    local rc=$?
    local p f
    p=$(grep -c '^PASS ' "$log")
    f=$(grep -c '^FAIL ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name (exit status $rc without a failing test)" >>"$log"
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    printf '%-40s %3d passed %3d failed  %4d.%01ds\n' "$name" "$p" "$f" $((ms / 1000)) $(((ms % 1000) / 100))
    if [ "$f" -gt 0 ]; then
        failed_names+=("$name")
        sed 's/^/    /' "$log" | grep -v '^    PASS ' | tail -n 40
    fi
}

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "unit/$(basename "$t")" "$t"
done
for s in tests/cli/test_*.sh; do
    [ -f "$s" ] || continue
    run_one "cli/$(basename "$s" .sh)" bash "$s"
done
[ ${#failed_names[@]} -gt 0 ] && echo "failing: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
