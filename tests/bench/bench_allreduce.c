/* The sum over ranks that every data-parallel step makes (core/dist.h): the median time of
 * pk_dist_allreduce_f32 over `floats` values, as a JSON line from rank 0, with the algorithm
 * bandwidth (bytes / time) and the bus bandwidth of a ring (2 (N-1) / N bytes / time), the
 * figure that carries over to other rank counts. Run under mpirun:
 *   mpirun -np 2 build/bench/bench_allreduce --floats 31000000 --reps 5 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    long floats = 31000000; /* 124 MB: a quarter of GPT-2 base's gradient */
    int reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--floats")) floats = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_allreduce: unknown option %s (--floats N, --reps R)\n", argv[i]);
            return 2;
        }
    }
    if (floats < 1 || reps < 1 || reps > 1000) {
        fprintf(stderr, "bench_allreduce: expected --floats >= 1 and --reps in 1..1000\n");
        return 2;
    }
    char err[PK_ERR_LEN];
    int under_mpirun = getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL;
    if (pk_dist_init(under_mpirun, 0, 600, err) != PK_OK) {
        fprintf(stderr, "bench_allreduce: %s\n", err);
        return 1;
    }
    float *x = pk_malloc((size_t)floats * sizeof(float), err);
    double *t = pk_malloc((size_t)(reps + 1) * sizeof(double), err);
    if (!x || !t) {
        fprintf(stderr, "bench_allreduce: %s\n", err);
        pk_dist_finalize(1);
        return 1;
    }
    for (long i = 0; i < floats; i++) x[i] = (float)((i + pk_dist_rank()) % 13) * 1e-3f;
    for (int r = 0; r <= reps; r++) { /* the first one warms the buffers up and is left out */
        if (pk_dist_barrier(err) != PK_OK) break;
        double t0 = pk_now();
        if (pk_dist_allreduce_f32(x, (size_t)floats, err) != PK_OK) break;
        t[r] = pk_now() - t0;
    }
    qsort(t + 1, (size_t)reps, sizeof *t, cmp);
    double med = t[1 + reps / 2], bytes = (double)floats * sizeof(float);
    int n = pk_dist_size();
    if (pk_dist_rank() == 0)
        printf("{\"ranks\":%d,\"floats\":%ld,\"bytes\":%.0f,\"seconds\":%.6f,\"algbw_GBps\":%.3f,\"busbw_GBps\":%.3f}\n",
               n, floats, bytes, med, bytes / med / 1e9, n > 1 ? 2.0 * (n - 1) / n * bytes / med / 1e9 : 0.0);
    free(x);
    free(t);
    pk_dist_finalize(0);
    return 0;
}
