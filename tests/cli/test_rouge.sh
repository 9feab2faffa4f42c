#!/usr/bin/env bash
# promptkd rouge: the reference file line by line, output modes, every kind of bad input.
source tests/cli/lib.sh
REF=tests/fixtures/rouge/rougeL-reference.jsonl

# Strip the expected scores, score again, compare every line to 1e-6.
sed 's/, "rougeL": [-0-9.eE+]*}$/}/' "$REF" >"$TMP/in.jsonl"
if grep -q rougeL "$TMP/in.jsonl"; then fail reference_input_prepared; else pass reference_input_prepared; fi
"$PROMPTKD" rouge <"$TMP/in.jsonl" >"$TMP/out.jsonl" 2>"$TMP/err"
rc=$?
check rouge_exit_0 test $rc -eq 0
sed 's/.*"rougeL": *\([-0-9.eE+]*\)}$/\1/' "$REF" >"$TMP/want"
sed 's/.*"rougeL":\([-0-9.eE+]*\)}$/\1/' "$TMP/out.jsonl" >"$TMP/got"
bad=$(paste "$TMP/want" "$TMP/got" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-6 || $2 == "") n++ } END { print n + 0 }')
lines=$(wc -l <"$TMP/got")
check reference_line_count test "$lines" -eq 259
check reference_all_lines_within_1e-6 test "$bad" -eq 0
# the other fields are kept
check keeps_prediction grep -q '"prediction":" Have questions about my rate?' "$TMP/out.jsonl"

# an existing rougeL is replaced, not duplicated; FILE argument and --output give the same lines
"$PROMPTKD" rouge "$REF" --output "$TMP/file-out.jsonl" 2>/dev/null
check output_file_equals_stdout cmp -s "$TMP/file-out.jsonl" "$TMP/out.jsonl"
check one_rougeL_per_line test "$(grep -o '"rougeL"' "$TMP/file-out.jsonl" | wc -l)" -eq 259

printf '{"prediction": "the cats ran", "references": ["nothing", "the cat runs"]}\n\n' >"$TMP/one.jsonl"
out=$("$PROMPTKD" rouge --summary <"$TMP/one.jsonl" 2>"$TMP/sum")
check max_over_references_x100 test "$out" = '{"prediction":"the cats ran","references":["nothing","the cat runs"],"rougeL":66.666666666666657}'
check summary_mean grep -q '1 lines, mean ROUGE-L 66.6667' "$TMP/sum"

# bad input: a message naming the line, non-zero exit, nothing on stdout
good='{"prediction": "a b", "references": ["a"]}'
bad_case() { # name pattern line
    printf '%s\n%s\n%s\n' "$good" "$3" "$good" >"$TMP/bad.jsonl"
    expect_error "$1" "$2" "$PROMPTKD" rouge "$TMP/bad.jsonl"
    "$PROMPTKD" rouge <"$TMP/bad.jsonl" >"$TMP/partial" 2>/dev/null
    check "$1_no_partial_output" test ! -s "$TMP/partial"
}
bad_case malformed_json 'bad.jsonl:2: malformed JSON' '{"prediction": "a", "references": ['
bad_case missing_references 'bad.jsonl:2: missing field "references"' '{"prediction": "a"}'
bad_case empty_references 'bad.jsonl:2: field "references" is empty' '{"prediction": "a", "references": []}'
bad_case references_not_array 'bad.jsonl:2: field "references" must be an array' '{"prediction": "a", "references": "a"}'
bad_case reference_not_string 'bad.jsonl:2: references\[1\] must be a string' '{"prediction": "a", "references": ["a", 3]}'
bad_case missing_prediction 'bad.jsonl:2: missing field "prediction"' '{"references": ["a"]}'
bad_case prediction_not_string 'bad.jsonl:2: field "prediction" must be a string' '{"prediction": null, "references": ["a"]}'
bad_case not_an_object 'bad.jsonl:2: expected a JSON object' '["a"]'
bad_case invalid_utf8 'bad.jsonl:2: invalid UTF-8 at byte 16' $'{"prediction": "\xff", "references": ["a"]}'
expect_error stdin_named '<stdin>:1: malformed' sh -c "echo nope | '$PROMPTKD' rouge"
expect_error empty_input 'no input lines' sh -c "printf '' | '$PROMPTKD' rouge"
expect_error missing_file 'nonexistent.jsonl' "$PROMPTKD" rouge "$TMP/nonexistent.jsonl"
expect_error unknown_option 'unknown option' "$PROMPTKD" rouge --bogus
# NUL: an escaped \u0000 would silently cut the text inside cJSON, a raw NUL byte is not JSON text
bad_case escaped_nul 'bad.jsonl:2: .*\\u0000' '{"prediction": "a\u0000b", "references": ["a"]}'
printf '%s\n{"prediction": "a", "references": ["a"]}\0\n' "$good" >"$TMP/rawnul.jsonl"
expect_error raw_nul 'rawnul.jsonl:2: a NUL byte' "$PROMPTKD" rouge "$TMP/rawnul.jsonl"
# an --output that cannot be written is refused before anything is scored
mkdir -p "$TMP/outdir"; echo "$good" >"$TMP/ok.jsonl"
expect_error output_is_folder 'output .*is a folder' "$PROMPTKD" rouge "$TMP/ok.jsonl" --output "$TMP/outdir"
expect_error output_folder_missing 'nodir does not exist' "$PROMPTKD" rouge "$TMP/ok.jsonl" --output "$TMP/nodir/x.jsonl"
