# Sourced by CLI tests after lib.sh: a tiny world in $W (BPE trained on the data, random
# teacher and student written by `promptkd sft --init`) and a PromptKD config $W/cfg.json
# that runs in well under a second per step.
W=$TMP/world
mkdir -p "$W"
tiny_animals=(cat dog owl fox bee cow eel yak)
tiny_colours=(red blue green gold grey pink)
tiny_make_data() { # file first count
    : >"$1"
    for ((i = $2; i < $2 + $3; i++)); do
        a=${tiny_animals[$((i % 8))]} c=${tiny_colours[$(((i * 5 + i / 8) % 6))]}
        echo "{\"prompt\": \"Q: what colour is the $a?\\nA:\", \"response\": \" the $a is $c.\"}" >>"$1"
    done
}
tiny_make_data "$W/train.jsonl" 0 16
tiny_make_data "$W/valid.jsonl" 100 4
"$PROMPTKD" bpe-train --data "$W/train.jsonl" --vocab-size 300 --out "$W/tok" >/dev/null 2>&1
"$PROMPTKD" sft --init layers=2,embd=32,heads=2,positions=64 --tokenizer "$W/tok" --data "$W/train.jsonl" \
    --out "$W/teacher" --steps 1 --seed 1 --threads 1 >/dev/null 2>&1
"$PROMPTKD" sft --init layers=1,embd=16,heads=2,positions=64 --tokenizer "$W/tok" --data "$W/train.jsonl" \
    --out "$W/student" --steps 1 --seed 2 --threads 1 >/dev/null 2>&1
cat >"$W/cfg.json" <<JSON
{"method": "promptkd", "name": "t", "run_dir": "$TMP/runs",
 "teacher": "$W/teacher", "student": "$W/student", "tokenizer": "$W/tok",
 "train_data": "$W/train.jsonl", "valid_data": "$W/valid.jsonl", "test_data": "$W/valid.jsonl",
 "seed": 3, "steps": 40, "batch_size": 2, "prompt_len": 3, "max_new_tokens": 6, "warmup_steps": 1,
 "lr": 0.005, "prompt_lr": 0.005, "eval_interval": 4, "eval_samples": 2, "eval_max_new_tokens": 6,
 "gen_interval": 2, "exposure_interval": 4, "exposure_samples": 2, "exposure_prompts": 2, "exposure_len": 4,
 "threads": 1}
JSON
tiny_world_ok() { test -f "$W/teacher/model.safetensors" -a -f "$W/student/model.safetensors" -a -f "$W/tok/vocab.json"; }
