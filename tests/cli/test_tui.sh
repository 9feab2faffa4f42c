#!/usr/bin/env bash
# promptkd tui under tmux: every panel at 100x30 and 80x24, pause/resume, the
# hyper-parameter editor (valid value shown, invalid refused, while running the same
# answers as :set), the ':' command line (export a PNG, :eval logged once), x export, help, zoom, resize,
# the quit question (n quits, y saves a checkpoint), terminal restored after q and
# after SIGTERM (exit 130, as train and repl: tests/cli/test_signals.sh covers saving),
# NO_COLOR, ASCII charts under LANG=C, --frames, bad arguments.
source tests/cli/lib.sh

if ! command -v tmux >/dev/null; then
    fail tui_needs_tmux "tmux is not installed (make deps installs it)"
    exit 1
fi

# A tiny world: the built-in benchmark's first records, random 2-layer teacher and 1-layer student.
W="$TMP/world"
mkdir -p "$W"
head -n 64 assets/data/train.jsonl >"$W/train.jsonl"
head -n 8 assets/data/valid.jsonl >"$W/valid.jsonl"
sft=(--tokenizer assets/tokenizer --data "$W/train.jsonl" --steps 1 --batch 2)
"$PROMPTKD" sft --init layers=2,embd=32,heads=2,positions=256 "${sft[@]}" --seed 1 --out "$W/teacher" >/dev/null 2>&1 &&
    "$PROMPTKD" sft --init layers=1,embd=16,heads=2,positions=256 "${sft[@]}" --seed 2 --out "$W/student" >/dev/null 2>&1
if [ $? -ne 0 ]; then
    fail tui_world "could not make the tiny teacher/student with promptkd sft"
    exit 1
fi
CFG="$W/config.json"
cat >"$CFG" <<EOF
{"method": "promptkd", "name": "tui", "run_dir": "$W/runs", "teacher": "$W/teacher", "student": "$W/student",
 "tokenizer": "assets/tokenizer", "train_data": "$W/train.jsonl", "valid_data": "$W/valid.jsonl",
 "test_data": "$W/valid.jsonl", "steps": 100000, "batch_size": 2, "max_new_tokens": 8, "eval_interval": 100000,
 "eval_samples": 2, "eval_max_new_tokens": 8, "gen_interval": 10, "exposure_interval": 12, "exposure_samples": 2,
 "exposure_prompts": 2, "exposure_len": 6, "threads": 1, "prompt_len": 3}
EOF

# Our own tmux server, so nothing of the person's tmux is touched.
unset TMUX
echo 'set -g default-terminal screen-256color' >"$TMP/tmux.conf"
T=(tmux -u -S "$TMP/tmux.sock" -f "$TMP/tmux.conf")
trap '"${T[@]}" kill-server >/dev/null 2>&1; rm -rf "$TMP"' EXIT

# start NAME WIDTH HEIGHT ENV... -- ARGS...: an interactive shell in a new session, then the command typed into it
start() {
    local name=$1 w=$2 h=$3
    shift 3
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    "${T[@]}" new-session -d -s "$name" -x "$w" -y "$h" -c "$PWD" \
        "env PS1='PKSHELL\$ ' LC_ALL=C.UTF-8 LANG=C.UTF-8 bash --norc --noprofile"
    type_command "$name" "${envs[*]} $PROMPTKD tui --config $CFG $*"
}
# type_command NAME LINE: once the shell shows its prompt, types LINE and reports its exit status
type_command() {
    wait_for "$1" '^PKSHELL\$' 20
    "${T[@]}" send-keys -t "$1" -l "$2; echo EXIT=\$?"
    "${T[@]}" send-keys -t "$1" Enter
}
screen() { "${T[@]}" capture-pane -p -t "$1"; }
keys() { local n=$1; shift; "${T[@]}" send-keys -t "$n" "$@"; }
# wait_for NAME REGEX [SECONDS]: polls the screen until the extended regex matches
wait_for() {
    local n=$1 re=$2 limit=${3:-10} i
    for ((i = 0; i < limit * 10; i++)); do
        screen "$n" | grep -qE -- "$re" && return 0
        sleep 0.1
    done
    return 1
}
step_of() { screen "$1" | sed -nE 's/.*step ([0-9]+)\/100000.*/\1/p' | head -n 1; }
# check_titles NAME SCREEN CHARTS-TITLE: every panel's title is on the screen
check_titles() {
    local n=$1 screen_text=$2 missing="" title
    for title in "$3" "Exposure bias" "Generations" "Prompt neighbours" "Hyper-parameters" "Log"; do
        grep -qF -- "$title" <<<"$screen_text" || missing="$missing '$title'"
    done
    if [ -z "$missing" ]; then pass "$n"; else fail "$n" "missing:$missing"; fi
}
has_braille() { python3 -c 'import sys; t=sys.stdin.buffer.read().decode("utf-8", "replace"); sys.exit(0 if any(0x2801 <= ord(c) <= 0x28ff for c in t) else 1)'; }
all_ascii() { python3 -c 'import sys; t=sys.stdin.buffer.read(); sys.exit(0 if all(b < 128 for b in t) else 1)'; }
png_size() { python3 -c 'import sys,struct; d=open(sys.argv[1],"rb").read(24); assert d[:8]==b"\x89PNG\r\n\x1a\n"; print("%dx%d" % struct.unpack(">II", d[16:24]))' "$1" 2>/dev/null; }
# the width in columns of the line holding the Charts title
charts_line_width() { screen "$1" | grep -m1 'Charts:' | python3 -c 'import sys; print(len(sys.stdin.readline().rstrip("\n")))'; }

# --- the main run at 100x30 -------------------------------------------------------------
start main 100 30 --
if wait_for main 'RUNNING.*step [1-9][0-9]*/100000' 30; then
    pass tui_starts_running
else
    fail tui_starts_running "$(screen main 2>&1 | grep -v '^$' | tail -5)"
    exit 1 # nothing else can be checked
fi
wait_for main 'Exposure bias: step' 15
S=$(screen main)
check_titles tui_every_panel_title_at_100x30 "$S" "Charts: loss"
check tui_status_bar_has_throughput_eta_method grep -qE 'tok/s.*GFLOP/s.*ETA.*promptkd.*runs/tui' <<<"$S"
check tui_charts_in_braille_under_utf8 has_braille <<<"$S"
check tui_generations_show_three_models grep -qE "T'[^│]*│T [^│]*│S " <<<"$S"
check tui_generations_show_the_record grep -qE 'instruction: [^ ].*' <<<"$S"
check tui_neighbours_show_positions grep -qE '0 Δ[0-9.]+ ' <<<"$S"
check tui_log_shows_engine_lines grep -qE 'loaded promptkd run' <<<"$S"
check tui_live_keys_marked grep -qE '\* lr += ' <<<"$S"
check tui_colours_by_default grep -qE $'\e\\[[0-9;]*(3[0-7]|38;5;[0-9]+)m' <<<"$("${T[@]}" capture-pane -e -p -t main)"

# pause
keys main Space
if wait_for main '^ PAUSED' 10; then pass tui_space_pauses; else fail tui_space_pauses "$(screen main | head -1)"; fi
# a paused run has no rate; its ETA says paused (running time left), it does not freeze
check tui_paused_status_no_frozen_rates grep -qE '^ PAUSED .* - tok/s.* - GFLOP/s.*ETA paused' <<<"$(screen main)"

# edit the learning rate: focus Hyper-parameters (5); the selection starts on lr
keys main 5 e
if wait_for main 'set lr = ' 5; then pass tui_editor_opens_on_lr; else fail tui_editor_opens_on_lr "$(screen main | tail -1)"; fi
keys main C-u
keys main -l 0.00031
keys main Enter
if wait_for main '\* lr +.*= 0\.00031' 5; then pass tui_edit_valid_value_shows; else fail tui_edit_valid_value_shows "$(screen main | grep -m1 ' lr ')"; fi
keys main e C-u
keys main -l abc
keys main Enter
if wait_for main "key 'lr': expected a number" 5; then pass tui_edit_invalid_value_refused; else fail tui_edit_invalid_value_refused "$(screen main | tail -1)"; fi
check tui_refused_value_not_applied grep -qE '\* lr +.*= 0\.00031' <<<"$(screen main)"
check tui_set_event_in_metrics grep -q '0.00031' "$W/runs/tui/metrics.jsonl"

# resume: the step count moves
before=$(step_of main)
keys main Space
wait_for main '^ RUNNING' 5
sleep 1.5
after=$(step_of main)
if [ -n "$before" ] && [ -n "$after" ] && [ "$after" -gt "$before" ]; then pass tui_resume_steps_move; else fail tui_resume_steps_move "before=$before after=$after"; fi
# while running, e answers as :set does (one door: both are `set KEY VALUE` applied at the
# next step boundary), in the same words on the message line, for a good and a bad value
msg_line() { screen main | tail -n 1 | sed -E 's/ +$//'; }
# wait_msg REGEX [SECONDS]: until the message line (not the Log, which may say it first) matches
wait_msg() {
    local i
    for ((i = 0; i < ${2:-10} * 10; i++)); do
        msg_line | grep -qE -- "$1" && return 0
        sleep 0.1
    done
    return 1
}
keys main 5 e C-u
keys main -l 0.00042
keys main Enter
check tui_edit_while_running_applies wait_for main '^ *lr: 0.00031 -> 0.00042' 10
e_good=$(msg_line | sed -E 's/[0-9][0-9.]*/N/g')
keys main :
keys main -l "set lr 0.00043"
keys main Enter
check tui_set_while_running_applies wait_for main '^ *lr: 0.00042 -> 0.00043' 10
set_good=$(msg_line | sed -E 's/[0-9][0-9.]*/N/g')
if [ -n "$e_good" ] && [ "$e_good" = "$set_good" ]; then pass tui_e_answers_as_set; else fail tui_e_answers_as_set "e: '$e_good' :set: '$set_good'"; fi
keys main e C-u
keys main -l banana
keys main Enter
wait_msg "key 'lr': expected a number" 20
e_bad=$(msg_line)
keys main :
keys main -l "set lr 0.0001x"
keys main Enter
wait_msg "got '0.0001x'" 20
set_bad=$(msg_line | sed "s/'0.0001x'/'banana'/")
if [ -n "$e_bad" ] && [ "$e_bad" = "$set_bad" ]; then pass tui_e_refuses_as_set; else fail tui_e_refuses_as_set "e: '$e_bad' :set: '$set_bad'"; fi
check tui_running_after_edits grep -q '^ RUNNING' <<<"$(screen main)"
check tui_edits_in_metrics grep -q '"key":"lr","old":0.00042,"new":0.00043' "$W/runs/tui/metrics.jsonl"

# :eval says its result once in the Log (the run's own line), and on the message line
keys main :
keys main -l "eval"
keys main Enter
check tui_eval_answers wait_for main '^ *valid ROUGE-L .* over 2 records at step' 20
check tui_eval_logged_once test "$(screen main | head -n -1 | grep -c 'ROUGE-L .*over 2 records')" -eq 1

# the command line takes REPL commands; output and errors go to the log
keys main :
keys main -l "export loss $TMP/x.png --size 640x360"
keys main Enter
for i in $(seq 50); do [ -f "$TMP/x.png" ] && break; sleep 0.1; done
if [ "$(png_size "$TMP/x.png")" = 640x360 ]; then pass tui_command_line_export_png; else fail tui_command_line_export_png "size=$(png_size "$TMP/x.png")"; fi
keys main :
keys main -l "frobnicate now"
keys main Enter
if wait_for main "> frobnicate now" 5 && wait_for main "unknown command 'frobnicate'" 10 && screen main | grep -q '^ RUNNING'; then
    pass tui_command_errors_are_not_fatal
else
    fail tui_command_errors_are_not_fatal "$(screen main | tail -3)"
fi

# x exports the focused chart into the run's plots/
keys main 1 x
for i in $(seq 50); do [ -f "$W/runs/tui/plots/loss.png" ] && break; sleep 0.1; done
check tui_x_exports_focused_chart test -n "$(png_size "$W/runs/tui/plots/loss.png")"
check tui_x_says_where_in_log wait_for main 'exported loss to .*plots/loss.png' 5

# chart cycling, smoothing and log toggles go through the session's chart views
keys main c
check tui_c_cycles_charts wait_for main 'Charts: rouge' 5
keys main C s # the loss chart starts smoothed at 0.6: s steps on to 0.9
check tui_s_sets_ema wait_for main 'Charts: loss.*ema 0.9' 5
# s with another panel focused says where it works and leaves the chart alone
title_before=$(screen main | grep -oE 'Charts: [^━─]*' | head -1)
keys main 6 s
check tui_s_outside_a_chart_says_where wait_for main 's \(smoothing\) works on a chart: focus Charts \(1\).*Log has the focus' 5
check tui_s_outside_a_chart_changes_nothing test "$(screen main | grep -oE 'Charts: [^━─]*' | head -1)" = "$title_before"
keys main l
check tui_l_outside_a_chart_says_where wait_for main 'l \(log scale\) works on a chart' 5
check tui_l_outside_a_chart_changes_nothing test "$(screen main | grep -oE 'Charts: [^━─]*' | head -1)" = "$title_before"
keys main 1

# help, zoom
keys main '?'
check tui_help_overlay wait_for main 'Help: keys' 5
check tui_help_lists_keys grep -q 'pause / resume training' <<<"$(screen main)"
check tui_help_lists_charts_in_cycle_order grep -q 'loss, rouge, exposure, neighbours, lr, grad_norm' <<<"$(screen main)"
keys main Escape
keys main 6 z
sleep 0.5
S=$(screen main)
if grep -q '━ Log' <<<"$S" && ! grep -q 'Charts:' <<<"$S"; then pass tui_z_zooms_focused_panel; else fail tui_z_zooms_focused_panel; fi
keys main z
check tui_z_again_restores wait_for main 'Charts:' 5

# n / p pick the dev prompt of the generations panel
keys main n
check tui_n_selects_next_dev_prompt wait_for main 'dev 2/8' 10
keys main p
check tui_p_selects_previous_dev_prompt wait_for main 'dev 1/8' 10

# resize: the layout follows the window
w0=$(charts_line_width main)
"${T[@]}" resize-window -t main -x 140 -y 40
sleep 0.8
w1=$(charts_line_width main)
lines=$(screen main | wc -l)
if [ "$w0" = 100 ] && [ "$w1" = 140 ] && [ "$lines" -ge 40 ]; then pass tui_relayout_on_resize; else fail tui_relayout_on_resize "widths $w0 -> $w1, $lines lines"; fi

# q while running asks; c cancels; n quits, and the terminal is restored
keys main q
check tui_q_asks_to_save wait_for main 'save a checkpoint before quitting\? \[y/n/c\]' 5
keys main c
check tui_quit_cancel_keeps_running wait_for main 'quit cancelled' 5
keys main q
wait_for main 'save a checkpoint' 5
keys main n
if wait_for main '^EXIT=0' 10; then pass tui_q_n_exits_0; else fail tui_q_n_exits_0 "$(screen main | tail -3)"; fi
check tui_terminal_restored_after_q test "$("${T[@]}" display -p -t main '#{alternate_on}')" = 0
check tui_shell_prompt_back wait_for main '^PKSHELL\$ ?$' 5

# --- 80x24, paused, NO_COLOR; y at the quit question saves a checkpoint --------------
start small 80 24 NO_COLOR=1 -- --paused
if wait_for small '^ PAUSED.*step 0/100000' 20; then pass tui_paused_flag; else fail tui_paused_flag "$(screen small | grep -v '^$' | tail -4)"; fi
S=$(screen small)
check_titles tui_every_panel_title_at_80x24 "$S" "Charts"
# no colour escape at all (attributes such as bold/reverse are fine)
if "${T[@]}" capture-pane -e -p -t small | grep -qE $'\e\\[[0-9;]*(3[0-7]|4[0-7]|38;5;[0-9]+)m'; then
    fail tui_no_color_means_no_colours
else
    pass tui_no_color_means_no_colours
fi
# a plugin's table gets its own panel, at 80x24 too
PLUGIN=$(dirname "$PROMPTKD")/plugins/prompt_attention.so
if [ -f "$PLUGIN" ]; then
    keys small :
    keys small -l "plugin load $PLUGIN"
    keys small Enter
    wait_for small 'done: plugin load' 10
    keys small :
    keys small -l "plugin run prompt_attention"
    keys small Enter
    if wait_for small '─ Plugins ─' 10 && wait_for small '\[prompt_attention/' 5; then pass tui_plugin_panel_shows_tables; else fail tui_plugin_panel_shows_tables "$(screen small | tail -8)"; fi
    S=$(screen small)
        check tui_plugin_layout_keeps_every_panel_at_80x24 test "$(grep -oE 'Charts|Exposure bias|Generations|Prompt neighbours|Hyper-parameters|─ Log|Plugins' <<<"$S" | sort -u | wc -l)" -eq 7
else
    fail tui_plugin_panel_shows_tables "no $PLUGIN"
fi
keys small Space
wait_for small '^ RUNNING.*step [1-9]' 10
# a view to keep: the rouge chart on a log axis over the last 5 steps, the Exposure bias panel focused
keys small :
keys small -l "view rouge window 5"
keys small Enter
keys small 1 c l 2
wait_for small '━ Exposure bias' 5
# the chart's name and view, without its place in the list (the plugin's charts are not in the next session)
chart_view_title() { screen "$1" | grep -oE 'Charts: [^━─]*' | head -1 | sed -E 's/ \[[0-9]+\/[0-9]+, c\]//'; }
view_title=$(chart_view_title small)
keys small q
wait_for small 'save a checkpoint' 5
keys small y
if wait_for small '^EXIT=0' 15 && ls -d "$W"/runs/tui-2/checkpoints/step-* >/dev/null 2>&1; then
    pass tui_q_y_saves_checkpoint_then_exits
else
    fail tui_q_y_saves_checkpoint_then_exits "$(ls "$W/runs" "$W/runs/tui-2/checkpoints" 2>&1 | tr '\n' ' ')"
fi
check tui_small_terminal_restored test "$("${T[@]}" display -p -t small '#{alternate_on}')" = 0

# --- RUN/view.json: the view is kept when the workbench closes and restored on --resume ------
VIEW="$W/runs/tui-2/view.json"
check tui_view_json_written python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["chart"]=="rouge" and v["focus"]=="Exposure bias" and v["charts"]["rouge"]["log_y"] is True and v["charts"]["rouge"]["window"]==5' "$VIEW"
check tui_view_title_says_window grep -q ' log last 5' <<<"$view_title"
start view 80 24 -- --resume "$W/runs/tui-2" --paused
if wait_for view '^ PAUSED' 20 && wait_for view '━ Exposure bias' 5 &&
    [ "$(chart_view_title view)" = "$view_title" ]; then
    pass tui_view_restored_on_resume
else
    fail tui_view_restored_on_resume "before '$view_title', now '$(chart_view_title view)'"
fi
keys view q
wait_for view '^EXIT=0' 10
# a bad view.json is said and ignored: the run opens in the default view
echo '{"chart": 5}' >"$VIEW"
start badview 80 24 -- --resume "$W/runs/tui-2" --paused
if wait_for badview '^ PAUSED' 20 && wait_for badview 'view.json: chart: expected a chart name; the default view is used' 5 &&
    wait_for badview 'Charts: loss' 5; then
    pass tui_bad_view_json_ignored_with_message
else
    fail tui_bad_view_json_ignored_with_message "$(screen badview | tail -2)"
fi
keys badview q
check tui_bad_view_json_not_fatal wait_for badview '^EXIT=0' 10

# --- LANG=C: ASCII charts and frames; q when paused quits without asking -----------------
"${T[@]}" new-session -d -s ascii -x 100 -y 30 -c "$PWD" "env PS1='PKSHELL\$ ' LC_ALL=C LANG=C bash --norc --noprofile"
type_command ascii "$PROMPTKD tui --config $CFG --set steps=40 --set eval_interval=20"
wait_for ascii 'Exposure bias: step' 20
S=$(screen ascii)
if grep -q 'Charts' <<<"$S" && all_ascii <<<"$S" && grep -qE '\+[-=]+ Charts' <<<"$S"; then pass tui_ascii_under_lang_c; else fail tui_ascii_under_lang_c "$(head -4 <<<"$S")"; fi
wait_for ascii '^ (FINISHED|PAUSED)' 30
keys ascii q
if wait_for ascii '^EXIT=0' 10 && ! screen ascii | grep -q 'save a checkpoint'; then pass tui_q_when_idle_quits_at_once; else fail tui_q_when_idle_quits_at_once "$(screen ascii | tail -3)"; fi

# --- tui --open: a finished run read-only, every panel read back from its folder ------------
DONE=$(dirname "$(grep -l '"event":"finished"' "$W"/runs/*/metrics.jsonl | head -n 1)")
# the last generation's reference answer, as the run recorded it
REF=$(python3 -c 'import json,sys
ref = ""
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o.get("event") == "generation": ref = o.get("reference", "")
print(" ".join(ref.split())[:24])' "$DONE/metrics.jsonl")
"${T[@]}" new-session -d -s open -x 120 -y 40 -c "$PWD" "env PS1='PKSHELL\$ ' LC_ALL=C.UTF-8 LANG=C.UTF-8 bash --norc --noprofile"
type_command open "$PROMPTKD tui --open $DONE"
if wait_for open '^ FINISHED, READ-ONLY .*step 40/40' 20; then pass tui_open_read_only_status; else fail tui_open_read_only_status "$(screen open | head -2)"; fi
S=$(screen open)
check_titles tui_open_every_panel_title "$S" "Charts: loss"
# the Charts panel is the left 72 of 120 columns
left_panel() { python3 -c 'import sys; [print(l[:70]) for l in sys.stdin.read().splitlines()[1:14]]'; }
check tui_open_loss_chart_has_data has_braille <<<"$(left_panel <<<"$S")"
check tui_open_loss_legend grep -qE 'student_loss [0-9]' <<<"$S"
check tui_open_exposure_curve_title grep -qE 'Exposure bias: step [0-9]+, l=[0-9]+' <<<"$S"
check tui_open_exposure_curves_legend grep -qE '. step [0-9]+ [-0-9.]+ .* step [0-9]+ [-0-9.]+' <<<"$S"
check tui_open_neighbours_table grep -qE '0 Δ[0-9.]+ [^ ]+ [0-9.]+' <<<"$S"
check tui_open_generations_instruction grep -qE 'instruction: [^ ]' <<<"$S"
check tui_open_generations_reference test -n "$REF" -a -n "$(grep -F "reference: $REF" <<<"$S")"
check tui_open_generations_rougeL grep -qE "T' [^│]*(ROUGE-L|RL) [0-9]+\.[0-9].*S [^│]*(ROUGE-L|RL) [0-9]+\.[0-9]" <<<"$S"
check tui_open_generations_answers test -z "$(grep -F 'not generated yet' <<<"$S")"
# the neighbour history chart: one line per soft-prompt vector over the steps
keys open c c c
wait_for open 'Charts: neighbours' 5
check tui_open_neighbours_chart has_braille <<<"$(screen open | left_panel)"
check tui_open_neighbours_chart_legend grep -q 'neighbour_sim_p0' <<<"$(screen open)"
# keys that would change the run say it is read-only; nothing runs
keys open Space
check tui_open_space_refused wait_for open 'is open read-only: space does not run it' 5
keys open 5 e
check tui_open_edit_refused wait_for open 'is open read-only: its hyper-parameters are as the run left them' 5
check tui_open_no_editor test -z "$(screen open | grep -F 'set lr = ')"
keys open :
keys open -l "set lr 1e-3"
keys open Enter
check tui_open_set_refused wait_for open 'error: .* is open read-only' 5
check tui_open_still_finished grep -q '^ FINISHED, READ-ONLY .*step 40/40' <<<"$(screen open)"
keys open q
check tui_open_q_exits_0 wait_for open '^EXIT=0' 10
check tui_open_keeps_view python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["chart"]=="neighbours" and v["focus"]=="Hyper-parameters"' "$DONE/view.json"
# reopened: the view it was left in
type_command open "$PROMPTKD tui --open $DONE"
if wait_for open 'Charts: neighbours' 20 && wait_for open '━ Hyper-parameters' 5; then pass tui_open_restores_view; else fail tui_open_restores_view "$(screen open | head -3)"; fi
keys open q
wait_for open '^EXIT=0' 10
# a second run overlays in the charts, each series named after its run
OTHER="$W/runs/tui-2"
type_command open "$PROMPTKD tui --open $DONE $OTHER"
if wait_for open '^ FINISHED, READ-ONLY' 20 && keys open 1 && wait_for open "$(basename "$DONE"): neighbour_sim_p0" 5 &&
    wait_for open 'tui-2: neighbour_sim_p0' 5; then
    pass tui_open_overlays_second_run
else
    fail tui_open_overlays_second_run "$(screen open | head -16 | tail -5)"
fi
keys open q
wait_for open '^EXIT=0' 10
# a compare output folder stands for its runs: the first shown, the others overlaid
mkdir -p "$TMP/cmp/runs"
cp -r "$DONE" "$TMP/cmp/runs/promptkd-s1" && cp -r "$OTHER" "$TMP/cmp/runs/promptkd-s2"
type_command open "$PROMPTKD tui --open $TMP/cmp"
if wait_for open "^ FINISHED, READ-ONLY .*runs/promptkd-s1" 20 && wait_for open 'promptkd-s1: neighbour_sim_p0' 5 &&
    wait_for open 'promptkd-s2: neighbour_sim_p0' 5; then
    pass tui_open_compare_folder_overlays_its_runs
else
    fail tui_open_compare_folder_overlays_its_runs "$(screen open | head -16 | tail -5)"
fi
keys open q
wait_for open '^EXIT=0' 10
# without colour every series has its own glyph, in the plot and in the legend
type_command open "NO_COLOR=1 $PROMPTKD tui --open $DONE"
wait_for open '^ FINISHED, READ-ONLY' 20
keys open 1
wait_for open 'neighbour_sim_p2' 5
glyphs_distinct() {
    python3 -c '
import re, sys
rows = sys.stdin.read().splitlines()
legend = {}
for r in rows:
    for g, name in re.findall(r"(\S) (neighbour_sim_p\d) ", r):
        legend[name] = g
plot = "".join(r[:70] for r in rows[2:11])
drawn = [g for g in legend.values() if g in plot]
sys.exit(0 if len(legend) >= 3 and len(set(legend.values())) == len(legend) and len(drawn) >= 2 else 1)'
}
check tui_no_color_series_glyphs_distinct_with_legend glyphs_distinct <<<"$(screen open)"
keys open q
wait_for open '^EXIT=0' 10
for i in 1 2 3 4 5 6 7 8 9 10; do mkdir -p "$TMP/big/runs/r$i" && cp "$DONE"/config.json "$DONE"/metrics.jsonl "$TMP/big/runs/r$i/"; done
expect_error tui_open_too_many_runs "at most 9 runs at once .* these are 10" "$PROMPTKD" tui --open "$TMP/big" --frames 1
expect_error tui_open_with_config "--open" "$PROMPTKD" tui --open "$DONE" --config "$CFG"
expect_error tui_open_not_a_run "$TMP" "$PROMPTKD" tui --open "$TMP" --frames 1
expect_error tui_extra_run_without_open "--open" "$PROMPTKD" tui --config "$CFG" "$DONE"

# --- below 60x16: one panel at a time, digits and Tab still move between them --------------
start tiny 50 14 -- --paused
if wait_for tiny '^ PAUSED' 20 && wait_for tiny 'Charts: loss' 5; then pass tui_tiny_terminal_single_panel; else fail tui_tiny_terminal_single_panel "$(screen tiny | head -3)"; fi
keys tiny 6
check tui_tiny_terminal_focus_moves wait_for tiny '━ Log' 5
keys tiny q
check tui_tiny_terminal_quits wait_for tiny '^EXIT=0' 10

# --- SIGTERM restores the terminal and exits 130, as train and repl do ------------------
start term 90 26 -- --paused
wait_for term '^ PAUSED' 20
pid=$(pgrep -n -f "promptkd tui --config $CFG")
[ -n "$pid" ] && kill -TERM "$pid"
if wait_for term '^EXIT=130' 10; then pass tui_sigterm_exits_130; else fail tui_sigterm_exits_130 "$(screen term | tail -3)"; fi
check tui_sigterm_restores_terminal test "$("${T[@]}" display -p -t term '#{alternate_on}')" = 0

# --- --frames N exits by itself, on a terminal and headless ------------------------------
start frames 80 24 -- --paused --frames 4
if wait_for frames '^EXIT=0' 20; then pass tui_frames_exits_by_itself; else fail tui_frames_exits_by_itself "$(screen frames | tail -3)"; fi
TERM=xterm timeout 30 "$PROMPTKD" tui --config "$CFG" --paused --frames 2 </dev/null >"$TMP/headless.out" 2>"$TMP/headless.err"
check tui_frames_headless_exit_0 test $? -eq 0

# --- refusals ---------------------------------------------------------------------------------
expect_error tui_missing_config "nope.json" "$PROMPTKD" tui --config "$TMP/nope.json"
expect_error tui_unknown_set_key "frobnicate" "$PROMPTKD" tui --config "$CFG" --set frobnicate=1
expect_error tui_bad_frames "frames" "$PROMPTKD" tui --config "$CFG" --frames -1
expect_error tui_not_a_terminal "terminal" "$PROMPTKD" tui --config "$CFG" --paused
expect_error tui_resume_not_a_run "config.json" "$PROMPTKD" tui --resume "$TMP"
