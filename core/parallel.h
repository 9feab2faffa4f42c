/* The one threading model of promptkd: a fixed pool of worker threads that the
 * calling thread joins for each parallel_for. OpenBLAS runs single-threaded
 * (openblas_set_num_threads(1)); large GEMMs are split across this same pool, so
 * the machine's cores are never oversubscribed by two thread pools. */
#ifndef PK_PARALLEL_H
#define PK_PARALLEL_H

/* How GEMMs use the cores: PK_GEMM_POOL splits them over the pk pool with OpenBLAS
 * single-threaded (the default); PK_GEMM_BLAS hands each GEMM to OpenBLAS with
 * pk_num_threads() threads while the pool's workers sleep. */
typedef enum { PK_GEMM_POOL = 0, PK_GEMM_BLAS = 1 } PkGemmMode;

/* The process's settings, given once by the program before any work (promptkd reads them
 * from PROMPTKD_THREADS and PROMPTKD_GEMM in app/main.c; core reads no environment): the
 * thread count pk_threads_init(0) takes (<= 0: every online core) and the GEMM mode. */
void pk_threads_defaults(int threads, PkGemmMode gemm);

/* Sets the number of threads (including the caller); n <= 0: pk_threads_defaults' count.
 * Safe to call again; not safe to call while a parallel_for runs. */
void pk_threads_init(int n);
int pk_num_threads(void);

/* The GEMM mode, and a change of it (starts the pool when it has not started). */
void pk_gemm_set_mode(PkGemmMode mode);
PkGemmMode pk_gemm_mode(void);

/* In a child made by fork() (plugin calls): only the calling thread exists there, so
 * every later parallel_for runs inline on it, OpenBLAS is set to one thread, and no
 * lock of the pool is ever taken (another thread may have held one at the fork).
 * pk_threads_init becomes a no-op. Call it first thing in the child. */
void pk_threads_fork_child(void);

/* Calls fn(ctx, begin, end) on disjoint contiguous ranges covering [0, n),
 * one range per thread, and returns when all are done. Nested calls (from
 * inside fn) run serially on the calling thread. */
typedef void (*pk_range_fn)(void *ctx, long begin, long end);
void pk_parallel_for(long n, pk_range_fn fn, void *ctx);

/* Same, but ranges are multiples of `grain` (except the last), and when
 * n < 2*grain the work runs on the caller alone (not worth a wake-up). */
void pk_parallel_for_grain(long n, long grain, pk_range_fn fn, void *ctx);

#endif
