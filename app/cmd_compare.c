/* promptkd compare: every method trained from the same student for the same steps,
 * for several training seeds, then scored the same way.
 *
 *   promptkd compare --config FILE --methods sft,kd,seqkd,rkl,gkd,distillm,promptkd --seeds N
 *                    [--set key=value ...] [--out DIR] [--eval-seeds N] [--quiet]
 *
 * Training seed i (0-based) is the config's seed + i; every method of seed i uses it.
 * Each run is a normal run folder under OUT/runs/METHOD-sSEED (headless engine, the
 * config's steps). `sft` is continued supervised fine-tuning of the same student on the
 * ground-truth responses for the same number of steps (same-compute baseline); the row
 * "student (init)" is the student as given, before any training.
 *
 * Scoring, identical for every row: the final student is loaded next to the original
 * teacher T; ROUGE-L (x 100) on the test split (the valid split when the config names no
 * test data), eval_samples records (0 = all), evaluation decoding (DESIGN.md section 4)
 * with decoding seeds 10, 20, ... (--eval-seeds, default 1), up to eval_max_new_tokens;
 * ExAccErr(l) at l = exposure_len against T, exposure_prompts prompts x exposure_samples
 * samples. A method's figure is the mean (and sample std) over training seeds of each
 * run's figure; the teacher's std is over decoding seeds.
 *
 * Writes OUT/compare.md and OUT/compare.json atomically and prints the Markdown table.
 * Default OUT: run_dir/compare-NAME. Exit 0; 1 when a run fails (a non-finite loss
 * included: it is reported and nothing is written); 2 for bad arguments; 130 on Ctrl-C
 * (the current run saves a checkpoint). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "distill.h"
#include "engine.h"
#include "parallel.h"
#include "run_setup.h"

/* from cmd_train.c */
void train_install_signals(void);
int train_interrupted(void);
void train_progress_line(const EngineSnapshot *s, char *out, size_t len);

#define MAX_METHODS 7
#define MAX_SEEDS 64
#define MAX_EVAL_SEEDS 5

typedef struct {
    double rouge, exacc, seconds;
    unsigned long long seed;
    char run_dir[CONFIG_PATH_LEN];
} RunResult;

typedef struct {
    char method[16];
    RunResult runs[MAX_SEEDS];
    int n;
} MethodResult;

static void mean_std(const double *x, int n, double *mean, double *std) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = n ? s / n : NAN;
    for (int i = 0; i < n; i++) q += (x[i] - *mean) * (x[i] - *mean);
    *std = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* Scores one student folder next to the teacher: ROUGE-L averaged over the decoding
 * seeds (per-seed values in rouge_per_seed when not NULL) and ExAccErr at exposure_len.
 * With teacher_rouge != NULL also scores the teacher per decoding seed. */
static int score_student(const RunConfig *base, const char *student_dir, const char *split, int n_eval_seeds,
                         double *rouge, double *rouge_per_seed, double *exacc, double *teacher_rouge, int *records,
                         char *err) {
    RunConfig c = *base;
    snprintf(c.method, sizeof c.method, "rkl"); /* loads the teacher, no prompt */
    snprintf(c.student, sizeof c.student, "%s", student_dir);
    DistillState *ds = NULL;
    pk_threads_init(c.threads);
    if (distill_create(&ds, &c, err) != PK_OK) return PK_FAIL;
    int rc = PK_OK;
    double sum = 0;
    for (int j = 0; j < n_eval_seeds && rc == PK_OK; j++) {
        double r = 0;
        int scored = 0;
        rc = distill_eval_rouge(ds, DISTILL_STUDENT, split, c.eval_samples, c.eval_max_new_tokens,
                                10ULL * (unsigned long long)(j + 1), &r, NULL, &scored, err);
        sum += r;
        if (rouge_per_seed) rouge_per_seed[j] = r;
        if (records) *records = scored;
        if (rc == PK_OK && teacher_rouge)
            rc = distill_eval_rouge(ds, DISTILL_TEACHER, split, c.eval_samples, c.eval_max_new_tokens,
                                    10ULL * (unsigned long long)(j + 1), &teacher_rouge[j], NULL, &scored, err);
    }
    *rouge = sum / n_eval_seeds;
    if (rc == PK_OK) {
        double *curve = malloc((size_t)c.exposure_len * sizeof *curve);
        if (!curve) {
            rc = pk_errf(err, "out of memory");
        } else {
            rc = distill_exposure(ds, DISTILL_TEACHER, split, c.exposure_prompts, c.exposure_samples, c.exposure_len,
                                  c.seed, curve, err);
            if (rc == PK_OK) *exacc = curve[c.exposure_len - 1];
            free(curve);
        }
    }
    distill_free(ds);
    return rc;
}

/* Trains one run to its end; fills the run folder and the final checkpoint folder. */
static int train_one(const RunConfig *cfg, int quiet, char *run_dir, size_t run_len, char *ckpt, size_t ckpt_len,
                     double *seconds, int *interrupted, char *err) {
    Engine *e = NULL;
    *interrupted = 0;
    double t0 = pk_now();
    if (engine_create(&e, cfg, NULL, 1, err) != PK_OK) return PK_FAIL;
    snprintf(run_dir, run_len, "%s", engine_run_path(e));
    int tty = isatty(STDERR_FILENO);
    double last = 0;
    EngineState st;
    for (;;) {
        st = engine_wait_idle(e, 0.25);
        if (train_interrupted()) break;
        if (st != ENGINE_RUNNING && st != ENGINE_LOADING) break;
        if (!quiet && pk_now() - last >= (tty ? 0.2 : 5.0)) {
            const EngineSnapshot *s = engine_snapshot_acquire(e);
            if (s && s->step > 0) {
                char line[1024];
                train_progress_line(s, line, sizeof line);
                fprintf(stderr, tty ? "\r\033[K  %s %s" : "  %s %s\n", cfg->method, line);
                last = pk_now();
            }
            engine_snapshot_release(e, s);
        }
    }
    if (!quiet && tty) fprintf(stderr, "\r\033[K");
    int rc = PK_OK;
    if (train_interrupted()) {
        char reply[512];
        *interrupted = 1;
        if (engine_pause(e, err) == PK_OK && engine_save(e, NULL, reply, sizeof reply, err) == PK_OK)
            fprintf(stderr, "promptkd compare: interrupted; %s\n", reply);
        rc = pk_errf(err, "interrupted");
    } else {
        const EngineSnapshot *s = engine_snapshot_acquire(e);
        if (st != ENGINE_FINISHED)
            rc = pk_errf(err, "%s run (seed %llu) did not finish: %s", cfg->method, cfg->seed,
                         s ? s->message : "unknown state");
        else if (pk_path_join(ckpt, ckpt_len, run_dir, "checkpoints", err) == PK_OK) {
            char name[64];
            snprintf(name, sizeof name, "/step-%d", s ? s->step : cfg->steps);
            if (strlen(ckpt) + strlen(name) >= ckpt_len)
                rc = pk_errf(err, "%s: path too long", ckpt);
            else
                strcat(ckpt, name);
        } else {
            rc = PK_FAIL;
        }
        engine_snapshot_release(e, s);
    }
    engine_stop(e, NULL);
    engine_destroy(e);
    *seconds = pk_now() - t0;
    return rc;
}

static void fmt_ms(char *out, size_t len, double mean, double std, int n) {
    if (!isfinite(mean))
        snprintf(out, len, "n/a");
    else if (n > 1)
        snprintf(out, len, "%.2f ± %.2f", mean, std);
    else
        snprintf(out, len, "%.2f", mean);
}

int cmd_compare(int argc, char **argv) {
    const char *config_path = NULL, *methods_arg = NULL, *out_arg = NULL, *set_placeholder = NULL;
    int seeds = 1, eval_seeds = 1, quiet = 0;
    Opt opts[] = {
        {"config", OPT_STR, &config_path, "JSON run config shared by every run", 1},
        {"methods", OPT_STR, &methods_arg, "comma-separated: sft,kd,seqkd,rkl,gkd,distillm,promptkd", 1},
        {"seeds", OPT_INT, &seeds, "training seeds per method: config seed, seed+1, ... (default 1)", 0},
        {"set", OPT_STR, &set_placeholder, "key=value over the config; repeatable", 0},
        {"out", OPT_STR, &out_arg, "output folder (default run_dir/compare-NAME)", 0},
        {"eval-seeds", OPT_INT, &eval_seeds, "decoding seeds 10, 20, ... per evaluation (default 1, at most 5)", 0},
        {"quiet", OPT_FLAG, &quiet, "no progress on stderr", 0},
    };
    const char *usage = "promptkd compare --config FILE --methods LIST --seeds N [--set key=value ...] [--out DIR]";
    RunSetSpecs sets = {0};
    if (run_collect_sets("compare", &argc, argv, &sets)) return 2;
    int prc = cli_parse(usage, argc, argv, opts, (int)(sizeof opts / sizeof *opts), NULL, 0, NULL);
    if (prc == 1) {
        printf("\nEach method trains from the config's student for the config's steps, for each training seed\n"
               "(the config's seed + 0, 1, ...). `sft` continues supervised fine-tuning of that student for\n"
               "the same steps; \"student (init)\" is the student before training. Every final student is\n"
               "scored next to the teacher: test ROUGE-L (valid when there is no test_data) and ExAccErr at\n"
               "l = exposure_len. Writes OUT/compare.md and OUT/compare.json and prints the table.\n");
        return 0;
    }
    if (prc) return 2;
    if (seeds < 1 || seeds > MAX_SEEDS) {
        fprintf(stderr, "promptkd compare: --seeds expects 1 to %d, got %d\n", MAX_SEEDS, seeds);
        return 2;
    }
    if (eval_seeds < 1 || eval_seeds > MAX_EVAL_SEEDS) {
        fprintf(stderr, "promptkd compare: --eval-seeds expects 1 to %d, got %d\n", MAX_EVAL_SEEDS, eval_seeds);
        return 2;
    }

    char err[PK_ERR_LEN];
    RunConfig cfg;
    if (run_config_resolve(&cfg, config_path, &sets, err) != PK_OK) {
        fprintf(stderr, "promptkd compare: %s\n", err);
        return 2;
    }

    /* methods: known, no repeats; each one's config must validate (the teacher is needed
     * by every row for scoring, so it is checked with a teacher-using method) */
    char methods[MAX_METHODS][16];
    int n_methods = 0;
    {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", methods_arg);
        for (char *save = NULL, *m = strtok_r(buf, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
            RunConfig probe = cfg;
            if (config_set(&probe, "method", m, err) != PK_OK) {
                fprintf(stderr, "promptkd compare: --methods: '%s' is not a method (expected sft, kd, seqkd, rkl, gkd, "
                                "distillm or promptkd)\n", m);
                return 2;
            }
            for (int i = 0; i < n_methods; i++)
                if (!strcmp(methods[i], m)) {
                    fprintf(stderr, "promptkd compare: --methods: '%s' appears twice\n", m);
                    return 2;
                }
            snprintf(methods[n_methods++], sizeof methods[0], "%s", m);
        }
        if (n_methods == 0) {
            fprintf(stderr, "promptkd compare: --methods expects a comma-separated list of methods\n");
            return 2;
        }
    }
    {
        RunConfig probe = cfg;
        snprintf(probe.method, sizeof probe.method, "rkl");
        if (config_validate(&probe, err) != PK_OK) {
            fprintf(stderr, "promptkd compare: %s: %s\n", config_path, err);
            return 2;
        }
    }
    const char *split = cfg.test_data[0] ? "test" : "valid";

    char out_dir[CONFIG_PATH_LEN + 80];
    if (out_arg) {
        RunConfig probe = cfg; /* resolves a relative path like every config path */
        if (config_set(&probe, "run_dir", out_arg, err) != PK_OK) {
            fprintf(stderr, "promptkd compare: --out: %s\n", err);
            return 2;
        }
        snprintf(out_dir, sizeof out_dir, "%s", probe.run_dir);
    } else {
        snprintf(out_dir, sizeof out_dir, "%s/compare-%s", cfg.run_dir, cfg.name);
    }
    char runs_dir[CONFIG_PATH_LEN + 96];
    snprintf(runs_dir, sizeof runs_dir, "%s/runs", out_dir);
    if (strlen(runs_dir) >= CONFIG_PATH_LEN) {
        fprintf(stderr, "promptkd compare: %s: path too long\n", runs_dir);
        return 2;
    }
    if (pk_mkdirs(runs_dir, err) != PK_OK) {
        fprintf(stderr, "promptkd compare: %s\n", err);
        return 1;
    }

    train_install_signals();
    static MethodResult results[MAX_METHODS];
    memset(results, 0, sizeof results);
    for (int s = 0; s < seeds; s++) {
        for (int m = 0; m < n_methods; m++) {
            RunConfig rc = cfg;
            snprintf(rc.method, sizeof rc.method, "%s", methods[m]);
            rc.seed = cfg.seed + (unsigned long long)s;
            snprintf(rc.name, sizeof rc.name, "%s-s%llu", methods[m], rc.seed);
            memcpy(rc.run_dir, runs_dir, strlen(runs_dir) + 1); /* fits: checked above */
            if (!quiet)
                fprintf(stderr, "promptkd compare: training %s, seed %llu (%d of %d)\n", methods[m], rc.seed,
                        s * n_methods + m + 1, seeds * n_methods);
            RunResult *r = &results[m].runs[results[m].n];
            snprintf(results[m].method, sizeof results[m].method, "%s", methods[m]);
            char ckpt[CONFIG_PATH_LEN + 96];
            int interrupted = 0;
            if (train_one(&rc, quiet, r->run_dir, sizeof r->run_dir, ckpt, sizeof ckpt, &r->seconds, &interrupted,
                          err) != PK_OK) {
                fprintf(stderr, "promptkd compare: %s\n", err);
                return interrupted ? 130 : 1;
            }
            if (strlen(ckpt) >= CONFIG_PATH_LEN) {
                fprintf(stderr, "promptkd compare: %s: path too long\n", ckpt);
                return 1;
            }
            if (score_student(&rc, ckpt, split, eval_seeds, &r->rouge, NULL, &r->exacc, NULL, NULL, err) != PK_OK) {
                fprintf(stderr, "promptkd compare: scoring %s: %s\n", ckpt, err);
                return 1;
            }
            r->seed = rc.seed;
            results[m].n++;
            if (!quiet)
                fprintf(stderr, "promptkd compare: %s seed %llu: ROUGE-L %.2f, ExAccErr(%d) %.2f%%\n", methods[m],
                        rc.seed, r->rouge, cfg.exposure_len, r->exacc);
            if (train_interrupted()) return 130;
        }
    }

    /* the teacher and the untrained student, scored the same way */
    double init_rouge = 0, init_exacc = 0, teacher_rouge[MAX_EVAL_SEEDS];
    int records = 0;
    if (!quiet) fprintf(stderr, "promptkd compare: scoring the teacher and the initial student\n");
    if (score_student(&cfg, cfg.student, split, eval_seeds, &init_rouge, NULL, &init_exacc, teacher_rouge, &records,
                      err) != PK_OK) {
        fprintf(stderr, "promptkd compare: scoring the initial student: %s\n", err);
        return 1;
    }
    double t_mean, t_std;
    mean_std(teacher_rouge, eval_seeds, &t_mean, &t_std);

    /* the tables */
    PkBuf md = {0};
    pk_buf_printf(&md, "# promptkd compare\n\n");
    pk_buf_printf(&md, "Config `%s`; %d steps per run, batch %d; training seeds", config_path, cfg.steps,
                  cfg.batch_size);
    for (int s = 0; s < seeds; s++) pk_buf_printf(&md, "%s%llu", s ? ", " : " ", cfg.seed + (unsigned long long)s);
    pk_buf_printf(&md,
                  ".\nROUGE-L on the %s split (%d records), decoding seeds", split, records);
    for (int j = 0; j < eval_seeds; j++) pk_buf_printf(&md, "%s%d", j ? ", " : " ", 10 * (j + 1));
    pk_buf_printf(&md,
                  "; ExAccErr at l = %d against the teacher (%d prompts x %d samples).\n"
                  "Methods: mean ± std over training seeds. `sft` continues supervised fine-tuning of the same "
                  "student for the same steps; `student (init)` is that student before training.\n\n",
                  cfg.exposure_len, cfg.exposure_prompts, cfg.exposure_samples);
    pk_buf_printf(&md, "| method | ROUGE-L | ExAccErr@%d (%%) | runs | train time (s) |\n", cfg.exposure_len);
    pk_buf_printf(&md, "|---|---|---|---|---|\n");
    char a[64], b[64];
    fmt_ms(a, sizeof a, t_mean, t_std, eval_seeds);
    pk_buf_printf(&md, "| teacher | %s | - (oracle) | - | - |\n", a);
    pk_buf_printf(&md, "| student (init) | %.2f | %.2f | - | - |\n", init_rouge, init_exacc);

    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "config", config_path);
    cJSON_AddNumberToObject(root, "steps", cfg.steps);
    cJSON_AddNumberToObject(root, "batch_size", cfg.batch_size);
    cJSON_AddStringToObject(root, "split", split);
    cJSON_AddNumberToObject(root, "records", records);
    cJSON_AddNumberToObject(root, "exposure_len", cfg.exposure_len);
    cJSON_AddStringToObject(root, "sft_means", "continued supervised fine-tuning for the same steps");
    cJSON *jseeds = cJSON_AddArrayToObject(root, "train_seeds");
    for (int s = 0; s < seeds; s++) cJSON_AddItemToArray(jseeds, cJSON_CreateNumber((double)(cfg.seed + (unsigned long long)s)));
    cJSON *jev = cJSON_AddArrayToObject(root, "eval_seeds");
    for (int j = 0; j < eval_seeds; j++) cJSON_AddItemToArray(jev, cJSON_CreateNumber(10 * (j + 1)));
    cJSON *jt = cJSON_AddObjectToObject(root, "teacher");
    cJSON_AddNumberToObject(jt, "rougeL_mean", t_mean);
    cJSON_AddNumberToObject(jt, "rougeL_std", t_std);
    cJSON_AddItemToObject(jt, "rougeL", cJSON_CreateDoubleArray(teacher_rouge, eval_seeds));
    cJSON *ji = cJSON_AddObjectToObject(root, "student_init");
    cJSON_AddNumberToObject(ji, "rougeL", init_rouge);
    cJSON_AddNumberToObject(ji, "exaccerr", init_exacc);
    cJSON *jrows = cJSON_AddArrayToObject(root, "methods");

    for (int m = 0; m < n_methods; m++) {
        const MethodResult *mr = &results[m];
        double rv[MAX_SEEDS], ev[MAX_SEEDS], tv[MAX_SEEDS];
        for (int i = 0; i < mr->n; i++) rv[i] = mr->runs[i].rouge, ev[i] = mr->runs[i].exacc, tv[i] = mr->runs[i].seconds;
        double rm, rs, em, es, tm, ts;
        mean_std(rv, mr->n, &rm, &rs);
        mean_std(ev, mr->n, &em, &es);
        mean_std(tv, mr->n, &tm, &ts);
        fmt_ms(a, sizeof a, rm, rs, mr->n);
        fmt_ms(b, sizeof b, em, es, mr->n);
        pk_buf_printf(&md, "| %s | %s | %s | %d | %.1f |\n", mr->method, a, b, mr->n, tm);
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "method", mr->method);
        cJSON_AddNumberToObject(row, "rougeL_mean", rm);
        cJSON_AddNumberToObject(row, "rougeL_std", rs);
        cJSON_AddNumberToObject(row, "exaccerr_mean", em);
        cJSON_AddNumberToObject(row, "exaccerr_std", es);
        cJSON *runs = cJSON_AddArrayToObject(row, "runs");
        for (int i = 0; i < mr->n; i++) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddNumberToObject(r, "seed", (double)mr->runs[i].seed);
            cJSON_AddStringToObject(r, "run_dir", mr->runs[i].run_dir);
            cJSON_AddNumberToObject(r, "rougeL", mr->runs[i].rouge);
            cJSON_AddNumberToObject(r, "exaccerr", mr->runs[i].exacc);
            cJSON_AddNumberToObject(r, "train_seconds", mr->runs[i].seconds);
            cJSON_AddItemToArray(runs, r);
        }
        cJSON_AddItemToArray(jrows, row);
    }
    char md_path[CONFIG_PATH_LEN + 120], json_path[CONFIG_PATH_LEN + 120];
    snprintf(md_path, sizeof md_path, "%s/compare.md", out_dir);
    snprintf(json_path, sizeof json_path, "%s/compare.json", out_dir);
    int status = 0;
    if (pk_write_json_atomic(json_path, root, err) != PK_OK ||
        pk_write_file_atomic(md_path, md.data, md.len, err) != PK_OK) {
        fprintf(stderr, "promptkd compare: %s\n", err);
        status = 1;
    } else {
        fwrite(md.data, 1, md.len, stdout);
        if (!quiet) fprintf(stderr, "promptkd compare: wrote %s and %s\n", md_path, json_path);
    }
    cJSON_Delete(root);
    pk_buf_free(&md);
    return status;
}
