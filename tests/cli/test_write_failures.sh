# Every failed write is an error the person sees: a full disk, a failing fsync or rename,
# made to happen with the fault injector (tests/fault/fault_inject.c, an LD_PRELOAD object
# compiled here). A checkpoint that cannot be written at the end, at stop_after or at an
# evaluation, a metrics.jsonl that cannot take a line, a PNG export that cannot be
# written: each is one sentence on stderr naming the full path (also with --quiet), exit
# status 3 (1 for a failing REPL script command), metrics.jsonl never ends in a torn line,
# and `latest` always names a complete checkpoint.
source tests/cli/lib.sh
source tests/cli/tiny_world.sh
check tiny_world_built tiny_world_ok

# --- the injector -----------------------------------------------------------------------
FAULT=$TMP/fault_inject.so
if ! cc -shared -fPIC -O1 -o "$FAULT" tests/fault/fault_inject.c -ldl 2>"$TMP/cc.err"; then
    fail fault_injector_builds "$(head -3 "$TMP/cc.err")"
    exit 1
fi
# Under AddressSanitizer (make asan) the ASan runtime must be the first object loaded:
# it goes first in LD_PRELOAD, the injector after it (ASan's own write/fwrite interceptors
# then reach the injector's, which reach libc's).
PRELOAD=$FAULT
asan_rt=$(ldd "$PROMPTKD" 2>/dev/null | awk '/libasan/ {print $3; exit}')
if [ -n "$asan_rt" ]; then
    PRELOAD="$asan_rt:$FAULT"
    echo "note: sanitized build: LD_PRELOAD=$PRELOAD (ASan runtime first)"
fi
# faulty CALL PATTERN [VAR=VALUE...] -- COMMAND...: runs COMMAND with the injector
faulty() {
    local call=$1 pattern=$2
    shift 2
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    env LD_PRELOAD="$PRELOAD" PK_FAULT_CALL="$call" PK_FAULT_PATH="$pattern" PK_FAULT_LOG="$TMP/fault.log" \
        "${envs[@]}" "$@"
}
fired() { test -s "$TMP/fault.log"; }

# the injector must not change anything when nothing matches (and must load at all)
faulty write '*/no-such-file' -- "$PROMPTKD" train --config "$W/cfg.json" --no-tui --quiet --set name=clean \
    --set steps=2 >/dev/null 2>"$TMP/err"
check injector_is_transparent test $? -eq 0 -a ! -s "$TMP/err"

cfg=(--config "$W/cfg.json" --no-tui --quiet --set steps=4 --set eval_interval=100 --set exposure_interval=0)
no_temps() { test -z "$(find "$TMP/runs" -name '*.tmp*' 2>/dev/null)"; }
json_lines_ok() { # every line of FILE is a JSON object and the file ends with a newline
    python3 -c 'import json,sys
d=open(sys.argv[1],"rb").read()
assert d.endswith(b"\n"), "no newline at the end"
for l in d.decode().splitlines(): json.loads(l)' "$1"
}

# --- 1. the final checkpoint cannot be written: exit 3 and the sentence, even with --quiet --
rm -f "$TMP/fault.log"
out=$(faulty write '*/checkpoints/step-4*' -- "$PROMPTKD" train "${cfg[@]}" --set name=full 2>"$TMP/err")
rc=$?
check final_ckpt_enospc_fired fired
check final_ckpt_enospc_exit_3 test $rc -eq 3
check final_ckpt_enospc_says_so grep -q "error: checkpoint step-4 not written: $TMP/runs/full/checkpoints/step-4.*No space left on device" "$TMP/err"
check final_ckpt_enospc_prints_run_folder test "$out" = "$TMP/runs/full"
check final_ckpt_enospc_no_latest test ! -e "$TMP/runs/full/checkpoints/latest"
check final_ckpt_enospc_no_temporaries no_temps
check final_ckpt_metrics_intact json_lines_ok "$TMP/runs/full/metrics.jsonl"

rm -f "$TMP/fault.log"
faulty fsync '*/checkpoints/step-4*' -- "$PROMPTKD" train "${cfg[@]}" --set name=fsync >/dev/null 2>"$TMP/err"
rc=$?
check final_ckpt_fsync_fired fired
check final_ckpt_fsync_exit_3 test $rc -eq 3
check final_ckpt_fsync_says_so grep -q "checkpoint step-4 not written: .*Input/output error" "$TMP/err"
check final_ckpt_fsync_no_latest test ! -e "$TMP/runs/fsync/checkpoints/latest"

# `latest` cannot be renamed into place: the checkpoint is there, latest is not updated, exit 3
rm -f "$TMP/fault.log"
faulty rename '*/checkpoints/latest' -- "$PROMPTKD" train "${cfg[@]}" --set name=latest >/dev/null 2>"$TMP/err"
rc=$?
check latest_rename_exit_3 test $rc -eq 3
check latest_rename_says_so grep -q "checkpoint step-4 written, but .latest. not updated.*checkpoints/latest: cannot rename" "$TMP/err"
check latest_rename_leaves_no_latest test ! -e "$TMP/runs/latest/checkpoints/latest"

# stop_after's checkpoint
faulty write '*/checkpoints/step-2*' -- "$PROMPTKD" train "${cfg[@]}" --set name=stop --set stop_after=2 >/dev/null 2>"$TMP/err"
check stop_after_ckpt_exit_3 test $? -eq 3
check stop_after_ckpt_says_so grep -q "checkpoint step-2 not written" "$TMP/err"

# --- 2. a checkpoint at an evaluation fails: said at once (with --quiet), the run goes on ----
faulty rename '*/checkpoints/step-2*' -- "$PROMPTKD" train "${cfg[@]}" --set name=mid --set eval_interval=2 \
    >/dev/null 2>"$TMP/err"
rc=$?
check mid_ckpt_exit_3 test $rc -eq 3
check mid_ckpt_reaches_user grep -q "promptkd train: error: checkpoint step-2 not written: .*$TMP/runs/mid/checkpoints/step-2" "$TMP/err"
check mid_ckpt_run_goes_on grep -qx 'step-4' "$TMP/runs/mid/checkpoints/latest"
check mid_ckpt_no_step_2 test ! -e "$TMP/runs/mid/checkpoints/step-2"

# --- 3. metrics.jsonl cannot take a line (a short write, then ENOSPC) -----------------------
# lines of a run with eval_interval 2 (gen_interval 2): neighbours 0, step 1, eval 2, neighbours 2,
# generation 2, step 2, checkpoint 2, step 3 <- fails
rm -f "$TMP/fault.log"
faulty write '*/runs/met/metrics.jsonl' PK_FAULT_AFTER=7 PK_FAULT_PARTIAL=1 -- \
    "$PROMPTKD" train "${cfg[@]}" --set name=met --set eval_interval=2 >/dev/null 2>"$TMP/err"
rc=$?
check metrics_fault_fired fired
check metrics_fail_exit_3 test $rc -eq 3
check metrics_fail_says_so grep -q "error: $TMP/runs/met/metrics.jsonl: cannot append a line: No space left on device" "$TMP/err"
check metrics_fail_pauses grep -q "promptkd train: paused at step 3: " "$TMP/err"
check metrics_no_torn_line json_lines_ok "$TMP/runs/met/metrics.jsonl"
check metrics_fail_keeps_good_checkpoint grep -qx 'step-2' "$TMP/runs/met/checkpoints/latest"
# the disk has room again: the run resumes from its checkpoint and its log is whole
"$PROMPTKD" train --resume "$TMP/runs/met" --no-tui --quiet >/dev/null 2>"$TMP/err2"
check metrics_resume_exit_0 test $? -eq 0
check metrics_resume_log_whole json_lines_ok "$TMP/runs/met/metrics.jsonl"
steps=$(python3 -c 'import json,sys
print(" ".join(str(o["step"]) for o in map(json.loads, open(sys.argv[1])) if "event" not in o))' "$TMP/runs/met/metrics.jsonl")
check metrics_resume_each_step_once test "$steps" = "1 2 3 4"

# the log cannot be flushed to disk before a checkpoint: no checkpoint gets ahead of its log
faulty fsync '*/runs/msync/metrics.jsonl' -- "$PROMPTKD" train "${cfg[@]}" --set name=msync >/dev/null 2>"$TMP/err"
check metrics_fsync_exit_3 test $? -eq 3
check metrics_fsync_blocks_checkpoint grep -q "checkpoint step-4 not written: the metrics log must be on disk first: .*metrics.jsonl: cannot flush to disk (fsync): Input/output error" "$TMP/err"
check metrics_fsync_no_latest test ! -e "$TMP/runs/msync/checkpoints/latest"

# --- 4. a long path is never cut (errors are PK_ERR_LEN = 512 bytes) -------------------------
LONG=$TMP/$(printf 'a%.0s' $(seq 1 120))/$(printf 'b%.0s' $(seq 1 120))
faulty write '*/checkpoints/step-4*' -- "$PROMPTKD" train "${cfg[@]}" --set name=long --set "run_dir=$LONG" \
    >/dev/null 2>"$TMP/err"
check long_path_exit_3 test $? -eq 3
check long_path_message_whole grep -q "checkpoint step-4 not written: $LONG/long/checkpoints/step-4\.tmp\.[0-9]*/model.safetensors[^ ]*: .*No space left on device" "$TMP/err"

# --- 5. a PNG that cannot be written: one clean sentence, nothing from libpng ---------------
printf 'export loss %s/x.png\n' "$TMP" >"$TMP/png.pk"
for call in write fsync rename; do
    rm -f "$TMP/fault.log"
    faulty $call '*/x.png*' -- "$PROMPTKD" repl --config "$W/cfg.json" --set name=png -f "$TMP/png.pk" \
        >"$TMP/out" 2>"$TMP/err"
    rc=$?
    check "png_${call}_fired" fired
    check "png_${call}_exit_1" test $rc -eq 1
    check "png_${call}_one_sentence" test "$(wc -l <"$TMP/err")" -eq 1
    check "png_${call}_names_file" grep -q "png.pk:1: $TMP/x.png: \(cannot .*\|write failed\): \(No space left on device\|Input/output error\)$" "$TMP/err"
    check "png_${call}_no_libpng_text" bash -c "! grep -qi 'libpng' '$TMP/err'"
    check "png_${call}_nothing_left" test -z "$(ls "$TMP" | grep 'x.png')"
done
