/* The communicator of a data-parallel run (see dist.h). */
#include "dist.h"

#include <pthread.h>
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
#include <signal.h>
#endif

static struct {
    int inited, mpi;
    int rank, size, local_rank, local_size;
    double timeout_s;     /* the deadline of the collective being waited for (the gate lifts it) */
    double job_timeout_s; /* pk_dist_init's: how long a rank waits for rank 0 to end a failed job */
    double comm_seconds, reduced_bytes;
    PkDistFailFn fail;
    /* the job has failed (another rank's failure on rank 0; rank 0's word, or its own failure
     * reported to rank 0, on the others): every collective returns this sentence at once. Read
     * by the program's main thread while the engine's worker sets it: under failure_mu. */
    int failed;
    char failure[PK_ERR_LEN];
#if PK_MPI
    MPI_Comm comm;
#endif
} W = {.size = 1, .local_size = 1};
static pthread_mutex_t failure_mu = PTHREAD_MUTEX_INITIALIZER;

static void set_failed(const char *sentence) {
    pthread_mutex_lock(&failure_mu);
    if (!W.failed) snprintf(W.failure, sizeof W.failure, "%s", sentence);
    W.failed = 1;
    pthread_mutex_unlock(&failure_mu);
}

int pk_dist_job_failure(char *sentence) {
    pthread_mutex_lock(&failure_mu);
    int failed = W.failed && W.rank == 0;
    if (failed && sentence) snprintf(sentence, PK_ERR_LEN, "%s", W.failure);
    pthread_mutex_unlock(&failure_mu);
    return failed;
}

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

static void fail_here(const char *sentence);

#if PK_MPI
/* A failed collective: the sentence goes to rank 0 or the program's handler (fail_here) and back
 * to the caller. */
static int dist_fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int dist_fail(char *err, const char *fmt, ...) {
    char buf[PK_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fail_here(buf);
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
static void fail_here(const char *sentence) {
    if (W.fail) W.fail(sentence);
}
int pk_dist_poll_failure(char *err) {
    (void)err;
    return 0;
}
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

/* MPI_THREAD_SERIALIZED: one thread in MPI at a time. The engine's worker makes the collectives;
 * on rank 0 the failure listener (below) probes beside it. Held around single MPI calls, never
 * while waiting or calling the failure handler. */
static pthread_mutex_t mpi_mu = PTHREAD_MUTEX_INITIALIZER;

static void mpi_sentence(int code, char *out, size_t len) {
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    pthread_mutex_lock(&mpi_mu);
    int rc = MPI_Error_string(code, s, &n);
    pthread_mutex_unlock(&mpi_mu);
    if (rc != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", code);
    snprintf(out, len, "%s", s);
}

static void start_listener(void);
static void stop_listener(void);

int pk_dist_init(int use_mpi, int job_size, double timeout_s, char *err) {
    (void)job_size;
    if (W.inited) return PK_OK;
    W.timeout_s = timeout_s;
    if (!use_mpi) {
        W.inited = 1;
        return PK_OK;
    }
    W.job_timeout_s = timeout_s;
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
    if (W.rank == 0 && W.size > 1) start_listener();
    return PK_OK;
}

void pk_dist_finalize(int status) {
    if (!W.mpi) return;
    stop_listener();
    W.mpi = 0;
    /* a failed job has ranks waiting to be ended (and collectives left pending): never finalize */
    if (status == 0 && W.failed) status = 1;
    pthread_mutex_lock(&mpi_mu);
    if (status != 0) MPI_Abort(MPI_COMM_WORLD, status);
    MPI_Comm_free(&W.comm);
    MPI_Finalize();
    pthread_mutex_unlock(&mpi_mu);
}

void pk_dist_abort(int code) {
    if (!W.mpi) return;
    pthread_mutex_lock(&mpi_mu); /* never returns: MPI_Abort ends this process too */
    MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    pthread_mutex_unlock(&mpi_mu);
}

/* ---- a failure on a rank other than 0 reaches rank 0
 * The failing rank sends its sentence to rank 0 (TAG_FAILURE) and waits DIST_ACK_WAIT_S for the
 * acknowledgement (TAG_FAILURE_ACK). Acknowledged, rank 0 owns the ending (it says the sentence and
 * ends the job, from its screen when it shows one): this rank makes no more collectives and waits
 * to be ended. Not acknowledged (rank 0 gone or stuck), or never ended: the program's handler
 * (its own stderr, MPI_Abort). Rank 0 takes these sentences wherever it waits (wait_request,
 * pk_dist_poll_failure) and, so that it answers within DIST_ACK_WAIT_S while its worker computes
 * a long step, on a listener thread every DIST_LISTEN_MS. The first one fails the job; rank 0
 * tells the other ranks (TAG_JOB_FAILED), so a rank waiting in a collective for the one that
 * failed waits to be ended instead of timing out on its own. Point-to-point messages on W.comm
 * never match its collectives. */
enum { TAG_FAILURE = 7301, TAG_FAILURE_ACK = 7302, TAG_JOB_FAILED = 7303 };
#define DIST_ACK_WAIT_S 10.0
#define DIST_LISTEN_MS 200
/* the shortest wait to be ended: rank 0 may keep a failed run on its screen for reading */
#define DIST_ENDED_WAIT_S 3600.0

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits for the end of the job that rank 0 now owns. Returns only when it did not come in time:
 * the job timeout, at least DIST_ENDED_WAIT_S; no limit when the job has none. */
static void wait_to_be_ended(void) {
    double limit = W.job_timeout_s > DIST_ENDED_WAIT_S ? W.job_timeout_s : DIST_ENDED_WAIT_S;
    double t0 = pk_now();
    while (W.job_timeout_s <= 0 || pk_now() - t0 < limit) sleep_ms(100);
}

/* A rank other than 0: sends the sentence to rank 0; 1 when rank 0 acknowledged it. */
static int tell_rank0(const char *sentence) {
    static char sent[PK_ERR_LEN]; /* the send may outlive this call when rank 0 never takes it */
    static int ack;
    snprintf(sent, sizeof sent, "%s", sentence);
    MPI_Request send, recv;
    pthread_mutex_lock(&mpi_mu);
    int started = MPI_Isend(sent, (int)strlen(sent) + 1, MPI_CHAR, 0, TAG_FAILURE, W.comm, &send) == MPI_SUCCESS;
    if (started && MPI_Irecv(&ack, 1, MPI_INT, 0, TAG_FAILURE_ACK, W.comm, &recv) != MPI_SUCCESS) {
        MPI_Request_free(&send);
        started = 0;
    }
    pthread_mutex_unlock(&mpi_mu);
    if (!started) return 0;
    double t0 = pk_now();
    int acked = 0, sent_done = 0, broken = 0;
    while (!acked && !broken && pk_now() - t0 < DIST_ACK_WAIT_S) {
        pthread_mutex_lock(&mpi_mu);
        broken = (!sent_done && MPI_Test(&send, &sent_done, MPI_STATUS_IGNORE) != MPI_SUCCESS) ||
                 MPI_Test(&recv, &acked, MPI_STATUS_IGNORE) != MPI_SUCCESS;
        pthread_mutex_unlock(&mpi_mu);
        if (!acked && !broken) sleep_ms(1);
    }
    if (!acked) {
        pthread_mutex_lock(&mpi_mu);
        MPI_Cancel(&recv);
        MPI_Request_free(&recv);
        if (!sent_done) MPI_Request_free(&send);
        pthread_mutex_unlock(&mpi_mu);
    }
    return acked;
}

static void fail_here(const char *sentence) {
    if (W.mpi && W.size > 1 && W.rank != 0) {
        int told = 0;
        pthread_mutex_lock(&failure_mu);
        int noted = W.failed; /* rank 0 already ends the job */
        pthread_mutex_unlock(&failure_mu);
        if (!noted) {
            set_failed(sentence);
            told = tell_rank0(sentence);
        }
        if (noted || told) wait_to_be_ended();
    }
    if (W.fail) W.fail(sentence);
}

/* Rank 0: the sentences taken and not yet handed to pk_dist_poll_failure (under failure_mu); more
 * are acknowledged, not kept (the first one is the job's in any case) */
#define DIST_PENDING 8
static char pending[DIST_PENDING][PK_ERR_LEN];
static int n_pending;

/* Rank 0: a failure sentence another rank sent, if one has come: taken, acknowledged, and kept as
 * "rank K: ..." for pk_dist_poll_failure. The first one fails the job: the other ranks are told.
 * Returns 1 when one was taken. */
static int take_failure(void) {
    int there = 0;
    MPI_Status st;
    char got[PK_ERR_LEN];
    static const int ack = 1;
    MPI_Request req;
    pthread_mutex_lock(&mpi_mu);
    if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_FAILURE, W.comm, &there, &st) != MPI_SUCCESS) there = 0;
    int from = there ? st.MPI_SOURCE : -1;
    if (there) {
        if (MPI_Recv(got, (int)sizeof got, MPI_CHAR, from, TAG_FAILURE, W.comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            snprintf(got, sizeof got, "failed (its sentence could not be received)");
        if (MPI_Isend(&ack, 1, MPI_INT, from, TAG_FAILURE_ACK, W.comm, &req) == MPI_SUCCESS) MPI_Request_free(&req);
    }
    pthread_mutex_unlock(&mpi_mu);
    if (!there) return 0;
    got[sizeof got - 1] = 0;
    /* the sentence names its rank ("rank K: ..." or "rank K of N: ..."); otherwise it is named here */
    char name[32], out[PK_ERR_LEN];
    int n = snprintf(name, sizeof name, "rank %d", from);
    if (!strncmp(got, name, (size_t)n) && (got[n] == ':' || got[n] == ' '))
        snprintf(out, sizeof out, "%s", got);
    else
        snprintf(out, sizeof out, "rank %d: %.480s", from, got);
    pthread_mutex_lock(&failure_mu);
    int first = !W.failed;
    if (first) {
        W.failed = 1;
        snprintf(W.failure, sizeof W.failure, "%s", out);
    }
    if (n_pending < DIST_PENDING) snprintf(pending[n_pending++], PK_ERR_LEN, "%s", out);
    pthread_mutex_unlock(&failure_mu);
    if (first) {
        static char note[PK_ERR_LEN]; /* sent without waiting: it must outlive this call */
        snprintf(note, sizeof note, "%s", out);
        pthread_mutex_lock(&mpi_mu);
        for (int r = 1; r < W.size; r++) {
            if (r == from) continue;
            if (MPI_Isend(note, (int)strlen(note) + 1, MPI_CHAR, r, TAG_JOB_FAILED, W.comm, &req) == MPI_SUCCESS)
                MPI_Request_free(&req);
        }
        pthread_mutex_unlock(&mpi_mu);
    }
    return 1;
}

/* A rank other than 0: 1 when rank 0 said the job failed (the job is then failed here too). */
static int take_job_failed(void) {
    int there = 0;
    MPI_Status st;
    char got[PK_ERR_LEN];
    pthread_mutex_lock(&mpi_mu);
    if (MPI_Iprobe(0, TAG_JOB_FAILED, W.comm, &there, &st) != MPI_SUCCESS) there = 0;
    if (there && MPI_Recv(got, (int)sizeof got, MPI_CHAR, 0, TAG_JOB_FAILED, W.comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        snprintf(got, sizeof got, "another rank failed");
    pthread_mutex_unlock(&mpi_mu);
    if (!there) return 0;
    got[sizeof got - 1] = 0;
    set_failed(got);
    return 1;
}

int pk_dist_poll_failure(char *err) {
    if (!W.mpi || W.size == 1 || W.rank != 0) return 0;
    while (take_failure()) {
    }
    pthread_mutex_lock(&failure_mu);
    int got = n_pending > 0;
    if (got) {
        snprintf(err, PK_ERR_LEN, "%s", pending[0]);
        memmove(pending, pending + 1, (size_t)(--n_pending) * sizeof *pending);
    }
    pthread_mutex_unlock(&failure_mu);
    return got;
}

/* Rank 0's listener: takes the other ranks' failures every DIST_LISTEN_MS, whatever the worker
 * does (a step may compute for a minute between two collectives), so they are acknowledged in
 * time; the worker meets the failed job at its next collective or while idle. */
static struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running, stop;
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *listen_for_failures(void *arg) {
    (void)arg;
    sigset_t all; /* the program's signals go to its own threads */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&L.mu);
    while (!L.stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += DIST_LISTEN_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&L.cv, &L.mu, &until);
        if (L.stop) break;
        pthread_mutex_unlock(&L.mu);
        while (take_failure()) {
        }
        pthread_mutex_lock(&L.mu);
    }
    pthread_mutex_unlock(&L.mu);
    return NULL;
}

static void start_listener(void) {
    L.stop = 0;
    L.running = pthread_create(&L.thread, NULL, listen_for_failures, NULL) == 0;
}

static void stop_listener(void) {
    if (!L.running) return;
    pthread_mutex_lock(&L.mu);
    L.stop = 1;
    pthread_cond_signal(&L.cv);
    pthread_mutex_unlock(&L.mu);
    pthread_join(L.thread, NULL);
    L.running = 0;
}

/* A job that has failed: collectives return its sentence at once (never wait for the deadline). */
static int failed_already(char *err) {
    pthread_mutex_lock(&failure_mu);
    int failed = W.failed;
    if (failed) pk_errf(err, "%s", W.failure);
    pthread_mutex_unlock(&failure_mu);
    return failed;
}

/* Waits for a non-blocking collective, testing it (which also drives its progress), yielding
 * the core between tests, and failing after the deadline. Meanwhile rank 0 takes the failures
 * other ranks send (the collective then fails with that rank's sentence), and the other ranks
 * take rank 0's word that the job failed (they wait to be ended). */
static int wait_request(MPI_Request *req, const char *what, char *err) {
    double t0 = pk_now();
    long spins = 0;
    for (;;) {
        int done = 0;
        pthread_mutex_lock(&mpi_mu);
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        pthread_mutex_unlock(&mpi_mu);
        if (rc != MPI_SUCCESS) {
            char s[MPI_MAX_ERROR_STRING + 1];
            mpi_sentence(rc, s, sizeof s);
            W.comm_seconds += pk_now() - t0;
            return dist_fail(err, "rank %d of %d: %s failed: %s (another rank has probably died)", W.rank, W.size,
                             what, s);
        }
        if (done) break;
        ++spins;
        /* a probe costs about what a test does: one every 16 tests, each one once the tests sleep */
        if ((spins & 15) == 0 || spins > 100000) {
            char s[PK_ERR_LEN];
            if (W.rank == 0) { /* a failure taken here or by the listener: the job's sentence */
                take_failure();
                if (failed_already(err)) {
                    W.comm_seconds += pk_now() - t0;
                    return PK_FAIL;
                }
            }
            if (W.rank != 0 && take_job_failed()) {
                W.comm_seconds += pk_now() - t0;
                wait_to_be_ended();
                pthread_mutex_lock(&failure_mu);
                snprintf(s, sizeof s, "%s", W.failure);
                pthread_mutex_unlock(&failure_mu);
                char sentence[PK_ERR_LEN];
                snprintf(sentence, sizeof sentence,
                         "rank %d of %d: rank 0 said the job failed (%.300s) but did not end it", W.rank, W.size, s);
                if (W.fail) W.fail(sentence);
                return pk_errf(err, "%s", sentence);
            }
        }
        /* each test drives the transfer: test back to back (yielding the core) for the first
         * second, then sleep 1 ms between tests: the other ranks may be far behind (evaluation) */
        double waited = (spins & 255) == 0 || spins > 100000 ? pk_now() - t0 : 0;
        if (spins > 100000 && waited > 1.0) {
            sleep_ms(1);
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
    if (failed_already(err)) return PK_FAIL;
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        MPI_Request req;
        pthread_mutex_lock(&mpi_mu);
        int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)x + off * elem, (int)m, type, op, W.comm, &req);
        pthread_mutex_unlock(&mpi_mu);
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
    if (failed_already(err)) return PK_FAIL;
    for (size_t off = 0; off < bytes; off += CHUNK) {
        size_t m = bytes - off < CHUNK ? bytes - off : CHUNK;
        MPI_Request req;
        pthread_mutex_lock(&mpi_mu);
        int rc = MPI_Ibcast((char *)buf + off, (int)m, MPI_BYTE, root, W.comm, &req);
        pthread_mutex_unlock(&mpi_mu);
        if (rc != MPI_SUCCESS) return start_failed(rc, "MPI_Bcast", err);
        if (wait_request(&req, "MPI_Bcast", err) != PK_OK) return PK_FAIL;
    }
    return PK_OK;
}

int pk_dist_barrier(char *err) {
    if (!W.mpi || W.size == 1) return PK_OK;
    if (failed_already(err)) return PK_FAIL;
    MPI_Request req;
    pthread_mutex_lock(&mpi_mu);
    int rc = MPI_Ibarrier(W.comm, &req);
    pthread_mutex_unlock(&mpi_mu);
    if (rc != MPI_SUCCESS) return start_failed(rc, "MPI_Barrier", err);
    return wait_request(&req, "MPI_Barrier", err);
}

#endif /* PK_MPI */

static int gate_closed;

void pk_dist_report_failure(const char *sentence) { fail_here(sentence); }

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
    if (failed_already(err)) return PK_FAIL;
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
    pthread_mutex_lock(&mpi_mu);
    int mrc = MPI_Igather(&mine, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG, 0, W.comm, &req);
    pthread_mutex_unlock(&mpi_mu);
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
    pthread_mutex_lock(&mpi_mu);
    mrc = MPI_Igatherv(send, (int)bytes, MPI_BYTE, buf, cnt, disp, MPI_BYTE, 0, W.comm, &req);
    pthread_mutex_unlock(&mpi_mu);
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
