#!/usr/bin/env bash
# promptkd synth --pretrain-docs and promptkd pretrain: the pretraining corpus of the benchmark's world
# (deterministic, nothing of valid/test in it), language-model training on packed windows, and
# eval --prompt-init (the untrained PromptKD prompt in front of a model).
source tests/cli/lib.sh

# the corpus: deterministic by seed, the shipped splits unchanged, no valid/test record inside
"$PROMPTKD" synth --out "$TMP/d1" --seed 1234 --size 6000 --pretrain-docs 3000 >"$TMP/out" 2>"$TMP/err"
check synth_pretrain_writes_corpus grep -q "pretrain.jsonl: the 6000 training records and 3000 drawn documents" "$TMP/out"
check synth_pretrain_keeps_the_splits cmp -s "$TMP/d1/test.jsonl" assets/data/test.jsonl
"$PROMPTKD" synth --out "$TMP/d2" --seed 1234 --size 6000 --pretrain-docs 3000 >/dev/null 2>&1
check synth_pretrain_is_deterministic cmp -s "$TMP/d1/pretrain.jsonl" "$TMP/d2/pretrain.jsonl"
check synth_pretrain_one_line_per_document test "$(wc -l <"$TMP/d1/pretrain.jsonl")" -eq 9000
python3 - "$TMP/d1" >"$TMP/leak" <<'PY'
import json, sys
d = sys.argv[1]
docs = [json.loads(l)["text"] for l in open(d + "/pretrain.jsonl")]
kinds = {"article": 0, "list": 0, "dialogue": 0, "worked": 0, "alpaca": 0}
for t in docs:
    if t.startswith("Below is an instruction"): kinds["alpaca"] += 1
    elif t.startswith("Problem:") or (" = " in t and t[0].isdigit()): kinds["worked"] += 1
    elif ":\n" in t[:60]: kinds["list"] += 1
for split in ("valid", "test"):
    for l in open(d + "/" + split + ".jsonl"):
        r = json.loads(l)
        key = r["instruction"] + ("\n\n" + r["context"] if r["context"] else "")
        # a held-out (instruction, context) pair must not occur as a record of the corpus
        if any(r["instruction"] in t and (not r["context"] or r["context"] in t) and r["response"] in t for t in docs):
            print("leak", split, r["instruction"][:60])
print("kinds", kinds)
PY
if ! grep -q '^leak' "$TMP/leak" && grep -q "'alpaca': [1-9]" "$TMP/leak" && grep -q "'list': [1-9]" "$TMP/leak"; then
    pass synth_pretrain_has_no_valid_or_test_record
else
    fail synth_pretrain_has_no_valid_or_test_record "$(head -3 "$TMP/leak")"
fi
expect_error synth_pretrain_bad_count "--pretrain-docs must be between" \
    "$PROMPTKD" synth --out "$TMP/d3" --pretrain-docs -1

# pretrain: a tiny model on the corpus; the held-out loss falls, the output is an HF folder
TINY="layers=1,embd=16,heads=2,positions=32"
head -n 400 "$TMP/d1/pretrain.jsonl" >"$TMP/corpus.jsonl"
common=(--tokenizer assets/tokenizer --data "$TMP/corpus.jsonl" --batch 4 --lr 1e-2 --seed 3 --valid-tokens 2000)
"$PROMPTKD" pretrain --init "$TINY" "${common[@]}" --steps 30 --eval-interval 10 --out "$TMP/m1" \
    >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ $rc -eq 0 ] && [ -f "$TMP/m1/model.safetensors" ] && grep -q '"n_positions":[[:space:]]*32' "$TMP/m1/config.json" &&
    grep -q "best held-out loss .* at step [0-9]* of 30" "$TMP/out"; then
    pass pretrain_writes_hf_folder
else
    fail pretrain_writes_hf_folder "rc=$rc $(tail -3 "$TMP/err") $(cat "$TMP/out")"
fi
check pretrain_reports_the_corpus grep -q "400 documents" "$TMP/err"
first=$(grep -m1 "held-out loss" "$TMP/err" | awk '{print $3}')
last=$(grep "held-out loss" "$TMP/err" | tail -1 | awk '{print $3}')
check pretrain_heldout_loss_falls awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a && a < 8) }'
"$PROMPTKD" pretrain --init "$TINY" "${common[@]}" --steps 30 --eval-interval 10 --out "$TMP/m2" >/dev/null 2>&1
check pretrain_is_deterministic_by_seed cmp -s "$TMP/m1/model.safetensors" "$TMP/m2/model.safetensors"
"$PROMPTKD" pretrain --init "$TINY" "${common[@]}" --steps 30 --eval-interval 10 --dropout 0.1 --out "$TMP/m3" \
    >/dev/null 2>&1
check pretrain_dropout_changes_training bash -c "! cmp -s '$TMP/m1/model.safetensors' '$TMP/m3/model.safetensors'"
"$PROMPTKD" pretrain --model "$TMP/m1" "${common[@]}" --steps 5 --out "$TMP/m4" >"$TMP/out" 2>"$TMP/err"
check pretrain_continues_from_a_folder grep -q "wrote .*m4" "$TMP/out"

printf '{"text": "a b"}\n{"title": "no text"}\n' >"$TMP/bad.jsonl"
expect_error pretrain_corpus_line_without_text "bad.jsonl:2: expected an object with a string field \"text\"" \
    "$PROMPTKD" pretrain --init "$TINY" --tokenizer assets/tokenizer --data "$TMP/bad.jsonl" --out "$TMP/x1"
printf '{"text": "a b"}\n{"text": \n' >"$TMP/bad2.jsonl"
expect_error pretrain_corpus_malformed_json "bad2.jsonl:2: malformed JSON" \
    "$PROMPTKD" pretrain --init "$TINY" --tokenizer assets/tokenizer --data "$TMP/bad2.jsonl" --out "$TMP/x1"
printf '{"text": "a b"}\n' >"$TMP/small.jsonl"
expect_error pretrain_corpus_too_small "too few for windows" \
    "$PROMPTKD" pretrain --init "$TINY" --tokenizer assets/tokenizer --data "$TMP/small.jsonl" --out "$TMP/x1"
expect_error pretrain_seq_beyond_positions "--seq must be between 2 and the model's n_positions 32" \
    "$PROMPTKD" pretrain --init "$TINY" "${common[@]}" --seq 64 --out "$TMP/x1"
expect_error pretrain_needs_one_start "exactly one of" \
    "$PROMPTKD" pretrain "${common[@]}" --out "$TMP/x1"
expect_error pretrain_bad_dropout "--dropout must be in" \
    "$PROMPTKD" pretrain --init "$TINY" "${common[@]}" --dropout 1 --out "$TMP/x1"
check pretrain_failures_write_nothing test ! -e "$TMP/x1"

# eval --prompt-init: T' with the untrained prompt; differs from the model alone
head -n 6 assets/data/test.jsonl >"$TMP/test.jsonl"
ev=(--model assets/models/teacher --tokenizer assets/tokenizer --data "$TMP/test.jsonl" --seeds 10 --max-new-tokens 8)
"$PROMPTKD" eval "${ev[@]}" --prompt-init "Suppose you are a student." >"$TMP/p1" 2>"$TMP/err"
check eval_prompt_init_runs_the_prompted_teacher grep -q "prompted teacher (soft prompt)" "$TMP/p1"
expect_error eval_prompt_init_and_file "either --prompt FILE or --prompt-init TEXT" \
    "$PROMPTKD" eval "${ev[@]}" --prompt-init "x" --prompt "$TMP/p.safetensors"
expect_error eval_prompt_len_range "--prompt-len must be between 1 and 4096" \
    "$PROMPTKD" eval "${ev[@]}" --prompt-init "x" --prompt-len 0
