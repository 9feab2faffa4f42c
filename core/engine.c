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
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "dist.h"
#include "distill.h"
#include "parallel.h"
#include "rouge.h"
#include "run_dir.h"
#include "safetensors.h"
#include "tokenizer.h"

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
    CMD_STOP,
    CMD_WORK
} CmdKind;

/* A posted command, owned by the queue from engine_post until its reply is queued as
 * an event: its strings are copies, its reply and error buffers its own. */
typedef struct Cmd {
    unsigned long id;
    CmdKind kind;
    int n;         /* steps, or dev delta */
    int wait;      /* CMD_RUN_STEPS: done only when the steps are done */
    char *key, *value, *text, *split, *dir;
    EngineWorkFn work; /* CMD_WORK */
    void *ctx;
    void (*ctx_free)(void *ctx);
    PkBuf output;      /* CMD_WORK: what the work said */
    char *reply;
    size_t reply_len;
    char *err;
    char err_buf[PK_ERR_LEN];
    int logged;             /* the run's log holds a line saying what the reply says */
    struct EventNode *node; /* the reply's event, allocated when posted */
    struct Cmd *next;
} Cmd;

/* A queued event: replies and what the worker reports by itself, oldest first. */
typedef struct EventNode {
    EngineEvent ev;
    struct EventNode *next;
} EventNode;

#define ENGINE_MAX_EVENTS 1024 /* events nobody polls (a headless run): the oldest are dropped, replies never */

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

struct Engine {
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on every change: queue, command done, state */

    /* guarded by mu */
    RunConfig cfg; /* the one RunConfig: the worker alone writes it (under mu); clients read the snapshot's copy */
    EngineState state;
    char message[ENGINE_MESSAGE_LEN];
    int write_errors;                        /* failed writes into the run folder */
    char write_error[ENGINE_MESSAGE_LEN];    /* the last one */
    int quit;        /* engine_destroy: leave at the next boundary */
    int worker_done; /* the worker has left its loop: commands fail at once */
    Cmd *queue_head, *queue_tail;
    unsigned long next_id;            /* the id engine_post gives the next command */
    EventNode *events_head, *events_tail; /* replies and reports, oldest first */
    int n_events;                     /* of them, events that are not replies */
    SnapBox *current;
    unsigned long version;
    int inject_nonfinite_step;
    EngineStepHook step_hook;
    void *step_hook_ctx;
    volatile sig_atomic_t interrupt_requested; /* engine_interrupt (a signal handler): pause after this step */

    /* worker only */
    DistillState *ds;
    RunDir rd;           /* the run folder and its metrics.jsonl */
    int resume_step;     /* the checkpoint a resume continues from; -1: a new run */
    int recorded;        /* the log got a record: a step, an eval, an exposure curve, a non-finite step */
    int job_failure_shown; /* data-parallel rank 0: another rank's failure has stopped the run */
    int loaded;
    int budget;          /* steps left for run_steps; -1: run to the end / stop_after */
    int session_steps;   /* steps since the last resume, for stop_after */
    Cmd *step_waiter;    /* engine_step waiting for its steps */
    int nonfinite_flag;  /* the last step attempt was non-finite: no automatic saves */
    int part_way_step;   /* data-parallel: a step failed part-way (the ranks stopped in the middle of
                          * it), so the model may hold part of it: nothing more is saved into the run */
    int last_ckpt_step;  /* -1: none */
    int last_eval_step;  /* -1: none */
    double best_rouge;   /* -1: none */
    int best_step;
    double elapsed_s, step_s_ema, tps_ema, gflops_ema;
    double last_tps, last_gflops;
    RunHistory h; /* what metrics.jsonl holds: the curves, ExAccErr curves, neighbours, generations */
    char *log[ENGINE_LOG_LINES];
    int n_log;
    int dev_index, dev_count; /* the dev prompt of the generations panel */
    int read_only;            /* engine_open: a run folder read back, no worker; commands are refused */
};

/* ---------------------------------------------------------------- small helpers */

/* A point of a series, at the run's elapsed time so far (the last step line's elapsed_s). */
static void hist_push(Engine *e, const char *name, double x, double y) {
    run_history_push(&e->h, name, x, y, e->elapsed_s);
}

static void engine_log(Engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void engine_log(Engine *e, const char *fmt, ...) {
    char line[ENGINE_MESSAGE_LEN + 512]; /* error sentences name full paths: never cut them */
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

/* ---------------------------------------------------------------- events */

/* Queues an event (mu held) and wakes whoever waits. Reports past ENGINE_MAX_EVENTS drop
 * the oldest report; replies are never dropped (someone may wait for them). */
static void push_event_locked(Engine *e, EventNode *n) {
    n->next = NULL;
    if (e->events_tail)
        e->events_tail->next = n;
    else
        e->events_head = n;
    e->events_tail = n;
    if (n->ev.kind != ENGINE_EVENT_REPLY && ++e->n_events > ENGINE_MAX_EVENTS) {
        EventNode *prev = NULL;
        for (EventNode *it = e->events_head; it; prev = it, it = it->next) {
            if (it->ev.kind == ENGINE_EVENT_REPLY) continue;
            if (prev)
                prev->next = it->next;
            else
                e->events_head = it->next;
            if (e->events_tail == it) e->events_tail = prev;
            e->n_events--;
            engine_event_clear(&it->ev);
            free(it);
            break;
        }
    }
    pthread_cond_broadcast(&e->cv);
}

static int current_step(Engine *e);

/* A report of the worker's own (not a reply): kind, the value it measured, and its sentence. */
static void emit(Engine *e, EngineEventKind kind, double value, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void emit(Engine *e, EngineEventKind kind, double value, const char *fmt, ...) {
    EventNode *n = calloc(1, sizeof *n);
    if (!n) return;
    char text[ENGINE_MESSAGE_LEN + 512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    n->ev.kind = kind;
    n->ev.value = value;
    n->ev.step = current_step(e);
    n->ev.text = strdup(text);
    pthread_mutex_lock(&e->mu);
    n->ev.state = e->state;
    push_event_locked(e, n);
    pthread_mutex_unlock(&e->mu);
}

void engine_event_clear(EngineEvent *ev) {
    if (!ev) return;
    free(ev->text);
    free(ev->output);
    memset(ev, 0, sizeof *ev);
}

/* A write into the run folder failed: counted and kept for the snapshot (the front-ends
 * show it: message line, stderr, exit status) and logged. */
static void record_write_error(Engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void record_write_error(Engine *e, const char *fmt, ...) {
    char msg[ENGINE_MESSAGE_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&e->mu);
    e->write_errors++;
    snprintf(e->write_error, sizeof e->write_error, "%s", msg);
    pthread_mutex_unlock(&e->mu);
    engine_log(e, "error: %s", msg);
    emit(e, ENGINE_EVENT_WRITE_ERROR, 0, "%s", msg);
}

/* Appends one line (built by run_line_*, deleted here) to metrics.jsonl, whole or not at all;
 * a new failure is recorded (the caller decides whether the run goes on) and returns PK_FAIL. */
static int metrics_write_json(Engine *e, struct cJSON *o) {
    char err[PK_ERR_LEN];
    int repeated = 0;
    if (run_dir_metrics_append(&e->rd, o, &repeated, err) == PK_OK) return PK_OK;
    if (!repeated) record_write_error(e, "%s", err);
    return PK_FAIL;
}

/* At the end of the session: flush, fsync and close; a failure is recorded. */
static void metrics_close(Engine *e) {
    char err[PK_ERR_LEN];
    if (run_dir_metrics_close(&e->rd, err) != PK_OK) record_write_error(e, "%s", err);
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
    s->write_errors = e->write_errors;
    snprintf(s->write_error, sizeof s->write_error, "%s", e->write_error);
    pthread_mutex_unlock(&e->mu);

    s->loaded = e->loaded;
    s->last_checkpoint_step = e->last_ckpt_step;
    if (e->ds && e->loaded && !e->nonfinite_flag && !e->part_way_step) {
        int step = distill_step_index(e->ds), base = e->last_ckpt_step > 0 ? e->last_ckpt_step : 0;
        s->unsaved_steps = step > base ? step - base : 0;
    }

    s->config = cfg;
    snprintf(s->method, sizeof s->method, "%s", cfg.method);
    snprintf(s->run_dir, sizeof s->run_dir, "%s", e->rd.path);
    s->step = e->ds ? distill_step_index(e->ds) : e->read_only ? e->h.last_step : 0;
    s->read_only = e->read_only;
    s->total_steps = cfg.steps;
    s->elapsed_s = e->elapsed_s;
    int target = cfg.steps;
    if (cfg.stop_after > 0 && s->step - e->session_steps + cfg.stop_after < target)
        target = s->step - e->session_steps + cfg.stop_after;
    s->eta_s = e->step_s_ema > 0 && target > s->step ? (target - s->step) * e->step_s_ema : 0;
    s->tokens_per_s = e->tps_ema;
    s->gflops = e->gflops_ema;

    s->n_series = e->h.n_curves < ENGINE_MAX_SERIES ? e->h.n_curves : ENGINE_MAX_SERIES;
    for (int i = 0; i < s->n_series; i++) {
        const RunCurve *h = &e->h.curves[i];
        EngineSeries *o = &s->series[i];
        snprintf(o->name, sizeof o->name, "%s", h->key);
        size_t bytes = (size_t)h->n * sizeof(double);
        double *x = box_alloc(b, bytes), *y = box_alloc(b, bytes), *t = box_alloc(b, bytes);
        if (!x || !y || !t) {
            o->n = 0;
            continue;
        }
        if (h->n) {
            memcpy(x, h->x, bytes);
            memcpy(y, h->y, bytes);
            memcpy(t, h->t, bytes);
        }
        o->n = h->n;
        o->x = x;
        o->y = y;
        o->t = t;
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

    const RunNeighbours *nb = &e->h.neighbours;
    if (nb->P > 0) {
        int P = nb->P, k = nb->k;
        const char **toks = box_alloc(b, (size_t)P * k * sizeof *toks);
        float *sims = box_alloc(b, (size_t)P * k * sizeof *sims);
        float *drift = box_alloc(b, (size_t)P * sizeof *drift);
        if (toks && sims && drift) {
            for (int i = 0; i < P * k; i++) toks[i] = box_strdup(b, nb->tokens[i]);
            memcpy(sims, nb->sims, (size_t)P * k * sizeof *sims);
            memcpy(drift, nb->drift, (size_t)P * sizeof *drift);
            s->prompt_len = P;
            s->neighbours_k = k;
            s->neighbour_tokens = toks;
            s->neighbour_sims = sims;
            s->prompt_drift = drift;
        }
    }

    const RunGeneration *g = &e->h.generation;
    s->dev_index = e->dev_index;
    s->dev_count = e->dev_count;
    s->dev_prompt = box_strdup(b, g->prompt_display);
    s->dev_instruction = box_strdup(b, g->instruction);
    s->dev_context = box_strdup(b, g->context);
    s->dev_reference = box_strdup(b, g->reference);
    s->gen_prompted_teacher = box_strdup(b, g->prompted_teacher);
    s->gen_teacher = box_strdup(b, g->teacher);
    s->gen_student = box_strdup(b, g->student);
    s->gen_step = g->step > 0 ? g->step : 0;
    s->gen_rougeL_prompted_teacher = g->rougeL_prompted_teacher;
    s->gen_rougeL_teacher = g->rougeL_teacher;
    s->gen_rougeL_student = g->rougeL_student;

    /* the newest ENGINE_MAX_CURVES ExAccErr curves, oldest first */
    int first = e->h.n_exposure > ENGINE_MAX_CURVES ? e->h.n_exposure - ENGINE_MAX_CURVES : 0;
    for (int i = first; i < e->h.n_exposure; i++) {
        const RunExposure *x = &e->h.exposure[i];
        double *c = box_alloc(b, (size_t)x->n * sizeof *c);
        if (!c) break;
        memcpy(c, x->exaccerr, (size_t)x->n * sizeof *c);
        EngineExposureCurve *o = &s->exposure[s->n_exposure++];
        o->step = x->step;
        o->n = x->n;
        o->exaccerr = c;
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
    b->s.write_errors = e->write_errors;
    snprintf(b->s.write_error, sizeof b->s.write_error, "%s", e->write_error);
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
    return run_dir_file(&e->rd, name, out, len, err);
}

/* ---------------------------------------------------------------- finite checks */

/* The same check on the state in memory, before anything is written (what a checkpoint
 * would hold of the student and the prompt): names the first non-finite part, or NULL. */
static const char *state_nonfinite(Engine *e) {
    GPT2 *m = distill_student(e->ds);
    if (m) {
        size_t n = m->num_parameters;
        if (m->params_memory && run_dir_first_nonfinite(m->params_memory, n, ST_F32) >= 0)
            return "the student's weights";
        if (m->m_memory && run_dir_first_nonfinite(m->m_memory, n, ST_F32) >= 0)
            return "the student's optimizer moments (AdamW m)";
        if (m->v_memory && run_dir_first_nonfinite(m->v_memory, n, ST_F32) >= 0)
            return "the student's optimizer moments (AdamW v)";
    }
    int P = 0, C = 0;
    const float *prompt = distill_prompt(e->ds, &P, &C);
    if (prompt && run_dir_first_nonfinite(prompt, (size_t)P * C, ST_F32) >= 0)
        return "the soft prompt";
    return NULL;
}

/* Puts prefix in front of the sentence in err (PK_ERR_LEN) when both fit; otherwise
 * leaves the sentence whole: a message is never cut inside the path it names. */
static void err_prefix(char *err, const char *prefix) {
    size_t a = strlen(prefix), b = strlen(err);
    if (a + b >= PK_ERR_LEN) return;
    memmove(err + a, err, b + 1);
    memcpy(err, prefix, a);
}

#define SAVE_NONFINITE (-2) /* save_run_checkpoint: the state is not finite; nothing was kept */

/* Writes checkpoints/step-N into the run, in an order that keeps `latest` pointing at a
 * good, complete checkpoint whatever fails: the metrics log first (pending lines written,
 * fsync: a checkpoint never gets ahead of its log), the folder (atomically, by
 * distill_save_checkpoint), read back and checked finite, its run_config.json, then
 * `latest` (atomically) and an fsync of checkpoints/. Returns PK_OK; PK_FAIL when a write
 * failed (recorded as a write error; err holds the sentence, with its full path); or
 * SAVE_NONFINITE when the model holds NaN/Inf (nothing is kept, saving stays blocked
 * until a good step; err says what). */
static int save_run_checkpoint(Engine *e, char *reply, size_t reply_len, char *err) {
    int step = distill_step_index(e->ds);
    if (e->part_way_step) {
        char kept[48] = "no checkpoint written yet";
        if (e->last_ckpt_step >= 0) snprintf(kept, sizeof kept, "checkpoint step-%d kept", e->last_ckpt_step);
        return pk_errf(err, "not saved: a step failed part-way when the ranks stopped, so the model may hold part of "
                            "it; %s (save to another folder to keep it)", kept);
    }
    if (e->nonfinite_flag) {
        if (e->last_ckpt_step >= 0)
            return pk_errf(err,
                           "not saved: the last step was non-finite (a loss, or the model after it); checkpoint "
                           "step-%d kept (change settings and resume, or save to another folder)",
                           e->last_ckpt_step);
        return pk_errf(err, "not saved: the last step was non-finite (a loss, or the model after it); save to another "
                            "folder to keep it");
    }
    const char *bad = state_nonfinite(e);
    if (bad) {
        e->nonfinite_flag = 1;
        pk_errf(err, "NaN or Inf in %s", bad);
        return SAVE_NONFINITE;
    }
    if (pk_dist_rank() != 0) { /* data-parallel: rank 0 alone writes the run folder */
        e->last_ckpt_step = step;
        return PK_OK;
    }
    char dir[CONFIG_PATH_LEN + 96];
    if (run_dir_checkpoint_dir(&e->rd, step, dir, sizeof dir, err) != PK_OK) return PK_FAIL;
    if (run_dir_metrics_sync(&e->rd, err) != PK_OK) {
        record_write_error(e, "checkpoint step-%d not written: the metrics log must be on disk first: %s", step, err);
        return PK_FAIL;
    }
    /* saving the same step again replaces the folder: distill_save_checkpoint replaces only a
     * pure model folder, so our run_config.json goes first (it is written again below) */
    if (run_dir_clear_run_config(dir, err) != PK_OK) {
        record_write_error(e, "checkpoint step-%d not written: %s", step, err);
        return PK_FAIL;
    }
    if (distill_save_checkpoint(e->ds, dir, err) != PK_OK) {
        record_write_error(e, "checkpoint step-%d not written: %s", step, err);
        return PK_FAIL;
    }
    char verr[PK_ERR_LEN];
    int vrc = run_dir_verify_finite(dir, verr);
    if (vrc != PK_OK) {
        /* read back wrong or poisoned: it must not become `latest` */
        pk_remove_tree(dir);
        snprintf(err, PK_ERR_LEN, "%s", verr);
        if (vrc == RUN_DIR_NONFINITE) {
            e->nonfinite_flag = 1;
            err_prefix(err, "checkpoint removed: ");
            return SAVE_NONFINITE;
        }
        record_write_error(e, "checkpoint step-%d removed: it does not read back: %s", step, verr);
        return PK_FAIL;
    }
    /* the config it was made with: a resume checks the fixed keys against it */
    if (run_dir_write_run_config(dir, &e->cfg, err) != PK_OK) {
        pk_remove_tree(dir);
        record_write_error(e, "checkpoint step-%d not written: %s", step, err);
        return PK_FAIL;
    }
    if (run_dir_set_latest(&e->rd, step, err) != PK_OK) {
        char still[48] = "none yet";
        if (e->last_ckpt_step >= 0) snprintf(still, sizeof still, "still step-%d", e->last_ckpt_step);
        record_write_error(e, "checkpoint step-%d written, but `latest` not updated (%s): %s", step, still, err);
        return PK_FAIL;
    }
    e->last_ckpt_step = step;
    if (run_dir_sync_checkpoints(&e->rd, err) != PK_OK) {
        record_write_error(e, "checkpoint step-%d: %s", step, err);
        return PK_FAIL;
    }
    run_dir_prune_checkpoints(&e->rd, step);
    metrics_write_json(e, run_line_checkpoint(step, dir)); /* a failure is recorded; the checkpoint itself is good */
    engine_log(e, "step %d: checkpoint saved to checkpoints/step-%d", step, step);
    if (!reply) emit(e, ENGINE_EVENT_CHECKPOINT, step, "step %d: checkpoint saved to checkpoints/step-%d", step, step);
    if (reply) snprintf(reply, reply_len, "saved checkpoint step-%d to %s", step, dir);
    return PK_OK;
}

/* ---------------------------------------------------------------- analyses */

static int refresh_neighbours(Engine *e, char *err) {
    if (!distill_has_prompt(e->ds)) return PK_OK;
    int P = 0, C = 0;
    if (!distill_prompt(e->ds, &P, &C) || P <= 0) return PK_OK;
    int k = e->cfg.neighbours_k;
    enum { TOKEN_TEXT = 160 };
    int *ids = malloc((size_t)P * k * sizeof *ids);
    float *sims = malloc((size_t)P * k * sizeof *sims), *drift = malloc((size_t)P * sizeof *drift);
    char *text = malloc((size_t)P * k * TOKEN_TEXT);
    const char **toks = malloc((size_t)P * k * sizeof *toks);
    int rc = ids && sims && drift && text && toks ? PK_OK : pk_errf(err, "prompt neighbours: out of memory");
    if (rc == PK_OK) rc = distill_prompt_neighbours(e->ds, k, ids, sims, drift, err);
    if (rc == PK_OK) {
        const Tokenizer *tk = distill_tokenizer(e->ds);
        for (int i = 0; i < P * k; i++) {
            text[(size_t)i * TOKEN_TEXT] = 0;
            if (tk) tok_token_printable(tk, ids[i], text + (size_t)i * TOKEN_TEXT, TOKEN_TEXT);
            toks[i] = text + (size_t)i * TOKEN_TEXT;
        }
        /* the table, and the top-1 similarity of each prompt vector over training (the
         * "neighbours" chart): one point and one metrics.jsonl record per step */
        int added = run_history_set_neighbours(&e->h, distill_step_index(e->ds), P, k, toks, sims, drift, e->elapsed_s);
        if (added < 0) rc = pk_errf(err, "prompt neighbours: out of memory");
        else if (added) metrics_write_json(e, run_line_neighbours(&e->h.neighbours));
    }
    free(ids), free(sims), free(drift), free(text), free(toks);
    return rc;
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

/* ROUGE-L x 100 of an answer against a record's references, as the evaluation scores it; -1
 * without an answer or a record. */
static double answer_rouge(const char *answer, const DataRecord *r) {
    if (!answer || !r || r->n_refs <= 0) return -1;
    return rouge_l_max_x100(answer, (const char *const *)r->refs, r->n_refs);
}

/* New generations (T', T, S; NULL when the method has no such model) on the dev record r
 * (NULL with dev_index -1: a free text, shown as display): kept for the snapshot and logged
 * in metrics.jsonl, once per step and dev prompt. Takes the strings. */
static void set_generations_of(Engine *e, const DataRecord *r, int dev_index, char *display, char *pt, char *t,
                               char *s) {
    int step = distill_step_index(e->ds);
    const RunGeneration *last = &e->h.generation;
    int again = dev_index >= 0 && last->step == step && last->dev_index == dev_index;
    RunGeneration g = {
        .step = step,
        .dev_index = dev_index,
        .prompt_display = display,
        .instruction = r ? r->instruction : display,
        .context = r ? r->input : "",
        .reference = r ? r->refs[0] : "",
        .prompted_teacher = pt,
        .teacher = t,
        .student = s,
        .rougeL_prompted_teacher = answer_rouge(pt, r),
        .rougeL_teacher = answer_rouge(t, r),
        .rougeL_student = answer_rouge(s, r),
    };
    if (run_history_set_generation(&e->h, &g) != PK_OK) engine_log(e, "generations: out of memory");
    else if (!again) metrics_write_json(e, run_line_generation(&g));
    free(display), free(pt), free(t), free(s);
}

/* Generations on a text of the user's (generate). */
static void set_generations(Engine *e, char *display, char *pt, char *t, char *s) {
    set_generations_of(e, NULL, -1, display, pt, t, s);
}

/* The dev prompt shown before anything is generated on it (answers empty, nothing logged). */
static void show_dev_prompt(Engine *e, const DataRecord *r, int dev_index) {
    char *display = dev_display(r);
    RunGeneration g = {.step = -1, .dev_index = dev_index, .prompt_display = display, .instruction = r->instruction,
                       .context = r->input, .reference = r->refs[0], .rougeL_prompted_teacher = -1,
                       .rougeL_teacher = -1, .rougeL_student = -1};
    if (run_history_set_generation(&e->h, &g) != PK_OK) engine_log(e, "generations: out of memory");
    free(display);
}

static int refresh_generations(Engine *e, char *err) {
    const Dataset *dev = distill_dataset(e->ds, "valid");
    if (!dev || dev->n == 0) return PK_OK;
    e->dev_count = dev->n;
    if (e->dev_index < 0 || e->dev_index >= dev->n) e->dev_index = 0;
    const DataRecord *r = &dev->recs[e->dev_index];
    char *pt, *t, *s;
    if (generate_all(e, r->prompt, &pt, &t, &s, err) != PK_OK) return PK_FAIL;
    set_generations_of(e, r, e->dev_index, dev_display(r), pt, t, s);
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
    int wrc = PK_OK; /* a failed write: reported after T's evaluation, which every rank takes part in */
    if (rc == PK_OK && pk_dist_rank() == 0) { /* rank 0 holds the gathered texts and writes */
        /* eval/SPLIT-step-N.jsonl: what the student said and its score, record by record */
        PkBuf out = {0};
        for (int i = 0; i < scored && i < n; i++) {
            const DataRecord *r = &d->recs[i];
            double score = rouge_l_max_x100(preds[i] ? preds[i] : "", (const char *const *)r->refs, r->n_refs);
            cJSON *o = run_line_eval_record(i, r->instruction, preds[i] ? preds[i] : "", r->refs[0], score);
            char *text = o ? cJSON_PrintUnformatted(o) : NULL;
            if (text) pk_buf_printf(&out, "%s\n", text);
            cJSON_free(text);
            cJSON_Delete(o);
        }
        char name[96], path[CONFIG_PATH_LEN + 128];
        snprintf(name, sizeof name, "eval/%s-step-%d.jsonl", split, step);
        if (run_file(e, name, path, sizeof path, err) != PK_OK) {
            wrc = PK_FAIL;
        } else if (pk_write_file_atomic(path, out.data ? out.data : "", out.len, err) != PK_OK) {
            record_write_error(e, "%s", err);
            wrc = PK_FAIL;
        }
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
    if (wrc != PK_OK) return PK_FAIL; /* err still says which write failed */
    if (is_dev) {
        e->last_eval_step = step;
        hist_push(e, "dev_rougeL", step, rouge);
        if (!isnan(rouge_tp)) hist_push(e, "dev_rougeL_tprime", step, rouge_tp);
        const char *bad = NULL;
        if ((e->best_rouge < 0 || rouge > e->best_rouge) && pk_dist_rank() != 0) {
            e->best_rouge = rouge;
            e->best_step = step;
        } else if ((e->best_rouge < 0 || rouge > e->best_rouge) && (bad = state_nonfinite(e)) != NULL) {
            engine_log(e, "step %d: best/ not updated: NaN or Inf in %s", step, bad);
        } else if (e->best_rouge < 0 || rouge > e->best_rouge) {
            char dir[CONFIG_PATH_LEN + 64];
            if (run_file(e, "best", dir, sizeof dir, err) != PK_OK) return PK_FAIL;
            if (distill_save_checkpoint(e->ds, dir, err) != PK_OK) {
                record_write_error(e, "%s", err);
                return PK_FAIL;
            }
            if (run_dir_write_best(&e->rd, step, rouge, scored, err) != PK_OK) {
                record_write_error(e, "%s", err);
                return PK_FAIL;
            }
            e->best_rouge = rouge;
            e->best_step = step;
            best = 1;
        }
    }
    e->recorded = 1;
    metrics_write_json(e, run_line_eval(step, split, rouge, rouge_tp, scored, best, pk_now() - t0));
    char tp[48] = "";
    if (!isnan(rouge_tp)) snprintf(tp, sizeof tp, " (T' %.2f)", rouge_tp);
    char said[256];
    snprintf(said, sizeof said, "step %d: %s ROUGE-L %.2f%s over %d records%s", step, split, rouge, tp, scored,
             best ? " (best so far, saved to best/)" : "");
    engine_log(e, "%s", said);
    if (!reply) emit(e, ENGINE_EVENT_EVAL, rouge, "%s", said); /* a command hears it in its reply */
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
    if (run_history_add_exposure(&e->h, step, curve, L) != PK_OK) {
        free(curve);
        return pk_errf(err, "exposure: out of memory");
    }
    hist_push(e, "exaccerr", step, curve[L - 1]);
    e->recorded = 1;
    metrics_write_json(
        e, run_line_exposure(step, which == DISTILL_PROMPTED_TEACHER ? "prompted_teacher" : "teacher", curve, L));
    engine_log(e, "step %d: ExAccErr(%d) = %.2f%%", step, L, curve[L - 1]);
    if (!reply) emit(e, ENGINE_EVENT_EXPOSURE, curve[L - 1], "step %d: ExAccErr(%d) = %.2f%%", step, L, curve[L - 1]);
    if (reply) snprintf(reply, reply_len, "ExAccErr at l=%d: %.2f%% (step %d)", L, curve[L - 1], step);
    free(curve);
    return PK_OK;
}

/* ---------------------------------------------------------------- commands on the worker */

static int current_step(Engine *e) { return e->ds ? distill_step_index(e->ds) : 0; }

static void cmd_free(Cmd *c) {
    if (!c) return;
    if (c->ctx_free) c->ctx_free(c->ctx);
    free(c->key), free(c->value), free(c->text), free(c->split), free(c->dir), free(c->reply);
    free(c->node);
    pk_buf_free(&c->output);
    free(c);
}

/* The command is done: its reply (the reply text, or the error sentence and what a WORK
 * said before failing) is queued as an event for whoever waits or polls, and the command
 * freed. */
static void complete(Engine *e, Cmd *c, int rc) {
    EventNode *n = c->node; /* allocated by engine_post: a reply is never lost to memory */
    c->node = NULL;
    n->ev.kind = ENGINE_EVENT_REPLY;
    n->ev.id = c->id;
    n->ev.status = rc == PK_OK ? PK_OK : PK_FAIL;
    n->ev.step = current_step(e);
    n->ev.logged = rc == PK_OK && c->logged;
    if (rc != PK_OK) {
        n->ev.text = strdup(c->err);
        if (c->output.len) n->ev.output = strdup(c->output.data);
    } else {
        n->ev.text = strdup(c->kind == CMD_WORK ? (c->output.data ? c->output.data : "") : c->reply);
    }
    pthread_mutex_lock(&e->mu);
    n->ev.state = e->state;
    push_event_locked(e, n);
    pthread_mutex_unlock(&e->mu);
    cmd_free(c);
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
        snprintf(w->reply, w->reply_len, "%s", msg ? msg : "");
        complete(e, w, waiter_rc);
    }
    e->budget = -1;
}

/* go_idle by the run's own doing (finished, a non-finite step, a signal, ...): reported as
 * an event, unless a `step N` waiting for its steps hears it in its reply. */
static void report_idle(Engine *e, EngineState st, const char *msg, int waiter_rc) {
    int waited = e->step_waiter != NULL;
    go_idle(e, st, msg, waiter_rc);
    if (!waited) emit(e, ENGINE_EVENT_STATE, 0, "%s", msg);
}

static void write_set_event(Engine *e, const char *key, const char *old, const char *new_value) {
    metrics_write_json(e, run_line_set(distill_step_index(e->ds), key, old, new_value));
}

static void write_event(Engine *e, const char *name) {
    metrics_write_json(e, run_line_event(name, e->ds ? distill_step_index(e->ds) : 0));
}

static int run_finished(Engine *e) { return distill_step_index(e->ds) >= e->cfg.steps; }

static void finish_run(Engine *e);

/* Returns 1 when the worker should leave its loop. */
static int apply_command(Engine *e, Cmd *c) {
    char *err = c->err;
    if (c->kind == CMD_STOP) {
        write_event(e, "stop");
        engine_log(e, "stopped");
        finish_run(e); /* before the stopper hears back: it reads the write errors next */
        EngineState st = e->state == ENGINE_RUNNING || e->state == ENGINE_LOADING ? ENGINE_PAUSED : e->state;
        go_idle(e, st, "stopped", PK_FAIL);
        snprintf(c->reply, c->reply_len, "stopped at step %d", current_step(e));
        complete(e, c, PK_OK);
        return 1;
    }
    if (!e->ds) {
        char msg[ENGINE_MESSAGE_LEN];
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
            snprintf(c->reply, c->reply_len, "%s", msg);
            c->logged = 1;
            complete(e, c, PK_OK);
            return 0;
        }
        snprintf(c->reply, c->reply_len, "%s at step %d (not running)", engine_state_name(e->state),
                 distill_step_index(e->ds));
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
            snprintf(w->reply, w->reply_len, "at step %d a newer run order took over", distill_step_index(e->ds));
            complete(e, w, PK_OK);
        }
        e->budget = c->kind == CMD_RUN_STEPS ? c->n : -1;
        if (c->kind == CMD_RESUME) e->session_steps = 0;
        write_event(e, "resume");
        if (c->kind == CMD_RESUME)
            snprintf(c->reply, c->reply_len, "running from step %d", distill_step_index(e->ds));
        else
            snprintf(c->reply, c->reply_len, "running %d step(s) from step %d", c->n, distill_step_index(e->ds));
        engine_log(e, "%s", c->reply);
        c->logged = 1;
        set_state(e, ENGINE_RUNNING, "running");
        if (c->kind == CMD_RUN_STEPS && c->wait) {
            e->step_waiter = c; /* completed when the steps are done or the run stops */
            return 0;
        }
        break;
    }
    case CMD_SET: {
        /* when a key may change is config.c's rule alone */
        if (config_check_set(c->key, e->state == ENGINE_RUNNING, err) != PK_OK) {
            rc = PK_FAIL;
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
        if (run_file(e, "config.json", path, sizeof path, werr) != PK_OK)
            engine_log(e, "config.json not updated: %s", werr);
        else if (config_save_json(&next, path, werr) != PK_OK)
            record_write_error(e, "%s (the run's config.json does not show 'set %s %s')", werr, c->key, now);
        engine_log(e, "step %d: set %s %s -> %s", distill_step_index(e->ds), c->key, old, now);
        snprintf(c->reply, c->reply_len, "%s: %s -> %s", c->key, old, now);
        c->logged = 1;
        if (e->state == ENGINE_FINISHED && !run_finished(e)) set_state(e, ENGINE_PAUSED, "paused (steps raised)");
        publish(e);
        break;
    }
    case CMD_EVAL:
        rc = run_eval(e, c->split ? c->split : "valid", c->reply, c->reply_len, err);
        c->logged = 1;
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
        snprintf(c->reply, c->reply_len, "T': %s\nT:  %s\nS:  %s", pt ? pt : "(no prompted teacher)",
                     t ? t : "(no teacher)", s ? s : "");
        set_generations(e, strdup(c->text), pt, t, s);
        publish(e);
        break;
    }
    case CMD_EXPOSURE:
        rc = run_exposure(e, c->reply, c->reply_len, err);
        c->logged = 1;
        publish(e);
        break;
    case CMD_SAVE:
        if (c->dir && *c->dir) {
            rc = distill_save_checkpoint(e->ds, c->dir, err);
            if (rc == PK_OK) {
                engine_log(e, "step %d: saved to %s", distill_step_index(e->ds), c->dir);
                snprintf(c->reply, c->reply_len, "saved step %d to %s", distill_step_index(e->ds), c->dir);
                c->logged = 1;
            }
        } else {
            rc = save_run_checkpoint(e, c->reply, c->reply_len, err);
            c->logged = 1; /* "checkpoint saved to checkpoints/step-N" */
            if (rc == SAVE_NONFINITE) {
                err_prefix(err, "not saved: ");
                engine_log(e, "step %d: %s", distill_step_index(e->ds), err);
                rc = PK_FAIL;
            }
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
        if (rc == PK_OK) snprintf(c->reply, c->reply_len, "dev prompt %d of %d", e->dev_index + 1, dev->n);
        publish(e);
        break;
    }
    case CMD_WORK:
        rc = c->work(c->ctx, e->ds, &c->output, err);
        publish(e); /* what it logged, shown now even while paused */
        break;
    case CMD_STOP: break;
    }
    complete(e, c, rc);
    return 0;
}

/* ---------------------------------------------------------------- a step */

/* A non-finite step (what == NULL: its loss) or a model found non-finite when a
 * checkpoint was due (what: which part, or the checkpoint file and tensor): pause,
 * keep the last good checkpoint, write nothing into the run until a good step. */
static void nonfinite_pause(Engine *e, int step, const char *what) {
    char msg[ENGINE_MESSAGE_LEN + 128], cause[ENGINE_MESSAGE_LEN];
    if (what)
        snprintf(cause, sizeof cause, "non-finite values in the model after step %d (%s)", step, what);
    else
        snprintf(cause, sizeof cause, "non-finite loss at step %d", step);
    if (e->last_ckpt_step >= 0)
        snprintf(msg, sizeof msg, "%s; paused, last good checkpoint step-%d kept", cause, e->last_ckpt_step);
    else
        snprintf(msg, sizeof msg, "%s; paused, no checkpoint written yet", cause);
    e->nonfinite_flag = 1;
    e->recorded = 1;
    metrics_write_json(e, run_line_nonfinite(step, e->last_ckpt_step, what));
    engine_log(e, "%s", msg);
    report_idle(e, ENGINE_PAUSED, msg, PK_FAIL);
}

static void do_step(Engine *e) {
    DistillStepStats st;
    memset(&st, 0, sizeof st);
    char err[PK_ERR_LEN] = "";
    double t0 = pk_now();
    if (distill_step(e->ds, &st, err) != PK_OK) {
        char msg[ENGINE_MESSAGE_LEN];
        snprintf(msg, sizeof msg, "step %d failed: %s", distill_step_index(e->ds) + 1, err);
        engine_log(e, "%s", msg);
        /* data-parallel: a collective of the step failed (another rank failed): the updates made
         * before it stay in this rank's model, unmatched by the others' and by the log */
        if (pk_dist_size() > 1) e->part_way_step = 1;
        report_idle(e, ENGINE_FAILED, msg, PK_FAIL);
        return;
    }
    pthread_mutex_lock(&e->mu);
    int inject = e->inject_nonfinite_step;
    pthread_mutex_unlock(&e->mu);
    int step = st.step;
    for (int i = 0; i < st.n_losses; i++)
        if (!isfinite(st.losses[i])) st.nonfinite = 1;
    if (st.nonfinite) { /* distill_step did not count it: it was the next step */
        nonfinite_pause(e, distill_step_index(e->ds) + 1, NULL);
        return;
    }
    if (inject > 0 && step == inject) { /* test hook: the step was applied, then called non-finite */
        nonfinite_pause(e, step, NULL);
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

    /* the step's series: its line in metrics.jsonl, and the curves (at its elapsed time, below) */
    RunStepLine sl = {.step = step, .response_tokens = st.response_tokens, .tokens = st.tokens, .gflops = gflops,
                      .step_s = secs};
    for (int i = 0; i < st.n_losses; i++) sl.keys[sl.n] = st.loss_names[i], sl.values[sl.n++] = st.losses[i];
    sl.keys[sl.n] = "lr", sl.values[sl.n++] = st.lr;
    if (distill_has_prompt(e->ds)) sl.keys[sl.n] = "prompt_lr", sl.values[sl.n++] = st.prompt_lr;
    sl.keys[sl.n] = "grad_norm", sl.values[sl.n++] = st.grad_norm;
    if (distill_has_prompt(e->ds)) sl.keys[sl.n] = "prompt_grad_norm", sl.values[sl.n++] = st.prompt_grad_norm;
    sl.keys[sl.n] = "tokens_per_s", sl.values[sl.n++] = tps;

    /* periodic work, counted in the step's wall time */
    const RunConfig *cfg = &e->cfg;
    int spe = distill_steps_per_epoch(e->ds);
    int eval_due = cfg->eval_interval > 0 ? step % cfg->eval_interval == 0 : (spe > 0 && step % spe == 0);
    int finished = step >= cfg->steps;
    int stop_due = !finished && cfg->stop_after > 0 && e->session_steps >= cfg->stop_after;
    if (finished && e->last_eval_step != step) eval_due = 1;
    int eval_ok = 0;
    if (eval_due) {
        if (run_eval(e, "valid", NULL, 0, err) != PK_OK) {
            engine_log(e, "step %d: eval failed: %s", step, err);
            emit(e, ENGINE_EVENT_ERROR, 0, "step %d: eval failed: %s", step, err);
        } else {
            eval_ok = 1;
        }
    }
    if (cfg->gen_interval > 0 && step % cfg->gen_interval == 0 && pk_dist_rank() == 0) { /* shown by rank 0 only */
        if (refresh_neighbours(e, err) != PK_OK) engine_log(e, "step %d: prompt neighbours: %s", step, err);
        if (refresh_generations(e, err) != PK_OK) engine_log(e, "step %d: generations: %s", step, err);
    }
    if (cfg->exposure_interval > 0 && step % cfg->exposure_interval == 0 && distill_has_teacher(e->ds))
        if (run_exposure(e, NULL, 0, err) != PK_OK) {
            engine_log(e, "step %d: exposure: %s", step, err);
            emit(e, ENGINE_EVENT_ERROR, 0, "step %d: exposure: %s", step, err);
        }

    double wall = pk_now() - t0;
    e->elapsed_s += wall;
    e->step_s_ema = e->step_s_ema > 0 ? e->step_s_ema + 0.1 * (wall - e->step_s_ema) : wall;

    sl.elapsed_s = e->elapsed_s;
    for (int i = 0; i < sl.n; i++) hist_push(e, sl.keys[i], step, sl.values[i]);
    /* the step's eval and exposure events ran above and precede it; its checkpoint follows
     * (a checkpoint is written only once the log holding its step is on disk) */
    e->recorded = 1;
    struct cJSON *step_line = run_line_step(&sl);
    if (step_line && pk_dist_size() > 1) { /* a resume on another number of ranks says so (app/) */
        cJSON_AddNumberToObject(step_line, "ranks", pk_dist_size());
        cJSON_AddNumberToObject(step_line, "comm_s", st.comm_seconds);
    }
    int logged = metrics_write_json(e, step_line) == PK_OK;

    pthread_mutex_lock(&e->mu);
    EngineStepHook hook = e->step_hook;
    void *hook_ctx = e->step_hook_ctx;
    pthread_mutex_unlock(&e->mu);
    if (hook) {
        const char *names[DISTILL_MAX_LOSSES];
        for (int i = 0; i < st.n_losses; i++) names[i] = st.loss_names[i];
        hook(hook_ctx, e->ds, step, cfg->steps, st.n_losses, names, st.losses);
    }

    if (finished || stop_due) {
        char msg[ENGINE_MESSAGE_LEN];
        int rc = save_run_checkpoint(e, NULL, 0, err);
        if (rc == SAVE_NONFINITE) {
            nonfinite_pause(e, step, err);
            return;
        }
        if (finished) {
            if (rc != PK_OK)
                snprintf(msg, sizeof msg, "finished at step %d; final checkpoint failed: %s", step, err);
            else
                snprintf(msg, sizeof msg, "finished at step %d; checkpoint step-%d saved", step, step);
        } else {
            if (rc != PK_OK)
                snprintf(msg, sizeof msg, "stopped after %d steps (stop_after); checkpoint failed: %s",
                         e->session_steps, err);
            else
                snprintf(msg, sizeof msg, "stopped after %d steps (stop_after); checkpoint step-%d saved",
                         e->session_steps, step);
        }
        write_event(e, finished ? "finished" : "stop_after");
        engine_log(e, "%s", msg);
        report_idle(e, finished ? ENGINE_FINISHED : ENGINE_PAUSED, msg, PK_OK);
        return;
    }
    if (!logged) {
        /* the log cannot take the step: stop here rather than train on unrecorded */
        char msg[ENGINE_MESSAGE_LEN + 64];
        pthread_mutex_lock(&e->mu);
        snprintf(msg, sizeof msg, "paused at step %d: %s", step, e->write_error);
        pthread_mutex_unlock(&e->mu);
        report_idle(e, ENGINE_PAUSED, msg, PK_FAIL);
        return;
    }
    if (eval_ok) {
        /* a checkpoint per evaluation: a crash loses at most one eval interval */
        int rc = save_run_checkpoint(e, NULL, 0, err);
        if (rc == SAVE_NONFINITE) {
            nonfinite_pause(e, step, err);
            return;
        }
        if (rc != PK_OK) {
            engine_log(e, "step %d: checkpoint failed; the run goes on", step);
            emit(e, ENGINE_EVENT_ERROR, 0, "step %d: checkpoint failed; the run goes on: %s", step, err);
        }
    }
    if (e->budget == 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "paused at step %d", step);
        report_idle(e, ENGINE_PAUSED, msg, PK_OK);
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
    if (!pk_file_exists(path)) return PK_OK;
    PkBuf kept = {0};
    RunHistory h;
    run_history_init(&h);
    if (run_history_read(&h, path, ckpt_step, &kept, err) != PK_OK) {
        run_history_free(&h);
        pk_buf_free(&kept);
        return PK_FAIL;
    }
    int rc = pk_write_file_atomic(path, kept.data ? kept.data : "", kept.len, err);
    pk_buf_free(&kept);
    if (rc != PK_OK) {
        run_history_free(&h);
        return PK_FAIL;
    }
    run_history_free(&e->h);
    e->h = h; /* the curves, ExAccErr curves, neighbours and generations up to the checkpoint */
    e->elapsed_s = h.elapsed_s;
    e->last_eval_step = h.last_eval_step;
    if (h.generation.dev_index >= 0) e->dev_index = h.generation.dev_index;

    run_dir_read_best(&e->rd, ckpt_step, &e->best_rouge, &e->best_step);
    return PK_OK;
}

static int load(Engine *e, char *err) {
    RunConfig cfg = e->cfg;
    if (distill_create(&e->ds, &cfg, err) != PK_OK) {
        e->ds = NULL;
        return PK_FAIL;
    }
    if (e->resume_step >= 0) {
        int step;
        char dir[CONFIG_PATH_LEN + 96];
        if (run_dir_read_latest(e->rd.path, &step, err) != PK_OK) return PK_FAIL;
        if (run_dir_checkpoint_dir(&e->rd, step, dir, sizeof dir, err) != PK_OK) return PK_FAIL;
        /* only a finite checkpoint is a good one to continue from */
        char verr[PK_ERR_LEN];
        if (run_dir_verify_finite(dir, verr) != PK_OK) {
            snprintf(err, PK_ERR_LEN, "%s", verr);
            err_prefix(err, "checkpoints/latest names a checkpoint that is not good: ");
            return PK_FAIL;
        }
        if (distill_load_checkpoint(e->ds, dir, err) != PK_OK) return PK_FAIL;
        e->last_ckpt_step = step;
        if (pk_dist_rank() == 0 && restore_metrics(e, step, err) != PK_OK) return PK_FAIL;
    }
    if (pk_dist_rank() != 0) return PK_OK; /* data-parallel: rank 0 alone keeps the log */
    if (run_dir_metrics_open(&e->rd, err) != PK_OK) return PK_FAIL;
    if (e->resume_step >= 0) {
        metrics_write_json(e, run_line_resume_from(distill_step_index(e->ds), e->last_ckpt_step));
        engine_log(e, "resumed from checkpoint step-%d", e->last_ckpt_step);
    }
    const Dataset *dev = distill_dataset(e->ds, "valid");
    e->dev_count = dev ? dev->n : 0;
    if (dev && dev->n) {
        if (e->dev_index < 0 || e->dev_index >= dev->n) e->dev_index = 0;
        /* the dev prompt shows from the start; a resumed run keeps its last generations */
        if (e->h.generation.step < 0 || e->h.generation.dev_index != e->dev_index)
            show_dev_prompt(e, &dev->recs[e->dev_index], e->dev_index);
    }
    return PK_OK;
}

/* A new run that recorded nothing: no step, eval, exposure or non-finite record in its
 * log, no checkpoint, nothing in checkpoints/, plots/, eval/, no best/ (a load failure, or
 * a REPL/TUI session that only looked or changed settings). */
static int run_untouched(Engine *e) {
    if (!e->rd.created || e->recorded || e->last_ckpt_step >= 0) return 0;
    if (e->ds && distill_step_index(e->ds) > 0) return 0;
    return !run_dir_holds_records(&e->rd);
}

/* The end of the session on the worker: the log flushed, fsync'ed and closed (failures
 * recorded), and a new run that recorded nothing removed again. */
static void finish_run(Engine *e) {
    metrics_close(e);
    if (run_untouched(e) && run_dir_remove_created(&e->rd))
        engine_log(e, "nothing was recorded: the run folder %s was removed", e->rd.path);
}

/* ---------------------------------------------------------------- data-parallel ranks
 * Rank 0 runs the session; the other ranks follow it through pk_dist_gate: before each step, each
 * evaluation and ExAccErr measurement (which every rank takes part in) and after each `set` (the
 * whole config, so every rank steps with the same settings), rank 0 sends an op; commands that
 * only rank 0 acts on (generate, save, pause, plugins) send none. A failure on another rank reaches
 * rank 0 in its next collective or, idle, within 200 ms: its run stops in FAILED with that rank's
 * sentence, commands that need the ranks are refused with it, and the program ends the job. */
enum { OP_END = 0, OP_STEP = 1, OP_CONFIG = 2, OP_EVAL = 3, OP_EXPOSURE = 4 };
typedef struct {
    int kind;
    char split[32];
    RunConfig cfg;
} DistOp;
_Static_assert(sizeof(DistOp) <= PK_DIST_OP_BYTES, "DistOp must fit the gate's op");
typedef union { /* the gate sends PK_DIST_OP_BYTES bytes: an op padded to that size */
    DistOp op;
    char bytes[PK_DIST_OP_BYTES];
} DistOpBuf;

/* Rank 0: before an evaluation or an ExAccErr command (c), or after a `set` (config = 1). A
 * failed gate fails the run (err says why). */
static int mirror_command(Engine *e, const Cmd *c, int config, char *err) {
    if (pk_dist_size() == 1 || !e->ds) return PK_OK;
    static DistOpBuf buf;
    memset(&buf, 0, sizeof buf);
    DistOp *op = &buf.op;
    if (config) {
        op->kind = OP_CONFIG;
        op->cfg = e->cfg;
    } else if (c->kind == CMD_EVAL || c->kind == CMD_EXPOSURE) {
        op->kind = c->kind == CMD_EVAL ? OP_EVAL : OP_EXPOSURE;
        snprintf(op->split, sizeof op->split, "%s", c->split && *c->split ? c->split : "valid");
    } else {
        return PK_OK;
    }
    if (pk_dist_gate(buf.bytes, err) == op->kind) return PK_OK;
    report_idle(e, ENGINE_FAILED, err, PK_FAIL);
    return PK_FAIL;
}

/* Commands that every rank takes part in (through the gate): refused at once once the job failed. */
static int command_needs_ranks(const Cmd *c) {
    return c->kind == CMD_RESUME || c->kind == CMD_RUN_STEPS || c->kind == CMD_SET || c->kind == CMD_EVAL ||
           c->kind == CMD_EXPOSURE;
}

/* Rank 0, between collectives: another rank's failure (dist.h: one that came meanwhile, or one a
 * collective met) stops the run in FAILED with that rank's sentence, once; a failure that comes
 * later goes into the log. The person sees it where they look; the program then ends the job. */
static void take_job_failure(Engine *e) {
    char msg[PK_ERR_LEN];
    if (!e->ds) return; /* this rank's own loading failed: that is what it says, and it ends the job */
    while (pk_dist_poll_failure(msg))
        if (e->job_failure_shown) {
            engine_log(e, "%s", msg);
            emit(e, ENGINE_EVENT_ERROR, 0, "%s", msg);
        }
    if (e->job_failure_shown || !pk_dist_job_failure(msg)) return;
    e->job_failure_shown = 1;
    engine_log(e, "%s", msg);
    if (e->state == ENGINE_FAILED) /* a step or a command failed on it and said so: the cause now */
        set_state(e, ENGINE_FAILED, msg);
    else
        report_idle(e, ENGINE_FAILED, msg, PK_FAIL);
}

/* A rank after 0: takes one op and does it; 0 when the run has ended. A failure here that rank 0
 * cannot see (a step that failed) is reported to rank 0 (pk_dist_report_failure), which says it
 * and ends the job. */
static int follow(Engine *e) {
    static DistOpBuf buf;
    DistOp *op = &buf.op;
    char err[PK_ERR_LEN] = "";
    memset(&buf, 0, sizeof buf);
    int kind = pk_dist_gate(buf.bytes, err);
    switch (kind) {
    case OP_STEP:
        do_step(e);
        if (e->state == ENGINE_FAILED) {
            char msg[ENGINE_MESSAGE_LEN + 32];
            pthread_mutex_lock(&e->mu);
            snprintf(msg, sizeof msg, "rank %d: %s", pk_dist_rank(), e->message);
            pthread_mutex_unlock(&e->mu);
            pk_dist_report_failure(msg);
        }
        return 1;
    case OP_CONFIG: {
        RunConfig next = op->cfg; /* rank 0's settings; this rank's own name and folder stay */
        memcpy(next.name, e->cfg.name, sizeof next.name);
        memcpy(next.run_dir, e->cfg.run_dir, sizeof next.run_dir);
        if (distill_apply_config(e->ds, &next, err) != PK_OK) {
            char msg[PK_ERR_LEN + 64];
            snprintf(msg, sizeof msg, "rank %d: the settings of rank 0 do not apply: %s", pk_dist_rank(), err);
            pk_dist_report_failure(msg);
            return 1;
        }
        pthread_mutex_lock(&e->mu);
        e->cfg = next;
        pthread_mutex_unlock(&e->mu);
        return 1;
    }
    case OP_EVAL:
        if (run_eval(e, op->split, NULL, 0, err) != PK_OK) engine_log(e, "eval: %s", err);
        return 1;
    case OP_EXPOSURE:
        if (run_exposure(e, NULL, 0, err) != PK_OK) engine_log(e, "exposure: %s", err);
        return 1;
    default:
        report_idle(e, kind < 0 ? ENGINE_FAILED : ENGINE_PAUSED, kind < 0 ? err : "rank 0 ended the run", PK_FAIL);
        return 0;
    }
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
        run_dir_free(&e->rd);
        /* a new run that did not load leaves no folder behind (the next run gets the name) */
        char msg[ENGINE_MESSAGE_LEN + CONFIG_PATH_LEN + 64];
        if (!run_dir_remove_created(&e->rd))
            snprintf(msg, sizeof msg, "%s", err);
        else if (snprintf(msg, sizeof msg, "%s (the new run folder %s was removed)", err, e->rd.path) >=
                 ENGINE_MESSAGE_LEN) /* the state message would cut it: keep the sentence whole */
            snprintf(msg, sizeof msg, "%s (the new run folder was removed)", err);
        if (pk_dist_rank() != 0) { /* data-parallel: said by rank 0, which ends the job (dist.h) */
            char said[PK_ERR_LEN];
            snprintf(said, sizeof said, "rank %d: loading failed: %.400s", pk_dist_rank(), msg);
            pk_dist_report_failure(said);
        }
        set_state(e, ENGINE_FAILED, msg);
        emit(e, ENGINE_EVENT_LOADED, 0, "loading failed: %s", msg);
    } else {
        e->loaded = 1;
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
        emit(e, ENGINE_EVENT_LOADED, 0, "loaded %s run at step %d of %d", e->cfg.method, distill_step_index(e->ds),
             e->cfg.steps);
    }

    for (;;) {
        if (pk_dist_rank() != 0) { /* data-parallel: this rank does what rank 0 says, until it ends */
            if (e->ds && follow(e)) continue;
            break;
        }
        int ranks = pk_dist_size() > 1;
        if (ranks) take_job_failure(e);
        pthread_mutex_lock(&e->mu);
        while (!e->quit && !e->queue_head && e->state != ENGINE_RUNNING) {
            if (!ranks) {
                pthread_cond_wait(&e->cv, &e->mu);
                continue;
            }
            /* data-parallel: the other ranks' failures come while idle too (a step of theirs
             * after this rank's last collective): looked for every 200 ms */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 200000000L;
            if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
            if (pthread_cond_timedwait(&e->cv, &e->mu, &until) != ETIMEDOUT) continue;
            pthread_mutex_unlock(&e->mu);
            take_job_failure(e);
            pthread_mutex_lock(&e->mu);
        }
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
            char msg[PK_ERR_LEN];
            if (ranks && command_needs_ranks(c) && pk_dist_job_failure(msg)) {
                pk_errf(c->err, "the run failed: %s", msg);
                complete(e, c, PK_FAIL);
                continue;
            }
            if (mirror_command(e, c, 0, c->err) != PK_OK) { /* ranks that follow take part in it */
                complete(e, c, PK_FAIL);
                continue;
            }
            int kind = c->kind, stop = apply_command(e, c);
            if (kind == CMD_SET && mirror_command(e, NULL, 1, err) != PK_OK) continue;
            if (stop) break;
            continue;
        }
        if (e->interrupt_requested) { /* a signal: the step before this one was the last */
            e->interrupt_requested = 0;
            char msg[96];
            snprintf(msg, sizeof msg, "interrupted at step %d", distill_step_index(e->ds));
            write_event(e, "pause");
            engine_log(e, "%s", msg);
            report_idle(e, ENGINE_PAUSED, msg, PK_FAIL);
            continue;
        }
        static DistOpBuf step_op; /* data-parallel: every rank makes this step */
        step_op.op.kind = OP_STEP;
        if (pk_dist_gate(step_op.bytes, err) != OP_STEP) {
            report_idle(e, ENGINE_FAILED, err, PK_FAIL);
            continue;
        }
        do_step(e);
    }
    finish_run(e);

    /* nobody may wait forever on a worker that has left: what is queued is refused */
    pthread_mutex_lock(&e->mu);
    e->worker_done = 1;
    Cmd *c = e->queue_head;
    e->queue_head = e->queue_tail = NULL;
    if (e->state == ENGINE_RUNNING || e->state == ENGINE_LOADING) e->state = ENGINE_PAUSED;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    while (c) {
        Cmd *next = c->next;
        pk_errf(c->err, "the engine is stopped");
        complete(e, c, PK_FAIL);
        c = next;
    }
    if (e->step_waiter) {
        Cmd *w = e->step_waiter;
        e->step_waiter = NULL;
        pk_errf(w->err, "the engine is stopped");
        complete(e, w, PK_FAIL);
    }
    publish(e);
    return NULL;
}

/* ---------------------------------------------------------------- client side */

static char *dup_or_null(const char *s, int *oom) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *oom = 1;
    return d;
}

unsigned long engine_post(Engine *e, const EngineCommand *cmd, char *err) {
    char local[PK_ERR_LEN];
    if (!err) err = local;
    if (e->read_only) return pk_errf(err, "%s is open read-only", e->rd.path), 0;
    static const CmdKind kinds[] = {
        [ENGINE_CMD_PAUSE] = CMD_PAUSE,       [ENGINE_CMD_RESUME] = CMD_RESUME,     [ENGINE_CMD_RUN_STEPS] = CMD_RUN_STEPS,
        [ENGINE_CMD_STEP] = CMD_RUN_STEPS,    [ENGINE_CMD_SET] = CMD_SET,           [ENGINE_CMD_EVAL] = CMD_EVAL,
        [ENGINE_CMD_GENERATE] = CMD_GENERATE, [ENGINE_CMD_EXPOSURE] = CMD_EXPOSURE, [ENGINE_CMD_SAVE] = CMD_SAVE,
        [ENGINE_CMD_SELECT_DEV] = CMD_SELECT_DEV, [ENGINE_CMD_STOP] = CMD_STOP,     [ENGINE_CMD_WORK] = CMD_WORK,
    };
    if ((unsigned)cmd->kind >= sizeof kinds / sizeof *kinds)
        return pk_errf(err, "engine: unknown command kind %d", (int)cmd->kind), 0;
    const char *split = cmd->kind == ENGINE_CMD_EVAL && cmd->text && *cmd->text ? cmd->text : "valid";
    if (cmd->kind == ENGINE_CMD_EVAL && strcmp(split, "train") && strcmp(split, "valid") && strcmp(split, "test"))
        return pk_errf(err, "eval: unknown split '%s' (expected train, valid or test)", split), 0;
    if (cmd->kind == ENGINE_CMD_GENERATE && (!cmd->text || !*cmd->text))
        return pk_errf(err, "generate: expected a non-empty prompt text"), 0;
    if (cmd->kind == ENGINE_CMD_SET && (!cmd->key || !cmd->value))
        return pk_errf(err, "set: expected a key and a value"), 0;
    if (cmd->kind == ENGINE_CMD_WORK && !cmd->work) return pk_errf(err, "engine: work without a function"), 0;
    Cmd *c = calloc(1, sizeof *c);
    int oom = !c;
    if (c) {
        c->kind = kinds[cmd->kind];
        c->n = cmd->n;
        c->wait = cmd->kind == ENGINE_CMD_STEP;
        c->key = dup_or_null(cmd->key, &oom);
        c->value = dup_or_null(cmd->value, &oom);
        if (cmd->kind == ENGINE_CMD_GENERATE) c->text = dup_or_null(cmd->text, &oom);
        if (cmd->kind == ENGINE_CMD_EVAL) c->split = dup_or_null(split, &oom);
        if (cmd->kind == ENGINE_CMD_SAVE && cmd->text && *cmd->text) c->dir = dup_or_null(cmd->text, &oom);
        c->reply_len = cmd->kind == ENGINE_CMD_GENERATE ? 65536 : 4096;
        c->reply = calloc(1, c->reply_len);
        c->node = calloc(1, sizeof *c->node);
        c->err = c->err_buf;
        if (!c->reply || !c->node) oom = 1;
    }
    if (oom) {
        cmd_free(c);
        return pk_errf(err, "engine: out of memory queueing a command"), 0;
    }
    pthread_mutex_lock(&e->mu);
    if (e->worker_done) {
        pthread_mutex_unlock(&e->mu);
        cmd_free(c); /* no ctx yet: the caller keeps its own */
        return pk_errf(err, "the engine is stopped"), 0;
    }
    c->work = cmd->work;
    c->ctx = cmd->ctx;
    c->ctx_free = cmd->ctx_free;
    c->id = ++e->next_id;
    if (e->queue_tail)
        e->queue_tail->next = c;
    else
        e->queue_head = c;
    e->queue_tail = c;
    unsigned long id = c->id;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return id;
}

/* Takes the first queued event that `match` accepts (mu held); NULL when none. */
static EventNode *take_event_locked(Engine *e, unsigned long reply_id) {
    EventNode *prev = NULL;
    for (EventNode *it = e->events_head; it; prev = it, it = it->next) {
        if (reply_id && !(it->ev.kind == ENGINE_EVENT_REPLY && it->ev.id == reply_id)) continue;
        if (prev)
            prev->next = it->next;
        else
            e->events_head = it->next;
        if (e->events_tail == it) e->events_tail = prev;
        if (it->ev.kind != ENGINE_EVENT_REPLY) e->n_events--;
        return it;
    }
    return NULL;
}

static void deadline_after(struct timespec *deadline, double timeout_s) {
    clock_gettime(CLOCK_REALTIME, deadline);
    double whole = floor(timeout_s);
    deadline->tv_sec += (time_t)whole;
    deadline->tv_nsec += (long)((timeout_s - whole) * 1e9);
    if (deadline->tv_nsec >= 1000000000L) deadline->tv_sec++, deadline->tv_nsec -= 1000000000L;
}

static int hand_over(EventNode *n, EngineEvent *ev) {
    if (!n) return 0;
    *ev = n->ev;
    free(n);
    return 1;
}

int engine_poll_event(Engine *e, EngineEvent *ev) {
    memset(ev, 0, sizeof *ev);
    pthread_mutex_lock(&e->mu);
    EventNode *n = take_event_locked(e, 0);
    pthread_mutex_unlock(&e->mu);
    return hand_over(n, ev);
}

int engine_wait_event(Engine *e, EngineEvent *ev, double timeout_s) {
    memset(ev, 0, sizeof *ev);
    struct timespec deadline;
    deadline_after(&deadline, timeout_s);
    pthread_mutex_lock(&e->mu);
    EventNode *n;
    while (!(n = take_event_locked(e, 0)))
        if (pthread_cond_timedwait(&e->cv, &e->mu, &deadline) == ETIMEDOUT) break;
    pthread_mutex_unlock(&e->mu);
    return hand_over(n, ev);
}

int engine_wait_reply(Engine *e, unsigned long id, EngineEvent *ev) {
    memset(ev, 0, sizeof *ev);
    if (id == 0 || id > e->next_id) {
        ev->status = PK_FAIL;
        ev->text = strdup("engine: no command with that id was posted");
        return PK_FAIL;
    }
    if (e->thread_started && pthread_equal(pthread_self(), e->thread)) {
        ev->status = PK_FAIL; /* the worker waiting for itself would never wake */
        ev->text = strdup("engine: a blocking command called on the worker thread (post it instead)");
        return PK_FAIL;
    }
    pthread_mutex_lock(&e->mu);
    EventNode *n;
    while (!(n = take_event_locked(e, id))) pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    hand_over(n, ev);
    return ev->status;
}

/* engine_post + engine_wait_reply: the reply text into reply, or the sentence into err. */
static int post_and_wait(Engine *e, const EngineCommand *cmd, char *reply, size_t len, char *err) {
    char local[PK_ERR_LEN];
    if (!err) err = local;
    if (reply && len) reply[0] = 0;
    unsigned long id = engine_post(e, cmd, err);
    if (!id) return PK_FAIL;
    EngineEvent ev;
    int rc = engine_wait_reply(e, id, &ev);
    if (rc == PK_OK && reply && len) snprintf(reply, len, "%s", ev.text ? ev.text : "");
    if (rc != PK_OK) snprintf(err, PK_ERR_LEN, "%s", ev.text ? ev.text : "engine: out of memory");
    engine_event_clear(&ev);
    return rc;
}

int engine_pause(Engine *e, char *err) {
    EngineCommand c = {.kind = ENGINE_CMD_PAUSE};
    return post_and_wait(e, &c, NULL, 0, err);
}

int engine_resume(Engine *e, char *err) {
    EngineCommand c = {.kind = ENGINE_CMD_RESUME};
    return post_and_wait(e, &c, NULL, 0, err);
}

int engine_run_steps(Engine *e, int n, char *err) {
    EngineCommand c = {.kind = ENGINE_CMD_RUN_STEPS, .n = n};
    return post_and_wait(e, &c, NULL, 0, err);
}

int engine_step(Engine *e, int n, char *err) {
    EngineCommand c = {.kind = ENGINE_CMD_STEP, .n = n};
    return post_and_wait(e, &c, NULL, 0, err);
}

int engine_set(Engine *e, const char *key, const char *value, char *err) {
    EngineCommand c = {.kind = ENGINE_CMD_SET, .key = key, .value = value};
    return post_and_wait(e, &c, NULL, 0, err);
}

int engine_get(Engine *e, const char *key, char *value, size_t len, char *err) {
    char local[PK_ERR_LEN];
    const EngineSnapshot *s = engine_snapshot_acquire(e);
    int rc = config_get(&s->config, key, value, len, err ? err : local);
    engine_snapshot_release(e, s);
    return rc;
}

int engine_eval(Engine *e, const char *split, char *reply, size_t len, char *err) {
    EngineCommand c = {.kind = ENGINE_CMD_EVAL, .text = split};
    return post_and_wait(e, &c, reply, len, err);
}

int engine_generate(Engine *e, const char *text, char *reply, size_t len, char *err) {
    EngineCommand c = {.kind = ENGINE_CMD_GENERATE, .text = text};
    return post_and_wait(e, &c, reply, len, err);
}

int engine_exposure(Engine *e, char *reply, size_t len, char *err) {
    EngineCommand c = {.kind = ENGINE_CMD_EXPOSURE};
    return post_and_wait(e, &c, reply, len, err);
}

int engine_save(Engine *e, const char *dir, char *reply, size_t len, char *err) {
    EngineCommand c = {.kind = ENGINE_CMD_SAVE, .text = dir};
    return post_and_wait(e, &c, reply, len, err);
}

int engine_select_dev(Engine *e, int delta, char *err) {
    EngineCommand c = {.kind = ENGINE_CMD_SELECT_DEV, .n = delta};
    return post_and_wait(e, &c, NULL, 0, err);
}

int engine_stop(Engine *e, char *err) {
    pthread_mutex_lock(&e->mu);
    int done = e->worker_done;
    pthread_mutex_unlock(&e->mu);
    if (done) return PK_OK;
    EngineCommand c = {.kind = ENGINE_CMD_STOP};
    int rc = post_and_wait(e, &c, NULL, 0, err);
    /* the worker leaves right after its reply: once stopped, posting is refused at once */
    pthread_mutex_lock(&e->mu);
    while (rc == PK_OK && !e->worker_done) pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int engine_work(Engine *e, EngineWorkFn fn, void *ctx, PkBuf *out, char *err) {
    char local[PK_ERR_LEN];
    if (!err) err = local;
    if (e->read_only) return pk_errf(err, "%s is open read-only", e->rd.path);
    pthread_mutex_lock(&e->mu);
    int done = e->worker_done;
    pthread_mutex_unlock(&e->mu);
    if (done) { /* the worker has left: this thread is the only one with the model memory */
        if (e->thread_started) pthread_join(e->thread, NULL), e->thread_started = 0;
        if (!e->ds) return pk_errf(err, "the run did not load");
        return fn(ctx, e->ds, out, err);
    }
    EngineCommand c = {.kind = ENGINE_CMD_WORK, .work = fn, .ctx = ctx};
    unsigned long id = engine_post(e, &c, err);
    if (!id) return PK_FAIL;
    EngineEvent ev;
    int rc = engine_wait_reply(e, id, &ev);
    if (rc == PK_OK && ev.text) pk_buf_printf(out, "%s", ev.text);
    if (rc != PK_OK) {
        if (ev.output) pk_buf_printf(out, "%s", ev.output);
        snprintf(err, PK_ERR_LEN, "%s", ev.text ? ev.text : "engine: out of memory");
    }
    engine_event_clear(&ev);
    return rc;
}

void engine_interrupt(Engine *e) {
    if (e) e->interrupt_requested = 1;
}

void engine_debug_inject_nonfinite(Engine *e, int step) {
    pthread_mutex_lock(&e->mu);
    e->inject_nonfinite_step = step;
    pthread_mutex_unlock(&e->mu);
}

EngineState engine_wait_idle(Engine *e, double timeout_s) {
    struct timespec deadline;
    deadline_after(&deadline, timeout_s);
    pthread_mutex_lock(&e->mu);
    while ((e->state == ENGINE_RUNNING || e->state == ENGINE_LOADING || e->queue_head) && !e->worker_done)
        if (pthread_cond_timedwait(&e->cv, &e->mu, &deadline) == ETIMEDOUT) break;
    EngineState st = e->state;
    pthread_mutex_unlock(&e->mu);
    return st;
}

void engine_set_step_hook(Engine *e, EngineStepHook fn, void *ctx) {
    pthread_mutex_lock(&e->mu);
    e->step_hook = fn;
    e->step_hook_ctx = ctx;
    pthread_mutex_unlock(&e->mu);
}

void engine_log_line(Engine *e, const char *line) {
    engine_log(e, "%s", line); /* the worker publishes after the step or the work that said it */
}

const char *engine_run_path(const Engine *e) { return e->rd.path; }

/* ---------------------------------------------------------------- create / destroy */

int engine_create(Engine **out, const RunConfig *cfg_in, const char *resume_dir, int autostart, char *err) {
    *out = NULL;
    RunConfig cfg = *cfg_in;
    if (config_validate(&cfg, err) != PK_OK) return PK_FAIL;
    Engine *e = calloc(1, sizeof *e);
    if (!e) return pk_errf(err, "engine: out of memory");
    e->last_ckpt_step = -1;
    e->last_eval_step = -1;
    e->best_rouge = -1;
    run_history_init(&e->h);
    e->budget = autostart ? -2 : -1; /* -2 tells the worker to start running once loaded */
    e->state = ENGINE_LOADING;
    snprintf(e->message, sizeof e->message, "loading");
    if (run_dir_prepare(&e->rd, &cfg, resume_dir, &e->resume_step, err) != PK_OK) {
        free(e);
        return PK_FAIL;
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
    run_dir_remove_created(&e->rd); /* no orphan folder when a new run cannot start */
    run_dir_free(&e->rd);
    free(e);
    return PK_FAIL;
}

int engine_open(Engine **out, const char *run_dir, char *err) {
    *out = NULL;
    Engine *e = calloc(1, sizeof *e);
    if (!e) return pk_errf(err, "engine: out of memory");
    run_history_init(&e->h);
    e->read_only = 1;
    run_dir_init(&e->rd);
    e->last_ckpt_step = e->last_eval_step = -1;
    e->best_rouge = -1;
    e->budget = -1;
    if (snprintf(e->rd.path, sizeof e->rd.path, "%s", run_dir) >= (int)sizeof e->rd.path) {
        free(e);
        return pk_errf(err, "%s: path too long", run_dir);
    }
    size_t n = strlen(e->rd.path);
    while (n > 1 && e->rd.path[n - 1] == '/') e->rd.path[--n] = 0;
    if (run_dir_read(e->rd.path, &e->cfg, &e->h, err) != PK_OK) {
        run_history_free(&e->h);
        free(e);
        return PK_FAIL;
    }
    char lerr[PK_ERR_LEN];
    int latest;
    if (run_dir_read_latest(e->rd.path, &latest, lerr) == PK_OK) e->last_ckpt_step = latest;
    e->elapsed_s = e->h.elapsed_s;
    e->tps_ema = e->h.tokens_per_s;
    e->gflops_ema = e->h.gflops;
    e->last_eval_step = e->h.last_eval_step;
    e->dev_index = e->h.generation.dev_index > 0 ? e->h.generation.dev_index : 0;
    e->worker_done = 1; /* no worker: nothing is queued, waits return at once */
    int step = e->h.last_step, finished = step >= e->cfg.steps || e->h.finished_step >= step;
    e->state = finished && step > 0 ? ENGINE_FINISHED : ENGINE_PAUSED;
    snprintf(e->message, sizeof e->message, "%s: open read-only, %s at step %d of %d", e->rd.path,
             e->state == ENGINE_FINISHED ? "finished" : "stopped", step, e->cfg.steps);
    engine_log(e, "%s", e->message);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    publish(e);
    *out = e;
    return PK_OK;
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
    run_dir_free(&e->rd); /* finish_run closed the log unless the worker never ran */
    distill_free(e->ds);
    run_history_free(&e->h);
    for (int i = 0; i < e->n_log; i++) free(e->log[i]);
    box_free(e->current);
    while (e->events_head) { /* events nobody took */
        EventNode *n = e->events_head;
        e->events_head = n->next;
        engine_event_clear(&n->ev);
        free(n);
    }
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}
