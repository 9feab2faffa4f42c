# SIGINT, SIGTERM and SIGHUP are handled the same way by headless `train`, the REPL and
# the TUI: the current step ends, a checkpoint of the unsaved steps is saved, the terminal
# is restored, exit 130 (129 for SIGHUP), and the run resumes from that checkpoint.
# Also: `quit` in the REPL asks while steps are unsaved (a script saves them), and
# nohup's ignored SIGHUP stays ignored.
source tests/cli/lib.sh
source tests/cli/tiny_world.sh
check tiny_world_built tiny_world_ok

# long runs that a signal stops; no evaluation (so no checkpoint) until the signal
long=(--config "$W/cfg.json" --set steps=100000 --set eval_interval=100000 --set exposure_interval=0 --set gen_interval=0)
step_lines() { grep -vc '"event"' "$1/metrics.jsonl" 2>/dev/null; }
# wait_steps RUN N: until the run's log holds N step lines (at most 30 s)
wait_steps() { for _ in $(seq 1 300); do [ "$(step_lines "$1")" -ge "$2" ] 2>/dev/null && return 0; sleep 0.1; done; return 1; }
latest_step() { sed -n 's/^step-\([0-9]*\)$/\1/p' "$1/checkpoints/latest" 2>/dev/null; }
# saved_at_last_step RUN: latest names a complete checkpoint holding every logged step
saved_at_last_step() {
    local s
    s=$(latest_step "$1")
    test -n "$s" -a -f "$1/checkpoints/step-$s/state.safetensors" -a "$(step_lines "$1")" = "$s"
}
# resumes RUN: one more step from the checkpoint, exit 0, latest one further
resumes() {
    local before
    before=$(latest_step "$1")
    "$PROMPTKD" train --resume "$1" --no-tui --quiet --set stop_after=1 >/dev/null 2>"$TMP/resume.err" &&
        test "$(latest_step "$1")" = $((before + 1)) && grep -q '"event":"resume_from"' "$1/metrics.jsonl"
}

# --- headless train ------------------------------------------------------------------------
for sig in INT TERM HUP; do
    case $sig in HUP) want=129 ;; *) want=130 ;; esac
    R=$TMP/runs/train-$sig
    "$PROMPTKD" train "${long[@]}" --no-tui --quiet --set name=train-$sig >/dev/null 2>"$TMP/err" &
    pid=$!
    wait_steps "$R" 2
    kill -$sig $pid
    wait $pid
    rc=$?
    check "train_sig${sig}_exit_$want" test $rc -eq $want
    check "train_sig${sig}_says_so" grep -q "promptkd train: SIG$sig: finishing the current step, then saving" "$TMP/err"
    check "train_sig${sig}_saved" saved_at_last_step "$R"
    check "train_sig${sig}_resumes" resumes "$R"
done

# nohup: SIGHUP stays ignored, the run goes on (then SIGTERM stops it as usual)
R=$TMP/runs/nohup
nohup "$PROMPTKD" train "${long[@]}" --no-tui --quiet --set name=nohup >/dev/null 2>"$TMP/err" &
pid=$!
wait_steps "$R" 1
kill -HUP $pid
sleep 0.5
check train_nohup_ignores_sighup kill -0 $pid
kill -TERM $pid
wait $pid
check train_nohup_then_sigterm_130 test $? -eq 130

# --- the REPL reading commands from a FIFO ---------------------------------------------------
FIFO=$TMP/commands
mkfifo "$FIFO"
# repl_fifo NAME SIGNAL COMMAND: the REPL runs COMMAND from the FIFO (the FIFO stays open, so
# the REPL waits for more), the signal comes once steps are logged
repl_fifo() {
    local name=$1 sig=$2 cmd=$3
    "$PROMPTKD" repl "${long[@]}" --set name=$name -f "$FIFO" >"$TMP/out" 2>"$TMP/err" &
    pid=$!
    exec 3>"$FIFO"
    echo "$cmd" >&3
    wait_steps "$TMP/runs/$name" 2
    kill -$sig $pid
    wait $pid
    rc=$?
    exec 3>&-
}
repl_fifo repl-run INT run # the run in the background, the REPL waiting on its input
check repl_fifo_sigint_exit_130 test $rc -eq 130
check repl_fifo_sigint_says_so grep -q "promptkd repl: SIGINT: finishing the current step" "$TMP/err"
check repl_fifo_sigint_saved saved_at_last_step "$TMP/runs/repl-run"
check repl_fifo_sigint_resumes resumes "$TMP/runs/repl-run"
repl_fifo repl-step TERM "step 100000" # a command waiting for its steps returns at the signal
check repl_fifo_sigterm_in_step_exit_130 test $rc -eq 130
check repl_fifo_sigterm_in_step_saved saved_at_last_step "$TMP/runs/repl-step"
check repl_fifo_sigterm_no_error_line bash -c "! grep -q 'interrupted at step' '$TMP/err'"
repl_fifo repl-hup HUP run
check repl_fifo_sighup_exit_129 test $rc -eq 129
check repl_fifo_sighup_saved saved_at_last_step "$TMP/runs/repl-hup"
check repl_fifo_sighup_resumes resumes "$TMP/runs/repl-hup"

# a script's quit (or its end) saves the steps it took
printf 'step 3\nquit\n' | "$PROMPTKD" repl "${long[@]}" --set name=repl-quit >"$TMP/out" 2>&1
check repl_script_quit_exit_0 test $? -eq 0
check repl_script_quit_saves saved_at_last_step "$TMP/runs/repl-quit"
check repl_script_quit_says_where grep -q "saved checkpoint step-3 to $TMP/runs/repl-quit/checkpoints/step-3" "$TMP/out"
printf 'step 2\n' | "$PROMPTKD" repl "${long[@]}" --set name=repl-eof >/dev/null 2>&1
check repl_script_end_saves saved_at_last_step "$TMP/runs/repl-eof"

# --- interactive REPL and the TUI under tmux -----------------------------------------------
if ! command -v tmux >/dev/null; then
    echo "note: tmux is not installed: the interactive REPL and TUI signal cases are skipped"
    exit 0
fi
unset TMUX
echo 'set -g default-terminal screen-256color' >"$TMP/tmux.conf"
T=(tmux -u -S "$TMP/tmux.sock" -f "$TMP/tmux.conf")
trap '"${T[@]}" kill-server >/dev/null 2>&1; rm -rf "$TMP"' EXIT
# a session that stays, so killing the others never stops the server
"${T[@]}" new-session -d -s keep -x 80 -y 10 "sleep 100000"
screen() { "${T[@]}" capture-pane -p -t "$1"; }
wait_for() { # NAME REGEX [SECONDS]
    local i
    for ((i = 0; i < ${3:-10} * 10; i++)); do screen "$1" | grep -qE -- "$2" && return 0; sleep 0.1; done
    return 1
}
# shell NAME: an interactive shell in a new session; then `type NAME LINE` runs LINE and echoes EXIT=status
shell() {
    "${T[@]}" new-session -d -s "$1" -x 110 -y 30 -c "$PWD" \
        "env PS1='PKSHELL\$ ' LC_ALL=C.UTF-8 LANG=C.UTF-8 XDG_STATE_HOME='$TMP/state' bash --norc --noprofile"
    wait_for "$1" '^PKSHELL\$' 20
}
type_line() { "${T[@]}" send-keys -t "$1" -l "$2; echo EXIT=\$?"; "${T[@]}" send-keys -t "$1" Enter; }
echo_on() { "${T[@]}" send-keys -t "$1" -l "stty -a | grep -q ' -echo ' && echo ECHO=off || echo ECHO=on"; "${T[@]}" send-keys -t "$1" Enter; }

# Ctrl-C at the REPL prompt: the steps taken are saved, exit 130, the terminal is sane again
shell repl
type_line repl "$PROMPTKD repl ${long[*]} --set name=tty-int"
wait_for repl 'promptkd>' 20
"${T[@]}" send-keys -t repl 'step 3' Enter
wait_for repl '^step 3/100000' 20
"${T[@]}" send-keys -t repl C-c
check repl_ctrl_c_exit_130 wait_for repl '^EXIT=130' 20
check repl_ctrl_c_saved saved_at_last_step "$TMP/runs/tty-int"
echo_on repl
check repl_ctrl_c_terminal_restored wait_for repl '^ECHO=on' 5

# quit while steps are unsaved asks: c cancels, y saves and leaves
type_line repl "$PROMPTKD repl ${long[*]} --set name=tty-quit"
wait_for repl 'promptkd>' 20
"${T[@]}" send-keys -t repl 'step 2' Enter
wait_for repl '^step 2/100000' 20
"${T[@]}" send-keys -t repl 'quit' Enter
check repl_quit_asks wait_for repl 'save a checkpoint of the 2 unsaved steps before quitting\? \[y/n/c\]' 10
"${T[@]}" send-keys -t repl 'c' Enter
check repl_quit_cancel wait_for repl '^quit cancelled' 10
"${T[@]}" send-keys -t repl 'quit' Enter
wait_for repl 'unsaved steps before quitting' 10
"${T[@]}" send-keys -t repl 'y' Enter
check repl_quit_y_exit_0 wait_for repl '^EXIT=0' 20
check repl_quit_y_saved saved_at_last_step "$TMP/runs/tty-quit"
"${T[@]}" kill-session -t repl

# the TUI: Ctrl-C while running saves and exits 130; SIGHUP (a dropped ssh session) 129;
# `train` on a terminal opens the same workbench and does the same
tui_case() { # NAME KEYS-OR-SIGNAL WANT COMMAND...
    local name=$1 how=$2 want=$3
    shift 3
    shell $name
    type_line $name "$*"
    wait_for $name 'RUNNING.*step [1-9]' 30
    wait_steps "$TMP/runs/$name" 2
    if [ "$how" = C-c ]; then
        "${T[@]}" send-keys -t $name C-c
    else
        kill -$how "$(pgrep -n -f "name=$name")"
    fi
    check "tui_${name}_exit_$want" wait_for $name "^EXIT=$want" 30
    check "tui_${name}_terminal_restored" test "$("${T[@]}" display -p -t $name '#{alternate_on}')" = 0
    check "tui_${name}_saved" saved_at_last_step "$TMP/runs/$name"
    check "tui_${name}_said_so" wait_for $name "SIG(INT|HUP|TERM): finishing the current step" 5
    "${T[@]}" kill-session -t $name
}
tui_case tuiint C-c 130 "$PROMPTKD" tui "${long[@]}" --set name=tuiint
check tui_ctrl_c_resumes resumes "$TMP/runs/tuiint"
tui_case tuihup HUP 129 "$PROMPTKD" tui "${long[@]}" --set name=tuihup
tui_case trainterm TERM 130 "$PROMPTKD" train "${long[@]}" --set name=trainterm
check train_tui_sigterm_resumes resumes "$TMP/runs/trainterm"
