#!/usr/bin/env bash
# Runs every unit test program and every CLI test script; each prints lines
# "PASS name" / "FAIL name". A program that dies without reporting counts as a failure.
# The last line is "N passed, N failed".
# Under sanitizers (ASAN_OPTIONS set, as `make asan` does) every process writes its
# ASan/LSan report to a file, so a leak in a command whose stderr a test redirects
# (expect_error) still fails that test; a UBSan error aborts (status 134, which
# expect_error counts as a crash).
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
    local san="$log_dir/san_$(echo "$name" | tr '/' '_')"
    local t0=$(date +%s%N)
    if [ -n "${ASAN_OPTIONS:-}" ]; then
        ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$san" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:abort_on_error=1:log_path=$san" \
            timeout 900 "$@" >"$log" 2>&1
    else
        timeout 900 "$@" >"$log" 2>&1
    fi
    local rc=$?
    local p f
    p=$(grep -c '^PASS ' "$log")
    f=$(grep -c '^FAIL ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name (exit status $rc without a failing test)" >>"$log"
        f=1
    fi
    local reports=$(ls "$san".* 2>/dev/null)
    if [ -n "$reports" ]; then
        echo "FAIL $name (sanitizer reports: $(echo "$reports" | wc -l))" >>"$log"
        head -n 30 $reports >>"$log"
        f=$((f + 1))
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
