#!/usr/bin/env bash
# promptkd tokenize (encode, --decode) against tiktoken's fixture, bad lines, and promptkd bpe-train.
source tests/cli/lib.sh
TOK=tests/fixtures/gpt2-tokenizer
REF=$TOK/encodings.jsonl

# tok_in FILE ARGS...: promptkd tokenize ARGS with FILE on stdin
tok_in() { local f=$1; shift; "$PROMPTKD" tokenize "$@" <"$f"; }

# --- encode: the output equals tiktoken's file byte for byte (same ids, same JSON escaping)
tok_in "$REF" --tokenizer "$TOK" >"$TMP/enc" 2>"$TMP/err"
check encode_exit_0 test $? -eq 0
check encode_fixture_identical cmp -s "$TMP/enc" "$REF"

# --- decode: ids back to each line's text
jq -c '{ids: .ids}' "$REF" >"$TMP/ids.jsonl"
tok_in "$TMP/ids.jsonl" --tokenizer "$TOK" --decode >"$TMP/dec" 2>"$TMP/err"
check decode_exit_0 test $? -eq 0
jq -c '.text' "$REF" >"$TMP/want_text"
jq -c '.text' "$TMP/dec" >"$TMP/got_text"
check decode_fixture_texts cmp -s "$TMP/want_text" "$TMP/got_text"
check decode_keeps_ids cmp -s <(jq -c .ids "$REF") <(jq -c .ids "$TMP/dec")

# --- special token, blank lines skipped
printf '{"text":"a<|endoftext|>b"}\n\n{"text":""}\n' >"$TMP/special.jsonl"
tok_in "$TMP/special.jsonl" --tokenizer "$TOK" >"$TMP/special.out" 2>/dev/null
check special_token test "$(jq -c .ids "$TMP/special.out" | tr '\n' ' ')" = "[64,50256,65] [] "

# --- decoding to invalid UTF-8 still gives valid JSON, with U+FFFD
printf '{"ids":[447,13]}\n{"ids":[0,188,189]}\n' >"$TMP/partial.jsonl"
tok_in "$TMP/partial.jsonl" --tokenizer "$TOK" --decode >"$TMP/partial.out" 2>/dev/null
check decode_replacement_char test "$(jq -r 'select(.ids == [447,13]) | .text' "$TMP/partial.out")" = $'\xef\xbf\xbd.'
check decode_control_bytes_escaped test "$(jq -c '.text' "$TMP/partial.out" | tail -n 1)" = '"!\u0000\u0001"'
check help_mentions_replacement bash -c "'$PROMPTKD' tokenize --help | grep -q 'U+FFFD'"

# --- raw invalid UTF-8 in the input text: encoded byte-wise, output still valid JSON
printf '{"text":"ab\xff\xfe cd"}\n' >"$TMP/raw.jsonl"
tok_in "$TMP/raw.jsonl" --tokenizer "$TOK" >"$TMP/raw.out" 2>/dev/null
check raw_invalid_utf8_encoded bash -c "jq -e '(.ids | length) >= 3 and .text == \"ab\\ufffd\\ufffd cd\"' '$TMP/raw.out' >/dev/null"

# --- bad lines: message names the line, non-zero exit, nothing on stdout
printf '{"text":"fine"}\n{"text":"also fine"}\nnot json\n' >"$TMP/bad1.jsonl"
expect_error bad_json_line 'line 3.*not valid JSON' tok_in "$TMP/bad1.jsonl" --tokenizer "$TOK"
check bad_line_no_partial_output test ! -s "$TMP/out"
printf '{"txt":"x"}\n' >"$TMP/bad2.jsonl"
expect_error missing_text_field 'line 1.*missing the "text" field' tok_in "$TMP/bad2.jsonl" --tokenizer "$TOK"
printf '{"text":"x"}\n{"text":["x"]}\n' >"$TMP/bad3.jsonl"
expect_error text_wrong_type 'line 2.*"text" must be a string' tok_in "$TMP/bad3.jsonl" --tokenizer "$TOK"
printf '["x"]\n' >"$TMP/bad4.jsonl"
expect_error not_an_object 'line 1.*JSON object' tok_in "$TMP/bad4.jsonl" --tokenizer "$TOK"
printf '{"ids":[1,2]}\n{"ids":[15496,50257]}\n' >"$TMP/bad5.jsonl"
expect_error id_out_of_range 'line 2.*50257.*out of range' tok_in "$TMP/bad5.jsonl" --tokenizer "$TOK" --decode
printf '{"ids":[1,"2"]}\n' >"$TMP/bad6.jsonl"
expect_error id_not_integer 'line 1.*ids\[1\]' tok_in "$TMP/bad6.jsonl" --tokenizer "$TOK" --decode
printf '{"text":"x"}\n' >"$TMP/bad7.jsonl"
expect_error decode_missing_ids 'line 1.*missing the "ids" field' tok_in "$TMP/bad7.jsonl" --tokenizer "$TOK" --decode
expect_error missing_tokenizer 'vocab.json' tok_in "$TMP/bad7.jsonl" --tokenizer "$TMP/nowhere"
expect_error tokenizer_required 'tokenizer' tok_in "$TMP/bad7.jsonl"

# --- bpe-train: JSONL + JSON array + .txt, loads, round-trips, deterministic, size respected
for i in $(seq 1 40); do
    echo "{\"instruction\": \"Summarize the distillation report number $i.\", \"context\": {\"notes\": [\"teacher and student\", \"soft prompt tuning\"]}, \"n\": $i}"
done >"$TMP/train.jsonl"
echo '[{"a": "the distillation of knowledge"}, {"b": ["café naïve", "日本語"]}]' >"$TMP/train.json"
printf 'plain text line one\nnot { json } at all\n' >"$TMP/train.txt"
"$PROMPTKD" bpe-train --data "$TMP/train.jsonl" "$TMP/train.json" --data "$TMP/train.txt" --vocab-size 300 \
    --out "$TMP/bpe1" >"$TMP/train.out" 2>"$TMP/err"
check bpe_train_exit_0 test $? -eq 0
"$PROMPTKD" bpe-train --data "$TMP/train.jsonl" "$TMP/train.json" --data "$TMP/train.txt" --vocab-size 300 \
    --out "$TMP/bpe2" >/dev/null 2>&1
check bpe_train_deterministic bash -c "cmp -s '$TMP/bpe1/vocab.json' '$TMP/bpe2/vocab.json' && cmp -s '$TMP/bpe1/merges.txt' '$TMP/bpe2/merges.txt'"
check bpe_vocab_size test "$(jq 'length' "$TMP/bpe1/vocab.json")" = 300
check bpe_eos_last test "$(jq '."<|endoftext|>"' "$TMP/bpe1/vocab.json")" = 299
check bpe_merges_header test "$(head -n 1 "$TMP/bpe1/merges.txt")" = "#version: 0.2"
check bpe_learned_frequent_word bash -c "jq -e 'has(\"Ġdistillation\")' '$TMP/bpe1/vocab.json' >/dev/null"
printf '{"text":"Summarize the distillation of café 日本語 and zebras!"}\n' >"$TMP/rt.jsonl"
tok_in "$TMP/rt.jsonl" --tokenizer "$TMP/bpe1" | jq -c '{ids: .ids}' >"$TMP/rt_ids.jsonl"
check bpe_roundtrip test "$(tok_in "$TMP/rt_ids.jsonl" --tokenizer "$TMP/bpe1" --decode | jq -r .text)" = \
    "Summarize the distillation of café 日本語 and zebras!"

printf '{"a": "x"}\nplain words\n' >"$TMP/bad.jsonl"
expect_error bpe_bad_jsonl_line 'bad.jsonl:2' "$PROMPTKD" bpe-train --data "$TMP/bad.jsonl" --vocab-size 300 --out "$TMP/bpe3"
check bpe_bad_no_output test ! -e "$TMP/bpe3"
printf '[{"a": "x"}, "loose"]' >"$TMP/bad.json"
expect_error bpe_array_not_objects 'element 1' "$PROMPTKD" bpe-train --data "$TMP/bad.json" --vocab-size 300 --out "$TMP/bpe3"
expect_error bpe_vocab_too_small '257' "$PROMPTKD" bpe-train --data "$TMP/train.txt" --vocab-size 200 --out "$TMP/bpe3"
expect_error bpe_missing_file 'nope.jsonl' "$PROMPTKD" bpe-train --data "$TMP/nope.jsonl" --vocab-size 300 --out "$TMP/bpe3"
expect_error bpe_out_required 'out' "$PROMPTKD" bpe-train --data "$TMP/train.txt" --vocab-size 300
: >"$TMP/empty.txt"
expect_error bpe_no_text 'no training text' "$PROMPTKD" bpe-train --data "$TMP/empty.txt" --vocab-size 300 --out "$TMP/bpe3"
# bpe-train: an escaped \u0000 (cJSON would cut the text there) and a raw NUL byte are refused by line
printf '{"text": "ok"}\n{"text": "a\\u0000b"}\n' >"$TMP/nul.jsonl"
expect_error bpe_escaped_nul 'nul.jsonl:2: .*\\u0000' "$PROMPTKD" bpe-train --data "$TMP/nul.jsonl" --vocab-size 300 --out "$TMP/bpe4"
printf '[{"text": "ok"},\n{"text": "a\\u0000b"}]' >"$TMP/nul.json"
expect_error bpe_array_escaped_nul 'nul.json:2: .*\\u0000' "$PROMPTKD" bpe-train --data "$TMP/nul.json" --vocab-size 300 --out "$TMP/bpe4"
printf '{"text": "ok"}\0\n' >"$TMP/rawnul.jsonl"
expect_error bpe_raw_nul 'rawnul.jsonl:1: a NUL byte' "$PROMPTKD" bpe-train --data "$TMP/rawnul.jsonl" --vocab-size 300 --out "$TMP/bpe4"
check bpe_refused_writes_nothing test ! -e "$TMP/bpe4"
expect_error bpe_vocab_size_not_integer 'vocab-size expects an integer' "$PROMPTKD" bpe-train --data "$TMP/train.txt" \
    --vocab-size 1e3 --out "$TMP/bpe4"
# a tokenizer folder without merges.txt, and one whose files are folders
mkdir -p "$TMP/nomerges" "$TMP/dirs/vocab.json" "$TMP/dirs/merges.txt"
cp "$TOK/vocab.json" "$TMP/nomerges/"
expect_error tokenizer_missing_merges 'nomerges/merges.txt: cannot open' sh -c "echo '{\"text\": \"a\"}' | '$PROMPTKD' tokenize --tokenizer '$TMP/nomerges'"
expect_error tokenizer_files_are_folders 'vocab.json: not a regular file' "$PROMPTKD" tokenize --tokenizer "$TMP/dirs"
# a broken merges.txt line is quoted as text: control and invalid bytes shown as \xNN
mkdir -p "$TMP/badmerges"
cp "$TOK/vocab.json" "$TMP/badmerges/"
printf '#version: 0.2\nab\tc d\n' >"$TMP/badmerges/merges.txt"
expect_error merges_control_byte_quoted 'merges.txt: line 2: "ab\\x09c d" has a character outside' \
    sh -c "echo '{\"text\": \"a\"}' | '$PROMPTKD' tokenize --tokenizer '$TMP/badmerges'"
printf '#version: 0.2\n\377\376garbage\n' >"$TMP/badmerges/merges.txt"
expect_error merges_invalid_utf8_quoted 'merges.txt: line 2: expected two tokens separated by one space, got "\\xFF\\xFEgarbage"' \
    sh -c "echo '{\"text\": \"a\"}' | '$PROMPTKD' tokenize --tokenizer '$TMP/badmerges'"
