#!/usr/bin/env bash
# promptkd data stats: human and JSON output on the Self-Instruct fixture and crafted files, bad input.
source tests/cli/lib.sh
TOK=tests/fixtures/gpt2-tokenizer
SI=tests/fixtures/eval/selfinst-user-oriented.jsonl

"$PROMPTKD" data stats "$SI" --tokenizer "$TOK" >"$TMP/human" 2>"$TMP/err"
check stats_exit_0 test $? -eq 0
check stats_format grep -qE '^format +selfinst$' "$TMP/human"
check stats_records grep -qE '^records +252$' "$TMP/human"
check stats_percentile_header grep -qE 'min +p50 +p90 +p99 +max' "$TMP/human"
check stats_dropped_line grep -qE 'longer than 256 tokens \(dropped\): [0-9]+ of 252' "$TMP/human"

"$PROMPTKD" data stats "$SI" --tokenizer "$TOK" --json >"$TMP/json"
check json_one_line test "$(wc -l <"$TMP/json")" -eq 1
check json_fields grep -qE '^\{"file":.*"format":"selfinst","records":252,"skipped":0,"references":252,"categories":\{"selfinst":252\},"prompt_tokens":\{"min":[0-9]+,"p50":' "$TMP/json"
# a lower limit drops more prompts; the human and JSON counts agree
d256=$(sed 's/.*"dropped":\([0-9]*\)}$/\1/' "$TMP/json")
d64=$("$PROMPTKD" data stats "$SI" --tokenizer "$TOK" --json --max-prompt-len 64 | sed 's/.*"dropped":\([0-9]*\)}$/\1/')
check lower_limit_drops_more test "$d64" -gt "$d256"
check human_json_dropped_agree grep -q "(dropped): $d256 of 252" "$TMP/human"

# Dolly categories counted; a prompt just over the limit is counted as dropped
long=$(printf 'word %.0s' $(seq 1 40))
cat >"$TMP/dolly.jsonl" <<EOF
{"instruction": "Name a fruit.", "context": "", "response": "Apple.", "category": "open_qa"}
{"instruction": "Name a car.", "context": "", "response": "A sedan.", "category": "open_qa"}
{"instruction": "Summarise: $long", "context": "", "response": "Words.", "category": "summarization"}
EOF
"$PROMPTKD" data stats "$TMP/dolly.jsonl" --tokenizer "$TOK" --json --max-prompt-len 60 >"$TMP/dj"
check dolly_categories grep -q '"categories":{"open_qa":2,"summarization":1}' "$TMP/dj"
check dolly_dropped_one grep -q '"dropped":1}' "$TMP/dj"
check dolly_format grep -q '"format":"dolly"' "$TMP/dj"

# --skip-bad counts; without it the bad line is named
printf '%s\nnot json\n{"instruction": "x", "context": "", "category": "c"}\n' "$(head -1 "$TMP/dolly.jsonl")" >"$TMP/bad.jsonl"
expect_error bad_line_named 'bad.jsonl:2: malformed JSON' "$PROMPTKD" data stats "$TMP/bad.jsonl" --tokenizer "$TOK"
"$PROMPTKD" data stats "$TMP/bad.jsonl" --tokenizer "$TOK" --skip-bad --json >"$TMP/sj" 2>&1
check skip_bad_counts grep -q '"records":1,"skipped":2' "$TMP/sj"
"$PROMPTKD" data stats "$TMP/bad.jsonl" --tokenizer "$TOK" --skip-bad >"$TMP/sh" 2>&1
check skip_bad_human grep -qE 'records +1 \(2 bad lines skipped\)' "$TMP/sh"
printf '{"instruction": "x", "context": "", "response": "", "category": "c"}\n' >"$TMP/emptyfield.jsonl"
expect_error empty_field 'emptyfield.jsonl:1: field "response" is empty' "$PROMPTKD" data stats "$TMP/emptyfield.jsonl" --tokenizer "$TOK"
printf '{"instruction": "caf\xc3", "output": "o"}\n' >"$TMP/utf8.jsonl"
expect_error invalid_utf8 'utf8.jsonl:1: invalid UTF-8 at byte 20' "$PROMPTKD" data stats "$TMP/utf8.jsonl" --tokenizer "$TOK"
: >"$TMP/empty.jsonl"
expect_error empty_file 'empty' "$PROMPTKD" data stats "$TMP/empty.jsonl" --tokenizer "$TOK"
expect_error missing_tokenizer_option 'tokenizer is required' "$PROMPTKD" data stats "$SI"
expect_error bad_tokenizer_dir 'nonexistent' "$PROMPTKD" data stats "$SI" --tokenizer "$TMP/nonexistent"
expect_error missing_file_arg 'FILE is required' "$PROMPTKD" data stats --tokenizer "$TOK"
expect_error unknown_subcommand "unknown subcommand 'frobnicate'" "$PROMPTKD" data frobnicate
expect_error bad_limit 'max-prompt-len' "$PROMPTKD" data stats "$SI" --tokenizer "$TOK" --max-prompt-len 0
# NUL: \u0000 would silently cut a field inside cJSON; a raw NUL byte is not JSON text (both forms of file)
printf '{"prompt": "a", "response": "b"}\n{"prompt": "a\\u0000b", "response": "c"}\n' >"$TMP/nul.jsonl"
expect_error escaped_nul 'nul.jsonl:2: the string at byte 13 .*\\u0000' "$PROMPTKD" data stats "$TMP/nul.jsonl" --tokenizer "$TOK"
printf '{"prompt": "a", "response": "b"}\0\n' >"$TMP/rawnul.jsonl"
expect_error raw_nul 'rawnul.jsonl:1: a NUL byte at byte 32' "$PROMPTKD" data stats "$TMP/rawnul.jsonl" --tokenizer "$TOK"
printf '[{"prompt": "a", "response": "b"},\n {"prompt": "a\\u0000", "response": "b"}]' >"$TMP/arrnul.json"
expect_error array_escaped_nul 'arrnul.json:2: .*\\u0000' "$PROMPTKD" data stats "$TMP/arrnul.json" --tokenizer "$TOK"
# a folder or binary garbage as the data file, a tokenizer folder without merges.txt
mkdir -p "$TMP/adir" "$TMP/nomerges"
expect_error data_is_folder 'adir: not a regular file' "$PROMPTKD" data stats "$TMP/adir" --tokenizer "$TOK"
head -c 2000 /dev/urandom >"$TMP/garbage.bin"
expect_error data_garbage 'garbage.bin:[0-9]+: (invalid UTF-8|malformed JSON|a NUL byte)' "$PROMPTKD" data stats \
    "$TMP/garbage.bin" --tokenizer "$TOK"
cp "$TOK/vocab.json" "$TMP/nomerges/"
expect_error tokenizer_missing_merges 'nomerges/merges.txt: cannot open' "$PROMPTKD" data stats "$SI" --tokenizer "$TMP/nomerges"
expect_error option_out_of_range 'max-prompt-len is out of range' "$PROMPTKD" data stats "$SI" --tokenizer "$TOK" \
    --max-prompt-len 99999999999
