#!/usr/bin/env bash
# promptkd parity against the transformers reference of tests/fixtures/hf-gpt2-tiny,
# and against perturbed copies of it, which must fail.
source tests/cli/lib.sh
MODEL=tests/fixtures/hf-gpt2-tiny
REF=$MODEL/reference.safetensors

if "$PROMPTKD" parity --model "$MODEL" --reference "$REF" --dump "$TMP/dump.safetensors" >"$TMP/ok.out" 2>"$TMP/ok.err"; then
    pass parity_matches_transformers
else
    fail parity_matches_transformers "$(tail -5 "$TMP/ok.out") $(cat "$TMP/ok.err")"
fi
check parity_prints_every_quantity grep -q "35 of 35 quantities within tolerance" "$TMP/ok.out"
check parity_checks_greedy grep -qE "^greedy_ids .* match  ok" "$TMP/ok.out"

# The dump holds what promptkd computed under the reference's names, so it is itself a
# valid reference: checking against it must pass with (near) zero error.
check parity_dump_is_a_reference bash -c '"$0" parity --model "$1" --reference "$2" >/dev/null' "$PROMPTKD" "$MODEL" "$TMP/dump.safetensors"

# Perturb one value of a named tensor in a copy of the reference (python3 only for byte surgery).
perturb() { # src dst tensor index scale
    python3 - "$@" <<'PY'
import json, struct, sys
src, dst, name, index, scale = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
raw = bytearray(open(src, "rb").read())
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
e = h[name]
off = 8 + n + e["data_offsets"][0] + 4 * index
if e["dtype"] == "F32":
    v = struct.unpack("<f", raw[off:off + 4])[0]
    raw[off:off + 4] = struct.pack("<f", v * scale + (1.0 if v == 0 else 0.0))
else:  # I64 ids: shift the id
    off = 8 + n + e["data_offsets"][0] + 8 * index
    v = struct.unpack("<q", raw[off:off + 8])[0]
    raw[off:off + 8] = struct.pack("<q", (v + 1) % 50257)
open(dst, "wb").write(raw)
PY
}
perturb "$REF" "$TMP/bad_grad.safetensors" grad.transformer.h.1.mlp.c_fc.weight 100 3.0
expect_error parity_fails_on_perturbed_gradient "differ from .* beyond tolerance" \
    "$PROMPTKD" parity --model "$MODEL" --reference "$TMP/bad_grad.safetensors"
check parity_names_the_perturbed_tensor grep -q "grad.transformer.h.1.mlp.c_fc.weight .*MISMATCH" "$TMP/out"
perturb "$REF" "$TMP/bad_logits.safetensors" logits 7 3000
expect_error parity_fails_on_perturbed_logits "beyond tolerance" \
    "$PROMPTKD" parity --model "$MODEL" --reference "$TMP/bad_logits.safetensors"
perturb "$REF" "$TMP/bad_prompt.safetensors" prompt_grad 3 1.5
expect_error parity_fails_on_perturbed_prompt_grad "beyond tolerance" \
    "$PROMPTKD" parity --model "$MODEL" --reference "$TMP/bad_prompt.safetensors"
perturb "$REF" "$TMP/bad_greedy.safetensors" greedy_ids 12 1
expect_error parity_fails_on_wrong_greedy_id "beyond tolerance" \
    "$PROMPTKD" parity --model "$MODEL" --reference "$TMP/bad_greedy.safetensors"

expect_error parity_missing_reference "nope.safetensors" \
    "$PROMPTKD" parity --model "$MODEL" --reference "$TMP/nope.safetensors"
expect_error parity_needs_model "--model is required" "$PROMPTKD" parity --reference "$REF"
head -c 100 "$REF" >"$TMP/truncated.safetensors"
expect_error parity_truncated_reference "truncated" \
    "$PROMPTKD" parity --model "$MODEL" --reference "$TMP/truncated.safetensors"
