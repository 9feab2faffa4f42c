# A failure on a rank other than 0 reaches rank 0's screen and ends the job, never a hang: a
# step that failed on rank 1 (PROMPTKD_TEST_RANK_FAIL) under train, repl and the workbench, on
# rank 2 of 3, loading that failed on rank 1 alone, and rank 1's own collective that timed out
# while rank 0's worker stalled (PROMPTKD_TEST_RANK_STALL, rank 1 alone with a short
# PROMPTKD_MPI_TIMEOUT), also past the 10 s that rank 1 waits for rank 0's answer; and rank 0
# stopped outright, when rank 1 says it itself. rank 0's stderr is told apart by mpirun
# --tag-output ("[1,0]<stderr>:").
source tests/cli/lib.sh

source tests/cli/mpi_world.sh
MPIRUN+=(--tag-output)
# many steps, nothing periodic: the failures come from the hooks alone
cat >"$W/mpi.json" <<JSON
{"method": "promptkd", "name": "m", "run_dir": "$TMP/runs",
 "teacher": "$W/teacher", "student": "$W/student", "tokenizer": "$W/tok",
 "train_data": "$W/train.jsonl", "valid_data": "$W/valid.jsonl", "test_data": "$W/valid.jsonl",
 "seed": 3, "steps": 100000, "batch_size": 4, "prompt_len": 3, "max_new_tokens": 6, "warmup_steps": 1,
 "lr": 0.005, "prompt_lr": 0.005, "eval_interval": 100000, "eval_samples": 4, "eval_max_new_tokens": 6,
 "gen_interval": 100000, "exposure_interval": 100000, "exposure_samples": 2, "exposure_prompts": 3,
 "exposure_len": 4, "threads": 1}
JSON
TRAIN=(train --config "$W/mpi.json" --no-tui --quiet)
SENTENCE='rank 1: test failure at step 2 \(PROMPTKD_TEST_RANK_FAIL\)'
# timed NAME LIMIT COMMAND...: runs it (output in $TMP/NAME.out, .err), the exit status in $rc;
# ended_in_time is 1 when it ended within LIMIT seconds (it is killed after LIMIT + 20)
timed() {
    local name=$1 limit=$2
    shift 2
    local t0=$(date +%s)
    timeout $((limit + 20)) "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"
    rc=$?
    ended_in_time=$(($(date +%s) - t0 <= limit))
}
on_rank0() { grep -qE "^\[1,0\]<stderr>:$1" "$TMP/$2.err"; }
not_on_rank() { ! grep -qE "^\[1,$1\]<stderr>:.*$2" "$TMP/$3.err"; }

# 1. train: rank 1's step fails after step 2; rank 0 says it and ends the job
PROMPTKD_TEST_RANK_FAIL=1:2 timed train 20 "${MPIRUN[@]}" -np 2 "$PROMPTKD" "${TRAIN[@]}" --set name=train
check train_rank_failure_exit_nonzero test $rc -ne 0 -a $rc -lt 128
check train_rank_failure_within_20s test $ended_in_time -eq 1
check train_rank_failure_said_by_rank0 on_rank0 "promptkd: $SENTENCE; ending the job" train
check train_rank_failure_not_said_by_rank1 not_on_rank 1 'test failure' train
check train_rank_failure_said_once test "$(grep -c 'test failure at step 2' "$TMP/train.err")" -eq 1
check train_rank_failure_steps_logged grep -q '"step":2,' "$TMP/runs/train/metrics.jsonl"

# 2. three ranks: rank 2 fails; rank 1, waiting for it in a collective, is told and does not time out
PROMPTKD_TEST_RANK_FAIL=2:2 timed np3 20 "${MPIRUN[@]}" -np 3 "$PROMPTKD" "${TRAIN[@]}" --set name=np3
check np3_rank2_failure_exit_nonzero test $rc -ne 0 -a $rc -lt 128
check np3_rank2_failure_within_20s test $ended_in_time -eq 1
check np3_rank2_failure_said_by_rank0 on_rank0 "promptkd: rank 2: test failure at step 2 .*; ending the job" np3
check np3_other_ranks_silent not_on_rank '[12]' '' np3

# 2b. loading fails on rank 1 alone (its own, malformed train_data): rank 0 says it
echo 'not json' >"$W/bad.jsonl"
timed load 20 "${MPIRUN[@]}" -np 1 "$PROMPTKD" "${TRAIN[@]}" --set name=load : \
    -np 1 "$PROMPTKD" "${TRAIN[@]}" --set name=load --set train_data="$W/bad.jsonl"
check rank1_loading_failure_exit_nonzero test $rc -ne 0 -a $rc -lt 128
check rank1_loading_failure_within_20s test $ended_in_time -eq 1
check rank1_loading_failure_said_by_rank0 on_rank0 "promptkd: rank 1: loading failed: .*bad.jsonl:1: .*; ending the job" load
check rank1_loading_failure_rank1_silent not_on_rank 1 '' load

# 3. repl (a script on rank 0): the failing command stops it, the sentence is said, the steps
# taken are saved by rank 0 (as when a command fails) and the job ends
printf 'step 2\nstep 3\nstatus\nquit\n' >"$TMP/drive.pk"
PROMPTKD_TEST_RANK_FAIL=1:2 timed repl 20 "${MPIRUN[@]}" -np 2 "$PROMPTKD" repl --config "$W/mpi.json" \
    --set name=repl -f "$TMP/drive.pk"
check repl_rank_failure_exit_nonzero test $rc -ne 0 -a $rc -lt 128
check repl_rank_failure_within_20s test $ended_in_time -eq 1
check repl_rank_failure_said_by_rank0 on_rank0 "promptkd: $SENTENCE; ending the job" repl
check repl_rank_failure_not_said_by_rank1 not_on_rank 1 'test failure' repl
check repl_rank_failure_steps_saved grep -qx 'step-2' "$TMP/runs/repl/checkpoints/latest"

# 4. rank 1's own collective times out (its own PROMPTKD_MPI_TIMEOUT) while rank 0's worker stalls
# before the barrier after step 2: rank 0 says rank 1's sentence, also when it stalls longer than
# the 10 s rank 1 waits for rank 0's answer (rank 0 answers from its listener meanwhile)
stalled() { # NAME TIMEOUT: the job's command line, rank 0 with the default timeout, rank 1 with TIMEOUT
    STALLED=("${MPIRUN[@]}" -np 1 "$PROMPTKD" "${TRAIN[@]}" --set name="$1" : \
        -np 1 env PROMPTKD_MPI_TIMEOUT="$2" "$PROMPTKD" "${TRAIN[@]}" --set name="$1")
}
stalled stall 1
PROMPTKD_TEST_RANK_STALL=2:4 timed stall 20 "${STALLED[@]}"
check rank1_timeout_exit_nonzero test $rc -ne 0 -a $rc -lt 128
check rank1_timeout_within_20s test $ended_in_time -eq 1
check rank1_timeout_said_by_rank0 on_rank0 "promptkd: rank 1 of 2: MPI_Barrier waited 1 s .*PROMPTKD_MPI_TIMEOUT.*; ending the job" stall
check rank1_timeout_not_said_by_rank1 not_on_rank 1 'MPI_Barrier waited' stall
stalled busy 1
PROMPTKD_TEST_RANK_STALL=2:13 timed busy 30 "${STALLED[@]}"
check rank0_busy_past_answer_wait_exit_nonzero test $rc -ne 0 -a $rc -lt 128
check rank0_busy_past_answer_wait_said_by_rank0 on_rank0 "promptkd: rank 1 of 2: MPI_Barrier waited 1 s .*; ending the job" busy
check rank0_busy_past_answer_wait_not_said_by_rank1 not_on_rank 1 'MPI_Barrier waited' busy

# 5. rank 0 stopped (SIGSTOP: not even its listener answers) while rank 1's barrier times out
# (3 s): after waiting 10 s for an answer rank 1 says it itself and ends the job
stalled stuck 3
PROMPTKD_TEST_RANK_STALL=2:60 "${STALLED[@]}" >"$TMP/stuck.out" 2>"$TMP/stuck.err" &
job=$!
for ((i = 0; i < 300; i++)); do grep -q '"step":2,' "$TMP/runs/stuck/metrics.jsonl" 2>/dev/null && break; sleep 0.1; done
rank0=""
for pid in $(pgrep -P $job); do grep -qz '^OMPI_COMM_WORLD_RANK=0$' /proc/$pid/environ 2>/dev/null && rank0=$pid; done
t0=$(date +%s)
[ -n "$rank0" ] && kill -STOP "$rank0"
for ((i = 0; i < 300; i++)); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
ended=1
kill -0 $job 2>/dev/null && ended=0 && kill -KILL $job
[ -n "$rank0" ] && kill -KILL "$rank0" 2>/dev/null
wait $job
rc=$?
check rank0_stopped_found test -n "$rank0"
check rank0_stopped_job_ends_nonzero test $ended -eq 1 -a $rc -ne 0
check rank0_stopped_within_20s test $(($(date +%s) - t0)) -le 20
check rank0_stopped_rank1_says_it grep -qE '^\[1,1\]<stderr>:promptkd: rank 1 of 2: MPI_Barrier waited 3 s .*; ending the job' "$TMP/stuck.err"

# 6. the workbench under mpirun (tmux): paused, `:step 2`, rank 1 fails after its step 2 while
# rank 0 is idle; the sentence shows on the workbench, which stays up; space (resume) answers
# with it at once; export still works; q saves the steps, gives the terminal back sane, says the
# sentence once more and ends the job with status 1
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
        "env LC_ALL=C.UTF-8 PROMPTKD_TEST_RANK_FAIL=1:2 mpirun --oversubscribe --bind-to none -np 2 --stdin none $PROMPTKD tui --config $W/mpi.json --paused --set name=tui; echo EXIT=\$? >$TMP/tui.exit; stty -a | tr ' ;' '\n\n' | grep -qx echo && echo SANE >>$TMP/tui.exit; sleep 60"
    check tui_drawn twait 'PAUSED +step 0/100000' 60
    "${T[@]}" send-keys -t mt ':' && sleep 0.3 && "${T[@]}" send-keys -t mt -l 'step 2' && "${T[@]}" send-keys -t mt Enter
    check tui_rank_failure_shown twait "FAILED +step 2/100000" 20
    check tui_rank_failure_sentence_on_screen twait "^$SENTENCE" 5
    check tui_still_up_after_failure test ! -s "$TMP/tui.exit"
    "${T[@]}" send-keys -t mt ' '
    check tui_step_key_answers_with_sentence twait "the run failed: $SENTENCE" 5
    "${T[@]}" send-keys -t mt x
    check tui_export_still_works twait 'exported loss to' 10
    "${T[@]}" send-keys -t mt q
    twait 'save a checkpoint before quitting' 10 && "${T[@]}" send-keys -t mt y
    for ((i = 0; i < 150; i++)); do [ -s "$TMP/tui.exit" ] && break; sleep 0.1; done
    sleep 0.5
    check tui_quit_exit_1 grep -qx 'EXIT=1' "$TMP/tui.exit"
    check tui_quit_terminal_restored grep -qx SANE "$TMP/tui.exit"
    check tui_quit_says_sentence twait "^promptkd: $SENTENCE; ending the job" 2
    check tui_quit_saved_steps grep -qx 'step-2' "$TMP/runs/tui/checkpoints/latest"
fi
