#!/usr/bin/env bash
# NaN and infinite values are refused where they enter, with the file and the tensor's name:
# model weights (every command that loads a model), soft prompts, and a checkpoint's optimizer
# state on resume. Numbers given on the command line that a float cannot hold say which range
# is expected.
source tests/cli/lib.sh
source tests/cli/tiny_world.sh
check tiny_world_built tiny_world_ok

# poke FILE TENSOR INDEX VALUE: overwrites one F32 element of a safetensors file in place
# (VALUE: nan, inf, -inf or a number), with nothing but python3's struct and json
poke() {
    python3 - "$@" <<'PY'
import json, struct, sys
path, name, index, value = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
with open(path, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    t = json.loads(f.read(n))[name]
    assert t["dtype"] == "F32", t["dtype"]
    f.seek(8 + n + t["data_offsets"][0] + 4 * index)
    f.write(struct.pack("<f", value))
PY
}
gen() { "$PROMPTKD" generate --model "$1" --tokenizer "$W/tok" --prompt "Q: what colour is the cat?" --max-new-tokens 4 "${@:2}"; }

check clean_model_generates bash -c "$(declare -f gen); W='$W' PROMPTKD='$PROMPTKD' gen '$W/student' >/dev/null 2>&1"

# 1. weights: a NaN, an infinity, in the first and in a later layer
cp -r "$W/student" "$TMP/nan_model"
poke "$TMP/nan_model/model.safetensors" transformer.h.0.ln_1.weight 3 nan
expect_error nan_weight_refused "nan_model/model.safetensors: tensor \"transformer.h.0.ln_1.weight\" holds NaN at element 3 \(of 16\); expected finite numbers" \
    gen "$TMP/nan_model"
cp -r "$W/teacher" "$TMP/inf_model"
poke "$TMP/inf_model/model.safetensors" transformer.h.1.mlp.c_fc.weight 37 -inf
expect_error inf_weight_refused "inf_model/model.safetensors: tensor \"transformer.h.1.mlp.c_fc.weight\" holds -infinity at element 37 \[0, 37\]" \
    gen "$TMP/inf_model"
# the same weights as a run's student: the run does not start
sed "s|\"student\": \"$W/student\"|\"student\": \"$TMP/nan_model\"|" "$W/cfg.json" >"$TMP/nan_cfg.json"
expect_error nan_student_run_refused "nan_model/model.safetensors: tensor \"transformer.h.0.ln_1.weight\" holds NaN" \
    "$PROMPTKD" train --config "$TMP/nan_cfg.json" --no-tui --quiet
# sft --model and parity load through the same reader
expect_error nan_sft_model_refused "holds NaN" "$PROMPTKD" sft --model "$TMP/nan_model" --tokenizer "$W/tok" \
    --data "$W/train.jsonl" --steps 1 --threads 1 --out "$TMP/never"
check nan_sft_wrote_nothing test ! -e "$TMP/never"

# 2. a soft prompt with an infinity
"$PROMPTKD" train --config "$W/cfg.json" --no-tui --quiet --set name=ok --set stop_after=2 >/dev/null 2>&1
R=$TMP/runs/ok
check run_made_checkpoint test -f "$R/checkpoints/step-2/prompt.safetensors"
cp "$R/checkpoints/step-2/prompt.safetensors" "$TMP/inf_prompt.safetensors"
poke "$TMP/inf_prompt.safetensors" prompt 5 inf
expect_error inf_prompt_refused "inf_prompt.safetensors: tensor \"prompt\" has a non-finite value at element 5" \
    gen "$W/teacher" --soft-prompt "$TMP/inf_prompt.safetensors"

# 3. resume: a NaN in the checkpoint's prompt, in its optimizer state, a negative second moment
# (the engine checks a checkpoint's values before loading it, distill_load_checkpoint again while
# loading: either refusal names the file and the tensor)
resume_with() { # NAME FILE TENSOR INDEX VALUE: a copy of the run with one value changed, resumed
    rm -rf "$TMP/runs/$1"
    cp -r "$R" "$TMP/runs/$1"
    poke "$TMP/runs/$1/checkpoints/step-2/$2" "$3" "$4" "$5"
    "$PROMPTKD" train --resume "$TMP/runs/$1" --no-tui --quiet --set stop_after=1
}
expect_error resume_nan_prompt_refused "step-2/prompt.safetensors: tensor [\"']prompt[\"'] (has|holds) a non-finite value" \
    resume_with r1 prompt.safetensors prompt 0 nan
expect_error resume_nan_student_m_refused "step-2/state.safetensors: tensor [\"']student_m[\"'] holds (NaN|a non-finite value)" \
    resume_with r2 state.safetensors student_m 11 nan
expect_error resume_inf_prompt_v_refused "step-2/state.safetensors: tensor [\"']prompt_v[\"'] holds (\+infinity|a non-finite value)" \
    resume_with r3 state.safetensors prompt_v 2 inf
expect_error resume_nan_prompt_init_refused "step-2/state.safetensors: tensor [\"']prompt_init[\"'] holds (NaN|a non-finite value)" \
    resume_with r4 state.safetensors prompt_init 1 nan
expect_error resume_negative_v_refused "step-2/state.safetensors: tensor \"student_v\" holds -1 at element 4; expected AdamW second moments >= 0" \
    resume_with r5 state.safetensors student_v 4 -1
expect_error resume_nan_weight_refused "step-2/model.safetensors: tensor [\"']transformer.wte.weight[\"'] holds (NaN|a non-finite value)" \
    resume_with r6 model.safetensors transformer.wte.weight 0 nan
check refused_resume_left_latest grep -qx 'step-2' "$TMP/runs/r2/checkpoints/latest"
# the untouched copy resumes (the refusals above are about the values, not the copying)
"$PROMPTKD" train --resume "$R" --no-tui --quiet --set stop_after=1 >/dev/null 2>&1
check clean_copy_resumes test $? -eq 0

# 4. command-line numbers a float cannot hold: the expected range, not "expects a number"
expect_error float_underflow_range "--temperature is out of range: got '1e-40', expected 0 or a number whose magnitude is between 1.18e-38 and 3.4e\+38" \
    gen "$W/student" --temperature 1e-40
expect_error float_overflow_range "--top-p is out of range: got '1e39'" gen "$W/student" --top-p 1e39
expect_error float_inf_range "--temperature is out of range: got 'inf'" gen "$W/student" --temperature inf
expect_error float_nan_not_a_number "--temperature expects a number, got 'nan'" gen "$W/student" --temperature nan
expect_error float_text_not_a_number "--temperature expects a number, got 'warm'" gen "$W/student" --temperature warm
gen "$W/student" --temperature 0.7 >/dev/null 2>&1
check float_normal_accepted test $? -eq 0
