/* promptkd compare: every method trained from the same student for the same steps, for
 * several training seeds, scored the same way, with intervals that say whether two methods
 * differ.
 *
 *   promptkd compare --config FILE [--methods LIST] [--seeds N | --seed-list 10,20,30]
 *                    [--set key=value ...] [--out DIR] [--test-records N] [--eval-seeds N]
 *                    [--exposure-prompts N] [--exposure-samples N] [--bootstrap N]
 *                    [--bootstrap-seed N] [--quiet]
 *   promptkd compare --resume DIR [--quiet]
 *
 * Runs: OUT/runs/METHOD-sSEED, each a normal run folder (headless engine, the config's
 * steps). `sft` is continued supervised fine-tuning of the same student for the same steps;
 * "student (init)" is the student as given. Re-running with the same OUT (or --resume OUT,
 * which replays the options saved in OUT/comparison.json) skips finished runs, continues an
 * interrupted run from its latest checkpoint (the engine's exact resume), and removes and
 * retrains a run folder that holds no checkpoint yet. Scores are cached per run in
 * compare-scores.json and reused while the scoring settings are unchanged.
 *
 * Scoring, identical for every model: the student is loaded next to the original teacher T;
 * ROUGE-L (x 100) of each test record (the valid split when the config names no test data),
 * evaluation decoding (DESIGN.md section 4) with decoding seeds 10, 20, ..., 50, averaged
 * per record over those seeds; ExAccErr at l = exposure_len against T on the first
 * --exposure-prompts prompts x --exposure-samples samples, kept per prompt. Both the final
 * student and the best-on-dev student (best/) of every run are scored; the teacher and the
 * initial student once. Statistics (core/stats.c): mean and sample std over training seeds;
 * the paired bootstrap interval over test records of each method's difference from PromptKD;
 * the bootstrap interval over prompts of ExAccErr.
 *
 * Writes OUT/compare.json and OUT/compare.md atomically and prints the Markdown. Default OUT:
 * run_dir/compare-NAME. Exit 0; 1 when a run or a scoring fails (a non-finite loss
 * included); 2 for bad arguments or an unusable OUT; 130 on Ctrl-C (the current run saves a
 * checkpoint, and the next invocation continues from it). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
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
#include "exposure.h"
#include "parallel.h"
#include "rouge.h"
#include "run_dir.h"
#include "run_setup.h"
#include "stats.h"

/* from cmd_train.c */
void train_install_signals(void);
int train_interrupted(void);
void train_progress_line(const EngineSnapshot *s, char *out, size_t len);

#define MAX_SEEDS 64
#define MAX_DECODE_SEEDS 5
#define REFERENCE_METHOD "promptkd"
#define CI_LEVEL 0.95
#define SETUP_FILE "comparison.json"
#define RUN_SCORES_FILE "compare-scores.json"
#define REFERENCE_SCORES_FILE "reference-scores.json"

/* The methods to compare by default: every one of the method table, the reference last. */
static int default_methods(char *out, size_t len) {
    int o = 0, ref = method_find(REFERENCE_METHOD);
    for (int i = 0; i < N_METHODS; i++) {
        int m = i < ref ? i : i + 1 < N_METHODS ? i + 1 : ref;
        o += snprintf(out + o, len - (size_t)o, "%s%s", i ? "," : "", method_info((MethodId)m)->name);
        if ((size_t)o >= len) return -1;
    }
    return 0;
}

static unsigned long long decode_seed(int j) { return 10ULL * (unsigned long long)(j + 1); }

static int path_fmt(char *out, size_t len, char *err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int path_fmt(char *out, size_t len, char *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len) return pk_errf(err, "%.200s...: path too long", out);
    return PK_OK;
}

static cJSON *read_json(const char *path, char *err) {
    char *text = NULL;
    size_t len = 0;
    if (pk_read_file(path, &text, &len, err) != PK_OK) return NULL;
    cJSON *o = cJSON_ParseWithLength(text, len);
    free(text);
    if (!o) pk_errf(err, "%s: not valid JSON", path);
    return o;
}

/* Numbers of a JSON array into out [n]; returns how many there were (or -1: not numbers). */
static int json_doubles(const cJSON *arr, double *out, int n) {
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsNumber(it)) return -1;
        if (i < n) out[i] = it->valuedouble;
        i++;
    }
    return i;
}

static double json_num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* cJSON writes NaN as null; a number that is not finite is stored as null on purpose. */
static void add_num(cJSON *o, const char *key, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static void add_interval(cJSON *o, const char *key, const StatsInterval *ci) {
    cJSON *j = cJSON_AddObjectToObject(o, key);
    add_num(j, "estimate", ci->estimate);
    add_num(j, "low", ci->low);
    add_num(j, "high", ci->high);
}

/* ------------------------------------------------------------------ scoring */

typedef struct {
    const char *split;
    int test_records;  /* asked for: 0 = all */
    int n_decode;      /* decoding seeds 10, 20, ... */
    int max_new_tokens;
    int exposure_len, exposure_prompts, exposure_samples;
    unsigned long long exposure_seed;
} ScoreSettings;

/* What the cached scores depend on: a cache whose settings differ is scored again. */
static cJSON *settings_json(const ScoreSettings *st) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "split", st->split);
    cJSON_AddNumberToObject(o, "test_records", st->test_records);
    cJSON *seeds = cJSON_AddArrayToObject(o, "decoding_seeds");
    for (int j = 0; j < st->n_decode; j++) cJSON_AddItemToArray(seeds, cJSON_CreateNumber((double)decode_seed(j)));
    cJSON_AddNumberToObject(o, "max_new_tokens", st->max_new_tokens);
    cJSON_AddNumberToObject(o, "exposure_len", st->exposure_len);
    cJSON_AddNumberToObject(o, "exposure_prompts", st->exposure_prompts);
    cJSON_AddNumberToObject(o, "exposure_samples", st->exposure_samples);
    cJSON_AddNumberToObject(o, "exposure_seed", (double)st->exposure_seed);
    cJSON_AddStringToObject(o, "oracle", "teacher");
    return o;
}

/* ROUGE-L of model `which` on each test record, averaged over the decoding seeds:
 * {"records", "rougeL" (mean over records), "rougeL_per_seed", "per_record"}. */
static cJSON *score_rouge(DistillState *ds, int which, const ScoreSettings *st, char *err) {
    const Dataset *d = distill_dataset(ds, st->split);
    if (!d) {
        pk_errf(err, "no %s split to score on", st->split);
        return NULL;
    }
    int n = st->test_records > 0 && st->test_records < d->n ? st->test_records : d->n;
    double *per = pk_calloc((size_t)n, sizeof *per, err);
    char **preds = per ? pk_calloc((size_t)n, sizeof *preds, err) : NULL;
    double seed_mean[MAX_DECODE_SEEDS];
    int rc = preds ? PK_OK : PK_FAIL;
    for (int j = 0; j < st->n_decode && rc == PK_OK; j++) {
        int scored = 0;
        rc = distill_eval_rouge(ds, which, st->split, n, st->max_new_tokens, decode_seed(j), &seed_mean[j], preds,
                                &scored, err);
        if (rc != PK_OK) break;
        for (int i = 0; i < scored; i++) {
            const DataRecord *r = &d->recs[i];
            per[i] += rouge_l_max_x100(preds[i] ? preds[i] : "", (const char *const *)r->refs, r->n_refs) / st->n_decode;
            free(preds[i]);
            preds[i] = NULL;
        }
        if (scored != n) rc = pk_errf(err, "scored %d of %d %s records", scored, n, st->split);
    }
    cJSON *o = NULL;
    if (rc == PK_OK) {
        double sum = 0;
        for (int i = 0; i < n; i++) sum += per[i];
        o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "records", n);
        cJSON_AddNumberToObject(o, "rougeL", sum / n);
        cJSON_AddItemToObject(o, "rougeL_per_seed", cJSON_CreateDoubleArray(seed_mean, st->n_decode));
        cJSON_AddItemToObject(o, "per_record", cJSON_CreateDoubleArray(per, n));
    }
    free(preds);
    free(per);
    return o;
}

/* ExAccErr at l = exposure_len of the student against T, as distill_exposure measures it
 * (same prompts, same cut, same RNG rows), but kept per prompt so that the interval can
 * resample prompts: {"len", "prompts", "samples", "value", "per_prompt_student",
 * "per_prompt_oracle"}, each per-prompt figure the mean over its samples of sum_{t<=l} e_t. */
static cJSON *score_exposure(DistillState *ds, const ScoreSettings *st, char *err) {
    GPT2 *T = distill_teacher(ds), *S = distill_student(ds);
    const Dataset *d = distill_dataset(ds, st->split);
    if (!T || !S || !d) {
        pk_errf(err, "exposure: needs the teacher, the student and the %s split", st->split);
        return NULL;
    }
    int np = st->exposure_prompts < d->n ? st->exposure_prompts : d->n, K = st->exposure_samples,
        L = st->exposure_len;
    int room = (S->config.max_seq_len < T->config.max_seq_len ? S->config.max_seq_len : T->config.max_seq_len) - L;
    const RunConfig *c = distill_config(ds);
    if (c->max_prompt_len > 0 && c->max_prompt_len < room) room = c->max_prompt_len;
    if (room < 1) {
        pk_errf(err, "exposure: length %d leaves no room for a prompt in the models' positions", L);
        return NULL;
    }
    size_t rows = (size_t)np * K;
    int **ids = pk_calloc((size_t)np, sizeof *ids, err);
    int *lens = ids ? pk_calloc((size_t)np, sizeof *lens, err) : NULL;
    double *es = lens ? pk_malloc(rows * L * sizeof *es, err) : NULL;
    double *eo = es ? pk_malloc(rows * L * sizeof *eo, err) : NULL;
    double *ps = eo ? pk_calloc((size_t)np, sizeof *ps, err) : NULL;
    double *po = ps ? pk_calloc((size_t)np, sizeof *po, err) : NULL;
    char what[48];
    snprintf(what, sizeof what, "exposure: %s", st->split);
    int rc = po ? data_encode_prompts(d, distill_tokenizer(ds), np, room, what, ids, lens, err) : PK_FAIL;
    /* student samples use RNG rows 0.., the teacher's rows np*K.., as exposure_measure does */
    if (rc == PK_OK)
        rc = exposure_errors(S, NULL, 0, T, NULL, 0, S, (const int *const *)ids, lens, np, K, L, st->exposure_seed, 0,
                             es, err);
    if (rc == PK_OK)
        rc = exposure_errors(T, NULL, 0, T, NULL, 0, S, (const int *const *)ids, lens, np, K, L, st->exposure_seed,
                             (long)rows, eo, err);
    cJSON *o = NULL;
    if (rc == PK_OK) {
        for (int p = 0; p < np; p++)
            for (int k = 0; k < K; k++)
                for (int t = 0; t < L; t++) {
                    ps[p] += es[((size_t)p * K + k) * L + t] / K;
                    po[p] += eo[((size_t)p * K + k) * L + t] / K;
                }
        o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "len", L);
        cJSON_AddNumberToObject(o, "prompts", np);
        cJSON_AddNumberToObject(o, "samples", K);
        add_num(o, "value", stats_exaccerr(ps, po, np));
        cJSON_AddItemToObject(o, "per_prompt_student", cJSON_CreateDoubleArray(ps, np));
        cJSON_AddItemToObject(o, "per_prompt_oracle", cJSON_CreateDoubleArray(po, np));
    }
    data_free_rows(ids, np);
    free(lens);
    free(es);
    free(eo);
    free(ps);
    free(po);
    return o;
}

/* Scores one student folder next to the teacher: {"rouge": .., "exaccerr": ..}, and with
 * teacher_out also the teacher's ROUGE-L into *teacher_out. */
static cJSON *score_student(const RunConfig *base, const char *student_dir, const ScoreSettings *st,
                            cJSON **teacher_out, char *err) {
    RunConfig c = *base;
    snprintf(c.method, sizeof c.method, "%s", method_info(METHOD_RKL)->name); /* loads the teacher, no prompt */
    if (strlen(student_dir) >= sizeof c.student) {
        pk_errf(err, "%s: path too long", student_dir);
        return NULL;
    }
    snprintf(c.student, sizeof c.student, "%s", student_dir);
    DistillState *ds = NULL;
    pk_threads_init(c.threads);
    if (distill_create(&ds, &c, err) != PK_OK) return NULL;
    cJSON *o = NULL, *rouge = score_rouge(ds, DISTILL_STUDENT, st, err);
    cJSON *ex = rouge ? score_exposure(ds, st, err) : NULL;
    cJSON *teacher = ex && teacher_out ? score_rouge(ds, DISTILL_TEACHER, st, err) : NULL;
    if (ex && (!teacher_out || teacher)) {
        o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "rouge", rouge);
        cJSON_AddItemToObject(o, "exaccerr", ex);
        if (teacher_out) *teacher_out = teacher;
    } else {
        cJSON_Delete(rouge);
        cJSON_Delete(ex);
        cJSON_Delete(teacher);
    }
    distill_free(ds);
    return o;
}

/* A cached scores file whose settings equal st, or NULL (missing, unreadable, other settings). */
static cJSON *cached_scores(const char *path, const cJSON *settings) {
    if (!pk_file_exists(path)) return NULL;
    char err[PK_ERR_LEN];
    cJSON *o = read_json(path, err);
    if (o && cJSON_Compare(cJSON_GetObjectItemCaseSensitive(o, "settings"), settings, 1)) return o;
    cJSON_Delete(o);
    return NULL;
}

/* ------------------------------------------------------------------ runs */

/* checkpoints/latest of a run folder ("step-N"): N, or -1. */
static int latest_step(const char *run_path) {
    char path[CONFIG_PATH_LEN + 64], err[PK_ERR_LEN];
    if (path_fmt(path, sizeof path, err, "%s/checkpoints/latest", run_path) != PK_OK || !pk_file_exists(path)) return -1;
    char *text = NULL;
    size_t len = 0;
    if (pk_read_file(path, &text, &len, err) != PK_OK) return -1;
    int n = -1;
    if (sscanf(text, "step-%d", &n) != 1) n = -1;
    free(text);
    return n;
}

/* Training wall time the engine logged: the last step line's elapsed_s (it carries over resumes). */
static double logged_train_seconds(const char *run_path) {
    char path[CONFIG_PATH_LEN + 64], err[PK_ERR_LEN];
    if (path_fmt(path, sizeof path, err, "%s/metrics.jsonl", run_path) != PK_OK) return NAN;
    RunHistory h;
    run_history_init(&h);
    double seconds = run_history_read(&h, path, -1, NULL, err) == PK_OK && h.last_step > 0 ? h.elapsed_s : NAN;
    run_history_free(&h);
    return seconds;
}

/* Trains (or, with resume, continues) one run to its end. */
static int train_one(const RunConfig *cfg, const char *resume, const char *expected_path, int quiet,
                     int *interrupted, char *err) {
    Engine *e = NULL;
    *interrupted = 0;
    if (engine_create(&e, cfg, resume, 1, err) != PK_OK) return PK_FAIL;
    if (strcmp(engine_run_path(e), expected_path)) {
        /* a folder appeared between the check and the start: do not train somewhere else */
        snprintf(err, PK_ERR_LEN, "the run went to %.200s instead of %.200s", engine_run_path(e), expected_path);
        engine_stop(e, NULL);
        engine_destroy(e);
        return PK_FAIL;
    }
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
            fprintf(stderr, "promptkd compare: interrupted; %s (the same command continues from it)\n", reply);
        rc = pk_errf(err, "interrupted");
    } else {
        const EngineSnapshot *s = engine_snapshot_acquire(e);
        if (st != ENGINE_FINISHED)
            rc = pk_errf(err, "%s run (seed %llu) did not finish: %s", cfg->method, cfg->seed,
                         s ? s->message : "unknown state");
        engine_snapshot_release(e, s);
    }
    engine_stop(e, NULL);
    engine_destroy(e);
    return rc;
}

/* ------------------------------------------------------------------ aggregation */

typedef struct {
    int n_runs, records;
    double rouge_mean, rouge_std;
    double *per_record; /* [records]: mean over runs of each run's per-record score */
    double ex_mean, ex_std;
    StatsInterval ex_ci; /* pooled over runs, interval over prompts */
    int has_ex_ci;
    StatsInterval diff; /* vs the reference method */
    int has_diff;
    double train_mean;
} Summary;

/* which: "final" or "best" member of each run's scores. */
static int summarise(cJSON *const *runs, int n_runs, const char *which, int B, unsigned long long bseed,
                     Summary *out, char *err) {
    memset(out, 0, sizeof *out);
    out->n_runs = n_runs;
    double rv[MAX_SEEDS] = {0}, ev[MAX_SEEDS] = {0}, tv[MAX_SEEDS] = {0};
    double *ps = NULL, *po = NULL;
    int n_prompts = -1, n_ex = 0;
    for (int r = 0; r < n_runs; r++) {
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(runs[r], which);
        const cJSON *rouge = cJSON_GetObjectItemCaseSensitive(sc, "rouge");
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(sc, "exaccerr");
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(rouge, "per_record");
        int n = (int)json_num(rouge, "records");
        int bad = PK_OK;
        if (!rouge || n < 1 || cJSON_GetArraySize(pr) != n)
            bad = pk_errf(err, "run %d has no %s ROUGE-L scores", r, which);
        else if (r == 0 && !(out->per_record = pk_calloc((size_t)n, sizeof(double), err)))
            bad = PK_FAIL;
        else if (r > 0 && n != out->records)
            bad = pk_errf(err, "runs were scored on %d and %d records", out->records, n);
        out->records = n;
        double *tmp = bad == PK_OK ? pk_malloc((size_t)n * sizeof *tmp, err) : NULL;
        if (!tmp) {
            free(ps);
            free(po);
            return PK_FAIL;
        }
        json_doubles(pr, tmp, n);
        for (int i = 0; i < n; i++) out->per_record[i] += tmp[i] / n_runs;
        free(tmp);
        rv[r] = json_num(rouge, "rougeL");
        ev[r] = json_num(ex, "value");
        tv[r] = json_num(runs[r], "train_seconds");
        int np = (int)json_num(ex, "prompts");
        if (np >= 1 && (n_prompts < 0 || np == n_prompts)) {
            if (n_prompts < 0) {
                n_prompts = np;
                ps = pk_calloc((size_t)np, sizeof *ps, err);
                po = ps ? pk_calloc((size_t)np, sizeof *po, err) : NULL;
                if (!po) {
                    free(ps);
                    return PK_FAIL;
                }
            }
            double *a = pk_malloc((size_t)np * 2 * sizeof *a, err);
            if (!a) break;
            if (json_doubles(cJSON_GetObjectItemCaseSensitive(ex, "per_prompt_student"), a, np) == np &&
                json_doubles(cJSON_GetObjectItemCaseSensitive(ex, "per_prompt_oracle"), a + np, np) == np) {
                for (int p = 0; p < np; p++) ps[p] += a[p], po[p] += a[np + p];
                n_ex++;
            }
            free(a);
        }
    }
    stats_mean_std(rv, n_runs, &out->rouge_mean, &out->rouge_std, err);
    stats_mean_std(ev, n_runs, &out->ex_mean, &out->ex_std, err);
    double tstd;
    stats_mean_std(tv, n_runs, &out->train_mean, &tstd, err);
    /* the sums over runs stand for the means: the ratio does not change */
    if (n_ex == n_runs && n_prompts > 0) {
        char inner[PK_ERR_LEN];
        out->has_ex_ci = stats_exaccerr_bootstrap_ci(ps, po, n_prompts, B, bseed, CI_LEVEL, &out->ex_ci, inner) == PK_OK;
    }
    free(ps);
    free(po);
    return PK_OK;
}

static cJSON *summary_json(const Summary *s, cJSON *const *runs, const char *which) {
    cJSON *o = cJSON_CreateObject();
    add_num(o, "rougeL_mean", s->rouge_mean);
    add_num(o, "rougeL_std", s->rouge_std);
    cJSON *per_run = cJSON_AddArrayToObject(o, "rougeL_per_run");
    cJSON *ex_per_run = cJSON_CreateArray();
    for (int r = 0; r < s->n_runs; r++) {
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(runs[r], which);
        cJSON_AddItemToArray(per_run,
                             cJSON_CreateNumber(json_num(cJSON_GetObjectItemCaseSensitive(sc, "rouge"), "rougeL")));
        cJSON_AddItemToArray(ex_per_run,
                             cJSON_CreateNumber(json_num(cJSON_GetObjectItemCaseSensitive(sc, "exaccerr"), "value")));
    }
    cJSON_AddItemToObject(o, "per_record", cJSON_CreateDoubleArray(s->per_record, s->records));
    if (s->has_diff)
        add_interval(o, "diff_vs_" REFERENCE_METHOD, &s->diff);
    else
        cJSON_AddNullToObject(o, "diff_vs_" REFERENCE_METHOD);
    cJSON *ex = cJSON_AddObjectToObject(o, "exaccerr");
    add_num(ex, "mean", s->ex_mean);
    add_num(ex, "std", s->ex_std);
    cJSON_AddItemToObject(ex, "per_run", ex_per_run);
    if (s->has_ex_ci)
        add_interval(ex, "pooled", &s->ex_ci);
    else
        cJSON_AddNullToObject(ex, "pooled");
    return o;
}

/* ------------------------------------------------------------------ formatting */

static void fmt_mean_std(char *out, size_t len, double mean, double std, int n) {
    if (!isfinite(mean))
        snprintf(out, len, "n/a");
    else if (n > 1)
        snprintf(out, len, "%.2f ± %.2f", mean, std);
    else
        snprintf(out, len, "%.2f", mean);
}

static void fmt_diff(char *out, size_t len, const Summary *s, int is_reference) {
    if (is_reference)
        snprintf(out, len, "0 (reference)");
    else if (!s->has_diff)
        snprintf(out, len, "-");
    else
        snprintf(out, len, "%+.2f [%+.2f, %+.2f]", s->diff.estimate, s->diff.low, s->diff.high);
}

static void fmt_exacc(char *out, size_t len, const Summary *s) {
    char ms[64];
    fmt_mean_std(ms, sizeof ms, s->ex_mean, s->ex_std, s->n_runs);
    if (s->has_ex_ci)
        snprintf(out, len, "%s [%.2f, %.2f]", ms, s->ex_ci.low, s->ex_ci.high);
    else
        snprintf(out, len, "%s", ms);
}

/* ------------------------------------------------------------------ the command */

static int parse_seed_list(const char *s, unsigned long long *seeds, int *n) {
    *n = 0;
    const char *p = s;
    for (;;) {
        if (*p < '0' || *p > '9') return -1;
        errno = 0;
        char *end = NULL;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || end == p || *n >= MAX_SEEDS) return -1;
        for (int i = 0; i < *n; i++)
            if (seeds[i] == v) return -1;
        seeds[(*n)++] = v;
        if (*end == 0) return 0;
        if (*end != ',') return -1;
        p = end + 1;
    }
}

/* 1 when folder exists and holds anything. */
static int folder_has_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d)) != NULL) any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return any;
}

/* The config keys a finished run depends on, compared with the config.json an earlier
 * invocation left in OUT: a differing fixed key would mix two experiments in one table. */
static int same_experiment(const RunConfig *now, const char *saved_path, char *err) {
    RunConfig saved;
    config_defaults(&saved);
    char inner[PK_ERR_LEN];
    if (config_load_json(&saved, saved_path, inner) != PK_OK) return pk_errf(err, "%s: %s", saved_path, inner);
    for (const char *const *k = config_keys(); *k; k++) {
        if (config_key_is_live(*k) || !strcmp(*k, "name") || !strcmp(*k, "run_dir") || !strcmp(*k, "method") ||
            !strcmp(*k, "seed"))
            continue;
        char a[CONFIG_PATH_LEN + 64], b[CONFIG_PATH_LEN + 64];
        if (config_get(now, *k, a, sizeof a, inner) != PK_OK || config_get(&saved, *k, b, sizeof b, inner) != PK_OK)
            continue;
        if (strcmp(a, b))
            return pk_errf(err, "this folder's comparison has %s = %s, this config %s = %s; use another --out "
                                "or the same config",
                           *k, b, *k, a);
    }
    return PK_OK;
}

/* --resume DIR: the options saved in DIR/comparison.json, run again with --out DIR. */
static int resume_comparison(const char *dir, int quiet) {
    char path[CONFIG_PATH_LEN + 64], err[PK_ERR_LEN];
    if (path_fmt(path, sizeof path, err, "%s/%s", dir, SETUP_FILE) != PK_OK) {
        fprintf(stderr, "promptkd compare: --resume: %s\n", err);
        return 2;
    }
    if (!pk_file_exists(path)) {
        fprintf(stderr, "promptkd compare: --resume %s: not a comparison folder (no %s in it)\n", dir, SETUP_FILE);
        return 2;
    }
    cJSON *setup = read_json(path, err);
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(setup, "options");
    int n = cJSON_GetArraySize(opts);
    if (!setup || !cJSON_IsArray(opts) || n < 2) {
        fprintf(stderr, "promptkd compare: --resume %s: %s does not hold the comparison's options\n", dir, path);
        cJSON_Delete(setup);
        return 2;
    }
    char **argv = calloc((size_t)n + 5, sizeof *argv);
    int argc = 0, status = 2;
    if (!argv) goto done;
    argv[argc++] = "compare";
    const cJSON *it;
    cJSON_ArrayForEach(it, opts) {
        if (!cJSON_IsString(it)) {
            fprintf(stderr, "promptkd compare: --resume %s: %s: options must be strings\n", dir, path);
            goto done;
        }
        argv[argc++] = it->valuestring;
    }
    argv[argc++] = "--out";
    argv[argc++] = (char *)dir;
    if (quiet) argv[argc++] = "--quiet";
    status = cmd_compare(argc, argv);
done:
    free(argv);
    cJSON_Delete(setup);
    return status;
}

int cmd_compare(int argc, char **argv) {
    const char *config_path = NULL, *methods_arg = NULL, *out_arg = NULL, *set_placeholder = NULL,
               *seed_list_arg = NULL, *resume_arg = NULL;
    int seeds_n = INT_MIN, n_decode = MAX_DECODE_SEEDS, quiet = 0, test_records = 0, exposure_prompts = 32,
        exposure_samples = 2, bootstrap = STATS_BOOTSTRAP_DEFAULT;
    unsigned long long bootstrap_seed = 1;
    Opt opts[] = {
        {"config", OPT_STR, &config_path, "JSON run config shared by every run (required unless --resume)", 0},
        {"methods", OPT_STR, &methods_arg, "comma-separated methods (default: every method)", 0},
        {"seeds", OPT_INT, &seeds_n, "training seeds per method: config seed, seed+1, ... (default 3)", 0},
        {"seed-list", OPT_STR, &seed_list_arg, "the training seeds themselves, e.g. 10,20,30", 0},
        {"set", OPT_STR, &set_placeholder, "key=value over the config; repeatable", 0},
        {"out", OPT_STR, &out_arg, "comparison folder (default run_dir/compare-NAME); reused: see below", 0},
        {"resume", OPT_STR, &resume_arg, "continue the comparison in this folder with its own options", 0},
        {"test-records", OPT_INT, &test_records, "score the first N test records (default 0: all)", 0},
        {"eval-seeds", OPT_INT, &n_decode, "decoding seeds 10, 20, ... per score (default 5, at most 5)", 0},
        {"exposure-prompts", OPT_INT, &exposure_prompts, "ExAccErr prompts (default 32)", 0},
        {"exposure-samples", OPT_INT, &exposure_samples, "ExAccErr samples per prompt (default 2)", 0},
        {"bootstrap", OPT_INT, &bootstrap, "bootstrap resamples per interval (default 10000)", 0},
        {"bootstrap-seed", OPT_U64, &bootstrap_seed, "seed of the bootstrap resampling (default 1)", 0},
        {"quiet", OPT_FLAG, &quiet, "no progress on stderr", 0},
    };
    const char *usage = "promptkd compare --config FILE [--methods LIST] [--seeds N | --seed-list LIST] "
                        "[--set key=value ...] [--out DIR] | --resume DIR";
    RunSetSpecs sets = {0};
    if (run_collect_sets("compare", &argc, argv, &sets)) return 2;
    int prc = cli_parse(usage, argc, argv, opts, (int)(sizeof opts / sizeof *opts), NULL, 0, NULL);
    if (prc == 1) {
        printf("\nEach method trains from the config's student for the config's steps, once per training seed,\n"
               "each run a normal run folder OUT/runs/METHOD-sSEED. `sft` continues supervised fine-tuning of\n"
               "that student for the same steps; \"student (init)\" is the student before training.\n\n"
               "Scoring: the final student and the best-on-dev student (best/) of every run, the teacher and\n"
               "the initial student, each on the test split (valid when the config has no test_data): ROUGE-L\n"
               "per record, averaged over decoding seeds 10 20 30 40 50; ExAccErr at l = exposure_len against\n"
               "the teacher, per prompt. Table: ROUGE-L mean ± sample std over training seeds; the difference\n"
               "from promptkd with its 95%% paired bootstrap interval over test records (per record, each\n"
               "method averaged over its training and decoding seeds); ExAccErr with its 95%% bootstrap\n"
               "interval over prompts. Writes OUT/compare.json and OUT/compare.md atomically, prints the table.\n\n"
               "Resuming: run the same command with the same --out again, or --resume OUT. Finished runs are\n"
               "not retrained; an interrupted run continues from its latest checkpoint (bit for bit, as\n"
               "`promptkd train --resume`); a run folder without any checkpoint is removed and trained again.\n"
               "Scores are kept per run (compare-scores.json) and reused while the scoring settings match.\n"
               "Exit status: 0 done; 1 a run or a scoring failed; 2 bad arguments; 130 interrupted (the current\n"
               "run saves a checkpoint first).\n");
        return 0;
    }
    if (prc) return 2;

    if (resume_arg) {
        int others = sets.n;
        for (int i = 1; i < argc; i++)
            if (!strncmp(argv[i], "--", 2) && strcmp(argv[i], "--quiet") && strcmp(argv[i], "--resume") &&
                strncmp(argv[i], "--resume=", 9))
                others++;
        if (others) {
            fprintf(stderr, "promptkd compare: --resume DIR takes the comparison's saved options; give only "
                            "--resume DIR [--quiet]\n");
            return 2;
        }
        return resume_comparison(resume_arg, quiet);
    }
    if (!config_path) {
        fprintf(stderr, "promptkd compare: --config FILE is required (or --resume DIR)\n");
        return 2;
    }

    /* training seeds: --seed-list, or the config's seed + 0 .. N-1 */
    unsigned long long train_seeds[MAX_SEEDS];
    int n_seeds = 0;
    if (seed_list_arg && seeds_n != INT_MIN) {
        fprintf(stderr, "promptkd compare: give --seeds N or --seed-list LIST, not both\n");
        return 2;
    }
    if (seed_list_arg && parse_seed_list(seed_list_arg, train_seeds, &n_seeds)) {
        fprintf(stderr,
                "promptkd compare: --seed-list expects 1 to %d distinct comma-separated non-negative integers such as "
                "10,20,30, got '%s'\n",
                MAX_SEEDS, seed_list_arg);
        return 2;
    }
    if (!seed_list_arg && seeds_n == INT_MIN) seeds_n = 3;
    if (!seed_list_arg && (seeds_n < 1 || seeds_n > MAX_SEEDS)) {
        fprintf(stderr, "promptkd compare: --seeds expects 1 to %d, got %d\n", MAX_SEEDS, seeds_n);
        return 2;
    }
    if (n_decode < 1 || n_decode > MAX_DECODE_SEEDS) {
        fprintf(stderr, "promptkd compare: --eval-seeds expects 1 to %d, got %d\n", MAX_DECODE_SEEDS, n_decode);
        return 2;
    }
    if (test_records < 0) {
        fprintf(stderr, "promptkd compare: --test-records expects 0 (all) or more, got %d\n", test_records);
        return 2;
    }
    if (exposure_prompts < 1 || exposure_samples < 1) {
        fprintf(stderr, "promptkd compare: --exposure-prompts and --exposure-samples expect 1 or more, got %d and %d\n",
                exposure_prompts, exposure_samples);
        return 2;
    }
    if (bootstrap < 1) {
        fprintf(stderr, "promptkd compare: --bootstrap expects 1 or more resamples, got %d\n", bootstrap);
        return 2;
    }

    char err[PK_ERR_LEN];
    RunConfig cfg;
    if (run_config_resolve(&cfg, config_path, &sets, err) != PK_OK) {
        fprintf(stderr, "promptkd compare: %s\n", err);
        return 2;
    }
    if (!seed_list_arg)
        for (int s = 0; s < seeds_n; s++) train_seeds[n_seeds++] = cfg.seed + (unsigned long long)s;

    /* methods: known, no repeats, in the order given (default: every one the program has) */
    char available[256];
    if (default_methods(available, sizeof available) != 0) {
        fprintf(stderr, "promptkd compare: the method names do not fit in %zu bytes\n", sizeof available);
        return 2;
    }
    char methods[N_METHODS][sizeof cfg.method];
    int n_methods = 0;
    {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", methods_arg ? methods_arg : available);
        for (char *save = NULL, *m = strtok_r(buf, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
            if (method_find(m) < 0) {
                fprintf(stderr, "promptkd compare: --methods: '%s' is not a method (expected some of %s)\n", m,
                        available);
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
            fprintf(stderr, "promptkd compare: --methods expects a comma-separated list of methods (%s)\n", available);
            return 2;
        }
    }
    {
        /* every row is scored next to the teacher, so the config must have a usable one */
        RunConfig probe = cfg;
        snprintf(probe.method, sizeof probe.method, "%s", method_info(METHOD_RKL)->name);
        if (config_validate(&probe, err) != PK_OK) {
            fprintf(stderr, "promptkd compare: %s: %s\n", config_path, err);
            return 2;
        }
    }
    int reference = -1;
    for (int m = 0; m < n_methods; m++)
        if (!strcmp(methods[m], REFERENCE_METHOD)) reference = m;

    ScoreSettings st = {cfg.test_data[0] ? "test" : "valid", test_records, n_decode, cfg.eval_max_new_tokens,
                        cfg.exposure_len, exposure_prompts, exposure_samples, cfg.seed};

    /* the comparison folder: new, empty, or one an earlier invocation made with this experiment */
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
    char runs_dir[CONFIG_PATH_LEN], setup_path[CONFIG_PATH_LEN + 64], saved_cfg_path[CONFIG_PATH_LEN + 64];
    if (path_fmt(runs_dir, sizeof runs_dir - 80, err, "%s/runs", out_dir) != PK_OK ||
        path_fmt(setup_path, sizeof setup_path, err, "%s/%s", out_dir, SETUP_FILE) != PK_OK ||
        path_fmt(saved_cfg_path, sizeof saved_cfg_path, err, "%s/config.json", out_dir) != PK_OK) {
        fprintf(stderr, "promptkd compare: --out: %s\n", err);
        return 2;
    }
    /* the config file named in the tables: on --resume (which runs on OUT/config.json) the
     * one the comparison was started with */
    char shown_config[CONFIG_PATH_LEN + 80];
    snprintf(shown_config, sizeof shown_config, "%s", config_path);
    if (pk_file_exists(setup_path)) {
        if (pk_file_exists(saved_cfg_path) && same_experiment(&cfg, saved_cfg_path, err) != PK_OK) {
            fprintf(stderr, "promptkd compare: %s: %s\n", out_dir, err);
            return 2;
        }
        char *a = realpath(config_path, NULL), *b = realpath(saved_cfg_path, NULL);
        if (a && b && !strcmp(a, b)) {
            cJSON *old_setup = read_json(setup_path, err);
            const cJSON *shown = cJSON_GetObjectItemCaseSensitive(old_setup, "config_path");
            if (cJSON_IsString(shown)) snprintf(shown_config, sizeof shown_config, "%s", shown->valuestring);
            cJSON_Delete(old_setup);
        }
        free(a);
        free(b);
    } else if (folder_has_entries(out_dir)) {
        fprintf(stderr, "promptkd compare: --out %s: the folder exists and is not a comparison folder (no %s); "
                        "choose a new or empty folder\n", out_dir, SETUP_FILE);
        return 2;
    }
    if (pk_mkdirs(runs_dir, err) != PK_OK) {
        fprintf(stderr, "promptkd compare: --out %s: cannot create the comparison folder: %s\n", out_dir, err);
        return 2;
    }
    /* the options replayed by --resume, and the resolved config they run on */
    PkBuf seed_text = {0};
    for (int s = 0; s < n_seeds; s++) pk_buf_printf(&seed_text, "%s%llu", s ? "," : "", train_seeds[s]);
    char method_text[256] = "";
    for (int m = 0; m < n_methods; m++) {
        if (m) strcat(method_text, ",");
        strcat(method_text, methods[m]);
    }
    {
        char num[6][32];
        snprintf(num[0], sizeof num[0], "%d", test_records);
        snprintf(num[1], sizeof num[1], "%d", n_decode);
        snprintf(num[2], sizeof num[2], "%d", exposure_prompts);
        snprintf(num[3], sizeof num[3], "%d", exposure_samples);
        snprintf(num[4], sizeof num[4], "%d", bootstrap);
        snprintf(num[5], sizeof num[5], "%llu", bootstrap_seed);
        const char *options[] = {"--config", saved_cfg_path, "--methods", method_text, "--seed-list", seed_text.data,
                                 "--test-records", num[0], "--eval-seeds", num[1], "--exposure-prompts", num[2],
                                 "--exposure-samples", num[3], "--bootstrap", num[4], "--bootstrap-seed", num[5]};
        cJSON *setup = cJSON_CreateObject();
        cJSON_AddStringToObject(setup, "format", "promptkd-compare-setup/1");
        cJSON_AddStringToObject(setup, "config_path", shown_config);
        cJSON_AddItemToObject(setup, "command", cJSON_CreateStringArray((const char *const *)argv, argc));
        cJSON_AddItemToObject(setup, "options",
                              cJSON_CreateStringArray(options, (int)(sizeof options / sizeof *options)));
        int bad = config_save_json(&cfg, saved_cfg_path, err) != PK_OK ||
                  pk_write_json_atomic(setup_path, setup, err) != PK_OK;
        cJSON_Delete(setup);
        if (bad) {
            fprintf(stderr, "promptkd compare: --out %s: cannot write there: %s\n", out_dir, err);
            pk_buf_free(&seed_text);
            return 2;
        }
    }

    /* train (or skip, or continue) and score every run */
    train_install_signals();
    static cJSON *run_scores[N_METHODS][MAX_SEEDS];
    memset(run_scores, 0, sizeof run_scores);
    cJSON *settings = settings_json(&st);
    int status = 0;
    int total = n_seeds * n_methods;
    for (int s = 0; s < n_seeds && !status; s++) {
        for (int m = 0; m < n_methods && !status; m++) {
            RunConfig rc = cfg;
            snprintf(rc.method, sizeof rc.method, "%.15s", methods[m]);
            rc.seed = train_seeds[s];
            snprintf(rc.name, sizeof rc.name, "%.15s-s%llu", methods[m], rc.seed);
            snprintf(rc.run_dir, sizeof rc.run_dir, "%s", runs_dir);
            char run_path[CONFIG_PATH_LEN], final_dir[CONFIG_PATH_LEN], best_dir[CONFIG_PATH_LEN],
                scores_path[CONFIG_PATH_LEN + 32];
            if (path_fmt(run_path, sizeof run_path, err, "%s/%s", runs_dir, rc.name) != PK_OK ||
                path_fmt(final_dir, sizeof final_dir, err, "%s/checkpoints/step-%d", run_path, cfg.steps) != PK_OK ||
                path_fmt(best_dir, sizeof best_dir, err, "%s/best", run_path) != PK_OK ||
                path_fmt(scores_path, sizeof scores_path, err, "%s/%s", run_path, RUN_SCORES_FILE) != PK_OK) {
                fprintf(stderr, "promptkd compare: %s\n", err);
                status = 2;
                break;
            }
            int k = s * n_methods + m + 1;
            int done_step = pk_is_dir(run_path) ? latest_step(run_path) : -1;
            const char *how;
            if (done_step > cfg.steps) {
                fprintf(stderr, "promptkd compare: %s ran %d steps, more than this comparison's %d; use another --out\n",
                        run_path, done_step, cfg.steps);
                status = 2;
                break;
            }
            if (done_step == cfg.steps) {
                how = "finished earlier, not retrained";
                if (!quiet)
                    fprintf(stderr, "promptkd compare: %s, seed %llu (%d of %d): %s\n", methods[m], rc.seed, k, total,
                            how);
            } else {
                const char *resume = NULL;
                if (done_step >= 0) {
                    resume = run_path;
                    how = "continued from its checkpoint";
                    if (!quiet)
                        fprintf(stderr, "promptkd compare: continuing %s, seed %llu (%d of %d) from step %d\n",
                                methods[m], rc.seed, k, total, done_step);
                } else {
                    how = "trained";
                    if (pk_is_dir(run_path) && pk_remove_tree(run_path) != 0) {
                        fprintf(stderr, "promptkd compare: %s: cannot remove the run folder without a checkpoint: %s\n",
                                run_path, strerror(errno));
                        status = 1;
                        break;
                    }
                    if (!quiet)
                        fprintf(stderr, "promptkd compare: training %s, seed %llu (%d of %d)\n", methods[m], rc.seed,
                                k, total);
                }
                int interrupted = 0;
                remove(scores_path); /* a continued run's scores are not the finished run's */
                if (train_one(&rc, resume, run_path, quiet, &interrupted, err) != PK_OK) {
                    if (!interrupted) fprintf(stderr, "promptkd compare: %s\n", err);
                    status = interrupted ? 130 : 1;
                    break;
                }
            }
            cJSON *sc = cached_scores(scores_path, settings);
            if (!sc) {
                if (!quiet) fprintf(stderr, "promptkd compare: scoring %s, seed %llu\n", methods[m], rc.seed);
                cJSON *fin = score_student(&rc, final_dir, &st, NULL, err);
                cJSON *best = NULL;
                if (fin && pk_is_dir(best_dir)) best = score_student(&rc, best_dir, &st, NULL, err);
                if (!fin || (pk_is_dir(best_dir) && !best)) {
                    fprintf(stderr, "promptkd compare: scoring %s: %s\n", run_path, err);
                    cJSON_Delete(fin);
                    status = 1;
                    break;
                }
                sc = cJSON_CreateObject();
                cJSON_AddItemToObject(sc, "settings", cJSON_Duplicate(settings, 1));
                cJSON_AddItemToObject(sc, "final", fin);
                char best_json[CONFIG_PATH_LEN + 32];
                double best_step = NAN;
                if (best && path_fmt(best_json, sizeof best_json, err, "%s/best.json", run_path) == PK_OK) {
                    cJSON *bj = read_json(best_json, err);
                    best_step = json_num(bj, "step");
                    cJSON_Delete(bj);
                }
                /* a run that kept no best/ is its own best */
                cJSON_AddItemToObject(sc, "best", best ? best : cJSON_Duplicate(fin, 1));
                cJSON_AddBoolToObject(sc, "kept_best", best != NULL);
                add_num(sc, "best_step", best ? best_step : cfg.steps);
                add_num(sc, "train_seconds", logged_train_seconds(run_path));
                if (pk_write_json_atomic(scores_path, sc, err) != PK_OK) {
                    fprintf(stderr, "promptkd compare: %s\n", err);
                    cJSON_Delete(sc);
                    status = 1;
                    break;
                }
            }
            cJSON_AddNumberToObject(sc, "seed", (double)rc.seed);
            cJSON_AddStringToObject(sc, "run_dir", run_path);
            cJSON_AddStringToObject(sc, "this_invocation", how);
            run_scores[m][s] = sc;
            if (!quiet) {
                const cJSON *f = cJSON_GetObjectItemCaseSensitive(sc, "final");
                fprintf(stderr, "promptkd compare: %s seed %llu: ROUGE-L %.2f, ExAccErr(%d) %.2f%%\n", methods[m],
                        rc.seed, json_num(cJSON_GetObjectItemCaseSensitive(f, "rouge"), "rougeL"), st.exposure_len,
                        json_num(cJSON_GetObjectItemCaseSensitive(f, "exaccerr"), "value"));
            }
            if (train_interrupted()) status = 130;
        }
    }

    /* the teacher and the untrained student, scored once the same way */
    cJSON *refs = NULL;
    char ref_path[CONFIG_PATH_LEN + 64];
    if (!status && path_fmt(ref_path, sizeof ref_path, err, "%s/%s", out_dir, REFERENCE_SCORES_FILE) != PK_OK) status = 1;
    if (!status && !(refs = cached_scores(ref_path, settings))) {
        if (!quiet) fprintf(stderr, "promptkd compare: scoring the teacher and the initial student\n");
        cJSON *teacher = NULL, *init = score_student(&cfg, cfg.student, &st, &teacher, err);
        if (!init) {
            fprintf(stderr, "promptkd compare: scoring the initial student: %s\n", err);
            status = 1;
        } else {
            refs = cJSON_CreateObject();
            cJSON_AddItemToObject(refs, "settings", cJSON_Duplicate(settings, 1));
            cJSON_AddItemToObject(refs, "student_init", init);
            cJSON_AddItemToObject(refs, "teacher", teacher);
            if (pk_write_json_atomic(ref_path, refs, err) != PK_OK) {
                fprintf(stderr, "promptkd compare: %s\n", err);
                status = 1;
            }
        }
    }
    if (!status && train_interrupted()) status = 130;

    /* statistics */
    static Summary sum_final[N_METHODS], sum_best[N_METHODS];
    memset(sum_final, 0, sizeof sum_final);
    memset(sum_best, 0, sizeof sum_best);
    Summary teacher_s = {0}, init_s = {0};
    cJSON *teacher_run = NULL, *init_run = NULL;
    for (int m = 0; m < n_methods && !status; m++)
        if (summarise(run_scores[m], n_seeds, "final", bootstrap, bootstrap_seed, &sum_final[m], err) != PK_OK ||
            summarise(run_scores[m], n_seeds, "best", bootstrap, bootstrap_seed, &sum_best[m], err) != PK_OK) {
            fprintf(stderr, "promptkd compare: %s: %s\n", methods[m], err);
            status = 1;
        }
    if (!status) {
        /* the references as one-run "methods", so they get the same columns */
        teacher_run = cJSON_CreateObject();
        cJSON *tsc = cJSON_AddObjectToObject(teacher_run, "final");
        cJSON_AddItemToObject(tsc, "rouge", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(refs, "teacher"), 1));
        init_run = cJSON_CreateObject();
        cJSON_AddItemToObject(init_run, "final", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(refs, "student_init"), 1));
        if (summarise(&teacher_run, 1, "final", bootstrap, bootstrap_seed, &teacher_s, err) != PK_OK ||
            summarise(&init_run, 1, "final", bootstrap, bootstrap_seed, &init_s, err) != PK_OK) {
            fprintf(stderr, "promptkd compare: the references: %s\n", err);
            status = 1;
        }
    }
    int records = teacher_s.records;
    for (int m = 0; m < n_methods && !status; m++)
        if (sum_final[m].records != records || sum_best[m].records != records) {
            fprintf(stderr, "promptkd compare: %s was scored on other records than the teacher\n", methods[m]);
            status = 1;
        }
    if (!status && reference >= 0) {
        Summary *all[2 * N_METHODS + 2];
        const double *ref_rec[2 * N_METHODS + 2];
        int n_all = 0;
        for (int m = 0; m < n_methods; m++) {
            all[n_all] = &sum_final[m], ref_rec[n_all++] = sum_final[reference].per_record;
            all[n_all] = &sum_best[m], ref_rec[n_all++] = sum_best[reference].per_record;
        }
        all[n_all] = &teacher_s, ref_rec[n_all++] = sum_final[reference].per_record;
        all[n_all] = &init_s, ref_rec[n_all++] = sum_final[reference].per_record;
        for (int i = 0; i < n_all && !status; i++) {
            if (stats_paired_bootstrap_ci(all[i]->per_record, ref_rec[i], records, bootstrap, bootstrap_seed, CI_LEVEL,
                                          &all[i]->diff, err) != PK_OK) {
                fprintf(stderr, "promptkd compare: bootstrap: %s\n", err);
                status = 1;
            }
            all[i]->has_diff = 1;
        }
    }

    if (!status) {
        const cJSON *init_ex = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(refs, "student_init"),
                                                                "exaccerr");
        int ex_prompts = (int)json_num(init_ex, "prompts");
        /* the Markdown */
        PkBuf md = {0};
        pk_buf_printf(&md, "# promptkd compare\n\n");
        pk_buf_printf(&md, "Config `%s`; %d steps per run, batch %d; %d training seed%s (%s) per method.\n",
                      shown_config, cfg.steps, cfg.batch_size, n_seeds, n_seeds == 1 ? "" : "s", seed_text.data);
        pk_buf_printf(&md, "ROUGE-L on the %s split: %d %s records x %d decoding seed%s (", st.split, records, st.split,
                      n_decode, n_decode == 1 ? "" : "s");
        for (int j = 0; j < n_decode; j++) pk_buf_printf(&md, "%s%llu", j ? " " : "", decode_seed(j));
        pk_buf_printf(&md, "); a run's score is the mean over records of each record's mean over the decoding seeds, "
                           "and ± is the sample std over the %d training seeds (the teacher's and the initial "
                           "student's: over decoding seeds).\n",
                      n_seeds);
        if (reference >= 0)
            pk_buf_printf(&md, "Δ vs %s: per test record, the row's score (averaged over its training and decoding "
                               "seeds) minus %s's; the mean over the %d records and its 95%% paired bootstrap "
                               "percentile interval (%d resamples of the records, seed %llu).\n",
                          REFERENCE_METHOD, REFERENCE_METHOD, records, bootstrap, bootstrap_seed);
        else
            pk_buf_printf(&md, "No %s runs in this comparison, so no differences from it.\n", REFERENCE_METHOD);
        pk_buf_printf(&md, "ExAccErr at l = %d against the teacher, %d prompts x %d samples per model: mean ± std "
                           "over training seeds, then the 95%% bootstrap interval over the prompts (%d resamples) of "
                           "the figure pooled over training seeds.\n",
                      st.exposure_len, ex_prompts, exposure_samples, bootstrap);
        pk_buf_printf(&md, "`sft` continues supervised fine-tuning of the same student for the same steps; "
                           "`student (init)` is that student before training.\n\n");
        pk_buf_printf(&md, "| method | ROUGE-L | Δ vs %s [95%% CI] | ExAccErr@%d (%%) [95%% CI] | runs | train time (s) |\n",
                      REFERENCE_METHOD, st.exposure_len);
        pk_buf_printf(&md, "|---|---|---|---|---|---|\n");
        char a[64], b[96], c[128];
        {
            double per_seed[MAX_DECODE_SEEDS], tm, ts;
            const cJSON *tr = cJSON_GetObjectItemCaseSensitive(refs, "teacher");
            int n = json_doubles(cJSON_GetObjectItemCaseSensitive(tr, "rougeL_per_seed"), per_seed, MAX_DECODE_SEEDS);
            if (n < 1 || stats_mean_std(per_seed, n, &tm, &ts, err) != PK_OK) tm = NAN, ts = 0;
            fmt_mean_std(a, sizeof a, teacher_s.rouge_mean, ts, n);
            fmt_diff(b, sizeof b, &teacher_s, 0);
            pk_buf_printf(&md, "| teacher | %s | %s | - (oracle) | - | - |\n", a, b);
            const cJSON *ir = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(refs, "student_init"),
                                                               "rouge");
            n = json_doubles(cJSON_GetObjectItemCaseSensitive(ir, "rougeL_per_seed"), per_seed, MAX_DECODE_SEEDS);
            if (n < 1 || stats_mean_std(per_seed, n, &tm, &ts, err) != PK_OK) tm = NAN, ts = 0;
            fmt_mean_std(a, sizeof a, init_s.rouge_mean, ts, n);
            fmt_diff(b, sizeof b, &init_s, 0);
            fmt_exacc(c, sizeof c, &init_s);
            pk_buf_printf(&md, "| student (init) | %s | %s | %s | - | - |\n", a, b, c);
        }
        for (int m = 0; m < n_methods; m++) {
            const Summary *s = &sum_final[m];
            fmt_mean_std(a, sizeof a, s->rouge_mean, s->rouge_std, s->n_runs);
            fmt_diff(b, sizeof b, s, m == reference);
            fmt_exacc(c, sizeof c, s);
            char t[32];
            if (isfinite(s->train_mean))
                snprintf(t, sizeof t, "%.1f", s->train_mean);
            else
                snprintf(t, sizeof t, "n/a");
            pk_buf_printf(&md, "| %s | %s | %s | %s | %d | %s |\n", methods[m], a, b, c, s->n_runs, t);
        }
        pk_buf_printf(&md, "\nBest-on-dev students (each run's best/, the checkpoint with the best dev ROUGE-L during "
                           "training; a run that kept none counts with its final student), scored the same way:\n\n");
        pk_buf_printf(&md, "| method | ROUGE-L | Δ vs %s [95%% CI] | ExAccErr@%d (%%) [95%% CI] | runs | best step (mean) |\n",
                      REFERENCE_METHOD, st.exposure_len);
        pk_buf_printf(&md, "|---|---|---|---|---|---|\n");
        for (int m = 0; m < n_methods; m++) {
            const Summary *s = &sum_best[m];
            fmt_mean_std(a, sizeof a, s->rouge_mean, s->rouge_std, s->n_runs);
            fmt_diff(b, sizeof b, s, m == reference);
            fmt_exacc(c, sizeof c, s);
            double steps_sum = 0;
            for (int r = 0; r < n_seeds; r++) steps_sum += json_num(run_scores[m][r], "best_step");
            pk_buf_printf(&md, "| %s | %s | %s | %s | %d | %.0f |\n", methods[m], a, b, c, s->n_runs,
                          steps_sum / n_seeds);
        }

        /* the JSON: everything the tables came from */
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "format", "promptkd-compare/2");
        cJSON_AddItemToObject(root, "command", cJSON_CreateStringArray((const char *const *)argv, argc));
        cJSON_AddStringToObject(root, "config_path", shown_config);
        cJSON *cfg_json = read_json(saved_cfg_path, err);
        cJSON_AddItemToObject(root, "config", cfg_json ? cfg_json : cJSON_CreateNull());
        cJSON_AddNumberToObject(root, "steps", cfg.steps);
        cJSON_AddNumberToObject(root, "batch_size", cfg.batch_size);
        cJSON_AddStringToObject(root, "split", st.split);
        cJSON_AddNumberToObject(root, "records", records);
        cJSON *jseeds = cJSON_AddArrayToObject(root, "train_seeds");
        for (int s = 0; s < n_seeds; s++) cJSON_AddItemToArray(jseeds, cJSON_CreateNumber((double)train_seeds[s]));
        cJSON *jdec = cJSON_AddArrayToObject(root, "decoding_seeds");
        for (int j = 0; j < n_decode; j++) cJSON_AddItemToArray(jdec, cJSON_CreateNumber((double)decode_seed(j)));
        cJSON_AddItemToObject(root, "scoring", cJSON_Duplicate(settings, 1));
        cJSON *jb = cJSON_AddObjectToObject(root, "bootstrap");
        cJSON_AddNumberToObject(jb, "samples", bootstrap);
        cJSON_AddNumberToObject(jb, "seed", (double)bootstrap_seed);
        cJSON_AddNumberToObject(jb, "level", CI_LEVEL);
        cJSON_AddStringToObject(jb, "interval", "percentile (numpy's linear quantiles)");
        cJSON_AddStringToObject(jb, "rougeL_difference", "paired over test records");
        cJSON_AddStringToObject(jb, "exaccerr", "over prompts, pooled over training seeds");
        if (reference >= 0)
            cJSON_AddStringToObject(root, "reference_method", REFERENCE_METHOD);
        else
            cJSON_AddNullToObject(root, "reference_method");
        cJSON_AddStringToObject(root, "sft_means", "continued supervised fine-tuning for the same steps");
        cJSON *jt = cJSON_AddObjectToObject(root, "teacher");
        cJSON_AddItemToObject(jt, "scores", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(refs, "teacher"), 1));
        cJSON_AddItemToObject(jt, "summary", summary_json(&teacher_s, &teacher_run, "final"));
        cJSON *ji = cJSON_AddObjectToObject(root, "student_init");
        cJSON_AddItemToObject(ji, "scores", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(refs, "student_init"), 1));
        cJSON_AddItemToObject(ji, "summary", summary_json(&init_s, &init_run, "final"));
        cJSON *jrows = cJSON_AddArrayToObject(root, "methods");
        for (int m = 0; m < n_methods; m++) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, "method", methods[m]);
            cJSON_AddItemToObject(row, "final", summary_json(&sum_final[m], run_scores[m], "final"));
            cJSON_AddItemToObject(row, "best", summary_json(&sum_best[m], run_scores[m], "best"));
            add_num(row, "train_seconds_mean", sum_final[m].train_mean);
            cJSON *runs = cJSON_AddArrayToObject(row, "runs");
            for (int r = 0; r < n_seeds; r++) {
                cJSON *run = cJSON_Duplicate(run_scores[m][r], 1);
                cJSON_DeleteItemFromObjectCaseSensitive(run, "settings");
                /* each run's own ExAccErr interval over its prompts */
                for (int w = 0; w < 2; w++) {
                    cJSON *ex = cJSON_GetObjectItemCaseSensitive(
                        cJSON_GetObjectItemCaseSensitive(run, w ? "best" : "final"), "exaccerr");
                    int np = (int)json_num(ex, "prompts");
                    double *pp = np > 0 ? malloc((size_t)np * 2 * sizeof *pp) : NULL;
                    StatsInterval ci;
                    char inner[PK_ERR_LEN];
                    if (pp &&
                        json_doubles(cJSON_GetObjectItemCaseSensitive(ex, "per_prompt_student"), pp, np) == np &&
                        json_doubles(cJSON_GetObjectItemCaseSensitive(ex, "per_prompt_oracle"), pp + np, np) == np &&
                        stats_exaccerr_bootstrap_ci(pp, pp + np, np, bootstrap, bootstrap_seed, CI_LEVEL, &ci, inner) ==
                            PK_OK)
                        add_interval(ex, "interval", &ci);
                    free(pp);
                }
                cJSON_AddItemToArray(runs, run);
            }
            cJSON_AddItemToArray(jrows, row);
        }
        char md_path[CONFIG_PATH_LEN + 120], json_path[CONFIG_PATH_LEN + 120];
        snprintf(md_path, sizeof md_path, "%s/compare.md", out_dir);
        snprintf(json_path, sizeof json_path, "%s/compare.json", out_dir);
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
    }

    for (int m = 0; m < n_methods; m++) {
        free(sum_final[m].per_record);
        free(sum_best[m].per_record);
        for (int s = 0; s < n_seeds; s++) cJSON_Delete(run_scores[m][s]);
    }
    free(teacher_s.per_record);
    free(init_s.per_record);
    cJSON_Delete(teacher_run);
    cJSON_Delete(init_run);
    cJSON_Delete(refs);
    cJSON_Delete(settings);
    pk_buf_free(&seed_text);
    return status;
}
