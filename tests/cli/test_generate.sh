#!/usr/bin/env bash
# promptkd generate and promptkd neighbours on the tiny HF checkpoint with the GPT-2 tokenizer.
source tests/cli/lib.sh
M=tests/fixtures/hf-gpt2-tiny
TOK=tests/fixtures/gpt2-tokenizer

# a safetensors file with one F32 tensor "prompt" of the given shape: write_prompt FILE ROWS COLS
write_prompt() {
    python3 - "$@" <<'EOF'
import json, struct, sys
path, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = struct.pack('<%df' % (rows * cols), *[0.01 * i for i in range(rows * cols)])
h = json.dumps({"prompt": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [0, len(data)]}}).encode()
h += b' ' * ((8 - len(h) % 8) % 8)
open(path, 'wb').write(struct.pack('<Q', len(h)) + h + data)
EOF
}

# greedy decoding is deterministic and produces text
$PROMPTKD generate --model $M --tokenizer $TOK --prompt "Hello, my name is" --max-new-tokens 12 --greedy >"$TMP/g1" 2>"$TMP/g1.err"
rc1=$?
$PROMPTKD generate --model $M --tokenizer $TOK --prompt "Hello, my name is" --max-new-tokens 12 --greedy >"$TMP/g2" 2>/dev/null
check generate_greedy_runs test $rc1 -eq 0 -a -s "$TMP/g1"
check generate_greedy_deterministic cmp -s "$TMP/g1" "$TMP/g2"

# seeded sampling: the same seed repeats, another seed differs
$PROMPTKD generate --model $M --tokenizer $TOK --prompt "Once upon a time" --max-new-tokens 16 --seed 7 >"$TMP/s7a" 2>/dev/null
$PROMPTKD generate --model $M --tokenizer $TOK --prompt "Once upon a time" --max-new-tokens 16 --seed 7 >"$TMP/s7b" 2>/dev/null
$PROMPTKD generate --model $M --tokenizer $TOK --prompt "Once upon a time" --max-new-tokens 16 --seed 8 >"$TMP/s8" 2>/dev/null
check generate_same_seed_same_text cmp -s "$TMP/s7a" "$TMP/s7b"
check generate_other_seed_other_text bash -c "! cmp -s '$TMP/s7a' '$TMP/s8'"
# filters run (top-k 1 is greedy)
$PROMPTKD generate --model $M --tokenizer $TOK --prompt "Hello, my name is" --max-new-tokens 12 --top-k 1 --seed 3 >"$TMP/k1" 2>/dev/null
check generate_top_k_1_equals_greedy cmp -s "$TMP/k1" "$TMP/g1"
$PROMPTKD generate --model $M --tokenizer $TOK --prompt "Hello" --max-new-tokens 8 --top-p 0.9 --temperature 0.7 \
    --no-repeat-ngram 2 --seed 1 >"$TMP/tp" 2>/dev/null
check generate_top_p_temperature_runs test -s "$TMP/tp"
# generation is clipped to the model's 128 positions, and says so
$PROMPTKD generate --model $M --tokenizer $TOK --prompt "Hello" --max-new-tokens 500 --seed 1 >"$TMP/long" 2>"$TMP/long.err"
check generate_clipped_to_positions grep -q "127 new tokens at most" "$TMP/long.err"

# neighbours: the prompt initialised from the PromptKD text has its own tokens as nearest neighbours
$PROMPTKD neighbours --model $M --tokenizer $TOK --init-text "Suppose you are a student." --save "$TMP/p.safetensors" \
    --k 3 >"$TMP/nb" 2>/dev/null
check neighbours_init_text_saves test -s "$TMP/p.safetensors"
$PROMPTKD neighbours --model $M --tokenizer $TOK --prompt "$TMP/p.safetensors" --k 2 --json >"$TMP/nb.json" 2>"$TMP/nb.err"
check neighbours_json_exact python3 - "$TMP/nb.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
ids = [p["neighbours"][0]["id"] for p in d["positions"]]
sims = [p["neighbours"][0]["similarity"] for p in d["positions"]]
assert d["k"] == 2 and all(len(p["neighbours"]) == 2 for p in d["positions"])
assert ids == [15979, 577, 345, 389, 257, 3710, 13], ids
assert all(abs(s - 1) < 1e-6 for s in sims), sims
assert [p["neighbours"][0]["token"] for p in d["positions"]][:3] == ["Supp", "ose", " you"]
EOF
check neighbours_table grep -q '^  2  " you" 1.0000 (345)' "$TMP/nb"

# the soft prompt changes what the model generates (T')
$PROMPTKD generate --model $M --tokenizer $TOK --prompt "Hello, my name is" --max-new-tokens 12 --greedy \
    --soft-prompt "$TMP/p.safetensors" >"$TMP/gp" 2>/dev/null
check generate_soft_prompt_changes_output bash -c "test -s '$TMP/gp' && ! cmp -s '$TMP/gp' '$TMP/g1'"

# bad inputs: one clear message, non-zero exit, no crash
write_prompt "$TMP/bad_shape.safetensors" 7 32
expect_error generate_missing_model "model|config" $PROMPTKD generate --model "$TMP/nope" --tokenizer $TOK --prompt hi
expect_error generate_bad_soft_prompt_shape "n_embd is 64" $PROMPTKD generate --model $M --tokenizer $TOK --prompt hi \
    --soft-prompt "$TMP/bad_shape.safetensors"
expect_error generate_soft_prompt_not_safetensors "safetensors|header|small|short" $PROMPTKD generate --model $M \
    --tokenizer $TOK --prompt hi --soft-prompt "$TOK/vocab.json"
expect_error generate_temperature_zero "temperature" $PROMPTKD generate --model $M --tokenizer $TOK --prompt hi --temperature 0
expect_error generate_top_p_above_one "top_p" $PROMPTKD generate --model $M --tokenizer $TOK --prompt hi --top-p 1.5
expect_error generate_needs_prompt "prompt" $PROMPTKD generate --model $M --tokenizer $TOK
expect_error generate_empty_prompt "no tokens" $PROMPTKD generate --model $M --tokenizer $TOK --prompt ""
expect_error neighbours_bad_prompt_shape "n_embd is 64" $PROMPTKD neighbours --model $M --tokenizer $TOK \
    --prompt "$TMP/bad_shape.safetensors"
expect_error neighbours_bad_k "k must be" $PROMPTKD neighbours --model $M --tokenizer $TOK --prompt "$TMP/p.safetensors" --k 0
expect_error neighbours_needs_one_source "exactly one" $PROMPTKD neighbours --model $M --tokenizer $TOK
# a tokenizer of another vocabulary than the model's is refused by both sizes, before any output
for i in 1 2 3 4 5 6; do echo "{\"text\": \"the cat $i sat on the mat $i times\"}"; done >"$TMP/small.jsonl"
$PROMPTKD bpe-train --data "$TMP/small.jsonl" --vocab-size 280 --out "$TMP/smalltok" >/dev/null 2>&1
expect_error generate_vocab_mismatch 'vocab_size 50257 but the tokenizer in .*smalltok has 2[0-9][0-9] tokens' \
    $PROMPTKD generate --model $M --tokenizer "$TMP/smalltok" --prompt "the cat" --seed 1
check generate_vocab_mismatch_no_output test ! -s "$TMP/out"
expect_error neighbours_vocab_mismatch 'vocab_size 50257 but the tokenizer' $PROMPTKD neighbours --model $M \
    --tokenizer "$TMP/smalltok" --init-text "the cat"
# huge and out-of-range numbers: clipped or refused by name, never a crash or a huge allocation
$PROMPTKD generate --model $M --tokenizer $TOK --prompt "Hello" --max-new-tokens 999999999 --greedy >"$TMP/huge" 2>"$TMP/huge.err"
check generate_huge_max_new_tokens_clipped bash -c "test -s '$TMP/huge' && grep -q '127 new tokens at most' '$TMP/huge.err'"
expect_error generate_max_new_out_of_range 'promptkd generate: --max-new-tokens is out of range' $PROMPTKD generate \
    --model $M --tokenizer $TOK --prompt hi --max-new-tokens 99999999999
expect_error generate_negative_max_new 'max-new-tokens must be >= 0' $PROMPTKD generate --model $M --tokenizer $TOK \
    --prompt hi --max-new-tokens -1
expect_error generate_negative_seed 'seed expects a non-negative integer' $PROMPTKD generate --model $M --tokenizer $TOK \
    --prompt hi --seed -1
expect_error generate_top_k_negative 'top_k must be >= 0' $PROMPTKD generate --model $M --tokenizer $TOK --prompt hi --top-k -3
expect_error generate_model_is_file 'no such model folder' $PROMPTKD generate --model "$TMP/small.jsonl" --tokenizer $TOK --prompt hi
expect_error generate_soft_prompt_folder 'not a regular file' $PROMPTKD generate --model $M --tokenizer $TOK --prompt hi \
    --soft-prompt "$TMP"
mkdir -p "$TMP/adir"
expect_error neighbours_save_to_folder 'save .*adir is a folder' $PROMPTKD neighbours --model $M --tokenizer $TOK \
    --init-text "hi" --save "$TMP/adir"
# soft prompts: no rows, no "prompt" tensor, a NaN value
python3 - "$TMP" <<'PY'
import json, struct, sys
def write(path, tensors, data=b''):
    h = json.dumps(tensors).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + data)
d = sys.argv[1]
write(d + '/zero_rows.safetensors', {"prompt": {"dtype": "F32", "shape": [0, 64], "data_offsets": [0, 0]}})
write(d + '/other_name.safetensors', {"other": {"dtype": "F32", "shape": [1, 64], "data_offsets": [0, 256]}}, b'\0' * 256)
vals = [float('nan')] + [0.1] * 127
write(d + '/nan.safetensors', {"prompt": {"dtype": "F32", "shape": [2, 64], "data_offsets": [0, 512]}},
      struct.pack('<128f', *vals))
PY
expect_error soft_prompt_zero_rows 'must have shape \[P, C\] .*got \[0, 64\]' $PROMPTKD generate --model $M \
    --tokenizer $TOK --prompt hi --soft-prompt "$TMP/zero_rows.safetensors"
expect_error soft_prompt_missing_tensor 'no tensor named "prompt"' $PROMPTKD generate --model $M --tokenizer $TOK \
    --prompt hi --soft-prompt "$TMP/other_name.safetensors"
expect_error soft_prompt_nan 'non-finite value at element 0' $PROMPTKD neighbours --model $M --tokenizer $TOK \
    --prompt "$TMP/nan.safetensors"
