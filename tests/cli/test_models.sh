#!/usr/bin/env bash
# The shipped teacher and student meet the preconditions the default experiment rests on:
# the teacher barely reacts to PromptKD's untrained initial prompt (T' at step 0 is close to T),
# and the pair keeps a parameter ratio of at least 8.
. "$(dirname "$0")/lib.sh"

# T vs T' with the untrained prompt on the whole test split with 3 of the 5 decoding seeds (the two
# in parallel, one thread each: about 20 s). assets/README.md has the 5-seed acceptance figures;
# fewer records would not do: on the first 200 the per-seed gap swings between -0.6 and 3.0.
ev=(--model assets/models/teacher --tokenizer assets/tokenizer --data assets/data/test.jsonl --seeds 10,20,30)
PROMPTKD_THREADS=1 "$PROMPTKD" eval "${ev[@]}" >"$TMP/t" 2>"$TMP/err.t" &
PROMPTKD_THREADS=1 "$PROMPTKD" eval "${ev[@]}" --prompt-init "Suppose you are a student." >"$TMP/tp" 2>"$TMP/err.tp" &
wait
score() { awk '/^ROUGE-L:/ { print $2 }' "$1"; }
t=$(score "$TMP/t"); tp=$(score "$TMP/tp")
if [ -z "$t" ] || [ -z "$tp" ]; then
    fail shipped_teacher_scores "no ROUGE-L line: $(head -c 300 "$TMP/err.t" "$TMP/err.tp")"
else
    pass shipped_teacher_scores
    if awk -v a="$t" -v b="$tp" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1.0) }'; then
        pass untrained_prompt_gap_within_1
    else
        fail untrained_prompt_gap_within_1 "T $t, T' with the untrained prompt $tp"
    fi
    # the teacher is a real teacher: well above chance agreement with the references
    check shipped_teacher_is_useful awk -v a="$t" 'BEGIN { exit !(a > 15) }'
fi

# parameter ratio >= 8, from the shipped config.json files
params() { # n_layer n_embd vocab positions -> parameter count of a tied GPT-2
    awk -v L="$1" -v C="$2" -v V="$3" -v P="$4" 'BEGIN { printf "%d", 12*L*C*C + 13*L*C + 2*C + V*C + P*C }'
}
field() { grep -o "\"$2\":[[:space:]]*[0-9]*" "$1/config.json" | grep -o '[0-9]*$'; }
pt=$(params "$(field assets/models/teacher n_layer)" "$(field assets/models/teacher n_embd)" \
    "$(field assets/models/teacher vocab_size)" "$(field assets/models/teacher n_positions)")
ps=$(params "$(field assets/models/student n_layer)" "$(field assets/models/student n_embd)" \
    "$(field assets/models/student vocab_size)" "$(field assets/models/student n_positions)")
check parameter_ratio_at_least_8 awk -v t="$pt" -v s="$ps" 'BEGIN { exit !(s > 0 && t / s >= 8) }'
# dropout comes from the checkpoints' config.json (GPT-2's 0.1), as the official training uses it
for m in teacher student; do
    check "${m}_config_has_gpt2_dropout" grep -q '"resid_pdrop":[[:space:]]*0.1' "assets/models/$m/config.json"
done
