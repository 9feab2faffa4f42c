/* The thread pool: every index covered once, whether the workers are spinning
 * (jobs back to back) or asleep (jobs far apart), across restarts with another
 * thread count, nested calls and callers on two threads. */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "parallel.h"
#include "test.h"

typedef struct {
    int *hits;
    long calls; /* ranges handed out (atomic) */
} Cover;

static void cover_range(void *ctx, long b, long e) {
    Cover *c = ctx;
    for (long i = b; i < e; i++) __atomic_fetch_add(&c->hits[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&c->calls, 1, __ATOMIC_RELAXED);
}

/* Runs one job over [0, n) and returns 1 when every index was visited exactly once. */
static int covered_once(long n, long grain, int *hits) {
    memset(hits, 0, (size_t)n * sizeof(int));
    Cover c = {hits, 0};
    pk_parallel_for_grain(n, grain, cover_range, &c);
    for (long i = 0; i < n; i++)
        if (hits[i] != 1) return 0;
    return 1;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void test_cover_sizes_and_thread_counts(void) {
    static int hits[5000];
    const long sizes[] = {1, 2, 3, 7, 64, 1000, 4999};
    const long grains[] = {1, 3, 64, 1000};
    for (int nt = 1; nt <= 4; nt++) {
        pk_threads_init(nt);
        CHECK(pk_num_threads() == nt);
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
            for (size_t g = 0; g < sizeof grains / sizeof *grains; g++)
                CHECK_MSG(covered_once(sizes[s], grains[g], hits), "threads %d n %ld grain %ld", nt, sizes[s],
                          grains[g]);
    }
    pk_threads_init(2);
}

/* Thousands of jobs with no gap: the workers pick them up while spinning. */
static void test_back_to_back_jobs(void) {
    static int hits[257];
    pk_threads_init(3);
    int bad = 0;
    for (int j = 0; j < 5000; j++) bad += !covered_once(257, 1, hits);
    CHECK(bad == 0);
    pk_threads_init(2);
}

/* Gaps from well inside to well past the spin window: some jobs find the workers
 * spinning, later ones asleep on the condition variable. */
static void test_jobs_after_idle_gaps(void) {
    static int hits[100];
    const long gaps_us[] = {0, 50, 150, 250, 1000, 5000};
    int bad = 0;
    for (int r = 0; r < 3; r++)
        for (size_t g = 0; g < sizeof gaps_us / sizeof *gaps_us; g++) {
            sleep_us(gaps_us[g]);
            bad += !covered_once(100, 1, hits);
        }
    CHECK(bad == 0);
}

typedef struct {
    int *hits;
    long inner_n;
} Nest;

static void nested_range(void *ctx, long b, long e) {
    Nest *n = ctx;
    for (long i = b; i < e; i++) {
        Cover c = {n->hits + i * n->inner_n, 0};
        pk_parallel_for(n->inner_n, cover_range, &c);
        /* a nested call runs serially on this thread: one range */
        if (c.calls != 1) __atomic_fetch_add(&n->hits[0], 1000, __ATOMIC_RELAXED);
    }
}

static void test_nested_call_runs_serially(void) {
    static int hits[8 * 16];
    memset(hits, 0, sizeof hits);
    Nest n = {hits, 16};
    pk_parallel_for(8, nested_range, &n);
    int bad = 0;
    for (int i = 0; i < 8 * 16; i++) bad += hits[i] != 1;
    CHECK(bad == 0);
}

static void *second_caller(void *arg) {
    static int hits[333];
    int *bad = arg;
    for (int j = 0; j < 500; j++) *bad += !covered_once(333, 1, hits);
    return NULL;
}

/* Two threads issuing jobs at once: they take turns, each job still whole. */
static void test_two_callers(void) {
    static int hits[444];
    int bad_other = 0, bad = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, second_caller, &bad_other) == 0);
    for (int j = 0; j < 500; j++) bad += !covered_once(444, 1, hits);
    pthread_join(t, NULL);
    CHECK(bad == 0);
    CHECK(bad_other == 0);
}

/* Restarting the pool right after a job, while its workers still spin. */
static void test_restart_while_spinning(void) {
    static int hits[50];
    int bad = 0;
    for (int r = 0; r < 200; r++) {
        pk_threads_init(2 + r % 3);
        bad += !covered_once(50, 1, hits);
    }
    CHECK(bad == 0);
    pk_threads_init(2);
}

/* The program's settings (app/main.c passes PROMPTKD_THREADS and PROMPTKD_GEMM): the count
 * pk_threads_init(0) takes, and the GEMM mode; an explicit count wins. */
static void test_defaults_from_the_program(void) {
    pk_threads_defaults(3, PK_GEMM_BLAS);
    pk_threads_init(0);
    CHECK(pk_num_threads() == 3 && pk_gemm_mode() == PK_GEMM_BLAS);
    pk_threads_init(2);
    CHECK(pk_num_threads() == 2 && pk_gemm_mode() == PK_GEMM_BLAS);
    static int hits[3000];
    CHECK(covered_once(3000, 7, hits));
    pk_gemm_set_mode(PK_GEMM_POOL);
    CHECK(pk_gemm_mode() == PK_GEMM_POOL);
    pk_threads_defaults(0, PK_GEMM_POOL); /* 0: every online core */
    pk_threads_init(0);
    CHECK(pk_num_threads() >= 1 && pk_gemm_mode() == PK_GEMM_POOL);
    pk_threads_init(2);
}

int main(void) {
    pk_threads_init(2);
    RUN(test_cover_sizes_and_thread_counts);
    RUN(test_back_to_back_jobs);
    RUN(test_jobs_after_idle_gaps);
    RUN(test_nested_call_runs_serially);
    RUN(test_two_callers);
    RUN(test_restart_while_spinning);
    RUN(test_defaults_from_the_program);
    TEST_EXIT();
}
