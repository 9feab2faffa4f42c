#!/usr/bin/env bash
# promptkd sft: training from a random init and from a folder, best-dev selection, HF output,
# bad arguments refused with a clear message and no output folder left behind.
source tests/cli/lib.sh

head -n 24 assets/data/train.jsonl >"$TMP/train.jsonl"
head -n 6 assets/data/valid.jsonl >"$TMP/valid.jsonl"
TINY="layers=1,embd=16,heads=2,positions=128"
common=(--tokenizer assets/tokenizer --data "$TMP/train.jsonl" --batch 4 --lr 1e-2 --seed 3)

# from a random init, with a dev set: an HF folder and the best dev step reported
"$PROMPTKD" sft --init "$TINY" "${common[@]}" --valid "$TMP/valid.jsonl" --steps 8 --eval-interval 4 \
    --out "$TMP/m1" >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ $rc -eq 0 ] && [ -f "$TMP/m1/model.safetensors" ] && [ -f "$TMP/m1/config.json" ] &&
    grep -q "best dev loss .* at step [48] of 8" "$TMP/out"; then
    pass sft_init_writes_hf_folder_with_best_dev
else
    fail sft_init_writes_hf_folder_with_best_dev "rc=$rc $(tail -3 "$TMP/err") $(cat "$TMP/out")"
fi
check sft_output_has_the_requested_architecture grep -q '"n_embd":[[:space:]]*16,' "$TMP/m1/config.json"
check sft_progress_goes_to_stderr grep -q "step 8/8" "$TMP/err"
check sft_leaves_no_temp_folders test ! -e "$TMP/m1.tmp" -a ! -e "$TMP/m1.old"

# the same seed gives the same bytes
"$PROMPTKD" sft --init "$TINY" "${common[@]}" --valid "$TMP/valid.jsonl" --steps 8 --eval-interval 4 \
    --out "$TMP/m2" >/dev/null 2>&1
check sft_is_deterministic_by_seed cmp -s "$TMP/m1/model.safetensors" "$TMP/m2/model.safetensors"

# continue from a folder, without a dev set: the last step is written, over an existing folder
"$PROMPTKD" sft --model "$TMP/m1" "${common[@]}" --steps 3 --out "$TMP/m2" >"$TMP/out" 2>"$TMP/err"
if [ $? -eq 0 ] && grep -q "wrote .*m2: step 3" "$TMP/out" && ! cmp -s "$TMP/m1/model.safetensors" "$TMP/m2/model.safetensors"; then
    pass sft_from_model_folder_replaces_output
else
    fail sft_from_model_folder_replaces_output "$(tail -3 "$TMP/err")"
fi

# dev ROUGE-L selection runs generation
"$PROMPTKD" sft --init "$TINY" "${common[@]}" --valid "$TMP/valid.jsonl" --steps 2 --eval-interval 2 \
    --select rouge --eval-samples 2 --max-new-tokens 4 --out "$TMP/m3" >"$TMP/out" 2>"$TMP/err"
check sft_select_rouge grep -q "best dev ROUGE-L" "$TMP/out"

# refusals
expect_error sft_needs_a_model_or_init "exactly one of" \
    "$PROMPTKD" sft "${common[@]}" --out "$TMP/x1"
expect_error sft_refuses_two_starts "exactly one of" \
    "$PROMPTKD" sft --model "$TMP/m1" --init "$TINY" "${common[@]}" --out "$TMP/x1"
expect_error sft_bad_init_spec "embd .* not a multiple of heads" \
    "$PROMPTKD" sft --init layers=1,embd=15,heads=2 "${common[@]}" --out "$TMP/x1"
expect_error sft_init_unknown_key "unknown key 'depth'" \
    "$PROMPTKD" sft --init depth=2,embd=16,heads=2 "${common[@]}" --out "$TMP/x1"
expect_error sft_missing_data_file "nope.jsonl" \
    "$PROMPTKD" sft --init "$TINY" --tokenizer assets/tokenizer --data "$TMP/nope.jsonl" --out "$TMP/x1"
expect_error sft_missing_model_folder "nofolder" \
    "$PROMPTKD" sft --model "$TMP/nofolder" "${common[@]}" --out "$TMP/x1"
expect_error sft_bad_steps "--steps must be at least 1" \
    "$PROMPTKD" sft --init "$TINY" "${common[@]}" --steps 0 --out "$TMP/x1"
expect_error sft_bad_select "--select expects" \
    "$PROMPTKD" sft --init "$TINY" "${common[@]}" --select best --out "$TMP/x1"
check sft_failures_write_nothing test ! -e "$TMP/x1"
