#!/usr/bin/env bash
# One PromptKD training step (student sampling, prompt update, student update): promptkd's
# distill_step (build/bench/bench_promptkd, tests/bench/bench_promptkd.c) against the same step
# in PyTorch (tests/bench/torch_promptkd.py, Debian's python3-torch), same threads, same shapes,
# same batch, prompt length and number of generated tokens (both sides pin the student's EOS
# logit so every row samples exactly max_new_tokens; see the two programs). Random weights.
#   1. the default experiment: assets/configs/default.json and assets/models/{teacher,student}/config.json
#      (prompt length = median prompt of assets/data/train.jsonl under assets/tokenizer);
#   2. GPT-2 shapes: student 124M, teacher 355M, B=2, 24-token prompts, 16 new tokens.
# Prints ms per step (median after one warm-up step) and the ratio PyTorch / promptkd; also the
# sampling phase and the CPU time per step (all threads), which a busy shared machine distorts less.
# As in run.sh, the two sides take turns step by step (tests/bench/paired.py), only one running at a
# time; each side's row is the median of its steps over the same turns, and the ratio the median of
# the per-step ratios.
#   PROMPTKD_THREADS threads (default: all cores); BENCH_PKD_STEPS measured steps at the default shapes
#   (default 3), BENCH_PKD_GPT2_STEPS at GPT-2 shapes (default 2: a 355M teacher step is heavy).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
BENCH=$BUILD/bench/bench_promptkd
PY=/usr/bin/python3
THREADS=${PROMPTKD_THREADS:-$(nproc)}
STEPS=${BENCH_PKD_STEPS:-3}
GPT2_STEPS=${BENCH_PKD_GPT2_STEPS:-2}
[ -x "$BENCH" ] || { echo "promptkd_step.sh: $BENCH is missing (make bench-build)" >&2; exit 1; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
export PROMPTKD_THREADS=$THREADS OMP_NUM_THREADS=$THREADS

# Shape arguments of the default experiment (fallback when its files are not there yet).
default_shape() {
    "$PY" - <<'PY'
import json, os
def load(p):
    try:
        return json.load(open(p))
    except (OSError, ValueError):
        return None
run = load("assets/configs/default.json") or {}
t = load("assets/models/teacher/config.json") or {"n_layer": 4, "n_embd": 192, "n_head": 6, "vocab_size": 2048, "n_positions": 256}
s = load("assets/models/student/config.json") or {"n_layer": 2, "n_embd": 64, "n_head": 2, "vocab_size": 2048, "n_positions": 256}
args = ["--vocab", t["vocab_size"], "--positions", min(t["n_positions"], s["n_positions"]),
        "--t-layers", t["n_layer"], "--t-embd", t["n_embd"], "--t-heads", t["n_head"],
        "--s-layers", s["n_layer"], "--s-embd", s["n_embd"], "--s-heads", s["n_head"],
        "--batch", run.get("batch_size", 8), "--new-tokens", run.get("max_new_tokens", 48),
        "--prompt-len", run.get("prompt_len", 7)]
print(" ".join(str(x) for x in args))
PY
}

# run NAME "SHAPE ARGS" TOKENIZER PROMPT-ARGS STEPS: writes NAME.{pk,pt}.json, steps taken in turns
run() {
    local name=$1 shape=$2 tok=$3 prompt=$4 steps=$5 t0 eos
    # shellcheck disable=SC2086
    t0=$("$BENCH" $shape $prompt --tokenizer "$tok" --print-prompt-tokens 1)
    eos=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]+"/vocab.json"))["<|endoftext|>"])' "$tok")
    echo "[$name] promptkd: $BENCH $shape $prompt --tokenizer $tok --steps $steps --warmup 1 --threads $THREADS" >&2
    echo "[$name] pytorch:  torch_promptkd.py $shape --prompt-tokens $t0 --eos $eos --steps $steps --warmup 1 --threads $THREADS" >&2
    # shellcheck disable=SC2086
    "$PY" tests/bench/paired.py --steps $((steps + 1)) --warmup 1 --names promptkd,PyTorch \
        --out-a "$OUT/$name.pk.json" --out-b "$OUT/$name.pt.json" \
        -- "$BENCH" $shape $prompt --tokenizer "$tok" --steps "$steps" --warmup 1 --threads "$THREADS" --paced 1 \
        -- "$PY" tests/bench/torch_promptkd.py $shape --prompt-tokens "$t0" --eos "$eos" --steps "$steps" --warmup 1 \
        --threads "$THREADS" --paced
}

DEFAULT_TOK=assets/tokenizer
DEFAULT_PROMPT="--prompt-tokens 42"
[ -f assets/data/train.jsonl ] && DEFAULT_PROMPT="--prompt-tokens-from assets/data/train.jsonl"
DEFAULT_SHAPE=$(default_shape)
GPT2_SHAPE="--vocab 50257 --positions 1024 --t-layers 24 --t-embd 1024 --t-heads 16 --s-layers 12 --s-embd 768 --s-heads 12 --batch 2 --new-tokens 16 --prompt-len 7"

echo "PromptKD step, promptkd vs PyTorch, $THREADS threads, $STEPS (default) / $GPT2_STEPS (GPT-2) measured steps after 1 warm-up (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
run default "$DEFAULT_SHAPE" "$DEFAULT_TOK" "$DEFAULT_PROMPT" "$STEPS"
run gpt2 "$GPT2_SHAPE" tests/fixtures/gpt2-tokenizer "--prompt-tokens 24" "$GPT2_STEPS"

"$PY" - "$OUT" "$DEFAULT_SHAPE" <<'PY'
import json, os, statistics, sys
d, default_shape = sys.argv[1], sys.argv[2].split()
arg = lambda k: default_shape[default_shape.index(k) + 1]
load = lambda n: json.load(open(os.path.join(d, n)))
rows = []
for name in ("default", "gpt2"):
    pk, pt = load("%s.pk.json" % name), load("%s.pt.json" % name)
    if name == "default":
        label = "default: T L%s C%s / S L%s C%s, V=%s, B=%s, %d+%s tok" % (
            arg("--t-layers"), arg("--t-embd"), arg("--s-layers"), arg("--s-embd"), arg("--vocab"), arg("--batch"),
            pk["prompt_tokens"], arg("--new-tokens"))
    else:
        label = "GPT-2: T 355M / S 124M, V=50257, B=2, %d+16 tok" % pk["prompt_tokens"]
    rows.append((label, pk, pt))
print()
print("medians over the same turns per side:")
print("%-56s %10s %10s %8s" % ("ms per step (median)", "promptkd", "pytorch", "pt/pk"))
for label, pk, pt in rows:
    print("%-56s %10.1f %10.1f %7.2fx" % (label, pk["ms_per_step"], pt["ms_per_step"], pt["ms_per_step"] / pk["ms_per_step"]))
    print("%-56s %10.1f %10.1f %7.2fx" % ("  student sampling (promptkd: timed apart, same call)", pk["ms_sampling"],
                                          pt["ms_sampling"], pt["ms_sampling"] / pk["ms_sampling"]))
    print("%-56s %10.1f %10.1f %7.2fx" % ("  CPU ms per step, all threads (user + system)", pk["cpu_ms_per_step"],
                                          pt["cpu_ms_per_step"], pt["cpu_ms_per_step"] / pk["cpu_ms_per_step"]))
print()
for label, pk, pt in rows:
    p = pk["paired"]  # each turn's PyTorch step over promptkd's, the warm-up left out
    r = statistics.median(b / a for a, b in zip(p["ms_a"], p["ms_b"]))
    print("%-56s %7.3fx  %s" % ("promptkd >= 2x PyTorch (median paired), " + label.split(":")[0], r,
                                "met" if r >= 2.0 else "NOT met"))
print("promptkd steps (ms): " + "; ".join("%s %s" % (l.split(":")[0], pk["steps_ms"]) for l, pk, _ in rows))
print("pytorch steps (ms):  " + "; ".join("%s %s" % (l.split(":")[0], pt["steps_ms"]) for l, _, pt in rows))
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
