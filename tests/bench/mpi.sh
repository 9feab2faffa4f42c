#!/usr/bin/env bash
# Data-parallel PromptKD under mpirun (part of `make bench`): the step time of the default
# experiment (assets/configs/default.json, one micro-batch of 16 rows, 48 new tokens) in one
# process with 2 threads, and under mpirun with 1 and 2 ranks of 1 thread each, the same batches
# in each; the all-reduce time inside the 2-rank steps (metrics.jsonl "comm_s": the gradient sums,
# including the wait for the slower rank); and build/bench/bench_allreduce, the bandwidth of the
# sum alone on this machine. Then the scaling model of README "Beyond one machine": time per
# official update (256 samples, GPT-2 XL teacher, GPT-2 base student) on N nodes
#   = compute of one update on one node / N + all-reduce of the student's and the prompt's
#     gradient (124,439,808 + 7 x 1600 floats) at a bus bandwidth B: 2 (N-1)/N x bytes / B,
# with the compute of one update from the measured anchor (53 s for a batch-4 step of 64 + 64
# tokens, DESIGN.md section 9) times 64 batches x 4 for 256 + 256 tokens.
#   BENCH_MPI_STEPS (default 7) steps per run, the first left out of the medians.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PROMPTKD=${PROMPTKD:-$PWD/$BUILD/promptkd}
STEPS=${BENCH_MPI_STEPS:-7}
if ! command -v mpirun >/dev/null || ! ldd "$PROMPTKD" | grep -q libmpi; then
    echo "data-parallel bench: skipped ($PROMPTKD built without MPI, or no mpirun)"
    exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
SETS=(--set "run_dir=$OUT" --set batch_size=16 --set grad_accum=1 --set "steps=$STEPS" --set eval_interval=1000
      --set eval_samples=1 --set eval_max_new_tokens=1 --set gen_interval=0 --set exposure_interval=0)
run() { # NAME THREADS [mpirun -np N]
    local name=$1 threads=$2
    shift 2
    "$@" "$PROMPTKD" train --config assets/configs/default.json --no-tui --quiet "${SETS[@]}" \
        --set "name=$name" --set "threads=$threads" >/dev/null
}
echo
echo "data-parallel PromptKD steps: default experiment, batch 16, 48 new tokens, $STEPS steps each (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
run one2 2
run np1 1 mpirun --bind-to none -np 1
run np2 1 mpirun --oversubscribe --bind-to none -np 2
mpirun --oversubscribe --bind-to none -np 2 "$BUILD/bench/bench_allreduce" --floats 31000000 --reps 5 >"$OUT/allreduce.json"
python3 - "$OUT" <<'PY'
import json, os, statistics, sys
d = sys.argv[1]
def steps(name):
    rows = [json.loads(l) for l in open(os.path.join(d, name, "metrics.jsonl")) if '"event"' not in l]
    return rows[1:] if len(rows) > 2 else rows
med = lambda xs: statistics.median(xs)
one, n1, n2 = steps("one2"), steps("np1"), steps("np2")
t_one, t1, t2 = (med([r["step_s"] for r in x]) for x in (one, n1, n2))
c2 = med([r.get("comm_s", 0.0) for r in n2])
ar = json.load(open(os.path.join(d, "allreduce.json")))
print("%-34s %14s %20s" % ("", "step (ms)", "all-reduce (ms/step)"))
print("%-34s %14.1f %20s" % ("1 process, 2 threads", 1e3 * t_one, "-"))
print("%-34s %14.1f %20s" % ("mpirun -np 1, 1 thread", 1e3 * t1, "-"))
print("%-34s %14.1f %20.1f" % ("mpirun -np 2, 1 thread per rank", 1e3 * t2, 1e3 * c2))
print("2 ranks against 1 rank: %.2fx faster; against 1 process with 2 threads: %.2fx" % (t1 / t2, t_one / t2))
print("all-reduce of %.0f MB between 2 ranks here: %.3f s, bus bandwidth %.2f GB/s" %
      (ar["bytes"] / 1e6, ar["seconds"], ar["busbw_GBps"]))
# the scaling model
grad_bytes = (124439808 + 7 * 1600) * 4
compute = 53.0 * 64 * 4  # s per official update on one node (2 cores)
print()
print("projected time per official update (256 samples, GPT-2 XL -> base; compute %.0f s on one node):" % compute)
print("%-8s %12s %26s %26s" % ("nodes", "compute/N", "+ all-reduce @ %.2f GB/s" % ar["busbw_GBps"], "+ all-reduce @ 1.25 GB/s"))
for n in (8, 32, 128):
    ring = 2.0 * (n - 1) / n * grad_bytes
    a, b = ring / (ar["busbw_GBps"] * 1e9), ring / 1.25e9
    print("%-8d %11.0fs %18.0f s (%4.1f%%) %18.0f s (%4.1f%%)" %
          (n, compute / n, compute / n + a, 100 * a / (compute / n + a), compute / n + b, 100 * b / (compute / n + b)))
bw = ar["busbw_GBps"] * 1e9
print("communication passes compute at N = %.0f nodes (%.2f GB/s) and N = %.0f (1.25 GB/s)" %
      (compute * bw / (2 * grad_bytes), ar["busbw_GBps"], compute * 1.25e9 / (2 * grad_bytes)))
PY
