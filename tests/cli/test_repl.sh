# The REPL drives a live session: a script trains a few steps, changes a
# hyper-parameter, exports every chart (read back with libpng: size and each
# series' colour), loads both plugins and runs them; errors stop a script unless
# --keep-going; an interactive session keeps going after an error and saves history.
source tests/cli/lib.sh
source tests/cli/tiny_world.sh
PNGCHECK=${BUILD:-build}/tools/pngcheck
check tiny_world_built tiny_world_ok

# palette of views/chart.c, series 0..4
C0=0072b2 C1=d55e00 C2=009e73 C3=cc79a7 C4=e69f00

cat >"$TMP/script.pk" <<EOF
# comments and blank lines are skipped

status
step 4
set lr 0.001
get lr
set max_new_tokens 5
step 4
neighbours 2
exposure
generate "Q: what colour is the owl?\nA:"
eval valid
view loss ema 0.5 log off
export loss $TMP/loss.png --size 640x360
export rouge $TMP/rouge.png
export exposure $TMP/exposure.png --size 500x300
export neighbours $TMP/neighbours.png
plugin load token_divergence
plugin load prompt_attention
plugin list
plugin run token_divergence 2 4
plugin run prompt_attention 1
step 2
plugin export $TMP/plugins.json
export token_divergence/kl_per_position $TMP/kl.png
export prompt_attention/attention_by_layer $TMP/att.png
export all $TMP/plots
save $TMP/saved
quit
EOF
"$PROMPTKD" repl --config "$W/cfg.json" -f "$TMP/script.pk" >"$TMP/out" 2>"$TMP/err"
rc=$?
check script_exit_0 test $rc -eq 0
[ $rc -eq 0 ] || { echo "--- stderr"; head -20 "$TMP/err"; }
check step_reports_progress grep -q '^step 8/40' "$TMP/out"
check set_reports_old_and_new grep -q '^lr: 0.005 -> 0.001' "$TMP/out"
check get_shows_value grep -q '^lr = 0.001' "$TMP/out"
check neighbours_listed grep -q '^p0 ' "$TMP/out"
check plugins_loaded grep -q 'loaded plugin prompt_attention' "$TMP/out"
check plugin_table_shown grep -q "KL(T'||S)" "$TMP/out"
check set_event_logged grep -q '"event":"set".*"key":"lr"' "$TMP/runs/t/metrics.jsonl"
# five series: the four PromptKD losses and kl_tprime_t, KL(T'||T) per token
check loss_png "$PNGCHECK" "$TMP/loss.png" 640 360 $C0 $C1 $C2 $C3 $C4
check rouge_png "$PNGCHECK" "$TMP/rouge.png" 960 540 $C0
check exposure_png "$PNGCHECK" "$TMP/exposure.png" 500 300 $C0 $C1
check neighbours_png "$PNGCHECK" "$TMP/neighbours.png" 960 540 $C0 $C1 $C2
check plugin_chart_png "$PNGCHECK" "$TMP/kl.png" 960 540 $C0 $C1
check plugin_bars_png "$PNGCHECK" "$TMP/att.png" 960 540 $C0
for f in loss rouge exposure neighbours token_divergence-kl_per_position prompt_attention-attention_by_layer \
    prompt_attention-attention_over_training prompt_attention-drift_over_training; do
    check "export_all_$f" "$PNGCHECK" "$TMP/plots/$f.png" 960 540
done
# the optimizer's charts: student and prompt series in each
check lr_chart_png "$PNGCHECK" "$TMP/plots/lr.png" 960 540 $C0 $C1
check grad_norm_chart_png "$PNGCHECK" "$TMP/plots/grad_norm.png" 960 540 $C0 $C1
check plugin_json_written grep -q '"chart":.*"token_divergence/kl_per_position"' "$TMP/plugins.json"
check save_wrote_checkpoint test -f "$TMP/saved/model.safetensors" -a -f "$TMP/saved/prompt.safetensors"

# a failing command stops the script with its line number, or not with --keep-going
printf 'step 1\nfrobnicate\nstep 1\n' >"$TMP/bad.pk"
"$PROMPTKD" repl --config "$W/cfg.json" --set name=stop -f "$TMP/bad.pk" >"$TMP/out" 2>"$TMP/err"
check bad_command_exit_1 test $? -eq 1
check bad_command_named grep -q "bad.pk:2: unknown command 'frobnicate'" "$TMP/err"
check bad_command_stops_before_next test "$(grep -c '^step ' "$TMP/out")" -eq 1
"$PROMPTKD" repl --config "$W/cfg.json" --set name=kg --keep-going -f "$TMP/bad.pk" >"$TMP/out" 2>"$TMP/err"
check keep_going_exit_1 test $? -eq 1
check keep_going_runs_on grep -q '^step 2/40' "$TMP/out"
printf 'set lr banana\n' >"$TMP/bad2.pk"
expect_error bad_value_named "key 'lr': expected a number" "$PROMPTKD" repl --config "$W/cfg.json" --set name=bv -f "$TMP/bad2.pk"
printf 'plugin load %s\n' "$W/tok/vocab.json" >"$TMP/bad3.pk"
expect_error bad_plugin_file "not a loadable shared object" "$PROMPTKD" repl --config "$W/cfg.json" --set name=bp -f "$TMP/bad3.pk"
printf 'plugin load /usr/lib/x86_64-linux-gnu/libpng16.so.16\n' >"$TMP/bad4.pk"
expect_error plugin_without_entry "no promptkd_plugin_entry entry point" "$PROMPTKD" repl --config "$W/cfg.json" --set name=bp2 -f "$TMP/bad4.pk"
printf 'export loss %s/x.jpg\n' "$TMP" >"$TMP/bad5.pk"
expect_error export_needs_png "must end in .png" "$PROMPTKD" repl --config "$W/cfg.json" --set name=bp3 -f "$TMP/bad5.pk"

# a script on stdin
printf 'step 1\nstatus\n' | "$PROMPTKD" repl --config "$W/cfg.json" --set name=stdin >"$TMP/out" 2>&1
check stdin_script_runs grep -q 'step 1/40' "$TMP/out"

# interactive under tmux: an error does not end it, history is saved, tab completes
if command -v tmux >/dev/null; then
    S=pkrepl$$
    tmux new-session -d -s $S -x 120 -y 30 "XDG_STATE_HOME='$TMP/state' '$PROMPTKD' repl --config '$W/cfg.json' --set name=tty; echo REPL-EXITED; sleep 30"
    wait_for() { for _ in $(seq 1 100); do tmux capture-pane -p -t $S | grep -q "$1" && return 0; sleep 0.1; done; return 1; }
    check repl_prompt_shown wait_for 'promptkd>'
    tmux send-keys -t $S 'frobnicate' Enter
    check interactive_error_shown wait_for "unknown command 'frobnicate'"
    tmux send-keys -t $S 'stat' Tab Enter
    check tab_completes_command wait_for '^paused  promptkd'
    tmux send-keys -t $S 'get temper' Tab Enter
    check tab_completes_key wait_for 'temperature = '
    tmux send-keys -t $S 'quit' Enter
    check quit_leaves wait_for 'REPL-EXITED'
    tmux kill-session -t $S 2>/dev/null
    check history_saved grep -q '^frobnicate$' "$TMP/state/promptkd/history"

    # what the run does by itself is said between prompts, nothing typed to ask for it, and the
    # line being typed meanwhile is drawn again as it was
    S=pkevents$$
    tmux new-session -d -s $S -x 150 -y 40 "'$PROMPTKD' repl --config '$W/cfg.json' --set name=ev --set steps=12 --set eval_interval=6; echo REPL-EXITED; sleep 30"
    check events_prompt_shown wait_for 'promptkd>'
    check events_loaded_said wait_for 'run: loaded promptkd run at step 0 of 12'
    tmux send-keys -t $S 'run' Enter
    tmux send-keys -t $S 'get l'
    check events_eval_said wait_for 'run: step 6: valid ROUGE-L'
    check events_checkpoint_said wait_for 'run: step 6: checkpoint saved to checkpoints/step-6'
    check events_end_of_run_said wait_for 'run: finished at step 12; checkpoint step-12 saved'
    # the typed text is still on the prompt line, below the reports, and still the line
    last=$(tmux capture-pane -p -t $S | grep -v '^$' | tail -n 1)
    check events_keep_typed_line test "$last" = "promptkd> get l"
    tmux send-keys -t $S 'r' Enter
    check events_typed_line_runs wait_for '^lr = 0.005'
    tmux send-keys -t $S 'quit' Enter
    check events_quit_leaves wait_for 'REPL-EXITED'
    tmux kill-session -t $S 2>/dev/null
fi

# plugins run between two steps of a running run: it is not paused for them
printf 'run\nplugin load prompt_attention\nplugin run prompt_attention 1\nstatus\npause\n' >"$TMP/plug.pk"
"$PROMPTKD" repl --config "$W/cfg.json" --set name=plugrun --set steps=100000 -f "$TMP/plug.pk" >"$TMP/out" 2>"$TMP/err"
check plugin_run_while_running_exit_0 test $? -eq 0
check plugin_run_while_running_table grep -q 'prompt_attention/' "$TMP/out"
check plugin_run_leaves_run_running grep -q '^running  promptkd  step' "$TMP/out"

# a script waits until the run has loaded: its first command sees the run, not the loading
printf 'status\n' | "$PROMPTKD" repl --config "$W/cfg.json" --set name=loaded >"$TMP/out" 2>&1
check script_waits_for_loading grep -q '^paused  promptkd  step 0/40' "$TMP/out"

# wrong arities and bad numbers: each refused with one message naming the script line, nothing else runs
cat >"$TMP/bad6.pk" <<EOF2
step -1
step 1e9
set
export loss
view loss ema 2
plugin run nothing
neighbours 0
export loss $TMP/nodir/x.png
plugin load $TMP/none.so
status extra
EOF2
"$PROMPTKD" repl --config "$W/cfg.json" --set name=bad6 --keep-going -f "$TMP/bad6.pk" >"$TMP/out" 2>"$TMP/err"
check bad_args_exit_1 test $? -eq 1
check bad_args_one_message_each test "$(grep -c '^promptkd repl: .*bad6.pk:[0-9]*: ' "$TMP/err")" -eq 10
check bad_step_negative grep -q "bad6.pk:1: step: expected a whole number of steps from 1 to 100000000, got '-1'" "$TMP/err"
check bad_step_float grep -q "bad6.pk:2: step: expected a whole number of steps from 1 to 100000000, got '1e9'" "$TMP/err"
check bad_set_arity grep -q "bad6.pk:3: usage: set KEY VALUE" "$TMP/err"
check bad_export_arity grep -q "bad6.pk:4: usage: export CHART FILE.png" "$TMP/err"
check bad_view_ema grep -q "bad6.pk:5: view: ema expects a number in \[0, 1), got '2'" "$TMP/err"
check bad_plugin_run grep -q "bad6.pk:6: plugin run: no plugin named 'nothing' is loaded" "$TMP/err"
check bad_neighbours_k grep -q "bad6.pk:7: neighbours: expected a whole number of tokens per vector" "$TMP/err"
check bad_export_folder grep -q "bad6.pk:8: .*nodir/x.png: cannot create a temporary file" "$TMP/err"
check bad_plugin_path grep -q "bad6.pk:9: plugin .*none.so: no such file$" "$TMP/err"
check bad_status_arity grep -q "bad6.pk:10: status: takes no arguments" "$TMP/err"
check bad_args_no_steps_run bash -c "! grep -q '^step [0-9]' '$TMP/out'"

# plugin arguments: bad numbers refused by the plugin with its usage or range, loading twice refused
cat >"$TMP/bad7.pk" <<EOF2
plugin load token_divergence
plugin load prompt_attention
plugin run token_divergence abc
plugin run token_divergence 1 2 3
plugin run prompt_attention 99999999
plugin load token_divergence
EOF2
"$PROMPTKD" repl --config "$W/cfg.json" --set name=bad7 --keep-going -f "$TMP/bad7.pk" >"$TMP/out" 2>"$TMP/err"
check plugin_bad_args_exit_1 test $? -eq 1
check plugin_bad_samples grep -q "bad7.pk:3: plugin token_divergence: usage: plugin run token_divergence" "$TMP/err"
check plugin_too_many_args grep -q "bad7.pk:4: plugin token_divergence: usage:" "$TMP/err"
check plugin_interval_range grep -q "bad7.pk:5: plugin prompt_attention: INTERVAL must be a whole number from 0 to 1000000, got '99999999'" "$TMP/err"
check plugin_loaded_twice grep -q "bad7.pk:6: .*already loaded" "$TMP/err"

# a session that only looks leaves no run folder behind: the next one gets the same name
printf 'status\n' | "$PROMPTKD" repl --config "$W/cfg.json" --set name=look >/dev/null 2>&1
printf 'status\n' | "$PROMPTKD" repl --config "$W/cfg.json" --set name=look >"$TMP/out" 2>&1
check looking_leaves_no_run_folder test ! -e "$TMP/runs/look" -a ! -e "$TMP/runs/look-2"
check looking_reuses_the_name grep -q "run folder: $TMP/runs/look$" "$TMP/out"
