/* The communicator of a data-parallel run (see dist.h). */
#include "dist.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef PK_MPI
#define PK_MPI 0
#endif

#if PK_MPI
#include <mpi.h>
#include <sched.h>
#endif

static struct {
    int inited, mpi;
    int rank, size, local_rank, local_size;
    double timeout_s;
    double comm_seconds, reduced_bytes;
    PkDistFailFn fail;
#if PK_MPI
    MPI_Comm comm;
#endif
} W = {.size = 1, .local_size = 1};

void pk_dist_set_fail_handler(PkDistFailFn fn) { W.fail = fn; }
int pk_dist_rank(void) { return W.rank; }
int pk_dist_size(void) { return W.size; }
int pk_dist_local_rank(void) { return W.local_rank; }
int pk_dist_local_size(void) { return W.local_size; }
int pk_dist_is_mpi(void) { return W.mpi; }
double pk_dist_comm_seconds(void) { return W.comm_seconds; }
double pk_dist_reduced_bytes(void) { return W.reduced_bytes; }

void pk_dist_share(long n, int rank, int size, long *begin, long *end) {
    if (size < 1) size = 1;
    long per = n / size, rem = n % size;
    *begin = rank * per + (rank < rem ? rank : rem);
    *end = *begin + per + (rank < rem ? 1 : 0);
}

#if PK_MPI
/* A failed collective: the sentence goes to the program's handler (which normally ends the job)
 * and back to the caller. */
static int dist_fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int dist_fail(char *err, const char *fmt, ...) {
    char buf[PK_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (W.fail) W.fail(buf);
    return pk_errf(err, "%s", buf);
}
#endif

#if !PK_MPI

int pk_dist_init(int use_mpi, int job_size, double timeout_s, char *err) {
    (void)timeout_s;
    if (W.inited) return PK_OK;
    if (use_mpi && job_size > 1)
        return pk_errf(err, "started by mpirun with %d ranks, but this promptkd was built without MPI (make MPI=0); "
                            "rebuild with `make MPI=1` (needs libopenmpi-dev) or run it without mpirun",
                       job_size);
    W.inited = 1;
    return PK_OK;
}
void pk_dist_finalize(int status) { (void)status; }
void pk_dist_abort(int code) { (void)code; }
int pk_dist_allreduce_f32(float *x, size_t n, char *err) {
    (void)x, (void)n, (void)err;
    return PK_OK;
}
int pk_dist_allreduce_f64(double *x, size_t n, char *err) {
    (void)x, (void)n, (void)err;
    return PK_OK;
}
int pk_dist_allreduce_max_int(int *x, size_t n, char *err) {
    (void)x, (void)n, (void)err;
    return PK_OK;
}
int pk_dist_bcast(void *buf, size_t bytes, int root, char *err) {
    (void)buf, (void)bytes, (void)root, (void)err;
    return PK_OK;
}
int pk_dist_barrier(char *err) {
    (void)err;
    return PK_OK;
}

#else /* PK_MPI */

static void mpi_sentence(int code, char *out, size_t len) {
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(code, s, &n) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", code);
    snprintf(out, len, "%s", s);
}

int pk_dist_init(int use_mpi, int job_size, double timeout_s, char *err) {
    (void)job_size;
    if (W.inited) return PK_OK;
    W.timeout_s = timeout_s;
    if (!use_mpi) {
        W.inited = 1;
        return PK_OK;
    }
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
        return pk_errf(err, "MPI_Init_thread failed: is this process started by mpirun?");
    if (provided < MPI_THREAD_SERIALIZED) {
        MPI_Finalize();
        return pk_errf(err, "MPI gives thread level %d, below MPI_THREAD_SERIALIZED (%d) that the training thread "
                            "needs; use an MPI built with thread support",
                       provided, MPI_THREAD_SERIALIZED);
    }
    W.mpi = 1;
    W.inited = 1;
    MPI_Comm_dup(MPI_COMM_WORLD, &W.comm);
    MPI_Comm_set_errhandler(W.comm, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(W.comm, &W.rank);
    MPI_Comm_size(W.comm, &W.size);
    MPI_Comm local;
    if (MPI_Comm_split_type(W.comm, MPI_COMM_TYPE_SHARED, W.rank, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_rank(local, &W.local_rank);
        MPI_Comm_size(local, &W.local_size);
        MPI_Comm_free(&local);
    }
    return PK_OK;
}

void pk_dist_finalize(int status) {
    if (!W.mpi) return;
    W.mpi = 0;
    if (status != 0) MPI_Abort(MPI_COMM_WORLD, status);
    MPI_Comm_free(&W.comm);
    MPI_Finalize();
}

void pk_dist_abort(int code) {
    if (W.mpi) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
}

/* Waits for a non-blocking collective, testing it (which also drives its progress), yielding
 * the core between tests, and failing after the deadline. */
static int wait_request(MPI_Request *req, const char *what, char *err) {
    double t0 = pk_now();
    long spins = 0;
    for (;;) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            char s[MPI_MAX_ERROR_STRING + 1];
            mpi_sentence(rc, s, sizeof s);
            W.comm_seconds += pk_now() - t0;
            return dist_fail(err, "rank %d of %d: %s failed: %s (another rank has probably died)", W.rank, W.size,
                             what, s);
        }
        if (done) break;
        /* each test drives the transfer: test back to back (yielding the core) for the first
         * second, then sleep 1 ms between tests: the other ranks may be far behind (evaluation) */
        double waited = (++spins & 255) == 0 || spins > 100000 ? pk_now() - t0 : 0;
        if (spins > 100000 && waited > 1.0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        } else {
            sched_yield();
        }
        if (W.timeout_s > 0 && waited > W.timeout_s) {
            W.comm_seconds += pk_now() - t0;
            return dist_fail(err, "rank %d of %d: %s waited %.0f s for the other ranks (PROMPTKD_MPI_TIMEOUT); "
                                  "one of them is stuck or gone",
                             W.rank, W.size, what, W.timeout_s);
        }
    }
    W.comm_seconds += pk_now() - t0;
    return PK_OK;
}

static int start_failed(int rc, const char *what, char *err) {
    char s[MPI_MAX_ERROR_STRING + 1];
    mpi_sentence(rc, s, sizeof s);
    return dist_fail(err, "rank %d of %d: %s failed: %s", W.rank, W.size, what, s);
}

#define CHUNK ((size_t)1 << 28) /* MPI counts are ints */

static int allreduce(void *x, size_t n, size_t elem, MPI_Datatype type, MPI_Op op, const char *what, char *err) {
    if (!W.mpi || W.size == 1 || n == 0) return PK_OK;
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        MPI_Request req;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)x + off * elem, (int)m, type, op, W.comm, &req);
        if (rc != MPI_SUCCESS) return start_failed(rc, what, err);
        if (wait_request(&req, what, err) != PK_OK) return PK_FAIL;
    }
    W.reduced_bytes += (double)n * elem;
    return PK_OK;
}

int pk_dist_allreduce_f32(float *x, size_t n, char *err) {
    return allreduce(x, n, sizeof(float), MPI_FLOAT, MPI_SUM, "MPI_Allreduce (sum of floats)", err);
}
int pk_dist_allreduce_f64(double *x, size_t n, char *err) {
    return allreduce(x, n, sizeof(double), MPI_DOUBLE, MPI_SUM, "MPI_Allreduce (sum of doubles)", err);
}
int pk_dist_allreduce_max_int(int *x, size_t n, char *err) {
    return allreduce(x, n, sizeof(int), MPI_INT, MPI_MAX, "MPI_Allreduce (max)", err);
}

int pk_dist_bcast(void *buf, size_t bytes, int root, char *err) {
    if (!W.mpi || W.size == 1 || bytes == 0) return PK_OK;
    for (size_t off = 0; off < bytes; off += CHUNK) {
        size_t m = bytes - off < CHUNK ? bytes - off : CHUNK;
        MPI_Request req;
        int rc = MPI_Ibcast((char *)buf + off, (int)m, MPI_BYTE, root, W.comm, &req);
        if (rc != MPI_SUCCESS) return start_failed(rc, "MPI_Bcast", err);
        if (wait_request(&req, "MPI_Bcast", err) != PK_OK) return PK_FAIL;
    }
    return PK_OK;
}

int pk_dist_barrier(char *err) {
    if (!W.mpi || W.size == 1) return PK_OK;
    MPI_Request req;
    int rc = MPI_Ibarrier(W.comm, &req);
    if (rc != MPI_SUCCESS) return start_failed(rc, "MPI_Barrier", err);
    return wait_request(&req, "MPI_Barrier", err);
}

#endif /* PK_MPI */

static int gate_closed;

void pk_dist_report_failure(const char *sentence) {
    if (W.fail) W.fail(sentence);
}

int pk_dist_gate(void *op, char *err) {
    int kind;
    memcpy(&kind, op, sizeof kind);
    if (pk_dist_size() == 1) return kind;
    if (gate_closed) return 0;
    /* the ranks that follow wait without a deadline: rank 0 decides when the next op comes */
    double saved = W.timeout_s;
    if (W.rank != 0) W.timeout_s = 0;
    int rc = pk_dist_bcast(op, PK_DIST_OP_BYTES, 0, err);
    W.timeout_s = saved;
    if (rc != PK_OK) return -1;
    memcpy(&kind, op, sizeof kind);
    if (kind == 0) gate_closed = 1;
    return kind;
}

void pk_dist_gate_close(void) {
    char err[PK_ERR_LEN];
    static char op[PK_DIST_OP_BYTES]; /* kind 0: the end */
    if (pk_dist_size() > 1 && !gate_closed) {
        memset(op, 0, sizeof op);
        pk_dist_gate(op, err);
    }
}

int pk_dist_gather_bytes(const void *send, size_t bytes, void **out, size_t *counts, char *err) {
    *out = NULL;
    if (!W.mpi || W.size == 1) {
        if (counts) counts[0] = bytes;
        if (bytes == 0) return PK_OK;
        void *copy = pk_malloc(bytes, err);
        if (!copy) return PK_FAIL;
        memcpy(copy, send, bytes);
        *out = copy;
        return PK_OK;
    }
#if PK_MPI
    if (bytes > (size_t)INT32_MAX) return dist_fail(err, "rank %d: %zu bytes to gather, over 2 GiB", W.rank, bytes);
    unsigned long long mine = bytes;
    unsigned long long *all = NULL;
    int *cnt = NULL, *disp = NULL;
    char *buf = NULL;
    int rc = PK_FAIL;
    if (W.rank == 0) {
        all = pk_calloc((size_t)W.size, sizeof *all, err);
        cnt = all ? pk_calloc((size_t)W.size, sizeof *cnt, err) : NULL;
        disp = cnt ? pk_calloc((size_t)W.size, sizeof *disp, err) : NULL;
        /* the others still take part, then the failure is everyone's: end the job */
        if (!disp) return dist_fail(err, "rank 0: out of memory gathering results");
    }
    MPI_Request req;
    int mrc = MPI_Igather(&mine, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG, 0, W.comm, &req);
    if (mrc != MPI_SUCCESS) {
        start_failed(mrc, "MPI_Gather", err);
        goto done;
    }
    if (wait_request(&req, "MPI_Gather", err) != PK_OK) goto done;
    size_t total = 0;
    if (W.rank == 0) {
        for (int r = 0; r < W.size; r++) {
            if (total + all[r] > (size_t)INT32_MAX) {
                dist_fail(err, "rank 0: over 2 GiB of results to gather");
                goto done;
            }
            disp[r] = (int)total;
            cnt[r] = (int)all[r];
            total += all[r];
            if (counts) counts[r] = all[r];
        }
        buf = malloc(total ? total : 1);
        if (!buf) {
            dist_fail(err, "rank 0: out of memory for %zu gathered bytes", total);
            goto done;
        }
    }
    mrc = MPI_Igatherv(send, (int)bytes, MPI_BYTE, buf, cnt, disp, MPI_BYTE, 0, W.comm, &req);
    if (mrc != MPI_SUCCESS) {
        start_failed(mrc, "MPI_Gatherv", err);
        goto done;
    }
    if (wait_request(&req, "MPI_Gatherv", err) != PK_OK) goto done;
    if (W.rank == 0 && total > 0) {
        *out = buf;
        buf = NULL;
    }
    rc = PK_OK;
done:
    free(all);
    free(cnt);
    free(disp);
    free(buf);
    return rc;
#else
    return PK_FAIL;
#endif
}
