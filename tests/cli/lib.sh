# Shared by tests/cli/test_*.sh: run from the repository root with $PROMPTKD set.
# pass NAME / fail NAME print the lines tests/run.sh counts; expect_* helpers check one thing each.
set -u
PROMPTKD=${PROMPTKD:-$PWD/${BUILD:-build}/promptkd}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1${2:+: $2}"; }
# check NAME COMMAND...: passes when the command succeeds
check() { local n=$1; shift; if "$@"; then pass "$n"; else fail "$n"; fi; }
# expect_error NAME PATTERN COMMAND...: the command must exit non-zero, not crash,
# and print a message matching PATTERN on stderr
expect_error() {
    local n=$1 pat=$2; shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ $rc -eq 0 ]; then fail "$n" "exit 0"; return; fi
    if [ $rc -ge 128 ]; then fail "$n" "crashed with status $rc"; return; fi
    if ! grep -qiE -- "$pat" "$TMP/err"; then fail "$n" "stderr lacks /$pat/: $(head -c 300 "$TMP/err")"; return; fi
    pass "$n"
}
