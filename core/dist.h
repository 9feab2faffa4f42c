/* The ranks of a data-parallel run: the process-wide communicator that distill.c and engine.c
 * use to split work and sum results (DESIGN.md section 9).
 *
 * Two implementations behind one API:
 *   - the singleton (one rank): a build without MPI (make MPI=0), or a program not started by
 *     mpirun; every operation is the identity (a sum over one rank) and never fails;
 *   - OpenMPI (PK_MPI=1 and pk_dist_init(1, ...)): MPI_COMM_WORLD duplicated, ranks on this
 *     machine from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED).
 *
 * The program decides whether it was started by mpirun (core/ reads no environment) and calls
 * pk_dist_init once, on its main thread, before any engine exists. Collectives may then be
 * called from any one thread at a time (MPI_THREAD_SERIALIZED: the engine's worker makes them
 * during a run, the main thread before and after it). Every rank must make the same
 * collective calls in the same order with the same sizes.
 *
 * Failure: the communicator returns errors (MPI_ERRORS_RETURN) and every collective waits with
 * a deadline (pk_dist_init's timeout). On rank 0 a failed or timed-out collective calls the
 * failure handler (pk_dist_set_fail_handler: the program prints the sentence and calls
 * pk_dist_abort, which ends every rank of the job), then returns PK_FAIL with the sentence in
 * err. On another rank the failure (a collective's, or one pk_dist_report_failure reports) goes
 * to rank 0 as a message, so that it shows where the person looks: once rank 0 acknowledges it
 * (within 10 s), that rank waits to be ended (for the job timeout, at least an hour; without
 * limit when the job has none); without the acknowledgement, or never ended, it calls the
 * failure handler itself. Rank 0 acknowledges from a listener thread of its own (every 200 ms,
 * whatever its worker computes; MPI calls are serialized inside dist.c) and takes these messages
 * while it waits in a collective (which then fails with "rank K: ...", without calling the
 * handler) and through pk_dist_poll_failure while idle; from then on the job has failed
 * (pk_dist_job_failure): every collective returns that sentence at once, the other ranks are
 * told so (they wait to be ended instead of timing out), and rank 0 ends the job
 * (pk_dist_finalize with a non-zero status, or pk_dist_abort) when the program is done. A rank
 * that dies is noticed by mpirun, which ends the others. */
#ifndef PK_DIST_H
#define PK_DIST_H

#include <stddef.h>

#include "common.h"

/* use_mpi: 1 when the program was started by mpirun (MPI_Init_thread runs), 0 for the
 * singleton. timeout_s: the longest a collective may wait for the other ranks (<= 0: none).
 * Fails (with a sentence) when MPI cannot start, gives less than MPI_THREAD_SERIALIZED, or
 * use_mpi is 1 in a build without MPI while the job has more than one rank (job_size, what
 * the launcher said; 0 when unknown). Calling it again does nothing. */
int pk_dist_init(int use_mpi, int job_size, double timeout_s, char *err);
/* Ends MPI: MPI_Finalize after status 0, MPI_Abort(status) otherwise, so the other ranks
 * never wait for a rank that left with an error; a job that has failed is aborted whatever the
 * status (its ranks wait to be ended). The singleton: nothing. */
void pk_dist_finalize(int status);
/* Ends every rank of the job now with this exit code (the singleton: nothing; the program exits). */
void pk_dist_abort(int code);

/* A function the program registers: called with the sentence when a collective fails or
 * times out, before the collective returns PK_FAIL (typically: print it, pk_dist_abort). */
typedef void (*PkDistFailFn)(const char *sentence);
void pk_dist_set_fail_handler(PkDistFailFn fn);

int pk_dist_rank(void);       /* 0 .. size-1; 0 for the singleton */
int pk_dist_size(void);       /* ranks in the job; 1 for the singleton */
int pk_dist_local_rank(void); /* rank among the ranks on this machine */
int pk_dist_local_size(void); /* ranks on this machine */
int pk_dist_is_mpi(void);     /* 1 when MPI runs (even with one rank) */

/* In-place sums over the ranks; every rank gets the same result. */
int pk_dist_allreduce_f32(float *x, size_t n, char *err);
int pk_dist_allreduce_f64(double *x, size_t n, char *err);
/* In-place maximum of ints over the ranks. */
int pk_dist_allreduce_max_int(int *x, size_t n, char *err);
/* Copies root's bytes into every rank's buf. */
int pk_dist_bcast(void *buf, size_t bytes, int root, char *err);
int pk_dist_barrier(char *err);
/* Variable-length gather to rank 0: every rank sends `bytes` bytes; rank 0 gets, in rank
 * order, the concatenation in *out (malloc'ed, caller frees; NULL when all sent 0) and each
 * rank's length in counts[size] (caller's array of pk_dist_size() entries). Other ranks: *out
 * = NULL, counts untouched (may be NULL). */
int pk_dist_gather_bytes(const void *send, size_t bytes, void **out, size_t *counts, char *err);

/* The step gate of a run: rank 0 decides, the others follow. Before each step, and before each
 * command that every rank must take part in (an evaluation, a changed setting), rank 0 sends an
 * op of PK_DIST_OP_BYTES bytes whose first int is its kind (0: the run has ended); the other ranks
 * receive it, waiting as long as it takes (rank 0 may sit paused for hours in a REPL). Returns the
 * kind, or -1 when the broadcast failed. After a 0 the gate is closed and returns 0 at once. The
 * singleton returns op's kind. */
#define PK_DIST_OP_BYTES 8192
int pk_dist_gate(void *op, char *err);
/* At the end of the program: closes the gate if it is open (rank 0 sends the 0, the others
 * take it), so no rank is left waiting. */
void pk_dist_gate_close(void);
/* A rank's own failure that the others cannot see (a step that failed here). On a rank other
 * than 0 the sentence goes to rank 0, which says it and ends the job, and the call returns only
 * when rank 0 did not (after the failure handler, which normally ends the job itself); on rank 0
 * it goes to the failure handler. */
void pk_dist_report_failure(const char *sentence);
/* Rank 0, while no collective is pending (the engine's worker when idle): takes a failure sentence
 * another rank sent, if one came. Returns 1 with "rank K: ..." in err (the first one fails the job,
 * see pk_dist_job_failure; later ones are acknowledged too), 0 when none came. The singleton and
 * the other ranks: 0 at no cost. */
int pk_dist_poll_failure(char *err);
/* Rank 0: 1 when another rank's failure has failed the job, with its sentence ("rank K: ...") in
 * sentence (PK_ERR_LEN bytes, may be NULL); 0 otherwise, and always on the other ranks. Any
 * thread may ask. */
int pk_dist_job_failure(char *sentence);

/* Contiguous share of n items for a rank: [*begin, *end), sizes differing by at most one,
 * lower ranks taking the larger shares. */
void pk_dist_share(long n, int rank, int size, long *begin, long *end);

/* Seconds spent inside collectives since the start, and how many float/double values the
 * sums carried (for the benchmark's communication time and bandwidth). */
double pk_dist_comm_seconds(void);
double pk_dist_reduced_bytes(void);

#endif
