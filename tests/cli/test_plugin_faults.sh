# Plugins cannot take a session down: every plugin call runs in a child process. A
# plugin that segfaults in analyze, aborts in on_load, crashes in a constructor, loops
# forever in on_step, exits or hangs is reported in one message naming it and the
# signal or the time limit, it is unloaded, and the REPL session and its training go
# on (the run finishes and writes its checkpoint). A plugin that calls every host
# function with hostile arguments gets an error sentence from each. The test plugins
# are tests/plugins/*.c (built by make into BUILD/tests/plugins/).
source tests/cli/lib.sh
source tests/cli/tiny_world.sh
check tiny_world_built tiny_world_ok

TP=$(dirname "$PROMPTKD")/tests/plugins
for p in crash_analyze abort_on_load crash_ctor loop_on_step hostile huge_state; do
    if [ ! -f "$TP/$p.so" ]; then # not built by make: build it here against the ABI header
        mkdir -p "$TMP/plugins"
        cc -std=c11 -O1 -Wall -fPIC -shared -Iplugins -o "$TMP/plugins/$p.so" "tests/plugins/$p.c" || fail "build_$p"
        TP=$TMP/plugins
    fi
done
# the whole output of a script: stdout then stderr
repl() { # NAME SCRIPT [args...]: runs the script, sets $rc, $TMP/NAME.out, $TMP/NAME.err
    local name=$1 script=$2
    shift 2
    "$PROMPTKD" repl --config "$W/cfg.json" --set name="$name" "$@" -f "$script" >"$TMP/$name.out" 2>"$TMP/$name.err"
    rc=$?
}
has() { grep -qE -- "$2" "$1"; }

# ---- analyze segfaults, exits, aborts, hangs: one message each, unloaded, training goes on
cat >"$TMP/analyze.pk" <<EOF
step 2
plugin load $TP/crash_analyze.so
plugin run crash_analyze
plugin list
step 2
plugin load $TP/crash_analyze.so
plugin run crash_analyze exit
plugin load $TP/crash_analyze.so
plugin run crash_analyze abort
plugin load $TP/crash_analyze.so
plugin run crash_analyze --timeout 0.5 hang
plugin list
step 2
plugin load $TP/crash_analyze.so
plugin run crash_analyze --timeout 1 closefds
plugin load $TP/crash_analyze.so
plugin run crash_analyze daemon --timeout 30
plugin list
status
EOF
t0=$(date +%s)
repl analyze "$TMP/analyze.pk" --keep-going
t1=$(date +%s)
check analyze_session_survives test $rc -eq 1 # 4 failing commands, --keep-going: exit 1, no crash
check analyze_segv_named has "$TMP/analyze.err" "analyze.pk:3: plugin crash_analyze: killed by signal SIGSEGV \(Segmentation fault\) in analyze; plugin unloaded"
check analyze_exit_named has "$TMP/analyze.err" "analyze.pk:7: plugin crash_analyze: exited with status 3 in analyze before returning"
check analyze_abort_named has "$TMP/analyze.err" "analyze.pk:9: plugin crash_analyze: killed by signal SIGABRT \(Aborted\) in analyze"
check analyze_hang_timed_out has "$TMP/analyze.err" "analyze.pk:11: plugin crash_analyze: timed out after 0.5 s in analyze"
check analyze_closed_pipe_timed_out has "$TMP/analyze.err" "analyze.pk:15: plugin crash_analyze: timed out after 1 s in analyze"
check analyze_five_messages test "$(grep -c 'plugin crash_analyze: ' "$TMP/analyze.err")" -eq 5
# a grandchild holding the pipe does not hold the call, and is killed with its group
check analyze_daemon_returns bash -c "grep -q '^crash_analyze ' '$TMP/analyze.out' && [ $((t1 - t0)) -lt 25 ]"
gc=$(sed -n 's/^\[crash_analyze\] grandchild \([0-9]*\)$/\1/p' "$TMP/analyze.out")
gone() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; } # dead or a zombie
check analyze_grandchild_killed bash -c "[ -n '$gc' ] && { $(declare -f gone); gone '$gc'; }"
check analyze_unloaded test "$(grep -c '^no plugins loaded' "$TMP/analyze.out")" -eq 2
check analyze_log_line_kept has "$TMP/analyze.out" '^\[crash_analyze\] about to crash'
check analyze_prints_go_to_stderr bash -c "grep -q 'goes to stderr' '$TMP/analyze.err' && ! grep -q 'goes to stderr' '$TMP/analyze.out'"
check analyze_training_goes_on has "$TMP/analyze.out" '^paused  promptkd  step 6/40'

# ---- loading: an abort in on_load, a crashing constructor, a refused descriptor
cat >"$TMP/load.pk" <<EOF
plugin load $TP/abort_on_load.so
plugin load $TP/crash_ctor.so
plugin load $TP/huge_state.so
plugin list
step 1
EOF
repl load "$TMP/load.pk" --keep-going
check load_session_survives test $rc -eq 1
check load_abort_named has "$TMP/load.err" "load.pk:1: plugin abort_on_load: killed by signal SIGABRT \(Aborted\) in on_load; not loaded"
check load_ctor_named has "$TMP/load.err" "load.pk:2: plugin .*crash_ctor.so: killed by signal SIGSEGV \(Segmentation fault\) in its constructors \(dlopen\); not loaded"
check load_huge_state_refused has "$TMP/load.err" "load.pk:3: plugin .*huge_state.so: its state_size 1073741824 exceeds the 1048576 bytes"
check load_nothing_loaded has "$TMP/load.out" '^no plugins loaded'
check load_then_steps has "$TMP/load.out" '^step 1/40'

# ---- on_step loops forever: timed out, unloaded, training finishes and saves; exit 0
cat >"$TMP/step.pk" <<EOF
plugin load $TP/loop_on_step.so --timeout 1
plugin list
step 8
plugin list
EOF
t0=$(date +%s)
repl step "$TMP/step.pk" --set steps=8
t1=$(date +%s)
check step_exit_0 test $rc -eq 0
[ $rc -eq 0 ] || head -5 "$TMP/step.err"
check step_timeout_named has "$TMP/step.out" '^plugin loop_on_step: timed out after 1 s in on_step \(killed\) at step 2; plugin unloaded, training goes on'
check step_limit_listed has "$TMP/step.out" 'loop_on_step .*\[time limit 1 s\]'
check step_unloaded has "$TMP/step.out" '^no plugins loaded'
check step_training_finished has "$TMP/step.out" '^step 8/8'
check step_checkpoint_saved test -f "$TMP/runs/step/checkpoints/step-8/model.safetensors"
check step_latest_is_final grep -qx 'step-8' "$TMP/runs/step/checkpoints/latest"
check step_finished_event grep -q '"event":"finished","step":8' "$TMP/runs/step/metrics.jsonl"
check step_fault_waits_only_the_limit test $((t1 - t0)) -lt 30
# the session default applies when a plugin has no limit of its own, and is reported by `plugin timeout`
cat >"$TMP/step2.pk" <<EOF
plugin timeout 0.5
plugin load $TP/loop_on_step.so
plugin run loop_on_step 3
step 4
plugin timeout
EOF
repl step2 "$TMP/step2.pk" --set steps=4
check step_default_exit_0 test $rc -eq 0
check step_default_timeout has "$TMP/step2.out" '^plugin loop_on_step: timed out after 0.5 s in on_step \(killed\) at step 3;'
check step_state_kept has "$TMP/step2.out" '^\[loop_on_step\] calls 0, hangs at call 3'
check step_default_shown has "$TMP/step2.out" '^plugin calls time out after 0.5 s'
check step2_checkpoint_saved test -f "$TMP/runs/step2/checkpoints/step-4/model.safetensors"

# ---- on_step segfaults: unloaded, the other plugin stays, training finishes and saves; exit 0
cat >"$TMP/stepcrash.pk" <<EOF
plugin load $TP/crash_analyze.so
plugin load prompt_attention
step 1
plugin run crash_analyze arm
step 3
plugin list
EOF
repl stepcrash "$TMP/stepcrash.pk" --set steps=4
check step_crash_exit_0 test $rc -eq 0
check step_crash_named has "$TMP/stepcrash.out" '^plugin crash_analyze: killed by signal SIGSEGV \(Segmentation fault\) in on_step at step 2; plugin unloaded, training goes on'
check step_crash_other_plugin_stays bash -c "grep -q '^prompt_attention ' '$TMP/stepcrash.out' && ! grep -q '^crash_analyze ' '$TMP/stepcrash.out'"
check step_crash_training_finished has "$TMP/stepcrash.out" '^step 4/4'
check step_crash_checkpoint_saved test -f "$TMP/runs/stepcrash/checkpoints/step-4/model.safetensors"

# ---- hostile arguments: every host function fails with a sentence, nothing breaks
cat >"$TMP/hostile.pk" <<EOF
plugin load $TP/hostile.so
plugin run hostile
plugin run hostile limits
step 1
plugin export $TMP/hostile.json
EOF
repl hostile "$TMP/hostile.pk"
check hostile_exit_0 test $rc -eq 0
[ $rc -eq 0 ] || head -5 "$TMP/hostile.err"
check hostile_all_checks_failed_cleanly has "$TMP/hostile.out" '^\[hostile\] [0-9]+ checks, 0 did not fail cleanly'
check hostile_table_shown has "$TMP/hostile.out" '^forward\(n -3\) +ok +forward: n must be at least 1, got -3'
check hostile_no_bad_verdict bash -c "! grep -q ' BAD ' '$TMP/hostile.out'"
check hostile_limits_hold test "$(grep -c '^\[hostile\] [0-9]* checks, 0 did not fail cleanly' "$TMP/hostile.out")" -eq 2
check hostile_session_goes_on has "$TMP/hostile.out" '^step 1/40'
check hostile_export_json grep -q '"chart":[[:space:]]*"hostile/c"' "$TMP/hostile.json"

# ---- the shipped plugins' state lives across calls in their children
cat >"$TMP/state.pk" <<EOF
plugin load prompt_attention
plugin run prompt_attention 1
step 3
plugin export $TMP/state.json
EOF
repl state "$TMP/state.pk"
check shipped_plugin_exit_0 test $rc -eq 0
check shipped_plugin_tracks_each_step python3 -c "
import json, sys
d = json.load(open('$TMP/state.json'))
s = [x for x in d['series'] if x['chart'] == 'prompt_attention/attention_over_training' and x['series'] == 'layer 0']
sys.exit(0 if s and s[0]['x'] == [1, 2, 3] else 1)"

# ---- forward passes in the child while the session has a thread pool (threads 2, the shipped
# models: their GEMMs and LayerNorms go through the pool): the child runs them inline, no deadlock
printf 'plugin load prompt_attention\nplugin run prompt_attention --timeout 120\n' >"$TMP/pool.pk"
"$PROMPTKD" repl --config assets/configs/default.json --set threads=2 --set run_dir="$TMP/runs" --set name=pool \
    -f "$TMP/pool.pk" >"$TMP/pool.out" 2>"$TMP/pool.err"
check pool_forward_exit_0 test $? -eq 0
check pool_forward_table has "$TMP/pool.out" '^layer +attention mass on prompt'

# ---- time limits that make no sense are refused
cat >"$TMP/badt.pk" <<EOF
plugin timeout 0
plugin timeout -1
plugin timeout abc
plugin timeout 1e9
plugin load $TP/hostile.so --timeout
plugin load $TP/hostile.so
plugin run hostile --timeout=nan
EOF
repl badt "$TMP/badt.pk" --keep-going
check bad_timeouts_exit_1 test $rc -eq 1
check bad_timeouts_each_named test "$(grep -c 'expected seconds, a number greater than 0 and at most 86400' "$TMP/badt.err")" -eq 5
check bad_timeout_needs_value has "$TMP/badt.err" 'badt.pk:5: plugin load: --timeout needs seconds'
