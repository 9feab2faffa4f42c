# promptkd train on a tiny world made here (BPE from the data, random teacher and student
# written by `promptkd sft --init`): the run folder, --set, clear refusals, exact resume
# from the command line, Ctrl-C saving a checkpoint, a non-finite run stopping, no orphan
# folders, resume refusals that say what is wrong, and only finite checkpoints kept.
source tests/cli/lib.sh

source tests/cli/tiny_world.sh
check world_built test -f "$W/teacher/model.safetensors" -a -f "$W/student/model.safetensors" -a -f "$W/tok/vocab.json"

cat >"$W/cfg.json" <<EOF
{"method": "promptkd", "name": "t", "run_dir": "$TMP/runs",
 "teacher": "$W/teacher", "student": "$W/student", "tokenizer": "$W/tok",
 "train_data": "$W/train.jsonl", "valid_data": "$W/valid.jsonl", "test_data": "$W/valid.jsonl",
 "seed": 3, "steps": 4, "batch_size": 2, "prompt_len": 3, "max_new_tokens": 6, "warmup_steps": 1,
 "lr": 0.005, "prompt_lr": 0.005, "eval_interval": 2, "eval_samples": 2, "eval_max_new_tokens": 6,
 "gen_interval": 2, "threads": 1}
EOF

losses() { grep -v '"event"' "$1" | grep -o '"[a-z_]*loss":[^,}]*' | tr '\n' ' '; }

# 1. the run folder
out=$("$PROMPTKD" train --config "$W/cfg.json" --no-tui --quiet 2>"$TMP/err1")
rc=$?
R=$TMP/runs/t
check train_exit_0 test $rc -eq 0
check train_prints_run_folder test "$out" = "$R"
check train_quiet_is_quiet test ! -s "$TMP/err1"
for f in config.json metrics.jsonl checkpoints/latest checkpoints/step-4/model.safetensors \
    checkpoints/step-4/config.json checkpoints/step-4/prompt.safetensors checkpoints/step-4/state.safetensors \
    best/model.safetensors best.json eval/valid-step-4.jsonl; do
    check "run_folder_has_$(echo "$f" | tr '/.-' '___')" test -f "$R/$f"
done
check run_folder_has_plots_dir test -d "$R/plots"
for chart in loss rouge exposure neighbours; do
    check "finished_run_wrote_plot_$chart" "${BUILD:-build}/tools/pngcheck" "$R/plots/$chart.png" 960 540
done
check latest_points_at_step_4 grep -qx 'step-4' "$R/checkpoints/latest"
n=$(grep -vc '"event"' "$R/metrics.jsonl")
check metrics_has_4_step_lines test "$n" -eq 4
check metrics_lines_name_losses grep -q '"step":4,"student_loss":[0-9.e-]*,"prompt_loss":[0-9.e-]*,"prompt_reg_loss"' "$R/metrics.jsonl"
check metrics_lines_have_rates grep -q '"tokens_per_s":.*"elapsed_s":' "$R/metrics.jsonl"
check no_temp_folders_left test -z "$(find "$TMP/runs" -name '*.tmp*')"

# 2. the progress line (one line per second or at the end when stderr is not a terminal)
"$PROMPTKD" train --config "$W/cfg.json" --no-tui --set name=progress >/dev/null 2>"$TMP/err2"
check progress_line_on_stderr grep -q 'step 4/4 .*student_loss .*tok/s .*ETA' "$TMP/err2"
check progress_says_finished grep -q 'finished at step 4' "$TMP/err2"

# 3. --set
"$PROMPTKD" train --config "$W/cfg.json" --no-tui --quiet --set steps=3 --set=name=setrun --set lr=0.001 >/dev/null 2>&1
check set_steps_applied test "$(grep -vc '"event"' "$TMP/runs/setrun/metrics.jsonl" 2>/dev/null)" = 3
check set_saved_in_config grep -q '"lr":[[:space:]]*0.001' "$TMP/runs/setrun/config.json"

# 4. refusals: one message, exit 2
expect_error set_unknown_key "unknown key 'lrr'.*did you mean 'lr'" "$PROMPTKD" train --config "$W/cfg.json" --no-tui --set lrr=1
expect_error set_bad_value "key 'lr': expected a number > 0, got 'abc'" "$PROMPTKD" train --config "$W/cfg.json" --no-tui --set lr=abc
expect_error set_without_equals "expects key=value" "$PROMPTKD" train --config "$W/cfg.json" --no-tui --set lr
expect_error no_config "--config FILE is required" "$PROMPTKD" train --no-tui
echo '{"lr": "fast"}' >"$W/bad.json"
expect_error config_bad_value "bad.json: key 'lr': expected a number > 0.*the string \"fast\"" "$PROMPTKD" train --config "$W/bad.json" --no-tui
echo '{"temprature": 1}' >"$W/bad2.json"
expect_error config_unknown_key "bad2.json: unknown key 'temprature'.*temperature" "$PROMPTKD" train --config "$W/bad2.json" --no-tui
"$PROMPTKD" train --config "$W/cfg.json" --no-tui --set lrr=1 >/dev/null 2>&1
check refusal_exit_2 test $? -eq 2
expect_error resume_without_checkpoint "no checkpoint to resume" "$PROMPTKD" train --resume "$W" --config "$W/cfg.json" --no-tui

# 5. stop_after, then resume from the command line: the same losses as the straight run
"$PROMPTKD" train --config "$W/cfg.json" --no-tui --quiet --set name=res --set stop_after=2 >/dev/null 2>&1
check stop_after_exit_0 test $? -eq 0
check stop_after_checkpoint grep -qx 'step-2' "$TMP/runs/res/checkpoints/latest"
check stop_after_two_steps test "$(grep -vc '"event"' "$TMP/runs/res/metrics.jsonl")" -eq 2
"$PROMPTKD" train --resume "$TMP/runs/res" --no-tui --quiet >/dev/null 2>"$TMP/err5"
check resume_exit_0 test $? -eq 0
check resume_reaches_step_4 grep -qx 'step-4' "$TMP/runs/res/checkpoints/latest"
a=$(losses "$R/metrics.jsonl")
b=$(losses "$TMP/runs/res/metrics.jsonl")
if [ -n "$a" ] && [ "$a" = "$b" ]; then pass resume_losses_identical; else fail resume_losses_identical "$a | $b"; fi
check resume_model_identical cmp -s "$R/checkpoints/step-4/model.safetensors" "$TMP/runs/res/checkpoints/step-4/model.safetensors"

# 6. Ctrl-C: the current step ends, a checkpoint is saved, exit 130
"$PROMPTKD" train --config "$W/cfg.json" --no-tui --quiet --set name=int --set steps=100000 --set eval_interval=100000 \
    >/dev/null 2>"$TMP/err6" &
pid=$!
for _ in $(seq 1 300); do
    [ -s "$TMP/runs/int/metrics.jsonl" ] && break
    sleep 0.1
done
kill -INT $pid
wait $pid
rc=$?
check sigint_exit_130 test $rc -eq 130
check sigint_says_saved grep -q 'saved checkpoint step-' "$TMP/err6"
step=$(sed -n 's/^step-\([0-9]*\)$/\1/p' "$TMP/runs/int/checkpoints/latest" 2>/dev/null)
check sigint_checkpoint_written test -n "$step" -a -f "$TMP/runs/int/checkpoints/step-$step/state.safetensors"
check sigint_checkpoint_is_last_step test "$(grep -vc '"event"' "$TMP/runs/int/metrics.jsonl")" = "$step"

# 7. a learning rate far too large: the run stops at a non-finite loss, exit 1, no checkpoint
"$PROMPTKD" train --config "$W/cfg.json" --no-tui --quiet --set name=nan --set steps=8 --set eval_interval=100 \
    --set lr=1e30 --set prompt_lr=1e30 >/dev/null 2>"$TMP/err7"
rc=$?
check nonfinite_exit_1 test $rc -eq 1
check nonfinite_message grep -q 'non-finite loss at step [0-9]*; paused, no checkpoint written yet' "$TMP/err7"
check nonfinite_no_checkpoint test ! -e "$TMP/runs/nan/checkpoints/latest"

# 8. no orphan run folders: a run that does not load leaves none, and the next run gets the name
expect_error load_failure_exit_1 "teacher" "$PROMPTKD" train --config "$W/cfg.json" --no-tui --quiet --set name=orphan \
    --set "teacher=$TMP/nope"
check load_failure_leaves_no_folder test ! -e "$TMP/runs/orphan"
out=$("$PROMPTKD" train --config "$W/cfg.json" --no-tui --quiet --set name=orphan --set steps=1 2>/dev/null)
check next_run_gets_the_name test "$out" = "$TMP/runs/orphan"

# 9. resume says what is wrong: a fixed key edited by hand, a broken `latest`, a non-finite checkpoint
copy_run() { rm -rf "$TMP/runs/$1" && cp -r "$TMP/runs/res" "$TMP/runs/$1"; }
copy_run edit
sed -i 's/"seed":[[:space:]]*3/"seed": 9/' "$TMP/runs/edit/config.json"
expect_error resume_refuses_fixed_key_edited_in_config "edit/config.json: key 'seed' is '9', but checkpoint step-4 was made with '3'" \
    "$PROMPTKD" train --resume "$TMP/runs/edit" --no-tui --quiet
copy_run garbage
printf 'hello\n' >"$TMP/runs/garbage/checkpoints/latest"
expect_error resume_garbage_latest "garbage/checkpoints/latest holds 'hello\\\\n' .*expected one line 'step-N'" \
    "$PROMPTKD" train --resume "$TMP/runs/garbage" --no-tui --quiet
printf 'step-99\n' >"$TMP/runs/garbage/checkpoints/latest"
expect_error resume_latest_names_missing_folder "names step-99, but .*checkpoints/step-99 does not exist \(checkpoints there: step-4, step-2\)" \
    "$PROMPTKD" train --resume "$TMP/runs/garbage" --no-tui --quiet
copy_run nanck
python3 - "$TMP/runs/nanck/checkpoints/step-4/state.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", d[:8])[0]
o = 8 + n + json.loads(d[8:8 + n])["prompt_m"]["data_offsets"][0]
d[o:o + 4] = struct.pack("<f", float("nan"))
open(p, "wb").write(d)
PY
expect_error resume_refuses_nonfinite_checkpoint "latest names a checkpoint that is not good: .*step-4/state.safetensors: tensor 'prompt_m' holds a non-finite value" \
    "$PROMPTKD" train --resume "$TMP/runs/nanck" --no-tui --quiet

# 10. the last good checkpoint is finite: a model blown up by an update (finite loss, Inf weights) is not saved
printf 'step 2\nset lr 1e38\nstep 1\nsave\n' >"$TMP/poison.pk"
"$PROMPTKD" repl --config "$W/cfg.json" --set name=poison --set eval_interval=1 --keep-going -f "$TMP/poison.pk" >/dev/null 2>"$TMP/err10"
check poisoned_model_pauses grep -q "non-finite values in the model after step 3 (NaN or Inf in the student's weights); paused, last good checkpoint step-2 kept" "$TMP/err10"
check poisoned_model_save_refused grep -q "poison.pk:4: not saved: the last step was non-finite.*checkpoint step-2 kept" "$TMP/err10"
check poisoned_model_latest_stays grep -qx 'step-2' "$TMP/runs/poison/checkpoints/latest"
check poisoned_model_no_step_3 test ! -e "$TMP/runs/poison/checkpoints/step-3"
