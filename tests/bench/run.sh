#!/usr/bin/env bash
# `make bench`: promptkd against the same work in PyTorch (tests/bench/torch_gpt2.py,
# Debian's python3-torch), in one run, same thread count; prints a table and ratios.
# This machine's speed drifts by up to 2x within minutes (a shared host): the training steps of
# the two take turns (tests/bench/paired.py: a promptkd step, a PyTorch step, ...), only one
# running at a time, and the headline ratio is the median of the per-step ratios. Each side's
# table row is the median of its own steps in that same stretch of time.
#   BENCH_STEPS (default 10) training steps per side, the first a warm-up left out;
#   PROMPTKD_THREADS threads (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PROMPTKD=${PROMPTKD:-$PWD/$BUILD/promptkd}
PY=/usr/bin/python3
THREADS=${PROMPTKD_THREADS:-$(nproc)}
STEPS=${BENCH_STEPS:-10}
SHAPE="--layers 12 --embd 768 --heads 12 --vocab 50257"
TRAIN="$SHAPE --batch 4 --seq 64 --steps $STEPS --threads $THREADS"
DECODE="$SHAPE --batch 1 --prompt-len 64 --new-tokens 32 --threads $THREADS"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "GPT-2 124M shapes (L=12 C=768 H=12 V=50257), train B=4 T=64, decode B=1 T0=64 +32 tokens, $THREADS threads"
echo "train: promptkd and PyTorch take turns, one step each, $STEPS steps per side (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
# shellcheck disable=SC2086
OMP_NUM_THREADS=$THREADS "$PY" tests/bench/paired.py --steps "$STEPS" --names promptkd,PyTorch \
    --out-a "$OUT/pk_train.json" --out-b "$OUT/pt_train.json" \
    -- "$PROMPTKD" bench train $TRAIN --paced -- "$PY" tests/bench/torch_gpt2.py train $TRAIN --paced
echo "running promptkd bench decode ..."
"$PROMPTKD" bench decode $DECODE >"$OUT/pk_decode.json"
echo "running PyTorch decode ..."
OMP_NUM_THREADS=$THREADS "$PY" tests/bench/torch_gpt2.py decode $DECODE >"$OUT/pt_decode.json"

"$PY" - "$OUT" <<'PY'
import json, sys, os
d = sys.argv[1]
load = lambda n: json.load(open(os.path.join(d, n)))
pk, pt, pkd, ptd = load("pk_train.json"), load("pt_train.json"), load("pk_decode.json"), load("pt_decode.json")
paired = pk["paired"]
rows = [
    ("train step (ms, median)", pk["ms_per_step"], pt["ms_per_step"]),
    ("  forward + loss (ms)", pk["ms_forward"], pt["ms_forward"]),
    ("  backward (ms)", pk["ms_backward"], pt["ms_backward"]),
    ("  AdamW (ms)", pk["ms_adamw"], pt["ms_per_step"] - pt["ms_forward"] - pt["ms_backward"]),
    ("train step CPU time (ms)", pk["cpu_ms_per_step"], pt["cpu_ms_per_step"]),
    ("input-only backward (ms)", pk["ms_backward_inputs_only"], pt["ms_backward_inputs_only"]),
    ("train tokens/s", pk["tokens_per_s"], pt["tokens_per_s"]),
    ("decode tokens/s", pkd["tokens_per_s"], ptd["tokens_per_s"]),
    ("decode prefill (ms)", pkd["ms_prefill"], ptd["ms_prefill"]),
]
print()
print("medians over the same %d turns per side (decode: best of 2 runs):" % len(paired["ratios"]))
print("%-28s %12s %12s %10s" % ("", "promptkd", "pytorch", "ratio"))
for name, a, b in rows:
    print("%-28s %12.1f %12.1f %9.2fx" % (name, a, b, a / b if b else float("nan")))
flops_gf = pk["gflops"] * pk["ms_per_step"] / 1e3
print()
print("model FLOPs per step %.1f GFLOP; promptkd %.1f GFLOP/s, PyTorch %.1f GFLOP/s" %
      (flops_gf, pk["gflops"], flops_gf / (pt["ms_per_step"] / 1e3)))
print("sgemm peak (2048^3, same threading) %.1f GFLOP/s; promptkd step at %.0f%% of it (MFU %.2f)" %
      (pk["sgemm_peak_gflops"], 100 * pk["mfu"], pk["mfu"]))
r = sorted(paired["ratios"])
print("per-step ratios promptkd/PyTorch over %d turns: min %.2f, median %.2f, max %.2f" %
      (len(r), r[0], paired["median_ratio"], r[-1]))
checks = [
    ("train step <= 0.5x PyTorch (median paired ratio)", paired["median_ratio"], "<=", 0.5),
    ("train step >= 65% of sgemm peak", pk["mfu"], ">=", 0.65),
    ("input-only backward <= 0.6x full backward (per step)", pk["backward_inputs_only_ratio"], "<=", 0.6),
    ("decode >= 2x PyTorch tokens/s", pkd["tokens_per_s"] / ptd["tokens_per_s"], ">=", 2.0),
]
print()
for name, value, op, target in checks:
    ok = value <= target if op == "<=" else value >= target
    print("%-50s %7.3f  %s" % (name, value, "met" if ok else "NOT met"))
PY
BUILD=$BUILD bash tests/bench/promptkd_step.sh  # one PromptKD step vs PyTorch, default and GPT-2 shapes
BUILD=$BUILD bash tests/bench/mpi.sh  # data-parallel steps under mpirun and the scaling model
