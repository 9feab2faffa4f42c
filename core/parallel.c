#include "parallel.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define PK_MAX_THREADS 64

static struct {
    int nthreads;        /* including the caller */
    int started;         /* worker threads alive */
    pthread_t workers[PK_MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    unsigned long generation; /* bumped once per job */
    unsigned long start_generation; /* generation when the workers were (re)started */
    unsigned long pending;    /* workers still running the current job (atomic) */
    int quit;
    int forked_child;         /* pk_threads_fork_child ran: everything inline, no pool */
    /* the current job */
    pk_range_fn fn;
    void *ctx;
    long n, grain;
    int parts;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .work_cv = PTHREAD_COND_INITIALIZER, .done_cv = PTHREAD_COND_INITIALIZER};

static __thread int in_parallel_region;

static int default_threads; /* pk_threads_defaults: what pk_threads_init(0) takes; 0: every core */
static PkGemmMode gemm_mode = PK_GEMM_POOL;

/* Only one of the two pools may have more than one thread at a time. */
static void apply_gemm_mode(void) { openblas_set_num_threads(gemm_mode == PK_GEMM_BLAS ? pool.nthreads : 1); }

void pk_threads_defaults(int threads, PkGemmMode gemm) {
    default_threads = threads > 0 ? threads : 0;
    gemm_mode = gemm == PK_GEMM_BLAS ? PK_GEMM_BLAS : PK_GEMM_POOL;
    if (pool.started) apply_gemm_mode();
}

/* Before sleeping on a condition variable, a worker waiting for the next job and
 * the caller waiting for the workers spin this long: a training step issues a few
 * hundred parallel_for calls back to back, and waking a sleeping thread on this
 * virtual machine took long enough that spinning made GPT-2 small's step 4-7%
 * faster (alternated step by step in one process). Bounded in time, so an idle
 * pool goes to sleep within a fraction of a millisecond. */
#define SPIN_SECONDS 200e-6

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spins until *word differs from `value` (want_change) or equals 0 (!want_change),
 * or the budget runs out; the caller then checks again under the mutex. */
static void spin_wait(const unsigned long *word, unsigned long value, int want_change) {
    double t0 = 0.0;
    for (int i = 0;; i++) {
        unsigned long w = __atomic_load_n(word, __ATOMIC_ACQUIRE);
        if (want_change ? w != value : w == 0) return;
        cpu_relax();
        if ((i & 63) == 63) { /* the clock only every 64 pauses, and not at all when no wait is needed */
            double t = pk_now();
            if (t0 == 0.0)
                t0 = t;
            else if (t - t0 > SPIN_SECONDS)
                return;
        }
    }
}

static pthread_mutex_t job_mu = PTHREAD_MUTEX_INITIALIZER; /* one job at a time across callers */

static void job_range(int part, long *b, long *e) {
    long chunks = (pool.n + pool.grain - 1) / pool.grain;
    long per = chunks / pool.parts, rem = chunks % pool.parts;
    long c0 = part * per + (part < rem ? part : rem);
    long c1 = c0 + per + (part < rem ? 1 : 0);
    *b = c0 * pool.grain;
    *e = c1 * pool.grain;
    if (*e > pool.n) *e = pool.n;
    if (*b > pool.n) *b = pool.n;
}

static void *worker_main(void *arg) {
    int id = (int)(long)arg; /* 1..nthreads-1 */
    /* a restarted pool must not take the last job of the previous one for a new one */
    unsigned long seen = pool.start_generation;
    in_parallel_region = 1;
    for (;;) {
        spin_wait(&pool.generation, seen, 1);
        pthread_mutex_lock(&pool.mu);
        while (pool.generation == seen && !pool.quit) pthread_cond_wait(&pool.work_cv, &pool.mu);
        if (pool.quit) {
            pthread_mutex_unlock(&pool.mu);
            return NULL;
        }
        seen = pool.generation;
        int active = id < pool.parts;
        pthread_mutex_unlock(&pool.mu);
        if (active) {
            long b, e;
            job_range(id, &b, &e);
            if (b < e) pool.fn(pool.ctx, b, e);
        }
        /* the caller may be spinning on pending rather than sleeping: signal only the last */
        if (__atomic_sub_fetch(&pool.pending, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_mutex_lock(&pool.mu);
            pthread_cond_signal(&pool.done_cv);
            pthread_mutex_unlock(&pool.mu);
        }
    }
}

static void stop_workers(void) {
    pthread_mutex_lock(&pool.mu);
    pool.quit = 1;
    pthread_cond_broadcast(&pool.work_cv);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 1; i < pool.started; i++) pthread_join(pool.workers[i], NULL);
    pool.started = 0;
    pool.quit = 0;
}

void pk_threads_init(int n) {
    if (pool.forked_child) return;
    if (n <= 0) n = default_threads > 0 ? default_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > PK_MAX_THREADS) n = PK_MAX_THREADS;
    if (pool.started && pool.nthreads == n) return;
    if (pool.started) stop_workers();
    pool.nthreads = n;
    pool.started = 1;
    pool.start_generation = pool.generation;
    for (int i = 1; i < n; i++) {
        if (pthread_create(&pool.workers[i], NULL, worker_main, (void *)(long)i) != 0) {
            pool.nthreads = i; /* run with what we have */
            break;
        }
        pool.started = i + 1;
    }
    /* OpenBLAS stays single-threaded unless the BLAS mode hands it the cores. */
    apply_gemm_mode();
}

/* Only the calling thread survives fork(): the workers' copies are gone and any lock
 * another thread held stays held. From now on every parallel_for runs inline (the
 * nthreads == 1 path takes no lock) and OpenBLAS gets one thread. */
void pk_threads_fork_child(void) {
    pool.forked_child = 1;
    pool.nthreads = 1;
    pool.started = 1;
    in_parallel_region = 0;
    apply_gemm_mode();
}

int pk_num_threads(void) {
    if (!pool.started) pk_threads_init(0);
    return pool.nthreads;
}

void pk_gemm_set_mode(PkGemmMode mode) {
    gemm_mode = mode == PK_GEMM_BLAS ? PK_GEMM_BLAS : PK_GEMM_POOL;
    if (!pool.started) pk_threads_init(0);
    apply_gemm_mode();
}

PkGemmMode pk_gemm_mode(void) { return gemm_mode; }

void pk_parallel_for_grain(long n, long grain, pk_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (!pool.started) pk_threads_init(0);
    long chunks = (n + grain - 1) / grain;
    if (in_parallel_region || pool.nthreads == 1 || chunks < 2) {
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&job_mu);
    in_parallel_region = 1;
    int parts = pool.nthreads < chunks ? pool.nthreads : (int)chunks;
    pthread_mutex_lock(&pool.mu);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.grain = grain;
    pool.parts = parts;
    pool.pending = (unsigned long)(pool.nthreads - 1);
    /* release: a spinning worker that sees the new generation sees the job too */
    __atomic_store_n(&pool.generation, pool.generation + 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool.work_cv);
    pthread_mutex_unlock(&pool.mu);
    long b, e;
    job_range(0, &b, &e);
    if (b < e) fn(ctx, b, e);
    spin_wait(&pool.pending, 0, 0);
    pthread_mutex_lock(&pool.mu);
    while (__atomic_load_n(&pool.pending, __ATOMIC_ACQUIRE) > 0) pthread_cond_wait(&pool.done_cv, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
    in_parallel_region = 0;
    pthread_mutex_unlock(&job_mu);
}

void pk_parallel_for(long n, pk_range_fn fn, void *ctx) { pk_parallel_for_grain(n, 1, fn, ctx); }
