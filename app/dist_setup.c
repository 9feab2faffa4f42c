#include "dist_setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "dist.h"
#include "engine.h"

int dist_launched_by_mpirun(int *job_size) {
    const char *size = getenv("OMPI_COMM_WORLD_SIZE");
    if (!size) size = getenv("PMIX_SIZE");
    *job_size = size ? atoi(size) : 0;
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL;
}

static void on_collective_failure(const char *sentence) {
    fprintf(stderr, "promptkd: %s; ending the job\n", sentence);
    fflush(stderr);
    pk_dist_abort(1);
}

/* Commands that take part in a data-parallel job (rank 0 runs them, the other ranks follow its
 * engine); the others run in one process. */
static int runs_data_parallel(const char *command) {
    return !strcmp(command, "train") || !strcmp(command, "repl") || !strcmp(command, "tui");
}

int dist_begin(const char *command) {
    int job_size = 0;
    if (!dist_launched_by_mpirun(&job_size)) return 0;
    if (!runs_data_parallel(command)) {
        if (job_size > 1) {
            fprintf(stderr,
                    "promptkd %s: runs in one process; under mpirun only `promptkd train`, `repl` and `tui` run "
                    "data-parallel "
                    "(start this command without mpirun, or with -np 1)\n",
                    command);
            return 2;
        }
        return 0;
    }
    double timeout = 1800;
    const char *t = getenv("PROMPTKD_MPI_TIMEOUT");
    if (t && *t) {
        char *end;
        double v = strtod(t, &end);
        if (*end || !(v >= 0)) {
            fprintf(stderr, "promptkd: PROMPTKD_MPI_TIMEOUT: expected seconds >= 0 (0: no limit), got '%s'\n", t);
            return 2;
        }
        timeout = v;
    }
    char err[PK_ERR_LEN];
    pk_dist_set_fail_handler(on_collective_failure);
    if (pk_dist_init(1, job_size, timeout, err) != PK_OK) {
        fprintf(stderr, "promptkd %s: %s\n", command, err);
        return 1;
    }
    return 0;
}

int dist_end(int status) {
    if (!pk_dist_is_mpi()) return status;
    if (status == 0) pk_dist_gate_close();
    fflush(stdout);
    fflush(stderr);
    pk_dist_finalize(status);
    return status;
}

void dist_default_threads(RunConfig *cfg) {
    int local = pk_dist_local_size();
    if (local <= 1 || cfg->threads > 0) return;
    const char *env = getenv("PROMPTKD_THREADS");
    if (env && atoi(env) > 0) return;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cores > 0 ? (int)(cores / local) : 1;
    cfg->threads = n > 0 ? n : 1;
}

void dist_check_resume_ranks(const char *run_dir, const char *prefix) {
    if (pk_dist_rank() != 0) return;
    char path[CONFIG_PATH_LEN + 32], err[PK_ERR_LEN];
    if (pk_path_join(path, sizeof path, run_dir, "metrics.jsonl", err) != PK_OK) return;
    char *text = NULL;
    size_t len = 0;
    if (pk_read_file(path, &text, &len, err) != PK_OK) return;
    /* the last step line: "ranks" when it was made on several, none for one process */
    int ranks = 0;
    for (char *line = text; line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next = 0;
        if (!strncmp(line, "{\"step\":", 8)) {
            const char *r = strstr(line, "\"ranks\":");
            ranks = r ? atoi(r + 8) : 1;
        }
        line = next ? next + 1 : NULL;
    }
    free(text);
    if (ranks > 0 && ranks != pk_dist_size())
        fprintf(stderr,
                "%s: this run was trained on %d rank%s and now continues on %d: the batches and the samples are "
                "the same, but the sums over the ranks are made in another order, so from here its numbers differ "
                "in the last digits from the run continued on %d (not bitwise)\n",
                prefix, ranks, ranks == 1 ? "" : "s", pk_dist_size(), ranks);
}

static int exit_rank = -1, exit_step = -1;

static void test_exit_hook(void *ctx, struct DistillState *ds, int step, int total_steps, int n_losses,
                           const char *const *loss_names, const double *losses) {
    (void)ctx, (void)ds, (void)total_steps, (void)n_losses, (void)loss_names, (void)losses;
    if (pk_dist_rank() == exit_rank && step == exit_step) {
        fprintf(stderr, "promptkd: rank %d leaves at step %d (PROMPTKD_TEST_RANK_EXIT)\n", exit_rank, step);
        fflush(stderr);
        _exit(3);
    }
}

void dist_install_test_exit(Engine *e) {
    const char *v = getenv("PROMPTKD_TEST_RANK_EXIT");
    if (!v || sscanf(v, "%d:%d", &exit_rank, &exit_step) != 2) return;
    engine_set_step_hook(e, test_exit_hook, NULL);
}
