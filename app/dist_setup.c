#include "dist_setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

static int job_failure_said;

int dist_say_job_failure(FILE *out) {
    char sentence[PK_ERR_LEN];
    if (!pk_dist_job_failure(sentence)) return 0;
    if (!job_failure_said && out) {
        fprintf(out, "promptkd: %s; ending the job\n", sentence);
        fflush(out);
    }
    job_failure_said = 1;
    return 1;
}

int dist_end(int status) {
    if (!pk_dist_is_mpi()) return status;
    if (status == 0) pk_dist_gate_close(); /* may meet another rank's failure */
    /* another rank failed: said here unless the command did, and the job ends with an error */
    if (dist_say_job_failure(stderr) && status == 0) status = 1;
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

/* the test hooks' settings: -1 when not asked for */
static int exit_rank = -1, exit_step = -1, fail_rank = -1, fail_step = -1, stall_step = -1;
static double stall_seconds;

static void test_hook(void *ctx, struct DistillState *ds, int step, int total_steps, int n_losses,
                      const char *const *loss_names, const double *losses) {
    (void)ctx, (void)ds, (void)total_steps, (void)n_losses, (void)loss_names, (void)losses;
    int rank = pk_dist_rank();
    if (rank == exit_rank && step == exit_step) {
        fprintf(stderr, "promptkd: rank %d leaves at step %d (PROMPTKD_TEST_RANK_EXIT)\n", exit_rank, step);
        fflush(stderr);
        _exit(3);
    }
    if (rank == fail_rank && step == fail_step) {
        char sentence[PK_ERR_LEN];
        snprintf(sentence, sizeof sentence, "rank %d: test failure at step %d (PROMPTKD_TEST_RANK_FAIL)", rank, step);
        pk_dist_report_failure(sentence);
    }
    if (step == stall_step) {
        if (rank == 0) {
            struct timespec ts = {(time_t)stall_seconds, (long)((stall_seconds - (time_t)stall_seconds) * 1e9)};
            nanosleep(&ts, NULL);
        }
        char err[PK_ERR_LEN];
        pk_dist_barrier(err); /* a failure here takes the failure path like any collective's */
    }
}

/* One test hook's "A:B" value: 1 when set and well formed; a malformed one is said (by rank 0). */
static int test_hook_value(const char *name, const char *format, int *a, double *b) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    int n = 0, ok;
    if (b) ok = sscanf(v, "%d:%lf%n", a, b, &n) == 2 && *b >= 0;
    else ok = sscanf(v, "%d:%d%n", a, a + 1, &n) == 2;
    if (ok && v[n] == 0) return 1;
    if (pk_dist_rank() == 0) fprintf(stderr, "promptkd: %s: expected %s, got '%s' (ignored)\n", name, format, v);
    return 0;
}

void dist_install_test_hooks(Engine *e) {
    int pair[2];
    double seconds;
    int any = 0;
    if (test_hook_value("PROMPTKD_TEST_RANK_EXIT", "RANK:STEP", pair, NULL))
        exit_rank = pair[0], exit_step = pair[1], any = 1;
    if (test_hook_value("PROMPTKD_TEST_RANK_FAIL", "RANK:STEP", pair, NULL))
        fail_rank = pair[0], fail_step = pair[1], any = 1;
    if (test_hook_value("PROMPTKD_TEST_RANK_STALL", "STEP:SECONDS", pair, &seconds))
        stall_step = pair[0], stall_seconds = seconds, any = 1;
    if (any) engine_set_step_hook(e, test_hook, NULL);
}
