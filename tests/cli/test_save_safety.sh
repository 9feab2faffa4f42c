#!/usr/bin/env bash
# Commands that write a whole model folder (REPL/TUI `save DIR`, sft and pretrain --out) never
# delete what promptkd did not write: a folder of other files is refused and left as it was, the
# run folder and what the engine writes in it are refused (the run resumes fine afterwards), a
# model folder promptkd wrote is replaced whole, and crash-left temporaries of dead processes
# beside the target are cleaned while everything else stays.
source tests/cli/lib.sh
source tests/cli/tiny_world.sh
check tiny_world_built tiny_world_ok

# a process id that no longer exists
sh -c 'exit 0' &
wait
DEAD=$!

# a folder of someone's work
mkdir -p "$TMP/thesis"
echo 'chapter 1' >"$TMP/thesis/notes.txt"
echo '\documentclass{article}' >"$TMP/thesis/thesis.tex"
cp -r "$TMP/thesis" "$TMP/thesis.orig"
# a folder holding a subfolder only, and a model folder whose config.json is not a GPT-2 config
mkdir -p "$TMP/deep/sub" "$TMP/llama"
cp "$W/student/model.safetensors" "$TMP/llama/"
echo '{"model_type": "llama"}' >"$TMP/llama/config.json"
# a link to a model folder
cp -r "$W/student" "$TMP/linked" && ln -s "$TMP/linked" "$TMP/link"
# stale temporaries beside the target ck: a dead process's partial checkpoint (removed), a dead
# process's folder holding a foreign file (kept), one of a live process (pid 1, kept), a file (kept)
mkdir -p "$TMP/ck.tmp.$DEAD" "$TMP/ck.old.$DEAD" "$TMP/ck.tmp.1"
cp "$W/student/config.json" "$TMP/ck.tmp.$DEAD/"
: >"$TMP/ck.tmp.$DEAD/model.safetensors.tmp.$DEAD.aB3dE9"
echo mine >"$TMP/ck.old.$DEAD/mine.txt"
cp "$W/student/config.json" "$TMP/ck.tmp.1/"
echo mine >"$TMP/ck.tmp.$DEAD.txt"

R=$TMP/runs/t
cat >"$TMP/script.pk" <<EOF
step 2
save $TMP/thesis
save $TMP/deep
save $TMP/llama
save $TMP/link
save $R
save $R/
save $R/checkpoints
save $R/checkpoints/step-2
save $R/best
save $R/plots/mine
save $TMP/runs
save $TMP/ck
save $TMP/ck2
step 1
save $TMP/ck
save $TMP/link/
save
quit
EOF
"$PROMPTKD" repl --config "$W/cfg.json" --keep-going -f "$TMP/script.pk" >"$TMP/out" 2>"$TMP/err"
check repl_exit_1_after_refusals test $? -eq 1
[ -s "$TMP/err" ] || echo "--- no stderr"
# every refusal names the script line, the folder and why
has() { grep -q -- "$1" "$TMP/err" || { echo "--- stderr:"; cat "$TMP/err"; return 1; }; }
check foreign_refused has "script.pk:2: $TMP/thesis: not a promptkd model folder: it holds the file '\(notes.txt\|thesis.tex\)'.*nothing was changed"
check thesis_intact diff -r "$TMP/thesis" "$TMP/thesis.orig"
check no_thesis_old bash -c "! ls -d '$TMP'/thesis.* | grep -v thesis.orig"
check subfolder_refused has "script.pk:3: $TMP/deep: not a promptkd model folder: it holds the folder 'sub'"
check subfolder_intact test -d "$TMP/deep/sub"
check non_gpt2_config_refused has "script.pk:4: $TMP/llama: not a promptkd model folder: its config.json is not a GPT-2 config"
check non_gpt2_intact test -f "$TMP/llama/model.safetensors"
check link_refused has "script.pk:5: $TMP/link: is a symbolic link"
check link_slash_refused has "script.pk:17: $TMP/link: is a symbolic link"
check link_target_intact cmp -s "$TMP/linked/model.safetensors" "$W/student/model.safetensors"
check run_folder_refused has "script.pk:6: $R is the run folder itself"
check run_folder_slash_refused has "script.pk:7: $R/ is the run folder itself ($R)"
check checkpoints_refused has "script.pk:8: $R/checkpoints is inside the run folder .*, in checkpoints/, which the engine writes"
check step_folder_refused has "script.pk:9: $R/checkpoints/step-2 is inside the run folder"
check best_refused has "script.pk:10: $R/best is inside the run folder .*, in best/"
check plots_refused has "script.pk:11: $R/plots/mine is inside the run folder"
check parent_refused has "script.pk:12: $TMP/runs holds the run folder"
check run_config_intact grep -q '"method"' "$R/config.json"
check run_metrics_intact test -s "$R/metrics.jsonl"
check run_checkpoint_written grep -qx 'step-3' "$R/checkpoints/latest"
# save twice onto the same folder: the second replaces the first, nothing left beside it
check saved_twice bash -c "grep -q 'saved step 2 to $TMP/ck\$' '$TMP/out' && grep -q 'saved step 3 to $TMP/ck\$' '$TMP/out'"
check replaced_has_files test -f "$TMP/ck/config.json" -a -f "$TMP/ck/model.safetensors" -a -f "$TMP/ck/state.safetensors" -a -f "$TMP/ck/prompt.safetensors"
check replaced_is_newer bash -c "! cmp -s '$TMP/ck/model.safetensors' '$TMP/ck2/model.safetensors'"
check replaced_only_model_files test "$(ls "$TMP/ck" | tr '\n' ' ')" = "config.json model.safetensors prompt.safetensors state.safetensors "
# temporaries: the dead process's partial checkpoint is gone, everything else stays
check stale_tmp_removed test ! -e "$TMP/ck.tmp.$DEAD"
check foreign_old_kept test -f "$TMP/ck.old.$DEAD/mine.txt"
check live_tmp_kept test -f "$TMP/ck.tmp.1/config.json"
check other_file_kept test -f "$TMP/ck.tmp.$DEAD.txt"
check no_own_temporaries bash -c "! ls -d '$TMP'/ck.tmp.[0-9]* '$TMP'/ck.old.[0-9]* 2>/dev/null | grep -v -e '\.$DEAD' -e 'ck.tmp.1\$'"

# the run resumes from its own checkpoint as if nothing had been tried
"$PROMPTKD" train --resume "$R" --no-tui --quiet --set stop_after=2 >/dev/null 2>"$TMP/err_resume"
rc=$?
check run_resumes test $rc -eq 0
[ $rc -eq 0 ] || head -5 "$TMP/err_resume"
check run_resumed_to_5 grep -qx 'step-5' "$R/checkpoints/latest"
check resume_logged grep -q '"event":"resume_from","step":3' "$R/metrics.jsonl"

# a crash-left temporary of checkpoints/latest from a dead process goes with the next write of it;
# a temporary of another file stays
: >"$R/checkpoints/latest.tmp.$DEAD"
: >"$R/checkpoints/other.tmp.$DEAD"
# and a checkpoint folder a killed process left half-written (its step is not written again) goes
# with the next checkpoint, while a same-looking folder holding something else stays
mkdir -p "$R/checkpoints/step-99.tmp.$DEAD" "$R/checkpoints/step-98.tmp.$DEAD"
cp "$W/student/config.json" "$R/checkpoints/step-99.tmp.$DEAD/"
: >"$R/checkpoints/step-99.tmp.$DEAD/state.safetensors.tmp.$DEAD.x1Y2z3"
echo mine >"$R/checkpoints/step-98.tmp.$DEAD/notes.txt"
# a copy of one of the run's checkpoints is a folder promptkd wrote: `save` replaces it
cp -r "$R/checkpoints/step-5" "$TMP/copied"
printf 'save\nsave %s\n' "$TMP/copied" >"$TMP/save.pk"
"$PROMPTKD" repl --config "$R/config.json" --resume "$R" -f "$TMP/save.pk" >"$TMP/out_save" 2>"$TMP/err_save"
check resume_and_save_exit_0 test $? -eq 0
check latest_temp_cleaned test ! -e "$R/checkpoints/latest.tmp.$DEAD"
check other_temp_kept test -e "$R/checkpoints/other.tmp.$DEAD"
check copied_checkpoint_replaced bash -c "grep -q 'saved step 5 to $TMP/copied\$' '$TMP/out_save' && test -f '$TMP/copied/state.safetensors' -a ! -e '$TMP/copied/run_config.json'"
check stale_checkpoint_folder_cleaned test ! -e "$R/checkpoints/step-99.tmp.$DEAD"
check foreign_temp_folder_kept test -f "$R/checkpoints/step-98.tmp.$DEAD/notes.txt"

# sft --out: refused before training onto a folder of other files, onto a run folder's parts;
# a folder it wrote is replaced
sft() { "$PROMPTKD" sft --init layers=1,embd=16,heads=2,positions=64 --tokenizer "$W/tok" --data "$W/train.jsonl" \
    --steps 1 --threads 1 --out "$@"; }
expect_error sft_foreign_refused "promptkd sft: $TMP/thesis: not a promptkd model folder: it holds the file" sft "$TMP/thesis"
check sft_thesis_intact diff -r "$TMP/thesis" "$TMP/thesis.orig"
expect_error sft_run_folder_refused "$R is the run folder" sft "$R"
expect_error sft_run_checkpoint_refused "$R/checkpoints/step-5 is inside the run folder" sft "$R/checkpoints/step-5"
check sft_run_intact test -f "$R/checkpoints/step-5/state.safetensors"
expect_error sft_file_refused "exists and is not a folder" sft "$TMP/thesis/notes.txt"
sft "$TMP/m" >/dev/null 2>&1
check sft_writes_new test -f "$TMP/m/model.safetensors"
cp "$TMP/m/model.safetensors" "$TMP/m.first"
"$PROMPTKD" sft --init layers=1,embd=16,heads=2,positions=64 --tokenizer "$W/tok" --data "$W/train.jsonl" \
    --steps 1 --threads 1 --seed 9 --out "$TMP/m" >/dev/null 2>&1
check sft_replaces_own bash -c "! cmp -s '$TMP/m/model.safetensors' '$TMP/m.first'"
check sft_replaced_clean test "$(ls "$TMP" | grep -c '^m\.\(tmp\|old\)')" -eq 0
mkdir -p "$TMP/empty"
sft "$TMP/empty" >/dev/null 2>&1
check sft_fills_empty_folder test -f "$TMP/empty/model.safetensors"

# pretrain --out: the same rule
printf '{"text": "the cat is red. the dog is blue."}\n%.0s' {1..20} >"$TMP/corpus.jsonl"
expect_error pretrain_foreign_refused "promptkd pretrain: $TMP/thesis: not a promptkd model folder" \
    "$PROMPTKD" pretrain --init layers=1,embd=16,heads=2,positions=32 --tokenizer "$W/tok" --data "$TMP/corpus.jsonl" \
    --steps 1 --threads 1 --out "$TMP/thesis"
check pretrain_thesis_intact diff -r "$TMP/thesis" "$TMP/thesis.orig"
