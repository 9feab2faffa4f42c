#!/usr/bin/env bash
# The real program on broken Hugging Face model folders: every one is refused with
# a message naming the file and the problem, a non-zero exit, and no crash.
source tests/cli/lib.sh
FIX=$PWD/tests/fixtures/hf-gpt2-tiny
REF=$FIX/reference.safetensors

parity() { "$PROMPTKD" parity --model "$1" --reference "$REF"; }
parity_quiet() { parity "$@" >/dev/null 2>&1; }

# model_dir NAME: a folder with the fixture's config.json and a link to its weights
model_dir() {
    local d=$TMP/$1
    mkdir -p "$d"
    cp "$FIX/config.json" "$d/config.json"
    ln -sf "$FIX/model.safetensors" "$d/model.safetensors"
    echo "$d"
}
# set_config DIR SED-EXPRESSION: edits config.json in place
set_config() { sed -i -e "$2" "$1/config.json"; }

# the good folder passes (so the failures below are about the damage, not the setup)
check good_folder_passes parity_quiet "$FIX"

expect_error missing_folder "$TMP/nowhere.*no such model folder" parity "$TMP/nowhere"

d=$(model_dir no_config); rm "$d/config.json"
expect_error missing_config "no_config/config.json.*missing" parity "$d"

d=$(model_dir config_not_json); echo '{"n_embd": 64,' >"$d/config.json"
expect_error config_not_json "config_not_json/config.json.*not valid JSON" parity "$d"

d=$(model_dir heads); set_config "$d" 's/"n_head": 4/"n_head": 3/'
expect_error heads_do_not_divide "heads/config.json.*n_embd 64 is not divisible by n_head 3" parity "$d"

d=$(model_dir relu); set_config "$d" 's/"gelu_new"/"relu"/'
expect_error unsupported_activation "relu/config.json.*activation_function \"relu\"" parity "$d"

d=$(model_dir n_embd_string); set_config "$d" 's/"n_embd": 64/"n_embd": "64"/'
expect_error n_embd_string "n_embd_string/config.json.*n_embd must be an integer" parity "$d"

d=$(model_dir upcast); set_config "$d" 's/"reorder_and_upcast_attn": false/"reorder_and_upcast_attn": true/'
expect_error reorder_and_upcast "upcast/config.json.*reorder_and_upcast_attn" parity "$d"

d=$(model_dir eos); set_config "$d" 's/"eos_token_id": 50256/"eos_token_id": 60000/'
expect_error eos_out_of_vocab "eos/config.json.*eos_token_id is 60000" parity "$d"

d=$(model_dir positions); set_config "$d" 's/"n_positions": 128/"n_positions": 64/'
expect_error shape_mismatch "positions/model.safetensors.*wpe.weight.*\[128, 64\].*\[64, 64\]" parity "$d"

d=$(model_dir untied); set_config "$d" 's/"tie_word_embeddings": true/"tie_word_embeddings": false/'
expect_error untied_without_lm_head "lm_head.weight is missing" parity "$d"

d=$(model_dir no_weights); rm "$d/model.safetensors"
expect_error no_weights "no_weights.*neither model.safetensors nor model.safetensors.index.json" parity "$d"

d=$(model_dir empty_weights); rm "$d/model.safetensors"; : >"$d/model.safetensors"
expect_error empty_weights "empty_weights/model.safetensors.*too short" parity "$d"

d=$(model_dir cut_header); rm "$d/model.safetensors"; head -c 100 "$FIX/model.safetensors" >"$d/model.safetensors"
expect_error header_cut_short "cut_header/model.safetensors.*header length 2624 runs past" parity "$d"

d=$(model_dir cut_data); rm "$d/model.safetensors"; head -c 1000000 "$FIX/model.safetensors" >"$d/model.safetensors"
expect_error data_cut_short "cut_data/model.safetensors.*outside the data block" parity "$d"

d=$(model_dir trailing); rm "$d/model.safetensors"; { cat "$FIX/model.safetensors"; printf 'extra'; } >"$d/model.safetensors"
expect_error trailing_bytes "trailing/model.safetensors.*5 unused bytes at the end" parity "$d"

d=$(model_dir garbage); rm "$d/model.safetensors"; printf 'this is not a safetensors file at all' >"$d/model.safetensors"
expect_error garbage_weights "garbage/model.safetensors.*absurd" parity "$d"

# a header edited by hand: one tensor's dtype renamed, another's shape made negative
d=$(model_dir dtype); rm "$d/model.safetensors"
LC_ALL=C sed 's/"transformer.ln_f.bias":{"dtype":"F32"/"transformer.ln_f.bias":{"dtype":"Q32"/' "$FIX/model.safetensors" >"$d/model.safetensors"
expect_error unknown_dtype "dtype/model.safetensors.*transformer.ln_f.bias.*unknown dtype \"Q32\"" parity "$d"

d=$(model_dir renamed); rm "$d/model.safetensors"
LC_ALL=C sed 's/"transformer.ln_f.bias"/"transformer.ln_x.bias"/' "$FIX/model.safetensors" >"$d/model.safetensors"
expect_error missing_tensor "renamed.*transformer.ln_f.bias is missing" parity "$d"

d=$(model_dir sharded); rm "$d/model.safetensors"
printf '{"weight_map": {"transformer.wte.weight": "model-00001-of-00002.safetensors"}}' >"$d/model.safetensors.index.json"
expect_error missing_shard "sharded/model.safetensors.index.json.*model-00001-of-00002.safetensors.*does not exist" parity "$d"

# config.json as a folder, with a NUL byte (cJSON would skip it as white space), with a huge size
d=$(model_dir config_is_folder); rm "$d/config.json"; mkdir "$d/config.json"
expect_error config_is_folder "config_is_folder/config.json: is a folder" parity "$d"
d=$(model_dir config_nul); printf '{"n_embd": 64\0}' >"$d/config.json"
expect_error config_nul_byte "config_nul/config.json: a NUL byte at byte 13" parity "$d"
d=$(model_dir huge_inner); set_config "$d" 's/"n_inner": null/"n_inner": 1e30/'
expect_error huge_n_inner "huge_inner/config.json: field n_inner is 1e\+30; expected null or an integer" parity "$d"
d=$(model_dir negative_embd); set_config "$d" 's/"n_embd": 64/"n_embd": -64/'
expect_error negative_n_embd "negative_embd/config.json: field n_embd is -64; expected an integer in 1" parity "$d"
