#!/usr/bin/env bash
# promptkd eval (ROUGE-L per seed on Self-Instruct and Dolly files) and promptkd exposure (ExAccErr)
# on the tiny HF checkpoint with the GPT-2 tokenizer.
source tests/cli/lib.sh
M=tests/fixtures/hf-gpt2-tiny
TOK=tests/fixtures/gpt2-tokenizer
SI=tests/fixtures/eval/selfinst-user-oriented.jsonl

# eval on the first 3 Self-Instruct tasks, two seeds
$PROMPTKD eval --model $M --tokenizer $TOK --data $SI --limit 3 --seeds 10,20 --max-new-tokens 8 --batch 2 \
    --out "$TMP/e2.jsonl" >"$TMP/e2.out" 2>"$TMP/e2.err"
check eval_runs test $? -eq 0
check eval_prints_mean_std grep -qE '^ROUGE-L: [0-9.]+ \+- [0-9.]+ \(mean and population std over 2 seeds\)' "$TMP/e2.out"
check eval_prints_each_seed bash -c "grep -q '^seed 10: ROUGE-L' '$TMP/e2.out' && grep -q '^seed 20: ROUGE-L' '$TMP/e2.out'"
check eval_says_positions_clip grep -q "128 positions" "$TMP/e2.err"
check eval_jsonl_lines python3 - "$TMP/e2.jsonl" "$TMP/e2.out" <<'EOF'
import json, re, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 6, len(lines)
assert sorted({l["seed"] for l in lines}) == [10, 20]
for l in lines:
    assert isinstance(l["rougeL"], (int, float)) and 0 <= l["rougeL"] <= 100
    assert isinstance(l["prediction"], str) and l["prediction"] == l["prediction"].strip()
    assert len(l["references"]) >= 1 and l["instruction"]
# the printed per-seed figure is the mean of the lines' scores
out = open(sys.argv[2]).read()
for seed in (10, 20):
    want = sum(l["rougeL"] for l in lines if l["seed"] == seed) / 3
    got = float(re.search(r"seed %d: ROUGE-L ([0-9.]+)" % seed, out).group(1))
    assert abs(got - want) < 1e-3, (got, want)
EOF
# the JSONL re-scores identically with promptkd rouge (same field names, same scorer)
if $PROMPTKD rouge "$TMP/e2.jsonl" --output "$TMP/rescored.jsonl" >/dev/null 2>&1; then
    check eval_rescored_by_rouge python3 - "$TMP/e2.jsonl" "$TMP/rescored.jsonl" <<'EOF'
import json, sys
a = [json.loads(l)["rougeL"] for l in open(sys.argv[1])]
b = [json.loads(l)["rougeL"] for l in open(sys.argv[2])]
assert len(a) == len(b) and all(abs(x - y) < 1e-9 for x, y in zip(a, b)), (a, b)
EOF
else
    fail eval_rescored_by_rouge "promptkd rouge failed on the eval output"
fi

# results do not depend on the batch size
$PROMPTKD eval --model $M --tokenizer $TOK --data $SI --limit 3 --seeds 10,20 --max-new-tokens 8 --batch 1 \
    --out "$TMP/e1.jsonl" >"$TMP/e1.out" 2>/dev/null
check eval_batch_size_independent cmp -s "$TMP/e1.jsonl" "$TMP/e2.jsonl"

# a Dolly-format file, and the prompted teacher T' with a soft prompt
cat >"$TMP/dolly.jsonl" <<'EOF'
{"instruction": "Name a primary colour.", "context": "", "response": "Red is a primary colour.", "category": "open_qa"}
{"instruction": "Summarise the text.", "context": "The cat sat on the mat all day.", "response": "A cat sat on a mat.", "category": "summarization"}
EOF
$PROMPTKD neighbours --model $M --tokenizer $TOK --init-text "Suppose you are a student." --save "$TMP/prompt.safetensors" \
    >/dev/null 2>&1
$PROMPTKD eval --model $M --tokenizer $TOK --data "$TMP/dolly.jsonl" --seeds 1 --max-new-tokens 6 \
    --prompt "$TMP/prompt.safetensors" --out "$TMP/d.jsonl" >"$TMP/d.out" 2>"$TMP/d.err"
check eval_dolly_with_soft_prompt bash -c "grep -q 'prompted teacher' '$TMP/d.out' && test \$(wc -l <'$TMP/d.jsonl') -eq 2"
check eval_single_seed_std_zero grep -qE '^ROUGE-L: [0-9.]+ \+- 0\.0000 \(mean and population std over 1 seed\)' "$TMP/d.out"

# exposure: the curve as JSON, the value at --at printed
$PROMPTKD exposure --teacher $M --student $M --prompt "$TMP/prompt.safetensors" --tokenizer $TOK --data $SI \
    --prompts 2 --samples 2 --max-len 6 --at 4 --seed 3 --out "$TMP/ex.json" >"$TMP/ex.out" 2>"$TMP/ex.err"
check exposure_runs grep -qE '^ExAccErr\(l=4\) = -?[0-9.]+%' "$TMP/ex.out"
check exposure_json_curve python3 - "$TMP/ex.json" "$TMP/ex.out" <<'EOF'
import json, re, sys
d = json.load(open(sys.argv[1]))
assert d["l"] == [1, 2, 3, 4, 5, 6]
for k in ("R", "l_eps", "exaccerr"):
    assert len(d[k]) == 6, k
assert all(r > 0 for r in d["R"]) and all(e > 0 for e in d["l_eps"])     # T' differs from T
assert all(b >= a for a, b in zip(d["R"], d["R"][1:]))                  # sums of KLs grow
for r, e, x in zip(d["R"], d["l_eps"], d["exaccerr"]):
    assert abs((r - e) / e * 100 - x) < 1e-6 * max(1, abs(x))
assert abs(d["exaccerr"][0]) < 1e-9   # step 1: both sets see the same prompt-only context
printed = float(re.search(r"= (-?[0-9.]+)%", open(sys.argv[2]).read()).group(1))
assert abs(printed - d["exaccerr"][3]) < 0.01
assert d["samples"] == 2 and d["prompts"] == 2 and d["max_len"] == 6 and d["seed"] == 3
EOF
# the same student as the teacher without a prompt: zero error everywhere
$PROMPTKD exposure --teacher $M --student $M --tokenizer $TOK --data $SI --prompts 1 --samples 2 --max-len 3 \
    >"$TMP/ex0.out" 2>/dev/null
check exposure_identical_models_zero grep -q '^ExAccErr(l=3) = 0.00%' "$TMP/ex0.out"

# bad inputs: one clear message, non-zero exit, no crash, nothing written
python3 - "$TMP/bad_shape.safetensors" <<'EOF'
import json, struct, sys
data = struct.pack('<6f', *[0.5] * 6)
h = json.dumps({"prompt": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, len(data)]}}).encode()
h += b' ' * ((8 - len(h) % 8) % 8)
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(h)) + h + data)
EOF
: >"$TMP/empty.jsonl"
expect_error eval_missing_model "model|no such" $PROMPTKD eval --model "$TMP/nope" --tokenizer $TOK --data $SI --limit 1
expect_error eval_bad_seeds "seeds" $PROMPTKD eval --model $M --tokenizer $TOK --data $SI --limit 1 --seeds 10,x
expect_error eval_empty_seed_item "seeds" $PROMPTKD eval --model $M --tokenizer $TOK --data $SI --limit 1 --seeds 10,,20
expect_error eval_negative_seed "seeds" $PROMPTKD eval --model $M --tokenizer $TOK --data $SI --limit 1 --seeds=-5
expect_error eval_empty_data "empty|no record" $PROMPTKD eval --model $M --tokenizer $TOK --data "$TMP/empty.jsonl" \
    --out "$TMP/never.jsonl"
check eval_empty_data_writes_nothing test ! -e "$TMP/never.jsonl"
expect_error eval_missing_data "no such|cannot|open" $PROMPTKD eval --model $M --tokenizer $TOK --data "$TMP/none.jsonl"
expect_error eval_bad_prompt_shape "n_embd is 64" $PROMPTKD eval --model $M --tokenizer $TOK --data $SI --limit 1 \
    --prompt "$TMP/bad_shape.safetensors" --out "$TMP/never.jsonl"
check eval_bad_prompt_writes_nothing test ! -e "$TMP/never.jsonl"
expect_error eval_bad_batch "batch" $PROMPTKD eval --model $M --tokenizer $TOK --data $SI --batch 0
expect_error exposure_bad_at "--at must be in 1..6" $PROMPTKD exposure --teacher $M --student $M --tokenizer $TOK \
    --data $SI --max-len 6 --at 7
expect_error exposure_bad_prompt_shape "n_embd is 64" $PROMPTKD exposure --teacher $M --student $M --tokenizer $TOK \
    --data $SI --prompt "$TMP/bad_shape.safetensors"
expect_error exposure_too_long "no room" $PROMPTKD exposure --teacher $M --student $M --tokenizer $TOK --data $SI \
    --max-len 128
expect_error exposure_missing_student "student|no such" $PROMPTKD exposure --teacher $M --student "$TMP/nope" \
    --tokenizer $TOK --data $SI
expect_error exposure_empty_data "empty|no record" $PROMPTKD exposure --teacher $M --student $M --tokenizer $TOK \
    --data "$TMP/empty.jsonl"
# a tokenizer of another vocabulary than the model's: refused before any decoding or output
for i in 1 2 3 4 5 6; do echo "{\"text\": \"the cat $i sat on the mat $i times\"}"; done >"$TMP/small.jsonl"
$PROMPTKD bpe-train --data "$TMP/small.jsonl" --vocab-size 280 --out "$TMP/smalltok" >/dev/null 2>&1
expect_error eval_vocab_mismatch 'vocab_size 50257 but the tokenizer in .*smalltok' $PROMPTKD eval --model $M \
    --tokenizer "$TMP/smalltok" --data $SI --limit 1 --seeds 1 --max-new-tokens 4 --out "$TMP/never.jsonl"
check eval_vocab_mismatch_no_output bash -c "test ! -s '$TMP/out' && test ! -e '$TMP/never.jsonl'"
expect_error exposure_vocab_mismatch 'vocab_size 50257 but the tokenizer' $PROMPTKD exposure --teacher $M --student $M \
    --tokenizer "$TMP/smalltok" --data $SI --prompts 1 --samples 1 --max-len 3
# an --out that cannot be written is refused before the run, not after it
mkdir -p "$TMP/adir"
expect_error eval_out_is_folder 'out .*adir is a folder' $PROMPTKD eval --model $M --tokenizer $TOK --data $SI --out "$TMP/adir"
check eval_out_is_folder_no_output test ! -s "$TMP/out"
expect_error eval_out_folder_missing 'nodir does not exist' $PROMPTKD eval --model $M --tokenizer $TOK --data $SI \
    --out "$TMP/nodir/e.jsonl"
expect_error eval_out_under_a_file 'empty.jsonl is not a folder' $PROMPTKD eval --model $M --tokenizer $TOK --data $SI \
    --out "$TMP/empty.jsonl/e.jsonl"
expect_error exposure_out_is_folder 'out .*adir is a folder' $PROMPTKD exposure --teacher $M --student $M --tokenizer $TOK \
    --data $SI --out "$TMP/adir"
# seeds: empty, trailing comma; huge numbers are clipped to the positions (and batch to the records)
expect_error eval_empty_seeds "seeds" $PROMPTKD eval --model $M --tokenizer $TOK --data $SI --limit 1 --seeds ""
expect_error eval_trailing_comma_seeds "seeds" $PROMPTKD eval --model $M --tokenizer $TOK --data $SI --limit 1 --seeds 1,
$PROMPTKD eval --model $M --tokenizer $TOK --data $SI --limit 1 --seeds 1 --max-new-tokens 2147483647 \
    --max-prompt-tokens 2147483647 --batch 999999999 >"$TMP/huge.out" 2>"$TMP/huge.err"
check eval_huge_numbers_clipped bash -c "grep -q 'at most 64 new tokens' '$TMP/huge.err' && grep -q '^ROUGE-L' '$TMP/huge.out'"
expect_error eval_limit_negative 'limit >= 0' $PROMPTKD eval --model $M --tokenizer $TOK --data $SI --limit -1
expect_error exposure_samples_zero 'samples, --prompts and --max-len must be >= 1' $PROMPTKD exposure --teacher $M \
    --student $M --tokenizer $TOK --data $SI --samples 0
expect_error exposure_huge_max_len 'no room' $PROMPTKD exposure --teacher $M --student $M --tokenizer $TOK --data $SI \
    --max-len 2147483647
