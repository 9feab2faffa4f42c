/* The live session. One worker thread owns the DistillState; every client talks to
 * it through a command queue drained at step boundaries, and reads only immutable,
 * reference-counted snapshots that the worker builds outside the lock and swaps in.
 *
 * Run folder (DESIGN.md section 2): config.json, metrics.jsonl (one JSON object per
 * step or event), checkpoints/step-N/ + checkpoints/latest, best/, plots/, eval/. */
#include "engine.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "distill.h"
#include "parallel.h"
#include "rouge.h"
#include "tokenizer.h"

#define KEEP_CHECKPOINTS 3 /* step-N folders kept besides best/; older ones are removed */

const char *engine_state_name(EngineState s) {
    switch (s) {
    case ENGINE_LOADING: return "loading";
    case ENGINE_PAUSED: return "paused";
    case ENGINE_RUNNING: return "running";
    case ENGINE_FINISHED: return "finished";
    case ENGINE_FAILED: return "failed";
    }
    return "?";
}

/* ---------------------------------------------------------------- commands */

typedef enum {
    CMD_PAUSE,
    CMD_RESUME,
    CMD_RUN_STEPS,
    CMD_SET,
    CMD_EVAL,
    CMD_GENERATE,
    CMD_EXPOSURE,
    CMD_SAVE,
    CMD_SELECT_DEV,
    CMD_STOP
} CmdKind;

/* Lives on the caller's stack: the caller waits until done, so the strings and the
 * reply/err buffers stay valid while the worker uses them. */
typedef struct Cmd {
    CmdKind kind;
    int n;         /* steps, or dev delta */
    int wait;      /* CMD_RUN_STEPS: done only when the steps are done */
    const char *key, *value, *text, *split, *dir;
    char *reply;
    size_t reply_len;
    char *err;
    int rc;
    int done;
    struct Cmd *next;
} Cmd;

/* ---------------------------------------------------------------- snapshots */

/* A snapshot and every block it points at; freed when the last reference goes. */
typedef struct {
    EngineSnapshot s; /* first: a snapshot pointer is a box pointer */
    int refs;
    void **blocks;
    int n_blocks, cap_blocks;
} SnapBox;

static void *box_alloc(SnapBox *b, size_t n) {
    if (b->n_blocks == b->cap_blocks) {
        int nc = b->cap_blocks ? 2 * b->cap_blocks : 32;
        void **nb = realloc(b->blocks, (size_t)nc * sizeof *nb);
        if (!nb) return NULL;
        b->blocks = nb;
        b->cap_blocks = nc;
    }
    void *p = calloc(1, n ? n : 1);
    if (!p) return NULL;
    b->blocks[b->n_blocks++] = p;
    return p;
}

static const char *box_strdup(SnapBox *b, const char *s) {
    if (!s) s = "";
    size_t n = strlen(s);
    char *p = box_alloc(b, n + 1);
    if (!p) return "";
    memcpy(p, s, n + 1);
    return p;
}

static void box_free(SnapBox *b) {
    if (!b) return;
    for (int i = 0; i < b->n_blocks; i++) free(b->blocks[i]);
    free(b->blocks);
    free(b);
}

/* ---------------------------------------------------------------- engine */

typedef struct {
    char name[48];
    int n, cap;
    double *x, *y;
} History;

typedef struct {
    int step, n;
    double *curve;
} ExposureRec;

struct Engine {
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on every change: queue, command done, state */

    /* guarded by mu */
    RunConfig cfg; /* the worker writes it under mu; clients read it under mu */
    EngineState state;
    char message[256];
    int quit;        /* engine_destroy: leave at the next boundary */
    int worker_done; /* the worker has left its loop: commands fail at once */
    Cmd *queue_head, *queue_tail;
    SnapBox *current;
    unsigned long version;
    int inject_nonfinite_step;
    EngineStepHook step_hook;
    void *step_hook_ctx;

    /* worker only */
    DistillState *ds;
    char run_path[CONFIG_PATH_LEN];
    char resume_dir[CONFIG_PATH_LEN];
    FILE *metrics;
    int budget;          /* steps left for run_steps; -1: run to the end / stop_after */
    int session_steps;   /* steps since the last resume, for stop_after */
    Cmd *step_waiter;    /* engine_step waiting for its steps */
    int nonfinite_flag;  /* the last step attempt was non-finite: no automatic saves */
    int last_ckpt_step;  /* -1: none */
    int last_eval_step;  /* -1: none */
    double best_rouge;   /* -1: none */
    int best_step;
    double elapsed_s, step_s_ema, tps_ema, gflops_ema;
    double last_tps, last_gflops;
    History hist[ENGINE_MAX_SERIES];
    int n_hist;
    ExposureRec exposure[ENGINE_MAX_CURVES];
    int n_exposure;
    char *log[ENGINE_LOG_LINES];
    int n_log;
    /* prompt neighbours */
    int nb_P, nb_k;
    int *nb_ids;
    float *nb_sims, *nb_drift;
    /* generations */
    int dev_index, dev_count;
    char *dev_prompt_text, *gen_pt, *gen_t, *gen_s;
    int gen_step;
};

/* ---------------------------------------------------------------- small helpers */

static void hist_push(Engine *e, const char *name, double x, double y) {
    History *h = NULL;
    for (int i = 0; i < e->n_hist; i++)
        if (!strcmp(e->hist[i].name, name)) h = &e->hist[i];
    if (!h) {
        if (e->n_hist == ENGINE_MAX_SERIES) return;
        h = &e->hist[e->n_hist++];
        memset(h, 0, sizeof *h);
        snprintf(h->name, sizeof h->name, "%s", name);
    }
    if (h->n == h->cap) {
        int nc = h->cap ? 2 * h->cap : 256;
        double *nx = realloc(h->x, (size_t)nc * sizeof *nx);
        if (!nx) return;
        h->x = nx;
        double *ny = realloc(h->y, (size_t)nc * sizeof *ny);
        if (!ny) return;
        h->y = ny;
        h->cap = nc;
    }
    h->x[h->n] = x;
    h->y[h->n] = y;
    h->n++;
}

static void engine_log(Engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void engine_log(Engine *e, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    char *copy = strdup(line);
    if (!copy) return;
    if (e->n_log == ENGINE_LOG_LINES) {
        free(e->log[0]);
        memmove(e->log, e->log + 1, (ENGINE_LOG_LINES - 1) * sizeof *e->log);
        e->n_log--;
    }
    e->log[e->n_log++] = copy;
}

static void json_string(PkBuf *b, const char *s) {
    pk_buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': pk_buf_append(b, "\\\"", 2); break;
        case '\\': pk_buf_append(b, "\\\\", 2); break;
        case '\n': pk_buf_append(b, "\\n", 2); break;
        case '\r': pk_buf_append(b, "\\r", 2); break;
        case '\t': pk_buf_append(b, "\\t", 2); break;
        default:
            if (*p < 0x20)
                pk_buf_printf(b, "\\u%04x", *p);
            else
                pk_buf_append(b, p, 1);
        }
    }
    pk_buf_append(b, "\"", 1);
}

/* JSON number text for a double; non-finite values become null (JSON has no NaN). */
static void json_number(PkBuf *b, double v) {
    if (isfinite(v))
        pk_buf_printf(b, "%.17g", v);
    else
        pk_buf_printf(b, "null");
}

/* A value given as text: a JSON number when it reads as one, else a string. */
static void json_value_text(PkBuf *b, const char *s) {
    char *end = NULL;
    double v = strtod(s, &end);
    if (*s && end && !*end && isfinite(v) && s[0] != ' ')
        pk_buf_printf(b, "%s", s);
    else
        json_string(b, s);
}

static void metrics_write(Engine *e, PkBuf *line) {
    if (!e->metrics) return;
    pk_buf_append(line, "\n", 1);
    fwrite(line->data, 1, line->len, e->metrics);
    fflush(e->metrics);
}

/* Printable form of token bytes: control bytes and invalid UTF-8 escaped. */
static void printable_token(const char *bytes, size_t n, char *out, size_t outlen) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < outlen; i++) {
        unsigned char ch = (unsigned char)bytes[i];
        if (ch == '\n') {
            out[o++] = '\\', out[o++] = 'n';
        } else if (ch == '\t') {
            out[o++] = '\\', out[o++] = 't';
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
        } else if (ch < 0x80) {
            out[o++] = (char)ch;
        } else {
            /* copy a whole valid UTF-8 sequence, else escape the byte */
            size_t len = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : ch >= 0xc0 ? 2 : 1;
            if (len > 1 && i + len <= n && pk_utf8_invalid_at(bytes + i, len) < 0 && o + len + 1 < outlen) {
                memcpy(out + o, bytes + i, len);
                o += len;
                i += len - 1;
            } else {
                o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
            }
        }
    }
    out[o] = 0;
}

/* ---------------------------------------------------------------- publishing */

static void set_state_locked(Engine *e, EngineState st, const char *msg) {
    e->state = st;
    if (msg) snprintf(e->message, sizeof e->message, "%s", msg);
    pthread_cond_broadcast(&e->cv);
}


static SnapBox *build_snapshot(Engine *e);
static void publish_state(Engine *e, int st, const char *msg);
static void publish(Engine *e) { publish_state(e, -1, NULL); }
static void set_state(Engine *e, EngineState st, const char *msg) { publish_state(e, (int)st, msg); }

static SnapBox *build_snapshot(Engine *e) {
    SnapBox *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->refs = 1;
    EngineSnapshot *s = &b->s;
    pthread_mutex_lock(&e->mu);
    RunConfig cfg = e->cfg;
    s->state = e->state;
    snprintf(s->message, sizeof s->message, "%s", e->message);
    pthread_mutex_unlock(&e->mu);

    snprintf(s->method, sizeof s->method, "%s", cfg.method);
    snprintf(s->run_dir, sizeof s->run_dir, "%s", e->run_path);
    s->step = e->ds ? distill_step_index(e->ds) : 0;
    s->total_steps = cfg.steps;
    s->elapsed_s = e->elapsed_s;
    int target = cfg.steps;
    if (cfg.stop_after > 0 && s->step - e->session_steps + cfg.stop_after < target)
        target = s->step - e->session_steps + cfg.stop_after;
    s->eta_s = e->step_s_ema > 0 && target > s->step ? (target - s->step) * e->step_s_ema : 0;
    s->tokens_per_s = e->tps_ema;
    s->gflops = e->gflops_ema;

    s->n_series = e->n_hist;
    for (int i = 0; i < e->n_hist; i++) {
        const History *h = &e->hist[i];
        EngineSeries *o = &s->series[i];
        snprintf(o->name, sizeof o->name, "%s", h->name);
        double *x = box_alloc(b, (size_t)h->n * sizeof *x), *y = box_alloc(b, (size_t)h->n * sizeof *y);
        if (!x || !y) {
            o->n = 0;
            continue;
        }
        if (h->n) {
            memcpy(x, h->x, (size_t)h->n * sizeof *x);
            memcpy(y, h->y, (size_t)h->n * sizeof *y);
        }
        o->n = h->n;
        o->x = x;
        o->y = y;
    }

    const char *const *keys = config_keys();
    int nk = 0;
    while (keys[nk]) nk++;
    const char **vals = box_alloc(b, (size_t)nk * sizeof *vals);
    if (vals) {
        char v[CONFIG_PATH_LEN + 64], err[PK_ERR_LEN];
        for (int i = 0; i < nk; i++) {
            if (config_get(&cfg, keys[i], v, sizeof v, err) != PK_OK) v[0] = 0;
            vals[i] = box_strdup(b, v);
        }
        s->n_hparams = nk;
        s->hparam_keys = keys;
        s->hparam_values = vals;
    }

    if (e->nb_ids && e->ds) {
        int P = e->nb_P, k = e->nb_k;
        const char **toks = box_alloc(b, (size_t)P * k * sizeof *toks);
        float *sims = box_alloc(b, (size_t)P * k * sizeof *sims);
        float *drift = box_alloc(b, (size_t)P * sizeof *drift);
        if (toks && sims && drift) {
            const Tokenizer *tk = distill_tokenizer(e->ds);
            for (int i = 0; i < P * k; i++) {
                size_t n = 0;
                const char *bytes = tk ? tok_token_bytes(tk, e->nb_ids[i], &n) : NULL;
                char text[160];
                printable_token(bytes ? bytes : "", bytes ? n : 0, text, sizeof text);
                toks[i] = box_strdup(b, text);
                sims[i] = e->nb_sims[i];
            }
            memcpy(drift, e->nb_drift, (size_t)P * sizeof *drift);
            s->prompt_len = P;
            s->neighbours_k = k;
            s->neighbour_tokens = toks;
            s->neighbour_sims = sims;
            s->prompt_drift = drift;
        }
    }

    s->dev_index = e->dev_index;
    s->dev_count = e->dev_count;
    s->dev_prompt = box_strdup(b, e->dev_prompt_text);
    s->gen_prompted_teacher = box_strdup(b, e->gen_pt);
    s->gen_teacher = box_strdup(b, e->gen_t);
    s->gen_student = box_strdup(b, e->gen_s);
    s->gen_step = e->gen_step;

    s->n_exposure = e->n_exposure;
    for (int i = 0; i < e->n_exposure; i++) {
        double *c = box_alloc(b, (size_t)e->exposure[i].n * sizeof *c);
        if (!c) {
            s->n_exposure = i;
            break;
        }
        memcpy(c, e->exposure[i].curve, (size_t)e->exposure[i].n * sizeof *c);
        s->exposure[i].step = e->exposure[i].step;
        s->exposure[i].n = e->exposure[i].n;
        s->exposure[i].exaccerr = c;
    }

    const char **log = box_alloc(b, (size_t)(e->n_log ? e->n_log : 1) * sizeof *log);
    if (log) {
        for (int i = 0; i < e->n_log; i++) log[i] = box_strdup(b, e->log[i]);
        s->n_log = e->n_log;
        s->log = log;
    }
    return b;
}

static void box_release_locked(SnapBox *b) {
    if (b && --b->refs == 0) box_free(b);
}

/* Publishes a snapshot and, in the same critical section, changes the state (st >= 0):
 * whoever sees the new state also sees the snapshot that goes with it. */
static void publish_state(Engine *e, int st, const char *msg) {
    SnapBox *b = build_snapshot(e);
    pthread_mutex_lock(&e->mu);
    if (st >= 0) set_state_locked(e, (EngineState)st, msg);
    if (!b) { /* out of memory: clients keep the previous snapshot */
        pthread_mutex_unlock(&e->mu);
        return;
    }
    /* the state may have changed while building; the version orders snapshots */
    b->s.state = e->state;
    snprintf(b->s.message, sizeof b->s.message, "%s", e->message);
    b->s.version = ++e->version;
    SnapBox *old = e->current;
    e->current = b;
    box_release_locked(old);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

const EngineSnapshot *engine_snapshot_acquire(Engine *e) {
    pthread_mutex_lock(&e->mu);
    SnapBox *b = e->current;
    if (b) b->refs++;
    pthread_mutex_unlock(&e->mu);
    return b ? &b->s : NULL;
}

void engine_snapshot_release(Engine *e, const EngineSnapshot *s) {
    if (!s) return;
    pthread_mutex_lock(&e->mu);
    box_release_locked((SnapBox *)s);
    pthread_mutex_unlock(&e->mu);
}

/* ---------------------------------------------------------------- run folder */

static int run_file(const Engine *e, const char *name, char *out, size_t len, char *err) {
    return pk_path_join(out, len, e->run_path, name, err);
}

static int checkpoint_dir(const Engine *e, int step, char *out, size_t len, char *err) {
    char name[64];
    snprintf(name, sizeof name, "checkpoints/step-%d", step);
    return run_file(e, name, out, len, err);
}

/* Reads checkpoints/latest ("step-N"); returns N or -1. */
static int read_latest(const char *run_path) {
    char path[CONFIG_PATH_LEN + 64], err[PK_ERR_LEN];
    if (pk_path_join(path, sizeof path, run_path, "checkpoints/latest", err) != PK_OK) return -1;
    char *text = NULL;
    size_t len = 0;
    if (pk_read_file(path, &text, &len, err) != PK_OK) return -1;
    int step = -1;
    if (sscanf(text, "step-%d", &step) != 1 || step < 0) step = -1;
    free(text);
    return step;
}

static int remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char child[4096];
        if (snprintf(child, sizeof child, "%s/%s", path, de->d_name) >= (int)sizeof child) {
            rc = -1;
            continue;
        }
        if (remove_tree(child) != 0) rc = -1;
    }
    closedir(d);
    if (rmdir(path) != 0) rc = -1;
    return rc;
}

/* Keeps the newest KEEP_CHECKPOINTS step-N folders (and always `keep`). */
static void prune_checkpoints(Engine *e, int keep) {
    char dir[CONFIG_PATH_LEN + 64], err[PK_ERR_LEN];
    if (run_file(e, "checkpoints", dir, sizeof dir, err) != PK_OK) return;
    DIR *d = opendir(dir);
    if (!d) return;
    int steps[4096], n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 4096) {
        int s;
        char tail;
        if (sscanf(de->d_name, "step-%d%c", &s, &tail) == 1) steps[n++] = s;
    }
    closedir(d);
    /* sort descending */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && steps[j] > steps[j - 1]; j--) {
            int t = steps[j];
            steps[j] = steps[j - 1];
            steps[j - 1] = t;
        }
    for (int i = KEEP_CHECKPOINTS; i < n; i++) {
        if (steps[i] == keep) continue;
        char path[CONFIG_PATH_LEN + 96];
        if (checkpoint_dir(e, steps[i], path, sizeof path, err) == PK_OK) remove_tree(path);
    }
}

/* Writes checkpoints/step-N (atomically, by distill_save_checkpoint) and then the
 * latest pointer (atomically). */
static int save_run_checkpoint(Engine *e, char *reply, size_t reply_len, char *err) {
    int step = distill_step_index(e->ds);
    if (e->nonfinite_flag) {
        if (e->last_ckpt_step >= 0)
            return pk_errf(err,
                           "not saved: the last step had a non-finite loss; checkpoint step-%d kept (change "
                           "settings and resume, or save to another folder)",
                           e->last_ckpt_step);
        return pk_errf(err, "not saved: the last step had a non-finite loss (save to another folder to keep it)");
    }
    char dir[CONFIG_PATH_LEN + 96], latest[CONFIG_PATH_LEN + 64];
    if (checkpoint_dir(e, step, dir, sizeof dir, err) != PK_OK) return PK_FAIL;
    if (run_file(e, "checkpoints/latest", latest, sizeof latest, err) != PK_OK) return PK_FAIL;
    if (distill_save_checkpoint(e->ds, dir, err) != PK_OK) return PK_FAIL;
    char text[64];
    int n = snprintf(text, sizeof text, "step-%d\n", step);
    if (pk_write_file_atomic(latest, text, (size_t)n, err) != PK_OK) return PK_FAIL;
    e->last_ckpt_step = step;
    prune_checkpoints(e, step);
    PkBuf line = {0};
    pk_buf_printf(&line, "{\"event\":\"checkpoint\",\"step\":%d,\"path\":", step);
    json_string(&line, dir);
    pk_buf_printf(&line, "}");
    metrics_write(e, &line);
    pk_buf_free(&line);
    engine_log(e, "step %d: checkpoint saved to checkpoints/step-%d", step, step);
    if (reply) snprintf(reply, reply_len, "saved checkpoint step-%d to %s", step, dir);
    return PK_OK;
}

/* ---------------------------------------------------------------- analyses */

static int refresh_neighbours(Engine *e, char *err) {
    if (!distill_has_prompt(e->ds)) return PK_OK;
    int P = 0, C = 0;
    if (!distill_prompt(e->ds, &P, &C) || P <= 0) return PK_OK;
    int k = e->cfg.neighbours_k;
    int *ids = malloc((size_t)P * k * sizeof *ids);
    float *sims = malloc((size_t)P * k * sizeof *sims), *drift = malloc((size_t)P * sizeof *drift);
    if (!ids || !sims || !drift) {
        free(ids), free(sims), free(drift);
        return pk_errf(err, "prompt neighbours: out of memory");
    }
    if (distill_prompt_neighbours(e->ds, k, ids, sims, drift, err) != PK_OK) {
        free(ids), free(sims), free(drift);
        return PK_FAIL;
    }
    free(e->nb_ids), free(e->nb_sims), free(e->nb_drift);
    e->nb_ids = ids, e->nb_sims = sims, e->nb_drift = drift;
    e->nb_P = P, e->nb_k = k;
    /* the top-1 similarity of each prompt vector over training: the "neighbours" chart */
    for (int p = 0; p < P && p < 8; p++) {
        char name[32];
        snprintf(name, sizeof name, "neighbour_sim_p%d", p);
        hist_push(e, name, distill_step_index(e->ds), sims[(size_t)p * k]);
    }
    return PK_OK;
}

/* Text shown for a dev record: the instruction, and its input when there is one. */
static char *dev_display(const DataRecord *r) {
    PkBuf b = {0};
    pk_buf_printf(&b, "%s", r->instruction);
    if (r->input && *r->input) pk_buf_printf(&b, "\n\n%s", r->input);
    return b.data ? b.data : strdup("");
}

/* T', T and S on one prompt text (verbatim), seeded with the run seed so changes
 * between two refreshes come from the models, not from the sampling. */
static int generate_all(Engine *e, const char *prompt, char **pt, char **t, char **s, char *err) {
    *pt = *t = *s = NULL;
    int max_new = e->cfg.eval_max_new_tokens;
    unsigned long long seed = e->cfg.seed;
    if (distill_has_prompt(e->ds) &&
        distill_generate(e->ds, DISTILL_PROMPTED_TEACHER, prompt, max_new, seed, pt, err) != PK_OK)
        goto fail;
    if (distill_has_teacher(e->ds) && distill_generate(e->ds, DISTILL_TEACHER, prompt, max_new, seed, t, err) != PK_OK)
        goto fail;
    if (distill_generate(e->ds, DISTILL_STUDENT, prompt, max_new, seed, s, err) != PK_OK) goto fail;
    return PK_OK;
fail:
    free(*pt), free(*t), free(*s);
    *pt = *t = *s = NULL;
    return PK_FAIL;
}

static void set_generations(Engine *e, char *display, char *pt, char *t, char *s) {
    free(e->dev_prompt_text), free(e->gen_pt), free(e->gen_t), free(e->gen_s);
    e->dev_prompt_text = display;
    e->gen_pt = pt, e->gen_t = t, e->gen_s = s;
    e->gen_step = distill_step_index(e->ds);
}

static int refresh_generations(Engine *e, char *err) {
    const Dataset *dev = distill_dataset(e->ds, "valid");
    if (!dev || dev->n == 0) return PK_OK;
    e->dev_count = dev->n;
    if (e->dev_index < 0 || e->dev_index >= dev->n) e->dev_index = 0;
    const DataRecord *r = &dev->recs[e->dev_index];
    char *pt, *t, *s;
    if (generate_all(e, r->prompt, &pt, &t, &s, err) != PK_OK) return PK_FAIL;
    char *display = dev_display(r);
    set_generations(e, display, pt, t, s);
    return PK_OK;
}

/* Dev (or other split) ROUGE-L of the student; for "valid", the best student is kept in best/, and
 * a run with a soft prompt also scores T' on the same records with the same decoding seed
 * ("dev_rougeL_tprime"), so a prompt that pulls the teacher away from its task shows. */
static int run_eval(Engine *e, const char *split, char *reply, size_t reply_len, char *err) {
    const Dataset *d = distill_dataset(e->ds, split);
    if (!d) return pk_errf(err, "eval: no %s split in this run (set %s_data in the config)", split, split);
    int n = e->cfg.eval_samples > 0 && e->cfg.eval_samples < d->n ? e->cfg.eval_samples : d->n;
    char **preds = calloc((size_t)n, sizeof *preds);
    if (!preds) return pk_errf(err, "eval: out of memory");
    double rouge = 0;
    int scored = 0;
    int step = distill_step_index(e->ds);
    double t0 = pk_now();
    int rc = distill_eval_rouge(e->ds, DISTILL_STUDENT, split, n, e->cfg.eval_max_new_tokens, e->cfg.seed, &rouge,
                                preds, &scored, err);
    if (rc == PK_OK) {
        /* eval/SPLIT-step-N.jsonl: what the student said and its score, record by record */
        PkBuf out = {0};
        for (int i = 0; i < scored && i < n; i++) {
            const DataRecord *r = &d->recs[i];
            double score = rouge_l_max_x100(preds[i] ? preds[i] : "", (const char *const *)r->refs, r->n_refs);
            pk_buf_printf(&out, "{\"index\":%d,\"instruction\":", i);
            json_string(&out, r->instruction);
            pk_buf_printf(&out, ",\"prediction\":");
            json_string(&out, preds[i] ? preds[i] : "");
            pk_buf_printf(&out, ",\"reference\":");
            json_string(&out, r->refs[0]);
            pk_buf_printf(&out, ",\"rougeL\":%.4f}\n", score);
        }
        char name[96], path[CONFIG_PATH_LEN + 128];
        snprintf(name, sizeof name, "eval/%s-step-%d.jsonl", split, step);
        if (run_file(e, name, path, sizeof path, err) != PK_OK ||
            pk_write_file_atomic(path, out.data ? out.data : "", out.len, err) != PK_OK)
            rc = PK_FAIL;
        pk_buf_free(&out);
    }
    for (int i = 0; i < n; i++) free(preds[i]);
    free(preds);
    if (rc != PK_OK) return PK_FAIL;

    int is_dev = !strcmp(split, "valid");
    int best = 0;
    double rouge_tp = NAN;
    if (is_dev && distill_has_prompt(e->ds) &&
        distill_eval_rouge(e->ds, DISTILL_PROMPTED_TEACHER, split, n, e->cfg.eval_max_new_tokens, e->cfg.seed,
                           &rouge_tp, NULL, NULL, err) != PK_OK)
        return PK_FAIL;
    if (is_dev) {
        e->last_eval_step = step;
        hist_push(e, "dev_rougeL", step, rouge);
        if (!isnan(rouge_tp)) hist_push(e, "dev_rougeL_tprime", step, rouge_tp);
        if (e->best_rouge < 0 || rouge > e->best_rouge) {
            char dir[CONFIG_PATH_LEN + 64], path[CONFIG_PATH_LEN + 64];
            if (run_file(e, "best", dir, sizeof dir, err) != PK_OK ||
                distill_save_checkpoint(e->ds, dir, err) != PK_OK)
                return PK_FAIL;
            char text[160];
            int len = snprintf(text, sizeof text, "{\"step\": %d, \"dev_rougeL\": %.17g, \"records\": %d}\n", step,
                               rouge, scored);
            if (run_file(e, "best.json", path, sizeof path, err) != PK_OK ||
                pk_write_file_atomic(path, text, (size_t)len, err) != PK_OK)
                return PK_FAIL;
            e->best_rouge = rouge;
            e->best_step = step;
            best = 1;
        }
    }
    PkBuf line = {0};
    pk_buf_printf(&line, "{\"event\":\"eval\",\"step\":%d,\"split\":", step);
    json_string(&line, split);
    pk_buf_printf(&line, ",\"%s\":", is_dev ? "dev_rougeL" : "rougeL");
    json_number(&line, rouge);
    if (!isnan(rouge_tp)) {
        pk_buf_printf(&line, ",\"dev_rougeL_tprime\":");
        json_number(&line, rouge_tp);
    }
    pk_buf_printf(&line, ",\"records\":%d,\"best\":%s,\"seconds\":%.3f}", scored, best ? "true" : "false",
                  pk_now() - t0);
    metrics_write(e, &line);
    pk_buf_free(&line);
    char tp[48] = "";
    if (!isnan(rouge_tp)) snprintf(tp, sizeof tp, " (T' %.2f)", rouge_tp);
    engine_log(e, "step %d: %s ROUGE-L %.2f%s over %d records%s", step, split, rouge, tp, scored,
               best ? " (best so far, saved to best/)" : "");
    if (reply)
        snprintf(reply, reply_len, "%s ROUGE-L %.2f%s over %d records at step %d%s", split, rouge, tp, scored, step,
                 best ? " (best so far, saved to best/)" : "");
    return PK_OK;
}

static int run_exposure(Engine *e, char *reply, size_t reply_len, char *err) {
    if (!distill_has_teacher(e->ds))
        return pk_errf(err, "exposure needs a teacher as the oracle; method %s has none", e->cfg.method);
    if (!distill_dataset(e->ds, "valid")) return pk_errf(err, "exposure: no valid split in this run");
    int L = e->cfg.exposure_len;
    double *curve = malloc((size_t)L * sizeof *curve);
    if (!curve) return pk_errf(err, "exposure: out of memory");
    int which = distill_has_prompt(e->ds) ? DISTILL_PROMPTED_TEACHER : DISTILL_TEACHER;
    int step = distill_step_index(e->ds);
    if (distill_exposure(e->ds, which, "valid", e->cfg.exposure_prompts, e->cfg.exposure_samples, L, e->cfg.seed,
                         curve, err) != PK_OK) {
        free(curve);
        return PK_FAIL;
    }
    if (e->n_exposure == ENGINE_MAX_CURVES) {
        free(e->exposure[0].curve);
        memmove(e->exposure, e->exposure + 1, (ENGINE_MAX_CURVES - 1) * sizeof *e->exposure);
        e->n_exposure--;
    }
    e->exposure[e->n_exposure].step = step;
    e->exposure[e->n_exposure].n = L;
    e->exposure[e->n_exposure].curve = curve;
    e->n_exposure++;
    hist_push(e, "exaccerr", step, curve[L - 1]);
    PkBuf line = {0};
    pk_buf_printf(&line, "{\"event\":\"exposure\",\"step\":%d,\"oracle\":\"%s\",\"len\":%d,\"exaccerr\":[", step,
                  which == DISTILL_PROMPTED_TEACHER ? "prompted_teacher" : "teacher", L);
    for (int i = 0; i < L; i++) {
        if (i) pk_buf_append(&line, ",", 1);
        json_number(&line, curve[i]);
    }
    pk_buf_printf(&line, "]}");
    metrics_write(e, &line);
    pk_buf_free(&line);
    engine_log(e, "step %d: ExAccErr(%d) = %.2f%%", step, L, curve[L - 1]);
    if (reply) snprintf(reply, reply_len, "ExAccErr at l=%d: %.2f%% (step %d)", L, curve[L - 1], step);
    return PK_OK;
}

/* ---------------------------------------------------------------- commands on the worker */

static void complete(Engine *e, Cmd *c, int rc) {
    pthread_mutex_lock(&e->mu);
    c->rc = rc;
    c->done = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* The worker leaves RUNNING: whoever waits for steps hears about it. */
static int refresh_neighbours(Engine *e, char *err);
static void go_idle(Engine *e, EngineState st, const char *msg, int waiter_rc) {
    /* fresh neighbours come with the idle state ("on pause"): they are cheap */
    char nerr[PK_ERR_LEN];
    if (e->ds && refresh_neighbours(e, nerr) != PK_OK) engine_log(e, "prompt neighbours: %s", nerr);
    set_state(e, st, msg);
    if (e->step_waiter) {
        if (waiter_rc != PK_OK) snprintf(e->step_waiter->err, PK_ERR_LEN, "%s", msg ? msg : "interrupted");
        Cmd *w = e->step_waiter;
        e->step_waiter = NULL;
        complete(e, w, waiter_rc);
    }
    e->budget = -1;
}

static void write_set_event(Engine *e, const char *key, const char *old, const char *new_value) {
    PkBuf line = {0};
    pk_buf_printf(&line, "{\"event\":\"set\",\"step\":%d,\"key\":", distill_step_index(e->ds));
    json_string(&line, key);
    pk_buf_printf(&line, ",\"old\":");
    json_value_text(&line, old);
    pk_buf_printf(&line, ",\"new\":");
    json_value_text(&line, new_value);
    pk_buf_printf(&line, "}");
    metrics_write(e, &line);
    pk_buf_free(&line);
}

static void write_event(Engine *e, const char *name) {
    PkBuf line = {0};
    pk_buf_printf(&line, "{\"event\":\"%s\",\"step\":%d}", name, e->ds ? distill_step_index(e->ds) : 0);
    metrics_write(e, &line);
    pk_buf_free(&line);
}

static int run_finished(Engine *e) { return distill_step_index(e->ds) >= e->cfg.steps; }

/* Returns 1 when the worker should leave its loop. */
static int apply_command(Engine *e, Cmd *c) {
    char local_err[PK_ERR_LEN];
    char *err = c->err ? c->err : local_err;
    if (c->kind == CMD_STOP) {
        write_event(e, "stop");
        engine_log(e, "stopped");
        EngineState st = e->state == ENGINE_RUNNING || e->state == ENGINE_LOADING ? ENGINE_PAUSED : e->state;
        go_idle(e, st, "stopped", PK_FAIL);
        complete(e, c, PK_OK);
        return 1;
    }
    if (!e->ds) {
        char msg[300];
        pthread_mutex_lock(&e->mu);
        snprintf(msg, sizeof msg, "%s", e->message);
        pthread_mutex_unlock(&e->mu);
        pk_errf(err, "the run did not load: %s", msg);
        complete(e, c, PK_FAIL);
        return 0;
    }
    int rc = PK_OK;
    switch (c->kind) {
    case CMD_PAUSE:
        if (e->state == ENGINE_RUNNING) {
            char msg[96];
            snprintf(msg, sizeof msg, "paused at step %d", distill_step_index(e->ds));
            write_event(e, "pause");
            engine_log(e, "%s", msg);
            go_idle(e, ENGINE_PAUSED, msg, PK_OK);
            complete(e, c, PK_OK);
            return 0;
        }
        break;
    case CMD_RESUME:
    case CMD_RUN_STEPS: {
        if (c->kind == CMD_RUN_STEPS && c->n <= 0) {
            rc = pk_errf(err, "step: expected a number of steps >= 1, got %d", c->n);
            break;
        }
        if (e->state == ENGINE_FAILED) {
            rc = pk_errf(err, "the run failed: %s", e->message);
            break;
        }
        if (run_finished(e)) {
            rc = pk_errf(err, "the run is finished (step %d of %d); raise 'steps' to continue",
                         distill_step_index(e->ds), e->cfg.steps);
            break;
        }
        if (e->step_waiter) { /* a newer order replaces an older one */
            Cmd *w = e->step_waiter;
            e->step_waiter = NULL;
            complete(e, w, PK_OK);
        }
        e->budget = c->kind == CMD_RUN_STEPS ? c->n : -1;
        if (c->kind == CMD_RESUME) e->session_steps = 0;
        write_event(e, "resume");
        engine_log(e, c->kind == CMD_RESUME ? "running from step %d" : "running %d step(s)",
                   c->kind == CMD_RESUME ? distill_step_index(e->ds) : c->n);
        set_state(e, ENGINE_RUNNING, "running");
        if (c->kind == CMD_RUN_STEPS && c->wait) {
            e->step_waiter = c; /* completed when the steps are done or the run stops */
            return 0;
        }
        break;
    }
    case CMD_SET: {
        if (!config_key_help(c->key)) {
            RunConfig probe = e->cfg;
            rc = config_set(&probe, c->key, c->value, err); /* the unknown-key message */
            break;
        }
        if (!config_key_is_live(c->key)) {
            char live[400];
            size_t used = 0;
            live[0] = 0;
            for (const char *const *k = config_keys(); *k; k++)
                if (config_key_is_live(*k) && used + strlen(*k) + 3 < sizeof live)
                    used += (size_t)snprintf(live + used, sizeof live - used, "%s%s", used ? ", " : "", *k);
            rc = pk_errf(err, "key '%s' is fixed for the run (live keys: %s)", c->key, live);
            break;
        }
        RunConfig next = e->cfg;
        if (config_set(&next, c->key, c->value, err) != PK_OK) {
            rc = PK_FAIL;
            break;
        }
        if (next.steps < distill_step_index(e->ds)) {
            rc = pk_errf(err, "key 'steps': expected at least the current step (%d), got %d",
                         distill_step_index(e->ds), next.steps);
            break;
        }
        if (next.stop_after > next.steps) {
            rc = pk_errf(err, "key '%s': stop_after (%d) must be at most steps (%d)", c->key, next.stop_after,
                         next.steps);
            break;
        }
        if (distill_apply_config(e->ds, &next, err) != PK_OK) {
            rc = PK_FAIL;
            break;
        }
        char old[CONFIG_PATH_LEN + 64], now[CONFIG_PATH_LEN + 64];
        config_get(&e->cfg, c->key, old, sizeof old, err);
        config_get(&next, c->key, now, sizeof now, err);
        pthread_mutex_lock(&e->mu);
        e->cfg = next;
        pthread_mutex_unlock(&e->mu);
        write_set_event(e, c->key, old, now);
        /* the resolved config follows the live changes, so it always describes the run */
        char path[CONFIG_PATH_LEN + 64], werr[PK_ERR_LEN];
        if (run_file(e, "config.json", path, sizeof path, werr) != PK_OK || config_save_json(&next, path, werr) != PK_OK)
            engine_log(e, "config.json not updated: %s", werr);
        engine_log(e, "step %d: set %s %s -> %s", distill_step_index(e->ds), c->key, old, now);
        if (c->reply) snprintf(c->reply, c->reply_len, "%s = %s (was %s)", c->key, now, old);
        if (e->state == ENGINE_FINISHED && !run_finished(e)) set_state(e, ENGINE_PAUSED, "paused (steps raised)");
        publish(e);
        break;
    }
    case CMD_EVAL:
        rc = run_eval(e, c->split && *c->split ? c->split : "valid", c->reply, c->reply_len, err);
        publish(e);
        break;
    case CMD_GENERATE: {
        const Dataset *train = distill_dataset(e->ds, "train");
        int verbatim = train && !strcmp(train->format, "plain");
        char *prompt = verbatim ? strdup(c->text) : data_format_prompt(c->text, NULL);
        if (!prompt) {
            rc = pk_errf(err, "generate: out of memory");
            break;
        }
        char *pt, *t, *s;
        rc = generate_all(e, prompt, &pt, &t, &s, err);
        free(prompt);
        if (rc != PK_OK) break;
        if (c->reply)
            snprintf(c->reply, c->reply_len, "T': %s\nT:  %s\nS:  %s", pt ? pt : "(no prompted teacher)",
                     t ? t : "(no teacher)", s ? s : "");
        set_generations(e, strdup(c->text), pt, t, s);
        publish(e);
        break;
    }
    case CMD_EXPOSURE:
        rc = run_exposure(e, c->reply, c->reply_len, err);
        publish(e);
        break;
    case CMD_SAVE:
        if (c->dir && *c->dir) {
            rc = distill_save_checkpoint(e->ds, c->dir, err);
            if (rc == PK_OK) {
                engine_log(e, "step %d: saved to %s", distill_step_index(e->ds), c->dir);
                if (c->reply)
                    snprintf(c->reply, c->reply_len, "saved step %d to %s", distill_step_index(e->ds), c->dir);
            }
        } else {
            rc = save_run_checkpoint(e, c->reply, c->reply_len, err);
        }
        publish(e);
        break;
    case CMD_SELECT_DEV: {
        const Dataset *dev = distill_dataset(e->ds, "valid");
        if (!dev || dev->n == 0) {
            rc = pk_errf(err, "no dev prompts: the run has no valid split");
            break;
        }
        e->dev_index = (int)(((long long)e->dev_index + c->n) % dev->n);
        if (e->dev_index < 0) e->dev_index += dev->n;
        rc = refresh_generations(e, err);
        publish(e);
        break;
    }
    case CMD_STOP: break;
    }
    complete(e, c, rc);
    return 0;
}

/* ---------------------------------------------------------------- a step */

static void nonfinite_pause(Engine *e, int step) {
    char msg[256];
    if (e->last_ckpt_step >= 0)
        snprintf(msg, sizeof msg, "non-finite loss at step %d; paused, last good checkpoint step-%d kept", step,
                 e->last_ckpt_step);
    else
        snprintf(msg, sizeof msg, "non-finite loss at step %d; paused, no checkpoint written yet", step);
    e->nonfinite_flag = 1;
    PkBuf line = {0};
    pk_buf_printf(&line, "{\"event\":\"nonfinite\",\"step\":%d,\"last_checkpoint\":%d}", step, e->last_ckpt_step);
    metrics_write(e, &line);
    pk_buf_free(&line);
    engine_log(e, "%s", msg);
    go_idle(e, ENGINE_PAUSED, msg, PK_FAIL);
}

static void do_step(Engine *e) {
    DistillStepStats st;
    memset(&st, 0, sizeof st);
    char err[PK_ERR_LEN] = "";
    double t0 = pk_now();
    if (distill_step(e->ds, &st, err) != PK_OK) {
        char msg[300];
        snprintf(msg, sizeof msg, "step %d failed: %.270s", distill_step_index(e->ds) + 1, err);
        engine_log(e, "%s", msg);
        go_idle(e, ENGINE_FAILED, msg, PK_FAIL);
        return;
    }
    pthread_mutex_lock(&e->mu);
    int inject = e->inject_nonfinite_step;
    pthread_mutex_unlock(&e->mu);
    int step = st.step;
    for (int i = 0; i < st.n_losses; i++)
        if (!isfinite(st.losses[i])) st.nonfinite = 1;
    if (st.nonfinite) { /* distill_step did not count it: it was the next step */
        nonfinite_pause(e, distill_step_index(e->ds) + 1);
        return;
    }
    if (inject > 0 && step == inject) { /* test hook: the step was applied, then called non-finite */
        nonfinite_pause(e, step);
        return;
    }
    e->nonfinite_flag = 0;
    e->session_steps++;
    if (e->budget > 0) e->budget--;

    double secs = st.seconds > 0 ? st.seconds : pk_now() - t0;
    double tps = secs > 0 ? st.tokens / secs : 0, gflops = secs > 0 ? st.flops / secs / 1e9 : 0;
    e->last_tps = tps, e->last_gflops = gflops;
    /* smoothed for display; the first step seeds the average */
    double a = e->tps_ema > 0 ? 0.2 : 1.0;
    e->tps_ema += a * (tps - e->tps_ema);
    e->gflops_ema += a * (gflops - e->gflops_ema);

    for (int i = 0; i < st.n_losses; i++) hist_push(e, st.loss_names[i], step, st.losses[i]);
    hist_push(e, "lr", step, st.lr);
    if (distill_has_prompt(e->ds)) hist_push(e, "prompt_lr", step, st.prompt_lr);
    hist_push(e, "grad_norm", step, st.grad_norm);
    hist_push(e, "tokens_per_s", step, tps);

    /* periodic work, counted in the step's wall time */
    const RunConfig *cfg = &e->cfg;
    int spe = distill_steps_per_epoch(e->ds);
    int eval_due = cfg->eval_interval > 0 ? step % cfg->eval_interval == 0 : (spe > 0 && step % spe == 0);
    int finished = step >= cfg->steps;
    int stop_due = !finished && cfg->stop_after > 0 && e->session_steps >= cfg->stop_after;
    if (finished && e->last_eval_step != step) eval_due = 1;
    if (eval_due) {
        if (run_eval(e, "valid", NULL, 0, err) != PK_OK) engine_log(e, "step %d: eval failed: %s", step, err);
        /* a checkpoint per evaluation: a crash loses at most one eval interval */
        else if (!finished && !stop_due && save_run_checkpoint(e, NULL, 0, err) != PK_OK)
            engine_log(e, "step %d: checkpoint failed: %s", step, err);
    }
    if (cfg->gen_interval > 0 && step % cfg->gen_interval == 0) {
        if (refresh_neighbours(e, err) != PK_OK) engine_log(e, "step %d: prompt neighbours: %s", step, err);
        if (refresh_generations(e, err) != PK_OK) engine_log(e, "step %d: generations: %s", step, err);
    }
    if (cfg->exposure_interval > 0 && step % cfg->exposure_interval == 0 && distill_has_teacher(e->ds))
        if (run_exposure(e, NULL, 0, err) != PK_OK) engine_log(e, "step %d: exposure: %s", step, err);

    double wall = pk_now() - t0;
    e->elapsed_s += wall;
    e->step_s_ema = e->step_s_ema > 0 ? e->step_s_ema + 0.1 * (wall - e->step_s_ema) : wall;

    PkBuf line = {0};
    pk_buf_printf(&line, "{\"step\":%d", step);
    for (int i = 0; i < st.n_losses; i++) {
        pk_buf_printf(&line, ",");
        json_string(&line, st.loss_names[i]);
        pk_buf_printf(&line, ":");
        json_number(&line, st.losses[i]);
    }
    pk_buf_printf(&line, ",\"lr\":");
    json_number(&line, st.lr);
    pk_buf_printf(&line, ",\"prompt_lr\":");
    json_number(&line, st.prompt_lr);
    pk_buf_printf(&line, ",\"grad_norm\":");
    json_number(&line, st.grad_norm);
    pk_buf_printf(&line, ",\"prompt_grad_norm\":");
    json_number(&line, st.prompt_grad_norm);
    pk_buf_printf(&line, ",\"response_tokens\":%d,\"tokens\":%.0f,\"tokens_per_s\":%.1f,\"gflops\":%.3f,"
                         "\"step_s\":%.4f,\"elapsed_s\":%.3f}",
                  st.response_tokens, st.tokens, tps, gflops, secs, e->elapsed_s);
    /* the step line goes before its eval/checkpoint events would read better, but
     * those ran above; order within one step does not matter to readers keyed by step */
    metrics_write(e, &line);
    pk_buf_free(&line);

    pthread_mutex_lock(&e->mu);
    EngineStepHook hook = e->step_hook;
    void *hook_ctx = e->step_hook_ctx;
    pthread_mutex_unlock(&e->mu);
    if (hook) {
        const char *names[DISTILL_MAX_LOSSES];
        for (int i = 0; i < st.n_losses; i++) names[i] = st.loss_names[i];
        hook(hook_ctx, step, cfg->steps, st.n_losses, names, st.losses);
    }

    if (finished) {
        char msg[200];
        if (save_run_checkpoint(e, NULL, 0, err) != PK_OK) {
            engine_log(e, "step %d: final checkpoint failed: %s", step, err);
            snprintf(msg, sizeof msg, "finished at step %d; final checkpoint failed: %.120s", step, err);
        } else {
            snprintf(msg, sizeof msg, "finished at step %d; checkpoint step-%d saved", step, step);
        }
        write_event(e, "finished");
        engine_log(e, "%s", msg);
        go_idle(e, ENGINE_FINISHED, msg, PK_OK);
        return;
    }
    if (stop_due) {
        char msg[200];
        if (save_run_checkpoint(e, NULL, 0, err) != PK_OK)
            snprintf(msg, sizeof msg, "stopped after %d steps (stop_after); checkpoint failed: %.120s",
                     e->session_steps, err);
        else
            snprintf(msg, sizeof msg, "stopped after %d steps (stop_after); checkpoint step-%d saved",
                     e->session_steps, step);
        write_event(e, "stop_after");
        engine_log(e, "%s", msg);
        go_idle(e, ENGINE_PAUSED, msg, PK_OK);
        return;
    }
    if (e->budget == 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "paused at step %d", step);
        go_idle(e, ENGINE_PAUSED, msg, PK_OK);
        return;
    }
    publish(e);
}

/* ---------------------------------------------------------------- loading and resume */

/* On resume: keeps the lines of metrics.jsonl up to the checkpoint's step (a crash
 * may have logged steps the checkpoint does not hold), rebuilds the histories from
 * them, and restores the elapsed time and the best dev score. */
static int restore_metrics(Engine *e, int ckpt_step, char *err) {
    char path[CONFIG_PATH_LEN + 64];
    if (run_file(e, "metrics.jsonl", path, sizeof path, err) != PK_OK) return PK_FAIL;
    char *text = NULL;
    size_t len = 0;
    if (!pk_file_exists(path)) return PK_OK;
    if (pk_read_file(path, &text, &len, err) != PK_OK) return PK_FAIL;
    PkBuf kept = {0};
    char *p = text;
    while (p < text + len) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        cJSON *o = cJSON_ParseWithLength(p, n);
        int keep = 0;
        if (o && cJSON_IsObject(o)) {
            const cJSON *jstep = cJSON_GetObjectItemCaseSensitive(o, "step");
            const cJSON *jevent = cJSON_GetObjectItemCaseSensitive(o, "event");
            int step = cJSON_IsNumber(jstep) ? (int)jstep->valuedouble : -1;
            keep = step >= 0 && step <= ckpt_step;
            if (keep && !jevent) {
                for (const cJSON *it = o->child; it; it = it->next) {
                    if (!cJSON_IsNumber(it) || !strcmp(it->string, "step")) continue;
                    if (strstr(it->string, "loss") || !strcmp(it->string, "lr") ||
                        !strcmp(it->string, "grad_norm") || !strcmp(it->string, "tokens_per_s") ||
                        (!strcmp(it->string, "prompt_lr") && distill_has_prompt(e->ds)) ||
                        !strcmp(it->string, "on_policy") || !strcmp(it->string, "kl_tprime_t"))
                        hist_push(e, it->string, step, it->valuedouble);
                }
                const cJSON *el = cJSON_GetObjectItemCaseSensitive(o, "elapsed_s");
                if (cJSON_IsNumber(el)) e->elapsed_s = el->valuedouble;
            } else if (keep && cJSON_IsString(jevent) && !strcmp(jevent->valuestring, "eval")) {
                const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "dev_rougeL");
                if (cJSON_IsNumber(r)) {
                    hist_push(e, "dev_rougeL", step, r->valuedouble);
                    e->last_eval_step = step;
                }
                const cJSON *rt = cJSON_GetObjectItemCaseSensitive(o, "dev_rougeL_tprime");
                if (cJSON_IsNumber(r) && cJSON_IsNumber(rt)) hist_push(e, "dev_rougeL_tprime", step, rt->valuedouble);
            }
        }
        cJSON_Delete(o);
        if (keep) {
            pk_buf_append(&kept, p, n);
            pk_buf_append(&kept, "\n", 1);
        }
        p += n + 1;
    }
    free(text);
    int rc = pk_write_file_atomic(path, kept.data ? kept.data : "", kept.len, err);
    pk_buf_free(&kept);
    if (rc != PK_OK) return PK_FAIL;

    char best[CONFIG_PATH_LEN + 64];
    if (run_file(e, "best.json", best, sizeof best, err) == PK_OK && pk_file_exists(best)) {
        char *bt = NULL;
        size_t bl = 0;
        if (pk_read_file(best, &bt, &bl, err) == PK_OK) {
            cJSON *o = cJSON_Parse(bt);
            const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "dev_rougeL");
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "step");
            if (cJSON_IsNumber(r) && cJSON_IsNumber(s) && s->valuedouble <= ckpt_step) {
                e->best_rouge = r->valuedouble;
                e->best_step = (int)s->valuedouble;
            }
            cJSON_Delete(o);
            free(bt);
        }
    }
    return PK_OK;
}

static int load(Engine *e, char *err) {
    RunConfig cfg = e->cfg;
    if (distill_create(&e->ds, &cfg, err) != PK_OK) {
        e->ds = NULL;
        return PK_FAIL;
    }
    if (e->resume_dir[0]) {
        int step = read_latest(e->run_path);
        char dir[CONFIG_PATH_LEN + 96];
        if (step < 0) return pk_errf(err, "%s: no checkpoint to resume from (checkpoints/latest missing)", e->run_path);
        if (checkpoint_dir(e, step, dir, sizeof dir, err) != PK_OK) return PK_FAIL;
        if (distill_load_checkpoint(e->ds, dir, err) != PK_OK) return PK_FAIL;
        e->last_ckpt_step = step;
        if (restore_metrics(e, step, err) != PK_OK) return PK_FAIL;
    }
    char path[CONFIG_PATH_LEN + 64];
    if (run_file(e, "metrics.jsonl", path, sizeof path, err) != PK_OK) return PK_FAIL;
    e->metrics = fopen(path, "a");
    if (!e->metrics) return pk_errf(err, "%s: cannot open for appending: %s", path, strerror(errno));
    if (e->resume_dir[0]) {
        PkBuf line = {0};
        pk_buf_printf(&line, "{\"event\":\"resume_from\",\"step\":%d,\"checkpoint\":\"step-%d\"}",
                      distill_step_index(e->ds), e->last_ckpt_step);
        metrics_write(e, &line);
        pk_buf_free(&line);
        engine_log(e, "resumed from checkpoint step-%d", e->last_ckpt_step);
    }
    const Dataset *dev = distill_dataset(e->ds, "valid");
    e->dev_count = dev ? dev->n : 0;
    if (dev && dev->n) {
        free(e->dev_prompt_text);
        e->dev_prompt_text = dev_display(&dev->recs[0]);
    }
    return PK_OK;
}

static void *worker_main(void *arg) {
    Engine *e = arg;
    char err[PK_ERR_LEN] = "";
    int autostart = e->budget == -2;
    e->budget = -1;
    if (load(e, err) != PK_OK) {
        engine_log(e, "loading failed: %s", err);
        distill_free(e->ds); /* half-loaded (a resume that failed): nothing may use it */
        e->ds = NULL;
        set_state(e, ENGINE_FAILED, err);
    } else {
        engine_log(e, "loaded %s run at step %d of %d", e->cfg.method, distill_step_index(e->ds), e->cfg.steps);
        /* the prompt's neighbours from the start (cheap); generations only when paused (they take a while) */
        if (refresh_neighbours(e, err) != PK_OK) engine_log(e, "prompt neighbours: %s", err);
        if (run_finished(e)) {
            set_state(e, ENGINE_FINISHED, "finished (raise 'steps' to continue)");
        } else if (autostart) {
            e->session_steps = 0;
            set_state(e, ENGINE_RUNNING, "running");
        } else {
            char msg[96];
            snprintf(msg, sizeof msg, "paused at step %d", distill_step_index(e->ds));
            if (e->cfg.gen_interval > 0 && refresh_generations(e, err) != PK_OK)
                engine_log(e, "generations: %s", err);
            set_state(e, ENGINE_PAUSED, msg);
        }
    }

    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->quit && !e->queue_head && e->state != ENGINE_RUNNING) pthread_cond_wait(&e->cv, &e->mu);
        if (e->quit) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        Cmd *c = e->queue_head;
        if (c) {
            e->queue_head = c->next;
            if (!e->queue_head) e->queue_tail = NULL;
        }
        pthread_mutex_unlock(&e->mu);
        if (c) {
            if (apply_command(e, c)) break;
            continue;
        }
        do_step(e);
    }

    /* nobody may wait forever on a worker that has left */
    pthread_mutex_lock(&e->mu);
    e->worker_done = 1;
    Cmd *c = e->queue_head;
    e->queue_head = e->queue_tail = NULL;
    for (; c; c = c->next) {
        if (c->err) pk_errf(c->err, "the engine is stopped");
        c->rc = PK_FAIL;
        c->done = 1;
    }
    if (e->step_waiter) {
        if (e->step_waiter->err) pk_errf(e->step_waiter->err, "the engine is stopped");
        e->step_waiter->rc = PK_FAIL;
        e->step_waiter->done = 1;
        e->step_waiter = NULL;
    }
    if (e->state == ENGINE_RUNNING || e->state == ENGINE_LOADING) e->state = ENGINE_PAUSED;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    publish(e);
    return NULL;
}

/* ---------------------------------------------------------------- client side */

/* Queues a command and waits until the worker has applied it. */
static int submit(Engine *e, Cmd *c, char *err) {
    char local[PK_ERR_LEN];
    if (!err) err = local;
    c->err = err;
    c->done = 0;
    c->rc = PK_FAIL;
    c->next = NULL;
    pthread_mutex_lock(&e->mu);
    if (e->worker_done) {
        pthread_mutex_unlock(&e->mu);
        return pk_errf(err, "the engine is stopped");
    }
    if (e->queue_tail)
        e->queue_tail->next = c;
    else
        e->queue_head = c;
    e->queue_tail = c;
    pthread_cond_broadcast(&e->cv);
    while (!c->done) pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    return c->rc;
}

int engine_pause(Engine *e, char *err) {
    Cmd c = {.kind = CMD_PAUSE};
    return submit(e, &c, err);
}

int engine_resume(Engine *e, char *err) {
    Cmd c = {.kind = CMD_RESUME};
    return submit(e, &c, err);
}

int engine_run_steps(Engine *e, int n, char *err) {
    Cmd c = {.kind = CMD_RUN_STEPS, .n = n};
    return submit(e, &c, err);
}

int engine_step(Engine *e, int n, char *err) {
    Cmd c = {.kind = CMD_RUN_STEPS, .n = n, .wait = 1};
    return submit(e, &c, err);
}

int engine_set(Engine *e, const char *key, const char *value, char *err) {
    Cmd c = {.kind = CMD_SET, .key = key, .value = value};
    return submit(e, &c, err);
}

int engine_get(Engine *e, const char *key, char *value, size_t len, char *err) {
    char local[PK_ERR_LEN];
    pthread_mutex_lock(&e->mu);
    int rc = config_get(&e->cfg, key, value, len, err ? err : local);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int engine_eval(Engine *e, const char *split, char *reply, size_t len, char *err) {
    if (split && *split && strcmp(split, "train") && strcmp(split, "valid") && strcmp(split, "test"))
        return pk_errf(err, "eval: unknown split '%s' (expected train, valid or test)", split);
    Cmd c = {.kind = CMD_EVAL, .split = split, .reply = reply, .reply_len = len};
    if (reply && len) reply[0] = 0;
    return submit(e, &c, err);
}

int engine_generate(Engine *e, const char *text, char *reply, size_t len, char *err) {
    if (!text || !*text) return pk_errf(err, "generate: expected a non-empty prompt text");
    Cmd c = {.kind = CMD_GENERATE, .text = text, .reply = reply, .reply_len = len};
    if (reply && len) reply[0] = 0;
    return submit(e, &c, err);
}

int engine_exposure(Engine *e, char *reply, size_t len, char *err) {
    Cmd c = {.kind = CMD_EXPOSURE, .reply = reply, .reply_len = len};
    if (reply && len) reply[0] = 0;
    return submit(e, &c, err);
}

int engine_save(Engine *e, const char *dir, char *reply, size_t len, char *err) {
    Cmd c = {.kind = CMD_SAVE, .dir = dir, .reply = reply, .reply_len = len};
    if (reply && len) reply[0] = 0;
    return submit(e, &c, err);
}

int engine_select_dev(Engine *e, int delta, char *err) {
    Cmd c = {.kind = CMD_SELECT_DEV, .n = delta};
    return submit(e, &c, err);
}

int engine_stop(Engine *e, char *err) {
    Cmd c = {.kind = CMD_STOP};
    pthread_mutex_lock(&e->mu);
    int done = e->worker_done;
    pthread_mutex_unlock(&e->mu);
    if (done) return PK_OK;
    return submit(e, &c, err);
}

void engine_debug_inject_nonfinite(Engine *e, int step) {
    pthread_mutex_lock(&e->mu);
    e->inject_nonfinite_step = step;
    pthread_mutex_unlock(&e->mu);
}

EngineState engine_wait_idle(Engine *e, double timeout_s) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    double whole = floor(timeout_s);
    deadline.tv_sec += (time_t)whole;
    deadline.tv_nsec += (long)((timeout_s - whole) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&e->mu);
    while ((e->state == ENGINE_RUNNING || e->state == ENGINE_LOADING || e->queue_head) && !e->worker_done)
        if (pthread_cond_timedwait(&e->cv, &e->mu, &deadline) == ETIMEDOUT) break;
    EngineState st = e->state;
    pthread_mutex_unlock(&e->mu);
    return st;
}

struct DistillState *engine_distill_state(Engine *e) { return e->ds; }

void engine_set_step_hook(Engine *e, EngineStepHook fn, void *ctx) {
    pthread_mutex_lock(&e->mu);
    e->step_hook = fn;
    e->step_hook_ctx = ctx;
    pthread_mutex_unlock(&e->mu);
}

void engine_log_line(Engine *e, const char *line) {
    engine_log(e, "%s", line);
    /* while paused nothing else publishes: make the line visible now */
    pthread_mutex_lock(&e->mu);
    int idle = e->state != ENGINE_RUNNING && e->state != ENGINE_LOADING;
    pthread_mutex_unlock(&e->mu);
    if (idle) publish(e);
}

const char *engine_run_path(const Engine *e) { return e->run_path; }

/* ---------------------------------------------------------------- create / destroy */

/* Fixed keys must match the run being resumed (live keys may differ: that is how a
 * resumed run changes them). Paths may differ (a moved folder); shapes are checked
 * by distill_load_checkpoint. */
static int check_resume_config(const RunConfig *cfg, const char *run_path, char *err) {
    char path[CONFIG_PATH_LEN + 64];
    if (pk_path_join(path, sizeof path, run_path, "config.json", err) != PK_OK) return PK_FAIL;
    if (!pk_file_exists(path)) return PK_OK;
    RunConfig saved;
    config_defaults(&saved);
    if (config_load_json(&saved, path, err) != PK_OK) return PK_FAIL;
    static const char *const fixed[] = {"method",       "seed",         "batch_size", "max_prompt_len",
                                        "prompt_len",   "prompt_init_text", "warmup_steps", "weight_decay",
                                        "clip_norm",    "gkd_beta",     "gkd_student_frac", "skew_alpha"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        char a[300], b[300];
        config_get(cfg, fixed[i], a, sizeof a, err);
        config_get(&saved, fixed[i], b, sizeof b, err);
        if (strcmp(a, b))
            return pk_errf(err, "%s: key '%s' is '%s' in the run but '%s' here; only live keys may change on resume",
                           path, fixed[i], b, a);
    }
    return PK_OK;
}

/* run_dir/name, or name-2, name-3, ... when that folder already holds a run. */
static int pick_run_path(RunConfig *cfg, char *out, size_t len, char *err) {
    char base[64];
    snprintf(base, sizeof base, "%s", cfg->name);
    for (int i = 1; i < 10000; i++) {
        char name[80];
        if (i == 1)
            snprintf(name, sizeof name, "%s", base);
        else
            snprintf(name, sizeof name, "%.50s-%d", base, i);
        if (pk_path_join(out, len, cfg->run_dir, name, err) != PK_OK) return PK_FAIL;
        char probe[CONFIG_PATH_LEN + 64];
        snprintf(probe, sizeof probe, "%s/metrics.jsonl", out);
        char probe2[CONFIG_PATH_LEN + 64];
        snprintf(probe2, sizeof probe2, "%s/config.json", out);
        if (!pk_file_exists(probe) && !pk_file_exists(probe2)) {
            snprintf(cfg->name, sizeof cfg->name, "%.63s", name);
            return PK_OK;
        }
    }
    return pk_errf(err, "%s: too many runs named '%s'", cfg->run_dir, base);
}

int engine_create(Engine **out, const RunConfig *cfg_in, const char *resume_dir, int autostart, char *err) {
    *out = NULL;
    RunConfig cfg = *cfg_in;
    if (config_validate(&cfg, err) != PK_OK) return PK_FAIL;
    Engine *e = calloc(1, sizeof *e);
    if (!e) return pk_errf(err, "engine: out of memory");
    e->last_ckpt_step = -1;
    e->last_eval_step = -1;
    e->best_rouge = -1;
    e->budget = autostart ? -2 : -1; /* -2 tells the worker to start running once loaded */
    e->state = ENGINE_LOADING;
    snprintf(e->message, sizeof e->message, "loading");

    if (resume_dir && *resume_dir) {
        char resolved[CONFIG_PATH_LEN];
        RunConfig probe = cfg;
        if (config_set(&probe, "run_dir", resume_dir, err) != PK_OK) goto fail;
        snprintf(resolved, sizeof resolved, "%s", probe.run_dir);
        size_t n = strlen(resolved);
        while (n > 1 && resolved[n - 1] == '/') resolved[--n] = 0;
        if (!pk_is_dir(resolved)) {
            pk_errf(err, "%s: not a run folder", resume_dir);
            goto fail;
        }
        if (read_latest(resolved) < 0) {
            pk_errf(err, "%s: no checkpoint to resume from (checkpoints/latest is missing)", resume_dir);
            goto fail;
        }
        if (check_resume_config(&cfg, resolved, err) != PK_OK) goto fail;
        /* the run folder is where it is: run_dir and name follow it */
        char *slash = strrchr(resolved, '/');
        snprintf(cfg.name, sizeof cfg.name, "%.63s", slash ? slash + 1 : resolved);
        if (slash && slash != resolved) {
            *slash = 0;
            snprintf(cfg.run_dir, sizeof cfg.run_dir, "%s", resolved);
            *slash = '/';
        } else if (slash) {
            snprintf(cfg.run_dir, sizeof cfg.run_dir, "/");
        }
        snprintf(e->run_path, sizeof e->run_path, "%s", resolved);
        snprintf(e->resume_dir, sizeof e->resume_dir, "%s", resolved);
    } else {
        if (pick_run_path(&cfg, e->run_path, sizeof e->run_path, err) != PK_OK) goto fail;
    }
    static const char *const sub[] = {"checkpoints", "plots", "eval"};
    for (size_t i = 0; i < sizeof sub / sizeof *sub; i++) {
        char d[CONFIG_PATH_LEN + 32];
        if (pk_path_join(d, sizeof d, e->run_path, sub[i], err) != PK_OK || pk_mkdirs(d, err) != PK_OK) goto fail;
    }
    char path[CONFIG_PATH_LEN + 32];
    if (pk_path_join(path, sizeof path, e->run_path, "config.json", err) != PK_OK ||
        config_save_json(&cfg, path, err) != PK_OK)
        goto fail;
    if (!e->resume_dir[0]) {
        if (pk_path_join(path, sizeof path, e->run_path, "metrics.jsonl", err) != PK_OK ||
            pk_write_file_atomic(path, "", 0, err) != PK_OK)
            goto fail;
    }
    e->cfg = cfg;
    pk_threads_init(cfg.threads);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    publish(e); /* a LOADING snapshot exists before engine_create returns: acquire never sees NULL */
    if (pthread_create(&e->thread, NULL, worker_main, e) != 0) {
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        pk_errf(err, "engine: cannot start the worker thread");
        box_free(e->current);
        goto fail;
    }
    e->thread_started = 1;
    *out = e;
    return PK_OK;
fail:
    free(e);
    return PK_FAIL;
}

void engine_destroy(Engine *e) {
    if (!e) return;
    if (e->thread_started) {
        pthread_mutex_lock(&e->mu);
        e->quit = 1;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
    }
    if (e->metrics) fclose(e->metrics);
    distill_free(e->ds);
    for (int i = 0; i < e->n_hist; i++) free(e->hist[i].x), free(e->hist[i].y);
    for (int i = 0; i < e->n_exposure; i++) free(e->exposure[i].curve);
    for (int i = 0; i < e->n_log; i++) free(e->log[i]);
    free(e->nb_ids), free(e->nb_sims), free(e->nb_drift);
    free(e->dev_prompt_text), free(e->gen_pt), free(e->gen_t), free(e->gen_s);
    box_free(e->current);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}
