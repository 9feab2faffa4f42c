# promptkd compare on a tiny world (BPE from the data, random teacher and student written by
# `promptkd sft --init`): two methods x two training seeds, both tables with their intervals,
# a second invocation that reuses the finished runs, a run continued from its checkpoint,
# --resume, and the refusals.
source tests/cli/lib.sh

source tests/cli/tiny_world.sh
cat >"$W/cfg.json" <<EOC
{"name": "cmp", "run_dir": "$TMP/runs", "teacher": "$W/teacher", "student": "$W/student", "tokenizer": "$W/tok",
 "train_data": "$W/train.jsonl", "valid_data": "$W/valid.jsonl", "test_data": "$W/valid.jsonl",
 "seed": 3, "steps": 3, "batch_size": 2, "prompt_len": 3, "max_new_tokens": 6, "warmup_steps": 1,
 "lr": 0.005, "prompt_lr": 0.005, "eval_interval": 2, "eval_samples": 2, "eval_max_new_tokens": 6,
 "exposure_len": 4, "exposure_prompts": 2, "exposure_samples": 2, "gen_interval": 0, "threads": 1}
EOC
CMP=("$PROMPTKD" compare --config "$W/cfg.json" --methods sft,promptkd --seeds 2 --out "$TMP/cmp"
     --test-records 3 --exposure-prompts 4 --exposure-samples 2 --bootstrap 2000)

"${CMP[@]}" --quiet >"$TMP/out" 2>"$TMP/err"
check compare_exit_0 test $? -eq 0
check compare_quiet test ! -s "$TMP/err"
check compare_writes_markdown test -s "$TMP/cmp/compare.md"
check compare_writes_json test -s "$TMP/cmp/compare.json"
check compare_prints_the_markdown cmp -s "$TMP/out" "$TMP/cmp/compare.md"
num='[-+]\?[0-9.]*'
check table_has_teacher_row grep -q "^| teacher | [0-9.]* ± [0-9.]* | $num \[$num, $num\] | - (oracle) |" "$TMP/out"
check table_has_init_row grep -q "^| student (init) | [0-9.]* ± [0-9.]* | $num \[$num, $num\] | $num \[$num, $num\] |" "$TMP/out"
check table_has_sft_row grep -q "^| sft | [0-9.]* ± [0-9.]* | $num \[$num, $num\] | $num ± [0-9.]* \[$num, $num\] | 2 | [0-9.]* |" "$TMP/out"
check table_has_promptkd_row grep -q "^| promptkd | [0-9.]* ± [0-9.]* | 0 (reference) | $num ± [0-9.]* \[$num, $num\] | 2 |" "$TMP/out"
check table_has_best_rows grep -q "^| sft | [0-9.]* ± [0-9.]* | $num \[$num, $num\] | .* | 2 | [0-9]* |$" "$TMP/out"
check table_says_how_many grep -q '3 test records x 5 decoding seeds (10 20 30 40 50)' "$TMP/out"
check table_says_training_seeds grep -q '2 training seeds (3,4) per method' "$TMP/out"
check table_says_bootstrap grep -q '2000 resamples of the records' "$TMP/out"
check table_says_exposure grep -q 'ExAccErr at l = 4 against the teacher, 4 prompts x 2 samples' "$TMP/out"
check table_says_what_sft_is grep -q 'continues supervised fine-tuning' "$TMP/out"
check json_is_complete python3 -c '
import json, sys, math
d = json.load(open(sys.argv[1]))
assert d["split"] == "test" and d["steps"] == 3 and d["train_seeds"] == [3, 4] and d["records"] == 3
assert d["decoding_seeds"] == [10, 20, 30, 40, 50] and d["bootstrap"]["samples"] == 2000
assert "compare" in d["command"] and d["config"]["steps"] == 3 and d["reference_method"] == "promptkd"
assert [m["method"] for m in d["methods"]] == ["sft", "promptkd"]
ref = d["methods"][1]["final"]["per_record"]
for m in d["methods"]:
    assert len(m["runs"]) == 2 and [r["seed"] for r in m["runs"]] == [3, 4]
    for which in ("final", "best"):
        s = m[which]
        assert len(s["per_record"]) == 3 and len(s["rougeL_per_run"]) == 2
        runs = [r[which]["rouge"] for r in m["runs"]]
        for r in runs:
            assert len(r["per_record"]) == 3 and len(r["rougeL_per_seed"]) == 5
            assert abs(r["rougeL"] - sum(r["per_record"]) / 3) < 1e-9
        # a method per record: the mean over its runs (each already a mean over decoding seeds)
        for i in range(3):
            assert abs(s["per_record"][i] - sum(r["per_record"][i] for r in runs) / 2) < 1e-9
        mean = sum(s["rougeL_per_run"]) / 2
        std = math.sqrt(sum((x - mean) ** 2 for x in s["rougeL_per_run"]) / 1)
        assert abs(s["rougeL_mean"] - mean) < 1e-9 and abs(s["rougeL_std"] - std) < 1e-9
        ex = s["exaccerr"]
        assert ex["pooled"]["low"] <= ex["pooled"]["estimate"] <= ex["pooled"]["high"]
        for r in m["runs"]:
            e = r[which]["exaccerr"]
            assert e["prompts"] == 4 and e["samples"] == 2 and len(e["per_prompt_student"]) == 4
            assert e["interval"]["low"] <= e["value"] + 1e-9 and e["value"] <= e["interval"]["high"] + 1e-9
    diff = m["final"]["diff_vs_promptkd"]
    want = sum(a - b for a, b in zip(m["final"]["per_record"], ref)) / 3
    assert abs(diff["estimate"] - want) < 1e-9, (diff, want)
    assert diff["low"] <= diff["estimate"] + 1e-9 and diff["estimate"] <= diff["high"] + 1e-9
    assert m["train_seconds_mean"] > 0
p = d["methods"][1]["final"]["diff_vs_promptkd"]
assert p["estimate"] == p["low"] == p["high"] == 0
assert len(d["teacher"]["scores"]["per_record"]) == 3 and len(d["teacher"]["scores"]["rougeL_per_seed"]) == 5
assert d["student_init"]["summary"]["exaccerr"]["pooled"] is not None
' "$TMP/cmp/compare.json"
check runs_are_run_folders test -f "$TMP/cmp/runs/sft-s3/checkpoints/step-3/model.safetensors" \
    -a -f "$TMP/cmp/runs/sft-s4/checkpoints/step-3/model.safetensors" \
    -a -f "$TMP/cmp/runs/promptkd-s4/checkpoints/step-3/prompt.safetensors" -a -d "$TMP/cmp/runs/promptkd-s3/best"
check promptkd_run_has_prompt_losses grep -q '"prompt_guide_loss"' "$TMP/cmp/runs/promptkd-s3/metrics.jsonl"

# the same command again: nothing retrained (checkpoints and logs untouched), the same table
stamps() { stat -c '%n %Y.%y' "$TMP"/cmp/runs/*/checkpoints/step-3/model.safetensors "$TMP"/cmp/runs/*/metrics.jsonl; }
stamps >"$TMP/stamps1"
cp "$TMP/cmp/compare.md" "$TMP/first.md"
sleep 1
"${CMP[@]}" >"$TMP/out2" 2>"$TMP/err2"
check rerun_exit_0 test $? -eq 0
check rerun_skips_finished_runs test "$(grep -c 'finished earlier, not retrained' "$TMP/err2")" -eq 4
check rerun_trains_nothing bash -c "! grep -q 'promptkd compare: training' '$TMP/err2'"
stamps >"$TMP/stamps2"
check rerun_leaves_runs_untouched cmp -s "$TMP/stamps1" "$TMP/stamps2"
check rerun_same_table cmp -s "$TMP/first.md" "$TMP/cmp/compare.md"

# --resume replays the saved options
"$PROMPTKD" compare --resume "$TMP/cmp" --quiet >"$TMP/out3" 2>"$TMP/err3"
check resume_exit_0 test $? -eq 0
check resume_same_table cmp -s "$TMP/first.md" "$TMP/out3"

# a run stopped half-way continues from its checkpoint
HALF=("$PROMPTKD" compare --config "$W/cfg.json" --methods kd --seed-list 7 --out "$TMP/half" --test-records 2
      --exposure-prompts 2 --bootstrap 200)
"${HALF[@]}" --set stop_after=2 >/dev/null 2>"$TMP/herr"
check stopped_run_is_not_finished test $? -ne 0 -a -f "$TMP/half/runs/kd-s7/checkpoints/step-2/model.safetensors" \
    -a ! -e "$TMP/half/runs/kd-s7/checkpoints/step-3"
"${HALF[@]}" >"$TMP/hout" 2>"$TMP/herr2"
check half_run_exit_0 test $? -eq 0
check half_run_continues grep -q 'continuing kd, seed 7 (1 of 1) from step 2' "$TMP/herr2"
check half_run_resumed_not_restarted grep -q '"event":"resume_from","step":2' "$TMP/half/runs/kd-s7/metrics.jsonl"
check half_run_finished test -f "$TMP/half/runs/kd-s7/checkpoints/step-3/model.safetensors"
check no_reference_no_difference grep -q 'No promptkd runs in this comparison' "$TMP/hout"

expect_error unknown_method "'nosuch' is not a method \(expected some of sft,kd," "$PROMPTKD" compare --config "$W/cfg.json" --methods kd,nosuch --out "$TMP/x"
expect_error repeated_method "'kd' appears twice" "$PROMPTKD" compare --config "$W/cfg.json" --methods kd,kd --out "$TMP/x"
expect_error config_required "--config FILE is required" "$PROMPTKD" compare --methods kd
expect_error bad_seeds "--seeds expects 1 to 64, got 0" "$PROMPTKD" compare --config "$W/cfg.json" --methods kd --seeds 0 --out "$TMP/x"
expect_error bad_seed_list "--seed-list expects" "$PROMPTKD" compare --config "$W/cfg.json" --methods kd --seed-list 1,x --out "$TMP/x"
expect_error seeds_and_list "not both" "$PROMPTKD" compare --config "$W/cfg.json" --seeds 2 --seed-list 1,2 --out "$TMP/x"
expect_error compare_bad_set "key 'steps': expected an integer >= 1" "$PROMPTKD" compare --config "$W/cfg.json" --methods kd --set steps=0 --out "$TMP/x"
touch "$TMP/afile"
expect_error unwritable_out "--out .*cannot create the comparison folder" "$PROMPTKD" compare --config "$W/cfg.json" --methods kd --out "$TMP/afile/sub"
expect_error out_not_a_comparison "is not a comparison folder" "$PROMPTKD" compare --config "$W/cfg.json" --methods kd --out "$W"
expect_error resume_not_a_comparison "--resume .*: not a comparison folder" "$PROMPTKD" compare --resume "$W/tok"
expect_error resume_with_options "give only --resume DIR" "$PROMPTKD" compare --resume "$TMP/cmp" --methods kd
expect_error other_experiment_same_out "batch_size = 2, this config batch_size = 4; use another --out" "${CMP[@]}" --set batch_size=4
check nothing_written_on_refusal test ! -e "$TMP/x"
