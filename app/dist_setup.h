/* The program's side of data-parallel runs (core/dist.h): whether mpirun started this
 * process, starting and ending MPI around the commands that run data-parallel, the
 * default thread count per rank, the message when a resume changes the number of ranks,
 * the sentence of a job that another rank failed, and test hooks that make one rank die, fail
 * or stall. core/ reads no environment: everything it needs from the launcher comes through
 * here. */
#ifndef PK_DIST_SETUP_H
#define PK_DIST_SETUP_H

#include <stdio.h>

#include "config.h"

/* 1 when mpirun (OpenMPI or a PMIx launcher) started this process; *job_size gets the number
 * of ranks it says (0 when unknown). */
int dist_launched_by_mpirun(int *job_size);

/* Around a command in main(): returns 0 to run it, or an exit status to return at once (MPI
 * could not start, or the command does not run under mpirun with several ranks: the sentence
 * is on stderr). dist_end after the command: closes the step gate and ends MPI (MPI_Abort
 * when status is not 0, so no rank waits for one that left). */
int dist_begin(const char *command);
int dist_end(int status);

/* threads 0 (all cores) becomes cores / ranks on this machine when several ranks share it and
 * PROMPTKD_THREADS is not set, so `mpirun -np 2` on 2 cores runs 1 thread per rank. */
void dist_default_threads(RunConfig *cfg);

/* On rank 0 of a resume: when the run's last logged step was made on another number of ranks,
 * says so on stderr (the run goes on; its numbers then differ from a run continued on the old
 * number in the last digits: the sums are made in another order). */
void dist_check_resume_ranks(const char *run_dir, const char *prefix);

/* Rank 0: when another rank's failure has failed the job (pk_dist_job_failure), says
 * "promptkd: rank K: ...; ending the job" on out, the first time it is asked, and returns 1
 * (also when said before); 0 when the job has not failed. out NULL: the caller said it itself.
 * dist_end says it, unless said before. */
int dist_say_job_failure(FILE *out);

/* Test hooks, on the engine's step hook; they do nothing without their variable:
 *   PROMPTKD_TEST_RANK_EXIT="R:K": rank R leaves with status 3 right after its step K, without a
 *     word to the other ranks (as a crashed or killed rank does);
 *   PROMPTKD_TEST_RANK_FAIL="R:K": rank R reports a failure after its step K
 *     ("rank R: test failure at step K (PROMPTKD_TEST_RANK_FAIL)"), as a step that failed there;
 *   PROMPTKD_TEST_RANK_STALL="K:S": after step K every rank meets at a barrier, rank 0 S seconds
 *     late (as a stuck rank 0: the others' barrier times out after PROMPTKD_MPI_TIMEOUT). */
struct Engine;
void dist_install_test_hooks(struct Engine *e);

#endif
