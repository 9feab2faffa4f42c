# promptkd compare on a tiny world (BPE from the data, random teacher and student written by
# `promptkd sft --init`): two methods, one seed; both tables written and the Markdown printed.
source tests/cli/lib.sh

source tests/cli/tiny_world.sh
cat >"$W/cfg.json" <<EOC
{"name": "cmp", "run_dir": "$TMP/runs", "teacher": "$W/teacher", "student": "$W/student", "tokenizer": "$W/tok",
 "train_data": "$W/train.jsonl", "valid_data": "$W/valid.jsonl", "test_data": "$W/valid.jsonl",
 "seed": 3, "steps": 3, "batch_size": 2, "prompt_len": 3, "max_new_tokens": 6, "warmup_steps": 1,
 "lr": 0.005, "prompt_lr": 0.005, "eval_interval": 3, "eval_samples": 2, "eval_max_new_tokens": 6,
 "exposure_len": 4, "exposure_prompts": 2, "exposure_samples": 2, "gen_interval": 0, "threads": 1}
EOC

"$PROMPTKD" compare --config "$W/cfg.json" --methods sft,promptkd --seeds 1 --out "$TMP/cmp" --quiet \
    >"$TMP/out" 2>"$TMP/err"
check compare_exit_0 test $? -eq 0
check compare_quiet test ! -s "$TMP/err"
check compare_writes_markdown test -s "$TMP/cmp/compare.md"
check compare_writes_json test -s "$TMP/cmp/compare.json"
check compare_prints_the_markdown cmp -s "$TMP/out" "$TMP/cmp/compare.md"
check table_has_teacher_row grep -q '^| teacher | [0-9.]* |' "$TMP/out"
check table_has_init_row grep -q '^| student (init) | [0-9.]* | -\?[0-9.]* |' "$TMP/out"
check table_has_sft_row grep -q '^| sft | [0-9.]* | -\?[0-9.]* | 1 |' "$TMP/out"
check table_has_promptkd_row grep -q '^| promptkd | [0-9.]* | -\?[0-9.]* | 1 |' "$TMP/out"
check table_says_what_sft_is grep -q 'continues supervised fine-tuning' "$TMP/out"
check json_is_complete python3 -c '
import json, sys, math
d = json.load(open(sys.argv[1]))
assert d["split"] == "test" and d["steps"] == 3 and d["train_seeds"] == [3]
assert [m["method"] for m in d["methods"]] == ["sft", "promptkd"]
for m in d["methods"]:
    assert len(m["runs"]) == 1 and math.isfinite(m["rougeL_mean"]) and math.isfinite(m["exaccerr_mean"])
    assert 0 <= m["rougeL_mean"] <= 100
assert "rougeL_mean" in d["teacher"] and "exaccerr" in d["student_init"]
' "$TMP/cmp/compare.json"
check runs_are_run_folders test -f "$TMP/cmp/runs/sft-s3/checkpoints/step-3/model.safetensors" \
    -a -f "$TMP/cmp/runs/promptkd-s3/checkpoints/step-3/prompt.safetensors"
check promptkd_run_has_prompt_losses grep -q '"prompt_guide_loss"' "$TMP/cmp/runs/promptkd-s3/metrics.jsonl"

# progress goes to stderr without --quiet
"$PROMPTKD" compare --config "$W/cfg.json" --methods kd --seeds 1 --out "$TMP/cmp2" >/dev/null 2>"$TMP/err2"
check compare_progress grep -q 'training kd, seed 3 (1 of 1)' "$TMP/err2"

expect_error unknown_method "'minillm' is not a method" "$PROMPTKD" compare --config "$W/cfg.json" --methods kd,minillm --seeds 1 --out "$TMP/x"
expect_error repeated_method "'kd' appears twice" "$PROMPTKD" compare --config "$W/cfg.json" --methods kd,kd --seeds 1 --out "$TMP/x"
expect_error methods_required "--methods is required" "$PROMPTKD" compare --config "$W/cfg.json" --seeds 1
expect_error bad_seeds "--seeds expects 1 to" "$PROMPTKD" compare --config "$W/cfg.json" --methods kd --seeds 0
expect_error compare_bad_set "key 'steps': expected an integer >= 1" "$PROMPTKD" compare --config "$W/cfg.json" --methods kd --set steps=0
check nothing_written_on_refusal test ! -e "$TMP/x"
