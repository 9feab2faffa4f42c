/* The program's side of data-parallel runs (core/dist.h): whether mpirun started this
 * process, starting and ending MPI around the commands that run data-parallel, the
 * default thread count per rank, the message when a resume changes the number of ranks,
 * and a test hook that makes one rank die. core/ reads no environment: everything it
 * needs from the launcher comes through here. */
#ifndef PK_DIST_SETUP_H
#define PK_DIST_SETUP_H

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

/* Test hook: PROMPTKD_TEST_RANK_EXIT="R:K" makes rank R leave with status 3 right after its
 * step K, without a word to the other ranks (as a crashed or killed rank does). Installed on
 * the engine's step hook; does nothing without the variable. */
struct Engine;
void dist_install_test_exit(struct Engine *e);

#endif
