#!/usr/bin/env bash
# promptkd synth: the three files, determinism by seed, the shipped assets reproduce from the
# commands in assets/README.md, and bad arguments fail cleanly without leaving files.
source tests/cli/lib.sh

lines() { wc -l <"$1" | tr -d ' '; }

# writes three files of the requested sizes (valid and test = ceil(N/12)), and nothing else
"$PROMPTKD" synth --out "$TMP/a" --seed 5 --size 120 >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ $rc -eq 0 ] && [ "$(lines "$TMP/a/train.jsonl")" = 120 ] && [ "$(lines "$TMP/a/valid.jsonl")" = 10 ] &&
    [ "$(lines "$TMP/a/test.jsonl")" = 10 ] && [ "$(ls "$TMP/a" | tr '\n' ' ')" = "test.jsonl train.jsonl valid.jsonl " ]; then
    pass synth_writes_three_files_of_the_requested_sizes
else
    fail synth_writes_three_files_of_the_requested_sizes "rc=$rc $(cat "$TMP/err") $(ls "$TMP/a" 2>&1)"
fi
check synth_reports_what_it_wrote grep -q "120 / 10 / 10 records" "$TMP/out"

# same seed: identical bytes; another seed: different
"$PROMPTKD" synth --out "$TMP/b" --seed 5 --size 120 >/dev/null 2>&1
"$PROMPTKD" synth --out "$TMP/c" --seed 6 --size 120 >/dev/null 2>&1
same=1
for f in train valid test; do cmp -s "$TMP/a/$f.jsonl" "$TMP/b/$f.jsonl" || same=0; done
check synth_same_seed_gives_identical_files test $same = 1
check synth_other_seed_gives_other_files bash -c "! cmp -s '$TMP/a/train.jsonl' '$TMP/c/train.jsonl'"

# the data format module reads the output as Dolly with every category
if "$PROMPTKD" data stats "$TMP/a/train.jsonl" --tokenizer assets/tokenizer >"$TMP/stats" 2>&1 &&
    grep -q "format *dolly" "$TMP/stats" && grep -q "categories *11" "$TMP/stats"; then
    pass synth_output_loads_as_dolly
else
    fail synth_output_loads_as_dolly "$(head -c 300 "$TMP/stats")"
fi

# the shipped assets are exactly what the documented commands produce
"$PROMPTKD" synth --out "$TMP/assets" --seed 1234 --size 6000 --template-copies 200 --pretrain-docs 4000 >/dev/null 2>&1
same=1
for f in train.jsonl valid.jsonl test.jsonl template.jsonl pretrain.jsonl; do cmp -s "$TMP/assets/$f" "assets/data/$f" || same=0; done
check synth_assets_data_reproduces test $same = 1
"$PROMPTKD" bpe-train --data "$TMP/assets/train.jsonl" "$TMP/assets/template.jsonl" --vocab-size 2048 \
    --out "$TMP/tok" >/dev/null 2>&1
check synth_assets_tokenizer_reproduces bash -c "cmp -s '$TMP/tok/vocab.json' assets/tokenizer/vocab.json && cmp -s '$TMP/tok/merges.txt' assets/tokenizer/merges.txt"

# help names the sizes
"$PROMPTKD" synth --help >"$TMP/help" 2>&1
check synth_help_exits_zero_and_states_sizes grep -q "ceil(N/12)" "$TMP/help"

# bad arguments: a clear message, non-zero exit, and no files
expect_error synth_size_zero_refused "size must be between 1 and" "$PROMPTKD" synth --out "$TMP/z" --size 0
expect_error synth_negative_size_refused "size must be between 1 and" "$PROMPTKD" synth --out "$TMP/z" --size -3
expect_error synth_huge_size_refused "size must be between 1 and" "$PROMPTKD" synth --out "$TMP/z" --size 5000000
expect_error synth_non_numeric_size_refused "--size expects an integer" "$PROMPTKD" synth --out "$TMP/z" --size ten
expect_error synth_missing_out_refused "--out is required" "$PROMPTKD" synth --seed 3
expect_error synth_negative_seed_refused "--seed expects a non-negative integer" "$PROMPTKD" synth --out "$TMP/z" --seed -1
expect_error synth_bad_template_copies_refused "template-copies must be between" "$PROMPTKD" synth --out "$TMP/z" --template-copies -2
check synth_bad_arguments_leave_no_folder test ! -e "$TMP/z"
: >"$TMP/plainfile"
expect_error synth_unwritable_out_refused "plainfile.*(folder|directory)" "$PROMPTKD" synth --out "$TMP/plainfile/sub" --size 20
check synth_unwritable_out_leaves_nothing test ! -e "$TMP/plainfile/sub/train.jsonl"
if [ "$(id -u)" -ne 0 ]; then # permissions do not stop root
    mkdir "$TMP/ro" && chmod 555 "$TMP/ro"
    expect_error synth_read_only_out_refused "cannot" "$PROMPTKD" synth --out "$TMP/ro" --size 20
    check synth_read_only_out_leaves_nothing test -z "$(ls -A "$TMP/ro")"
    chmod 755 "$TMP/ro"
fi
