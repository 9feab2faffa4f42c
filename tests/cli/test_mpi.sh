# Data-parallel training under mpirun on the tiny world: for a fixed global batch, 1, 2, 3 and 4
# ranks log the same losses and train the same weights up to the order of float sums (promptkd,
# sft and minillm); a fixed
# number of ranks is bitwise reproducible; a batch that cannot give every rank a row is refused;
# a rank that dies ends the job within seconds; a resume on another number of ranks says so;
# evaluation and ExAccErr give one process's numbers; only rank 0 writes the run folder.
source tests/cli/lib.sh

source tests/cli/mpi_world.sh
MPIRUN+=(-np)
# 5 steps of batch 4; evaluation, generations and ExAccErr at step 5
cat >"$W/mpi.json" <<JSON
{"method": "promptkd", "name": "m", "run_dir": "$TMP/runs",
 "teacher": "$W/teacher", "student": "$W/student", "tokenizer": "$W/tok",
 "train_data": "$W/train.jsonl", "valid_data": "$W/valid.jsonl", "test_data": "$W/valid.jsonl",
 "seed": 3, "steps": 5, "batch_size": 4, "prompt_len": 3, "max_new_tokens": 6, "warmup_steps": 1,
 "lr": 0.005, "prompt_lr": 0.005, "eval_interval": 5, "eval_samples": 4, "eval_max_new_tokens": 6,
 "gen_interval": 5, "exposure_interval": 5, "exposure_samples": 2, "exposure_prompts": 3, "exposure_len": 4,
 "threads": 1}
JSON
train() { # NP NAME [--set ...]: the run's folder in $TMP/runs/NAME
    local np=$1 name=$2
    shift 2
    "${MPIRUN[@]}" "$np" "$PROMPTKD" train --config "$W/mpi.json" --no-tui --quiet --set name="$name" "$@"
}
# same_numbers A B: every logged loss of A's step lines within 1e-5 relative of B's, the eval
# events equal and the ExAccErr curves (measured on the trained weights) within 1e-5 relative
same_numbers() {
    python3 - "$1/metrics.jsonl" "$2/metrics.jsonl" <<'PY'
import json, sys
def load(p):
    steps, events = [], []
    for line in open(p):
        d = json.loads(line)
        if "event" in d:
            if d["event"] in ("eval", "exposure"):
                d.pop("seconds", None)
                events.append(d)
        else:
            steps.append({k: v for k, v in d.items() if k.endswith("loss") or k in ("kl_tprime_t", "reward")})
    return steps, events
(a, ea), (b, eb) = load(sys.argv[1]), load(sys.argv[2])
if len(a) != len(b) or len(a) == 0:
    sys.exit(f"{len(a)} step lines against {len(b)}")
# minillm's reward and pg loss (values of 0.001-0.1 here) differed by up to 1e-7 absolute between
# rank counts while its losses of about 5 agreed within 2e-8 relative: those two have a floor of 0.1
floor = {"reward": 0.1, "pg_loss": 0.1}
for i, (x, y) in enumerate(zip(a, b)):
    for k in x:
        u, v = x[k], y[k]
        if abs(u - v) > 1e-5 * max(abs(u), abs(v), floor.get(k, 1e-30)):
            sys.exit(f"step {i + 1} {k}: {u!r} against {v!r}")
if len(ea) != len(eb):
    sys.exit(f"events differ: {ea} against {eb}")
for x, y in zip(ea, eb):
    cx, cy = x.pop("exaccerr", []), y.pop("exaccerr", [])
    if x != y or len(cx) != len(cy) or any(abs(u - v) > 1e-5 * max(abs(u), abs(v), 1e-3) for u, v in zip(cx, cy)):
        sys.exit(f"events differ: {x} {cx} against {y} {cy}")
PY
}
# same_weights A B: the step-5 students agree within float summation-order differences. AdamW
# divides each gradient element by its running RMS, so an element whose gradient is near zero
# turns rounding noise into a step of up to lr: after 5 steps of lr 0.005 that bounds the
# difference at about 1e-3 of the weights' scale; a wrong row split shows at 1e-1.
same_weights() {
    python3 - "$1/checkpoints/step-5/model.safetensors" "$2/checkpoints/step-5/model.safetensors" <<'PY'
import json, struct, sys
def load(p):
    d = open(p, "rb").read()
    n = struct.unpack("<Q", d[:8])[0]
    h = json.loads(d[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        a, b = v["data_offsets"]
        out[k] = struct.unpack(f"<{(b - a) // 4}f", d[8 + n + a:8 + n + b])
    return out
x, y = load(sys.argv[1]), load(sys.argv[2])
assert x.keys() == y.keys()
worst = 0.0
for k in x:
    scale = max(max(abs(v) for v in x[k]), 1e-6)
    worst = max(worst, max(abs(u - v) for u, v in zip(x[k], y[k])) / scale)
if worst > 1e-3:
    sys.exit(f"weights differ by {worst:.3g} of their scale")
PY
}

# 1. promptkd: 1, 2, 3 and 4 ranks (batch 4 splits 2+2, 2+1+1 and 1+1+1+1), with dropout on
for np in 1 2 3 4; do
    train "$np" "pk$np" >"$TMP/out$np" 2>"$TMP/err$np"
    check "promptkd_np${np}_exit_0" test $? -eq 0
done
check np2_prints_the_run_folder_once test "$(cat "$TMP/out2")" = "$TMP/runs/pk2"
check np2_made_one_run_folder test "$(ls "$TMP/runs" | grep -c '^pk2')" -eq 1
check np2_log_says_ranks grep -q '"step":5,.*"ranks":2' "$TMP/runs/pk2/metrics.jsonl"
check np2_eval_file_written test -s "$TMP/runs/pk2/eval/valid-step-5.jsonl"
for np in 2 3 4; do
    if msg=$(same_numbers "$TMP/runs/pk1" "$TMP/runs/pk$np" 2>&1); then pass "promptkd_np${np}_losses_eval_exposure_match_np1"; else fail "promptkd_np${np}_losses_eval_exposure_match_np1" "$msg"; fi
    if msg=$(same_weights "$TMP/runs/pk1" "$TMP/runs/pk$np" 2>&1); then pass "promptkd_np${np}_weights_match_np1"; else fail "promptkd_np${np}_weights_match_np1" "$msg"; fi
done
check eval_predictions_equal cmp -s "$TMP/runs/pk1/eval/valid-step-5.jsonl" "$TMP/runs/pk2/eval/valid-step-5.jsonl"

# 2. a fixed number of ranks is bitwise reproducible
train 2 pk2again >/dev/null 2>&1
check np2_twice_same_weights cmp -s "$TMP/runs/pk2/checkpoints/step-5/model.safetensors" \
    "$TMP/runs/pk2again/checkpoints/step-5/model.safetensors"
check np2_twice_same_prompt cmp -s "$TMP/runs/pk2/checkpoints/step-5/prompt.safetensors" \
    "$TMP/runs/pk2again/checkpoints/step-5/prompt.safetensors"
strip_times() { grep -v '"event"' "$1" | sed 's/"tokens_per_s".*//'; }
check np2_twice_same_log cmp -s <(strip_times "$TMP/runs/pk2/metrics.jsonl") <(strip_times "$TMP/runs/pk2again/metrics.jsonl")

# 3. sft: 1 and 2 ranks, grad_accum 2 inside each rank
train 1 sft1 --set method=sft --set grad_accum=2 >/dev/null 2>&1
train 2 sft2 --set method=sft --set grad_accum=2 >/dev/null 2>&1
if msg=$(same_numbers "$TMP/runs/sft1" "$TMP/runs/sft2" 2>&1); then pass sft_np2_losses_match_np1; else fail sft_np2_losses_match_np1 "$msg"; fi
if msg=$(same_weights "$TMP/runs/sft1" "$TMP/runs/sft2" 2>&1); then pass sft_np2_weights_match_np1; else fail sft_np2_weights_match_np1 "$msg"; fi

# 3b. minillm: 1 to 4 ranks (its batch of 4 rows and its 4 pretraining chunks per update split
# 2+2, 2+1+1 and 1+1+1+1; the advantages whitened over the whole batch), and np 2 bitwise twice
for i in $(seq 0 40); do
    echo "{\"text\": \"the ${tiny_animals[$((i % 8))]} is ${tiny_colours[$((i % 6))]}. document $i ends here.\"}"
done >"$W/pretrain.jsonl"
minillm=(--set method=minillm --set pretrain_data="$W/pretrain.jsonl" --set minillm_ppo_epochs=2)
for np in 1 2 3 4; do
    train "$np" "mini$np" "${minillm[@]}" >/dev/null 2>"$TMP/err_mini$np"
    check "minillm_np${np}_exit_0" test $? -eq 0
done
check minillm_logged_pg_reward grep -q '"step":5,.*"pg_loss".*"pt_loss".*"reward"' "$TMP/runs/mini2/metrics.jsonl"
for np in 2 3 4; do
    if msg=$(same_numbers "$TMP/runs/mini1" "$TMP/runs/mini$np" 2>&1); then pass "minillm_np${np}_losses_reward_eval_match_np1"; else fail "minillm_np${np}_losses_reward_eval_match_np1" "$msg"; fi
    if msg=$(same_weights "$TMP/runs/mini1" "$TMP/runs/mini$np" 2>&1); then pass "minillm_np${np}_weights_match_np1"; else fail "minillm_np${np}_weights_match_np1" "$msg"; fi
done
train 2 mini2again "${minillm[@]}" >/dev/null 2>&1
check minillm_np2_twice_same_weights cmp -s "$TMP/runs/mini2/checkpoints/step-5/model.safetensors" \
    "$TMP/runs/mini2again/checkpoints/step-5/model.safetensors"

# 4. a batch that cannot give each of 3 ranks a row: refused, saying what to change
expect_error batch_smaller_than_ranks_refused "batch_size.: 2 rows cannot be shared by the 3 ranks.*set batch_size to 3 or more" \
    train 3 small --set batch_size=2

# 5. a rank that dies mid-run ends the job, not a hang
t0=$(date +%s)
PROMPTKD_TEST_RANK_EXIT=1:2 train 2 dead --set steps=50 --set eval_interval=100 >/dev/null 2>"$TMP/err_dead"
rc=$?
t1=$(date +%s)
check dead_rank_exit_nonzero test $rc -ne 0
check dead_rank_within_seconds test $((t1 - t0)) -lt 30
check dead_rank_says_so grep -q 'rank 1 leaves at step 2' "$TMP/err_dead"
check dead_rank_job_stopped grep -qiE 'exited|abort|non-zero|terminated' "$TMP/err_dead"

# 5b. Ctrl-C to mpirun: rank 0 finishes the step, saves it, and the job ends
"${MPIRUN[@]}" 2 "$PROMPTKD" train --config "$W/mpi.json" --no-tui --quiet --set name=int --set steps=100000 \
    --set eval_interval=100000 >/dev/null 2>"$TMP/err_int" &
pid=$! # mpirun itself (a shell function in the background would ignore SIGINT)
for _ in $(seq 1 300); do
    [ -s "$TMP/runs/int/metrics.jsonl" ] && break
    sleep 0.1
done
kill -INT $pid
for _ in $(seq 1 300); do
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
ended=1
kill -0 $pid 2>/dev/null && ended=0 && kill -KILL $pid
wait $pid
rc=$?
check sigint_job_ends_nonzero_within_30s test $ended -eq 1 -a $rc -ne 0
check sigint_rank0_saved grep -q 'saved checkpoint step-' "$TMP/err_int"
step=$(sed -n 's/^step-\([0-9]*\)$/\1/p' "$TMP/runs/int/checkpoints/latest" 2>/dev/null)
check sigint_checkpoint_is_last_step test -n "$step" -a "$(grep -vc '"event"' "$TMP/runs/int/metrics.jsonl")" = "$step"

# 6. resume: on the same number of ranks the same losses; on another one it says so and goes on
train 2 res2 --set stop_after=2 >/dev/null 2>&1
"${MPIRUN[@]}" 2 "$PROMPTKD" train --resume "$TMP/runs/res2" --set stop_after=0 --no-tui --quiet >/dev/null 2>"$TMP/err_res2"
check resume_same_ranks_exit_0 test $? -eq 0
check resume_same_ranks_silent test ! -s "$TMP/err_res2"
check resume_same_ranks_bitwise cmp -s "$TMP/runs/pk2/checkpoints/step-5/model.safetensors" "$TMP/runs/res2/checkpoints/step-5/model.safetensors"
train 2 res1 --set stop_after=2 >/dev/null 2>&1
"$PROMPTKD" train --resume "$TMP/runs/res1" --set stop_after=0 --no-tui --quiet >/dev/null 2>"$TMP/err_res1"
check resume_other_ranks_exit_0 test $? -eq 0
check resume_other_ranks_says_so grep -q 'trained on 2 ranks and now continues on 1.*not bitwise' "$TMP/err_res1"
check resume_other_ranks_finishes grep -qx 'step-5' "$TMP/runs/res1/checkpoints/latest"

# 7. the REPL under mpirun: rank 0 takes the commands; steps, a changed setting, an evaluation and
# ExAccErr reach every rank at the same step boundary, so the log matches one process's
printf 'step 2\nset lr 0.002\nstep 1\neval\nexposure\nset steps 4\nstep 1\nstatus\nquit\n' >"$TMP/drive.pk"
"$PROMPTKD" repl --config "$W/mpi.json" --set name=repl1 -f "$TMP/drive.pk" >"$TMP/repl1.out" 2>&1
check repl_np1_exit_0 test $? -eq 0
"${MPIRUN[@]}" 2 "$PROMPTKD" repl --config "$W/mpi.json" --set name=repl2 -f "$TMP/drive.pk" >"$TMP/repl2.out" 2>&1
check repl_np2_exit_0 test $? -eq 0
check repl_np2_one_folder test "$(ls "$TMP/runs" | grep -c '^repl2')" -eq 1
check repl_np2_set_logged grep -q '"event":"set","step":2,"key":"lr"' "$TMP/runs/repl2/metrics.jsonl"
check repl_np2_reached_step_4 test "$(grep -vc '"event"' "$TMP/runs/repl2/metrics.jsonl")" -eq 4
if msg=$(same_numbers "$TMP/runs/repl1" "$TMP/runs/repl2" 2>&1); then pass repl_np2_matches_np1; else fail repl_np2_matches_np1 "$msg"; fi
check repl_np2_output_once test "$(grep -c 'ROUGE-L' "$TMP/repl2.out")" -eq "$(grep -c 'ROUGE-L' "$TMP/repl1.out")"
expect_error tui_open_refused_under_mpirun "runs in one process" "${MPIRUN[@]}" 2 "$PROMPTKD" tui --open "$TMP/runs/repl1"

# 8. the workbench under mpirun (tmux): rank 0 draws on the terminal, the other rank follows its
# engine; pause, set and resume reach both at a step boundary, and quit saves and ends the job
if command -v tmux >/dev/null 2>&1; then
    unset TMUX
    T=(tmux -u -S "$TMP/tmux.sock")
    trap '"${T[@]}" kill-server >/dev/null 2>&1; rm -rf "$TMP"' EXIT
    tscreen() { "${T[@]}" capture-pane -p -t mt; }
    twait() { # REGEX SECONDS
        local i
        for ((i = 0; i < $2 * 10; i++)); do tscreen | grep -qE -- "$1" && return 0; sleep 0.1; done
        return 1
    }
    "${T[@]}" new-session -d -s mt -x 140 -y 45 -c "$PWD" \
        "env LC_ALL=C.UTF-8 ${MPIRUN[*]} 2 --stdin none $PROMPTKD tui --config $W/mpi.json --paused --set name=tui2 --set steps=100000 --set eval_interval=100000 --set exposure_interval=100000 --set gen_interval=100000; echo EXIT=\$? >$TMP/tui2.exit; sleep 60"
    check mpi_tui_drawn twait 'PAUSED +step 0/100000' 60
    "${T[@]}" send-keys -t mt ' '
    check mpi_tui_resumes twait 'RUNNING' 20
    "${T[@]}" send-keys -t mt ':' && sleep 0.3 && "${T[@]}" send-keys -t mt -l 'set lr 0.002' && "${T[@]}" send-keys -t mt Enter
    check mpi_tui_set_applies twait 'lr += 0.002|lr: 0.005 -> 0.002|lr 0.005 -> 0.002' 20
    "${T[@]}" send-keys -t mt ' '
    check mpi_tui_pauses twait 'PAUSED +step [1-9]' 30
    "${T[@]}" send-keys -t mt q
    twait 'save a checkpoint before quitting' 10 && "${T[@]}" send-keys -t mt y
    for ((i = 0; i < 300; i++)); do [ -s "$TMP/tui2.exit" ] && break; sleep 0.1; done
    check mpi_tui_exit_0 grep -qx 'EXIT=0' "$TMP/tui2.exit"
    check mpi_tui_set_logged grep -q '"event":"set","step":[0-9]*,"key":"lr"' "$TMP/runs/tui2/metrics.jsonl"
    check mpi_tui_saved test -s "$TMP/runs/tui2/checkpoints/latest"
    check mpi_tui_two_ranks grep -q '"ranks":2' "$TMP/runs/tui2/metrics.jsonl"
    # a rank that dies under the workbench ends the job, and the terminal is given back sane (a
    # server of its own: a new session on the socket of a server still exiting can fail to start)
    "${T[@]}" kill-server >/dev/null 2>&1
    T=(tmux -u -S "$TMP/tmux3.sock")
    "${T[@]}" new-session -d -s mt -x 140 -y 45 -c "$PWD" \
        "env LC_ALL=C.UTF-8 PROMPTKD_TEST_RANK_EXIT=1:2 ${MPIRUN[*]} 2 --stdin none $PROMPTKD tui --config $W/mpi.json --set name=tui3 --set steps=100000 --set eval_interval=100000 --set exposure_interval=100000 --set gen_interval=100000 >/dev/null 2>&1; echo EXIT=\$? >$TMP/tui3.exit; stty -a | tr ' ;' '\n\n' | grep -qx echo && echo SANE >>$TMP/tui3.exit; sleep 60"
    for ((i = 0; i < 600; i++)); do [ -s "$TMP/tui3.exit" ] && break; sleep 0.1; done
    sleep 0.5
    check mpi_tui_rank_death_ends_job grep -qE '^EXIT=[1-9]' "$TMP/tui3.exit"
    check mpi_tui_rank_death_terminal_restored grep -qx SANE "$TMP/tui3.exit"
fi
expect_error other_commands_refused_under_mpirun "runs in one process" "${MPIRUN[@]}" 2 "$PROMPTKD" compare --config "$W/mpi.json"
