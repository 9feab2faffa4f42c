/* The plugin host. Plugin code never runs in this process: every call (load, analyze,
 * on_step, on_unload) runs in a child forked for it, which loads the plugin file, calls
 * the callback against a copy-on-write snapshot of the session and sends what the
 * plugin publishes back over a pipe (app/plugin_wire.h). The session validates all of
 * it, applies it, and turns any fault of the child (signal, exit, hang, bad output)
 * into one message; the plugin is then unloaded. The model is documented for plugin
 * authors in plugins/promptkd_plugin.h.
 *
 * Threads: every call forks from the training worker, between two steps: on_step from
 * its step hook, load, run and unload as queued work (ENGINE_CMD_WORK: the client posts,
 * the worker runs the call; a running run goes on afterwards, it is never paused for a
 * plugin). So the worker alone touches the model memory, and the plugin list and what
 * plugins published change only on the worker (the views read them under the host
 * mutex). The child is a copy of the worker thread only; it never takes a lock another
 * thread may have held at the fork: pk_threads_fork_child makes every parallel_for
 * inline and OpenBLAS single-threaded, host functions read the DistillState handed to
 * the call (no engine mutex) and publish to the pipe (no host mutex), and the
 * tokenizer's cache lock is only ever taken by the worker, the forking thread. glibc
 * resets malloc's and stdio's locks in the child. */
#include "plugin_host.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "distill.h"
#include "gpt2.h"
#include "parallel.h"
#include "plugin_wire.h"
#include "promptkd_plugin.h"
#include "tokenizer.h"

#define HOST_MAX_PLUGINS 16
#define CHART_FULL_LEN (PK_PLUGIN_NAME_MAX + 1 + PK_PLUGIN_NAME_MAX + 1) /* "PLUGIN/CHART" */
#define MAX_TEXT_BYTES (1 << 24) /* prompt texts handed to encode/sample */
#define MAX_DECODE_IDS (1 << 20)

typedef struct {
    char plugin[PK_PLUGIN_NAME_MAX + 1];
    char name[PK_PLUGIN_TABLE_NAME_MAX + 1];
    int n_cols, n_rows;
    char **cells; /* (n_rows + 1) * n_cols: the header row first */
} HostTable;

typedef struct {
    char chart[CHART_FULL_LEN]; /* "PLUGIN/CHART" */
    char series[PK_PLUGIN_SERIES_NAME_MAX + 1];
    int n, cap;
    double *x, *y;
} HostSeries;

typedef struct {
    char name[PK_PLUGIN_NAME_MAX + 1];
    char description[PK_PLUGIN_DESCRIPTION_MAX + 1];
    char path[1024];
    int fd;          /* the file, open since load: every child loads exactly this file */
    unsigned flags;  /* PW_HAS_* */
    size_t state_size;
    unsigned char *state; /* the plugin's state block between calls */
    double timeout_s;     /* 0: the session default */
} LoadedPlugin;

struct PluginHost {
    Engine *engine;
    /* guards the plugin list, the published tables and series and the notices: on_step
     * runs (and may unload a faulty plugin) on the worker thread while the views read */
    pthread_mutex_t mu;
    double default_timeout_s;
    int n_plugins;
    LoadedPlugin plugins[HOST_MAX_PLUGINS];
    int n_tables;
    HostTable tables[PK_PLUGIN_MAX_TABLES];
    int n_series;
    HostSeries series[PK_PLUGIN_MAX_SERIES];
    PkBuf notices; /* faults seen outside a command, not yet shown by the REPL */
};

/* =================================================================== the child side */

typedef enum { CALL_LOAD, CALL_ANALYZE, CALL_STEP, CALL_UNLOAD } CallKind;

typedef struct {
    CallKind kind;
    const char *path;      /* for messages */
    int fd;                /* the plugin file */
    const LoadedPlugin *p; /* NULL when loading */
    int argc;
    const char *const *argv;
    const PkPluginStepInfo *info;
    double timeout_s;
    DistillState *ds; /* the run's state, handed over by the worker for this call */
} Call;

typedef struct {
    char chart[CHART_FULL_LEN];
    char series[PK_PLUGIN_SERIES_NAME_MAX + 1];
    long n;
} ChildSeries;

/* Everything a child knows; only ever used in a child (one per process, single-threaded). */
static struct {
    PluginHost *h;
    DistillState *ds; /* the run as it was at the fork */
    int fd; /* the pipe's write end */
    char plugin[PK_PLUGIN_NAME_MAX + 1];
    char last_error[PK_PLUGIN_ERR_LEN];
    size_t sent;
    /* what the session holds plus what this call published: for the limits */
    int n_series;
    ChildSeries series[PK_PLUGIN_MAX_SERIES];
    int n_tables;
    char tables[PK_PLUGIN_MAX_TABLES][PK_PLUGIN_NAME_MAX + 1 + PK_PLUGIN_TABLE_NAME_MAX + 1];
    PkHostApi api;
} C;

static void child_die(int status) __attribute__((noreturn));
static void child_die(int status) { _exit(status); }

static int set_error(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int set_error(char *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(C.last_error, sizeof C.last_error, fmt, ap);
    va_end(ap);
    if (err) snprintf(err, PK_PLUGIN_ERR_LEN, "%s", C.last_error);
    return -1;
}
#define FAIL(...) set_error(err, __VA_ARGS__)
#define FAIL0(...) set_error(NULL, __VA_ARGS__)

static void ok(void) { C.last_error[0] = 0; }

/* The host pointer a plugin passes must be the one it was given. */
static int bad_host(void *host, const char *fn, char *err) {
    if (host == (void *)&C) return 0;
    set_error(err, "%s: the host argument is not api->host", fn);
    return 1;
}

static int valid_which(int which) {
    return which == PK_MODEL_PROMPTED_TEACHER || which == PK_MODEL_TEACHER || which == PK_MODEL_STUDENT;
}
static const char *model_word(int which) {
    return which == PK_MODEL_STUDENT ? "student" : which == PK_MODEL_TEACHER ? "teacher" : "prompted teacher (soft prompt)";
}

static DistillState *child_ds(void) { return C.ds; }

static GPT2 *child_model(int which) {
    DistillState *ds = child_ds();
    if (!ds) return NULL;
    if (which == PK_MODEL_STUDENT) return distill_student(ds);
    if (which == PK_MODEL_TEACHER) return distill_has_teacher(ds) ? distill_teacher(ds) : NULL;
    if (which == PK_MODEL_PROMPTED_TEACHER) return distill_has_prompt(ds) ? distill_teacher(ds) : NULL;
    return NULL;
}

/* Sends one frame; a call would exceed PK_PLUGIN_MAX_OUTPUT fails with a sentence.
 * A broken pipe means the session gave up on this child: leave. */
static int child_send(uint32_t type, PwBuf *b, const char *fn, char *err) {
    if (b->oom) {
        pw_buf_free(b);
        return set_error(err, "%s: out of memory", fn);
    }
    if (b->len > (size_t)PK_PLUGIN_MAX_OUTPUT - PW_HEADER_LEN - C.sent) {
        pw_buf_free(b);
        return set_error(err, "%s: the results of one call may not exceed %d MiB", fn, PK_PLUGIN_MAX_OUTPUT >> 20);
    }
    if (pw_write_frame(C.fd, type, b->data, b->len)) child_die(3);
    C.sent += PW_HEADER_LEN + b->len;
    pw_buf_free(b);
    return 0;
}

static void child_phase(int phase) {
    PwBuf b = {0};
    pw_put_u32(&b, (uint32_t)phase);
    child_send(PW_PHASE, &b, "phase", NULL);
}

/* ---- the host API, as a plugin sees it ---- */

static int api_has_model(void *host, int which) {
    if (bad_host(host, "has_model", NULL)) return -1;
    if (!valid_which(which))
        return FAIL0("has_model: which must be PK_MODEL_PROMPTED_TEACHER (0), PK_MODEL_TEACHER (1) or PK_MODEL_STUDENT (2), got %d",
                     which);
    ok();
    return child_model(which) != NULL;
}

static int api_vocab_size(void *host) {
    if (bad_host(host, "vocab_size", NULL)) return -1;
    DistillState *ds = child_ds();
    if (!ds) return FAIL0("vocab_size: the run has not finished loading");
    ok();
    return distill_student(ds)->config.vocab_size;
}

static int api_num_layers(void *host, int which) {
    if (bad_host(host, "num_layers", NULL)) return -1;
    if (!valid_which(which)) return FAIL0("num_layers: which must be 0, 1 or 2 (PK_MODEL_*), got %d", which);
    GPT2 *m = child_model(which);
    if (!m) return FAIL0("num_layers: this run has no %s", model_word(which));
    ok();
    return m->config.num_layers;
}

/* Checks a token sequence for model m after P prompt slots. */
static int check_tokens(const char *fn, const GPT2 *m, int P, const int *tokens, int n, char *err) {
    if (!tokens) return FAIL("%s: tokens is NULL", fn);
    if (n < 1) return FAIL("%s: n must be at least 1, got %d", fn, n);
    int room = m->config.max_seq_len - P;
    if (n > room)
        return FAIL("%s: %d tokens do not fit: the model has %d positions%s, so at most %d tokens", fn, n,
                    m->config.max_seq_len, P ? " including the soft prompt" : "", room);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->config.vocab_size)
            return FAIL("%s: tokens[%d] = %d is outside the vocabulary [0, %d)", fn, i, tokens[i], m->config.vocab_size);
    return 0;
}

/* Runs model m on [P prompt slots][tokens]; the prompted teacher gets the soft prompt. */
static int run_forward(const char *fn, GPT2 *m, int with_prompt, const int *tokens, int n, int *P_out, char *err) {
    int P = 0, Cw = 0;
    const float *prompt = with_prompt ? distill_prompt(child_ds(), &P, &Cw) : NULL;
    if (check_tokens(fn, m, P, tokens, n, err)) return -1;
    int T = P + n;
    int *slots = malloc(sizeof(int) * (size_t)T);
    if (!slots) return FAIL("%s: out of memory", fn);
    for (int i = 0; i < P; i++) slots[i] = 0;
    memcpy(slots + P, tokens, sizeof(int) * (size_t)n);
    char e[PK_ERR_LEN];
    int rc = gpt2_forward(m, slots, prompt, P, NULL, 1, T, e);
    free(slots);
    if (rc != PK_OK) return FAIL("%s: %s", fn, e);
    *P_out = P;
    return 0;
}

static int api_forward(void *host, int which, const int *tokens, int n, float *logits, size_t logits_len, char *err) {
    if (bad_host(host, "forward", err)) return -1;
    if (!valid_which(which)) return FAIL("forward: which must be 0, 1 or 2 (PK_MODEL_*), got %d", which);
    GPT2 *m = child_model(which);
    if (!m) return FAIL("forward: this run has no %s", model_word(which));
    if (!logits) return FAIL("forward: logits is NULL");
    if (n >= 1 && n <= m->config.max_seq_len && logits_len / (size_t)n < (size_t)m->config.vocab_size)
        return FAIL("forward: logits holds %zu floats, %d tokens need %zu (n * V)", logits_len, n,
                    (size_t)n * (size_t)m->config.vocab_size);
    int P = 0;
    if (run_forward("forward", m, which == PK_MODEL_PROMPTED_TEACHER, tokens, n, &P, err)) return -1;
    size_t V = (size_t)m->config.vocab_size;
    memcpy(logits, m->logits + (size_t)P * V, sizeof(float) * V * (size_t)n);
    ok();
    return 0;
}

static int api_prompt_attention(void *host, const int *tokens, int n, double *mass, int mass_len, char *err) {
    if (bad_host(host, "prompt_attention", err)) return -1;
    GPT2 *m = child_model(PK_MODEL_PROMPTED_TEACHER);
    if (!m) return FAIL("prompt_attention: this run has no soft prompt");
    if (!mass) return FAIL("prompt_attention: mass is NULL");
    int L = m->config.num_layers;
    if (mass_len < L) return FAIL("prompt_attention: mass holds %d doubles, the teacher has %d layers", mass_len, L);
    int P = 0;
    if (run_forward("prompt_attention", m, 1, tokens, n, &P, err)) return -1;
    int T = P + n, NH = m->config.num_heads;
    for (int l = 0; l < L; l++) {
        const float *att = gpt2_attention_probs(m, l); /* [B=1, NH, T, T] */
        double total = 0;
        for (int hd = 0; hd < NH; hd++)
            for (int q = P; q < T; q++) {
                const float *row = att + ((size_t)hd * T + q) * T;
                for (int k = 0; k < P; k++) total += row[k];
            }
        mass[l] = total / ((double)NH * n);
    }
    ok();
    return 0;
}

static int api_prompt(void *host, const float **prompt, const float **prompt_init, int *P, int *Cw) {
    if (bad_host(host, "prompt", NULL)) return -1;
    if (!prompt || !prompt_init || !P || !Cw) return FAIL0("prompt: every output pointer must be non-NULL");
    ok();
    DistillState *ds = child_ds();
    int p = 0, c = 0;
    const float *v = ds ? distill_prompt(ds, &p, &c) : NULL;
    if (!v) return 0;
    *prompt = v;
    *prompt_init = distill_prompt_init(ds);
    *P = p;
    *Cw = c;
    return 1;
}

/* strlen bounded: a text longer than MAX_TEXT_BYTES (or not terminated within it) fails */
static int text_len(const char *fn, const char *what, const char *s, size_t *len, char *err) {
    if (!s) return FAIL("%s: %s is NULL", fn, what);
    *len = strnlen(s, MAX_TEXT_BYTES + 1);
    if (*len > MAX_TEXT_BYTES) return FAIL("%s: %s is longer than %d bytes", fn, what, MAX_TEXT_BYTES);
    return 0;
}

static int api_encode(void *host, const char *text, int **ids, int *n, char *err) {
    if (bad_host(host, "encode", err)) return -1;
    size_t len = 0;
    if (text_len("encode", "text", text, &len, err)) return -1;
    if (!ids || !n) return FAIL("encode: ids and n must be non-NULL");
    DistillState *ds = child_ds();
    if (!ds) return FAIL("encode: the run has not finished loading");
    char e[PK_ERR_LEN];
    if (tok_encode(distill_tokenizer(ds), text, len, 0, ids, n, e)) return FAIL("encode: %s", e);
    ok();
    return 0;
}

static char *api_decode(void *host, const int *ids, int n) {
    if (bad_host(host, "decode", NULL)) return NULL;
    if (n < 0 || n > MAX_DECODE_IDS) {
        FAIL0("decode: n must be from 0 to %d, got %d", MAX_DECODE_IDS, n);
        return NULL;
    }
    if (!ids && n > 0) {
        FAIL0("decode: ids is NULL");
        return NULL;
    }
    DistillState *ds = child_ds();
    if (!ds) {
        FAIL0("decode: the run has not finished loading");
        return NULL;
    }
    int none = 0;
    char *text = NULL, e[PK_ERR_LEN];
    size_t len = 0;
    if (tok_decode(distill_tokenizer(ds), ids ? ids : &none, n, &text, &len, e)) {
        FAIL0("decode: %s", e);
        return NULL;
    }
    ok();
    return text;
}

static void api_free_ids(int *ids) { free(ids); }
static void api_free_text(char *t) { free(t); }

static int api_eos_id(void *host) {
    if (bad_host(host, "eos_id", NULL)) return -1;
    DistillState *ds = child_ds();
    if (!ds) return FAIL0("eos_id: the run has not finished loading");
    ok();
    return tok_eos_id(distill_tokenizer(ds));
}

/* "train", "valid" or "test" (read at most 8 bytes of it) */
static int split_name_ok(const char *fn, const char *split) {
    if (!split) return FAIL0("%s: split is NULL (expected \"train\", \"valid\" or \"test\")", fn);
    size_t n = strnlen(split, 8);
    if (n > 5 || (strcmp(split, "train") && strcmp(split, "valid") && strcmp(split, "test")))
        return FAIL0("%s: split must be \"train\", \"valid\" or \"test\", got \"%.5s%s\"", fn, split, n > 5 ? "..." : "");
    if (!child_ds()) return FAIL0("%s: the run has not finished loading", fn);
    return 0;
}

static int api_dataset_size(void *host, const char *split) {
    if (bad_host(host, "dataset_size", NULL) || split_name_ok("dataset_size", split)) return -1;
    const Dataset *d = distill_dataset(child_ds(), split);
    ok();
    return d ? d->n : 0; /* 0: a split this run has no data for */
}

static const Dataset *child_record(const char *fn, const char *split, int i) {
    if (split_name_ok(fn, split)) return NULL;
    const Dataset *d = distill_dataset(child_ds(), split);
    if (!d) {
        FAIL0("%s: this run has no %s split", fn, split);
        return NULL;
    }
    if (i < 0 || i >= d->n) {
        FAIL0("%s: record %d is outside the %s split's [0, %d)", fn, i, split, d->n);
        return NULL;
    }
    return d;
}

static const char *api_dataset_prompt(void *host, const char *split, int i) {
    if (bad_host(host, "dataset_prompt", NULL)) return NULL;
    const Dataset *d = child_record("dataset_prompt", split, i);
    if (!d) return NULL;
    ok();
    return d->recs[i].prompt;
}

static const char *api_dataset_response(void *host, const char *split, int i) {
    if (bad_host(host, "dataset_response", NULL)) return NULL;
    const Dataset *d = child_record("dataset_response", split, i);
    if (!d) return NULL;
    if (d->recs[i].n_refs < 1) {
        FAIL0("dataset_response: record %d of %s has no reference", i, split);
        return NULL;
    }
    ok();
    return d->recs[i].refs[0];
}

static int api_sample(void *host, int which, const char *prompt_text, int max_new_tokens, unsigned long long seed,
                      int **ids, int *n, char *err) {
    if (bad_host(host, "sample", err)) return -1;
    if (!valid_which(which)) return FAIL("sample: which must be 0, 1 or 2 (PK_MODEL_*), got %d", which);
    GPT2 *m = child_model(which);
    if (!m) return FAIL("sample: this run has no %s", model_word(which));
    size_t len = 0;
    if (text_len("sample", "prompt_text", prompt_text, &len, err)) return -1;
    if (!ids || !n) return FAIL("sample: ids and n must be non-NULL");
    if (max_new_tokens < 1 || max_new_tokens > m->config.max_seq_len)
        return FAIL("sample: max_new_tokens must be from 1 to %d (the model's positions), got %d", m->config.max_seq_len,
                    max_new_tokens);
    static const int to_distill[] = {DISTILL_PROMPTED_TEACHER, DISTILL_TEACHER, DISTILL_STUDENT};
    DistillState *ds = child_ds();
    char *text = NULL, e[PK_ERR_LEN];
    if (distill_generate(ds, to_distill[which], prompt_text, max_new_tokens, seed, &text, e)) return FAIL("sample: %s", e);
    int rc = tok_encode(distill_tokenizer(ds), text, strlen(text), 0, ids, n, e);
    free(text);
    if (rc) return FAIL("sample: %s", e);
    ok();
    return 0;
}

/* A name of [A-Za-z0-9_.-], 1..max bytes. */
static int check_name(const char *fn, const char *what, const char *s, size_t max, char *err) {
    if (!s) return FAIL("%s: %s is NULL", fn, what);
    size_t n = strnlen(s, max + 1);
    if (n > max) return FAIL("%s: %s is longer than %zu bytes", fn, what, max);
    if (!pw_valid_name(s, n, max))
        return FAIL("%s: %s \"%s\" must be letters, digits, '_', '-' or '.' (not first)", fn, what, s);
    return 0;
}

static int check_series_name(const char *fn, const char *s, char *err) {
    if (!s) return FAIL("%s: series is NULL", fn);
    size_t n = strnlen(s, PK_PLUGIN_SERIES_NAME_MAX + 1);
    if (n < 1 || n > PK_PLUGIN_SERIES_NAME_MAX)
        return FAIL("%s: series name must be 1 to %d bytes", fn, PK_PLUGIN_SERIES_NAME_MAX);
    if (!pw_printable(s, n)) return FAIL("%s: series name has control characters", fn);
    return 0;
}

/* The series (chart, series) of this plugin as the session will hold it, created in
 * the mirror when new; NULL with a sentence when the session is full. */
static ChildSeries *child_series(const char *fn, const char *chart, const char *series) {
    char full[CHART_FULL_LEN];
    snprintf(full, sizeof full, "%s/%s", C.plugin, chart);
    for (int i = 0; i < C.n_series; i++)
        if (!strcmp(C.series[i].chart, full) && !strcmp(C.series[i].series, series)) return &C.series[i];
    if (C.n_series >= PK_PLUGIN_MAX_SERIES) {
        FAIL0("%s: the session holds %d series, the most it keeps", fn, PK_PLUGIN_MAX_SERIES);
        return NULL;
    }
    ChildSeries *s = &C.series[C.n_series++];
    snprintf(s->chart, sizeof s->chart, "%s", full);
    snprintf(s->series, sizeof s->series, "%s", series);
    s->n = 0;
    return s;
}

static int api_publish_table(void *host, const char *name, int n_cols, const char *const *headers, int n_rows,
                             const char *const *cells) {
    char *err = NULL;
    if (bad_host(host, "publish_table", err)) return -1;
    if (check_name("publish_table", "name", name, PK_PLUGIN_TABLE_NAME_MAX, err)) return -1;
    if (n_cols < 1 || n_cols > PK_PLUGIN_MAX_COLS)
        return FAIL("publish_table: n_cols must be from 1 to %d, got %d", PK_PLUGIN_MAX_COLS, n_cols);
    if (n_rows < 0 || n_rows > PK_PLUGIN_MAX_ROWS)
        return FAIL("publish_table: n_rows must be from 0 to %d, got %d", PK_PLUGIN_MAX_ROWS, n_rows);
    if (!headers) return FAIL("publish_table: headers is NULL");
    if (!cells && n_rows > 0) return FAIL("publish_table: cells is NULL");
    char key[sizeof C.tables[0]];
    snprintf(key, sizeof key, "%s/%s", C.plugin, name);
    int known = 0;
    for (int i = 0; i < C.n_tables && !known; i++) known = !strcmp(C.tables[i], key);
    if (!known && C.n_tables >= PK_PLUGIN_MAX_TABLES)
        return FAIL("publish_table: the session holds %d tables, the most it keeps", PK_PLUGIN_MAX_TABLES);
    PwBuf b = {0};
    pw_put_str(&b, name, strlen(name));
    pw_put_u32(&b, (uint32_t)n_cols);
    pw_put_u32(&b, (uint32_t)n_rows);
    size_t total = (size_t)(n_rows + 1) * (size_t)n_cols;
    for (size_t i = 0; i < total; i++) {
        const char *s = i < (size_t)n_cols ? headers[i] : cells[i - (size_t)n_cols];
        if (!s) s = "";
        size_t len = strnlen(s, PK_PLUGIN_MAX_CELL + 1);
        if (len > PK_PLUGIN_MAX_CELL) {
            pw_buf_free(&b);
            if (i < (size_t)n_cols) return FAIL("publish_table: headers[%zu] is longer than %d bytes", i, PK_PLUGIN_MAX_CELL);
            return FAIL("publish_table: cells[%zu] is longer than %d bytes", i - (size_t)n_cols, PK_PLUGIN_MAX_CELL);
        }
        pw_put_str(&b, s, len);
        if (b.oom) break;
    }
    if (child_send(PW_TABLE, &b, "publish_table", err)) return -1;
    if (!known) snprintf(C.tables[C.n_tables++], sizeof C.tables[0], "%s", key);
    ok();
    return 0;
}

static int api_publish_series(void *host, const char *chart, const char *series, const double *x, const double *y,
                              int n) {
    char *err = NULL;
    if (bad_host(host, "publish_series", err)) return -1;
    if (check_name("publish_series", "chart", chart, PK_PLUGIN_NAME_MAX, err) ||
        check_series_name("publish_series", series, err))
        return -1;
    if (n < 0 || n > PK_PLUGIN_MAX_POINTS)
        return FAIL("publish_series: n must be from 0 to %d, got %d", PK_PLUGIN_MAX_POINTS, n);
    if (n > 0 && (!x || !y)) return FAIL("publish_series: %s is NULL", !x ? "x" : "y");
    ChildSeries *s = child_series("publish_series", chart, series);
    if (!s) return -1;
    PwBuf b = {0};
    pw_put_str(&b, chart, strlen(chart));
    pw_put_str(&b, series, strlen(series));
    pw_put_u32(&b, (uint32_t)n);
    pw_put_bytes(&b, x, sizeof(double) * (size_t)n);
    pw_put_bytes(&b, y, sizeof(double) * (size_t)n);
    if (child_send(PW_SERIES, &b, "publish_series", err)) return -1;
    s->n = n;
    ok();
    return 0;
}

static int api_append_point(void *host, const char *chart, const char *series, double x, double y) {
    char *err = NULL;
    if (bad_host(host, "append_point", err)) return -1;
    if (check_name("append_point", "chart", chart, PK_PLUGIN_NAME_MAX, err) ||
        check_series_name("append_point", series, err))
        return -1;
    ChildSeries *s = child_series("append_point", chart, series);
    if (!s) return -1;
    if (s->n >= PK_PLUGIN_MAX_POINTS) return FAIL("append_point: the series has %d points, the most it keeps", PK_PLUGIN_MAX_POINTS);
    PwBuf b = {0};
    pw_put_str(&b, chart, strlen(chart));
    pw_put_str(&b, series, strlen(series));
    pw_put_f64(&b, x);
    pw_put_f64(&b, y);
    if (child_send(PW_POINT, &b, "append_point", err)) return -1;
    s->n++;
    ok();
    return 0;
}

static void api_log(void *host, const char *message) {
    if (bad_host(host, "log", NULL)) return;
    if (!message) {
        FAIL0("log: message is NULL");
        return;
    }
    size_t n = strnlen(message, PK_PLUGIN_LOG_MAX); /* longer lines are cut */
    PwBuf b = {0};
    pw_put_str(&b, message, n);
    if (child_send(PW_LOG, &b, "log", NULL) == 0) ok();
}

static const char *api_last_error(void *host) {
    if (host != (void *)&C) return "last_error: the host argument is not api->host";
    return C.last_error;
}

static void child_api_init(void) {
    PkHostApi *a = &C.api;
    memset(a, 0, sizeof *a);
    a->abi_version = PROMPTKD_PLUGIN_ABI;
    a->host = &C;
    a->has_model = api_has_model;
    a->vocab_size = api_vocab_size;
    a->num_layers = api_num_layers;
    a->forward = api_forward;
    a->prompt_attention = api_prompt_attention;
    a->prompt = api_prompt;
    a->encode = api_encode;
    a->decode = api_decode;
    a->free_ids = api_free_ids;
    a->free_text = api_free_text;
    a->eos_id = api_eos_id;
    a->dataset_size = api_dataset_size;
    a->dataset_prompt = api_dataset_prompt;
    a->dataset_response = api_dataset_response;
    a->sample = api_sample;
    a->publish_table = api_publish_table;
    a->publish_series = api_publish_series;
    a->append_point = api_append_point;
    a->log = api_log;
    a->last_error = api_last_error;
    a->num_functions = 20;
}

/* Tells the session the host refused the plugin before calling it, and leaves. */
static void child_refuse(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void child_refuse(const char *fmt, ...) {
    char msg[PK_PLUGIN_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    PwBuf b = {0};
    pw_put_i32(&b, -1);
    pw_put_u32(&b, 1);
    pw_put_str(&b, msg, strlen(msg));
    if (!b.oom) pw_write_frame(C.fd, PW_RESULT, b.data, b.len);
    child_die(0);
}

/* exit() from plugin code must not run the session's atexit handlers or flush copies
 * of its stdio buffers (a metrics line written twice): leave at once, keeping the status. */
static void child_on_exit(int status, void *arg) {
    (void)arg;
    _exit(status & 0xff);
}

/* Weak: present only under LeakSanitizer, whose end-of-process check must not judge
 * the plugin's allocations in a child that _exits. */
extern void __lsan_disable(void) __attribute__((weak));

static void child_setup(PluginHost *h, DistillState *ds, int wfd, pid_t parent) {
    /* die with the session; our own process group, so a timeout kills what the plugin started */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    /* default dispositions (the TUI's fatal-signal handler must not restore the terminal
     * from here, ASan's SEGV handler must not write a report for a deliberate crash) */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    /* the session's unwritten stdout stays the session's; plugin prints go to stderr */
    __fpurge(stdout);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) {
        dup2(null_fd, STDIN_FILENO);
        if (null_fd != STDIN_FILENO) close(null_fd);
    }
    dup2(STDERR_FILENO, STDOUT_FILENO);
    on_exit(child_on_exit, NULL);
    if (__lsan_disable) __lsan_disable();
    pk_threads_fork_child();

    memset(&C, 0, sizeof C);
    C.h = h;
    C.ds = ds;
    C.fd = wfd;
    /* what the session holds, for the limits (a consistent copy: only the worker, the
     * forking thread, changes these lists) */
    for (int i = 0; i < h->n_series; i++) {
        snprintf(C.series[i].chart, sizeof C.series[i].chart, "%s", h->series[i].chart);
        snprintf(C.series[i].series, sizeof C.series[i].series, "%s", h->series[i].series);
        C.series[i].n = h->series[i].n;
    }
    C.n_series = h->n_series;
    for (int i = 0; i < h->n_tables; i++)
        snprintf(C.tables[i], sizeof C.tables[0], "%s/%s", h->tables[i].plugin, h->tables[i].name);
    C.n_tables = h->n_tables;
    child_api_init();
    /* evaluation mode for every forward a plugin runs (this copy only) */
    if (ds) {
        GPT2 *s = distill_student(ds);
        gpt2_train_mode(s, 0, s->dropout_seed);
        if (distill_has_teacher(ds) || distill_has_prompt(ds)) {
            GPT2 *t = distill_teacher(ds);
            gpt2_train_mode(t, 0, t->dropout_seed);
        }
    }
}

static void child_main(PluginHost *h, const Call *c, int wfd, pid_t parent) __attribute__((noreturn));
static void child_main(PluginHost *h, const Call *c, int wfd, pid_t parent) {
    child_setup(h, c->ds, wfd, parent);

    child_phase(PW_IN_DLOPEN);
    char so[64];
    snprintf(so, sizeof so, "/proc/self/fd/%d", c->fd);
    const char *load_path = access(so, R_OK) == 0 ? so : c->path;
    dlerror();
    void *handle = dlopen(load_path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        why = why ? why : "unknown reason";
        size_t sl = strlen(so);
        if (!strncmp(why, so, sl) && why[sl] == ':') why += sl + 1 + (why[sl + 1] == ' ');
        child_refuse("not a loadable shared object (%s)", why);
    }
    child_phase(PW_IN_ENTRY);
    PkPluginEntryFn entry;
    *(void **)&entry = dlsym(handle, PROMPTKD_PLUGIN_ENTRY);
    if (!entry) child_refuse("no %s entry point: not a promptkd plugin", PROMPTKD_PLUGIN_ENTRY);
    const PkPluginDescriptor *d = entry();
    if (!d) child_refuse("its entry point returned no descriptor");
    if (d->abi_version != PROMPTKD_PLUGIN_ABI)
        child_refuse("it was built for plugin ABI %d, this promptkd speaks ABI %d", d->abi_version, PROMPTKD_PLUGIN_ABI);
    if (!d->name || !d->name[0]) child_refuse("its descriptor has no name");
    size_t nl = strnlen(d->name, PK_PLUGIN_NAME_MAX + 1);
    if (!pw_valid_name(d->name, nl, PK_PLUGIN_NAME_MAX))
        child_refuse("its name must be 1 to %d letters, digits, '_', '-' or '.' (not first)", PK_PLUGIN_NAME_MAX);
    if (!d->analyze) child_refuse("its descriptor lacks the required analyze callback");
    if (d->state_size > PK_PLUGIN_MAX_STATE)
        child_refuse("its state_size %zu exceeds the %d bytes a plugin may keep", d->state_size, PK_PLUGIN_MAX_STATE);
    snprintf(C.plugin, sizeof C.plugin, "%s", d->name);
    unsigned flags = (d->on_load ? PW_HAS_ON_LOAD : 0) | (d->on_unload ? PW_HAS_ON_UNLOAD : 0) |
                     (d->on_step ? PW_HAS_ON_STEP : 0);
    if (c->kind == CALL_LOAD) {
        const char *desc = d->description ? d->description : "";
        PwBuf b = {0};
        pw_put_i32(&b, d->abi_version);
        pw_put_u32(&b, flags);
        pw_put_u64(&b, d->state_size);
        pw_put_str(&b, d->name, nl);
        pw_put_str(&b, desc, strnlen(desc, PK_PLUGIN_DESCRIPTION_MAX));
        if (child_send(PW_DESC, &b, "load", NULL)) child_die(4);
    } else if (strcmp(d->name, c->p->name) || d->state_size != c->p->state_size || flags != c->p->flags) {
        child_refuse("the file changed since it was loaded (name, state size or callbacks differ)");
    }

    size_t ss = d->state_size;
    unsigned char *state = calloc(1, ss ? ss : 1);
    if (!state) child_refuse("out of memory for the %zu-byte state", ss);
    if (c->p && ss) memcpy(state, c->p->state, ss);
    char err[PK_PLUGIN_ERR_LEN] = "";
    int rc = 0;
    switch (c->kind) {
    case CALL_LOAD:
        if (d->on_load) {
            child_phase(PW_IN_ON_LOAD);
            rc = d->on_load(&C.api, state, err);
        }
        break;
    case CALL_ANALYZE:
        child_phase(PW_IN_ANALYZE);
        rc = d->analyze(&C.api, state, c->argc, c->argv, err);
        break;
    case CALL_STEP:
        if (d->on_step) {
            child_phase(PW_IN_ON_STEP);
            rc = d->on_step(&C.api, state, c->info, err);
        }
        break;
    case CALL_UNLOAD:
        if (d->on_unload) {
            child_phase(PW_IN_ON_UNLOAD);
            d->on_unload(&C.api, state);
        }
        break;
    }
    child_phase(PW_IN_SENDING);
    if (ss && c->kind != CALL_UNLOAD) {
        PwBuf b = {0};
        pw_put_bytes(&b, state, ss);
        if (child_send(PW_STATE, &b, "state", NULL)) child_die(4);
    }
    err[PK_PLUGIN_ERR_LEN - 1] = 0;
    PwBuf b = {0};
    pw_put_i32(&b, rc);
    pw_put_u32(&b, 0);
    pw_put_str(&b, err, strlen(err));
    if (child_send(PW_RESULT, &b, "result", NULL)) child_die(4);
    child_die(0);
}

/* =================================================================== the session side */

typedef struct {
    int ok;          /* the child returned from the callback (or the host refused the plugin) */
    char fault[400]; /* otherwise what happened: "killed by signal SIGSEGV (Segmentation fault) in analyze" */
    PwReply r;
} Outcome;

static const char *signal_abbrev(int sig) {
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGTRAP: return "SIGTRAP";
    case SIGSYS: return "SIGSYS";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    case SIGQUIT: return "SIGQUIT";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    default: return NULL;
    }
}

/* 1 once the child has ended (without reaping it), or when it cannot be waited for. */
static int child_exited(pid_t pid) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        if (errno != EINTR) return 1;
    return si.si_pid == pid;
}

static double now_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void kill_child(pid_t pid) {
    kill(-pid, SIGKILL); /* its process group: what the plugin started too */
    kill(pid, SIGKILL);
}

/* The default may change from the REPL thread while the worker reads it for an on_step. */
static double default_timeout(PluginHost *h) {
    double v;
    __atomic_load(&h->default_timeout_s, &v, __ATOMIC_RELAXED);
    return v;
}

static double call_timeout(PluginHost *h, double requested) { return requested > 0 ? requested : default_timeout(h); }

/* Forks the child for one call, collects what it sends within the time limit, and
 * judges how it ended. o->r is parsed and validated whenever o->ok. */
static void run_call(PluginHost *h, const Call *c, Outcome *o) {
    memset(o, 0, sizeof *o);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(o->fault, sizeof o->fault, "could not be started (pipe: %s)", strerror(errno));
        return;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(o->fault, sizeof o->fault, "could not be started (fork: %s)", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        child_main(h, c, fds[1], parent);
    }
    close(fds[1]);
    setpgid(pid, pid); /* also done by the child: whichever runs first */

    /* Read until EOF, the child's end (a grandchild may keep the pipe open) or the deadline.
     * The child is never reaped before its process group is killed: its pid, and so the
     * group's id, cannot be reused while it is a zombie. */
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    int timed_out = 0, too_much = 0, oom = 0, exited = 0;
    double deadline = now_monotonic() + c->timeout_s;
    for (;;) {
        double left = deadline - now_monotonic();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int ms = exited ? 0 : left > 0.1 ? 100 : (int)ceil(left * 1000);
        int pr = poll(&pfd, 1, ms);
        if (pr < 0 && errno == EINTR) continue;
        if (pr < 0) break;
        if (pr == 0) {
            if (exited) break; /* what the child wrote is all read */
            exited = child_exited(pid);
            continue;
        }
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap > (size_t)PK_PLUGIN_MAX_OUTPUT + 65536) ncap = (size_t)PK_PLUGIN_MAX_OUTPUT + 65536;
            if (ncap == cap) {
                too_much = 1;
                break;
            }
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) {
                oom = 1;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fds[0], buf + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* EOF: the child (and whatever it started) closed the pipe */
        len += (size_t)n;
        if (len > (size_t)PK_PLUGIN_MAX_OUTPUT) {
            too_much = 1;
            break;
        }
    }
    close(fds[0]);
    /* EOF does not mean the child ended (it may have closed the pipe and gone on) */
    for (unsigned us = 200; !timed_out && !too_much && !oom && !exited;) {
        if ((exited = child_exited(pid))) break;
        if (now_monotonic() >= deadline) {
            timed_out = 1;
            break;
        }
        struct timespec ts = {0, (long)us * 1000};
        nanosleep(&ts, NULL);
        if (us < 20000) us *= 2;
    }
    kill_child(pid); /* the timed-out child, or what an ended one left running in its group */
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }

    char perr[300] = "";
    int parsed = pw_parse(buf, len, &o->r, perr, sizeof perr) == 0;
    free(buf);
    const char *where = pw_phase_name(o->r.phase);
    if (WIFSIGNALED(status) && !timed_out && !too_much && !oom) {
        int sig = WTERMSIG(status);
        const char *ab = signal_abbrev(sig);
        if (ab)
            snprintf(o->fault, sizeof o->fault, "killed by signal %s (%s) in %s", ab, strsignal(sig), where);
        else
            snprintf(o->fault, sizeof o->fault, "killed by signal %d (%s) in %s", sig, strsignal(sig), where);
    } else if (timed_out) {
        snprintf(o->fault, sizeof o->fault, "timed out after %g s in %s (killed)", c->timeout_s, where);
    } else if (too_much) {
        snprintf(o->fault, sizeof o->fault, "sent more than the %d MiB one call may send, in %s (killed)",
                 PK_PLUGIN_MAX_OUTPUT >> 20, where);
    } else if (oom) {
        snprintf(o->fault, sizeof o->fault, "could not be read: out of memory (killed)");
    } else if (!parsed) {
        snprintf(o->fault, sizeof o->fault, "sent a malformed message in %s (%s)", where, perr);
    } else if (!o->r.have_result) {
        snprintf(o->fault, sizeof o->fault, "exited with status %d in %s before returning (did it call exit()?)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1, where);
    } else {
        o->ok = 1;
    }
}

/* A callback that returned sends back exactly its plugin's state block. */
static void check_state(Outcome *o, const LoadedPlugin *p) {
    if (!o->ok || o->r.refused) return;
    if ((p->state_size && !o->r.have_state) || (o->r.have_state && o->r.state_len != p->state_size)) {
        o->ok = 0;
        snprintf(o->fault, sizeof o->fault, "sent a malformed message (a state block of %zu bytes, expected %zu)",
                 o->r.have_state ? o->r.state_len : 0, p->state_size);
    }
}

/* ---- what the session keeps ---- */

static void free_table(HostTable *t) {
    if (t->cells)
        for (size_t i = 0; i < (size_t)(t->n_rows + 1) * (size_t)t->n_cols; i++) free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
}

static HostSeries *find_series(PluginHost *h, const char *full, const char *series, int create) {
    for (int i = 0; i < h->n_series; i++)
        if (!strcmp(h->series[i].chart, full) && !strcmp(h->series[i].series, series)) return &h->series[i];
    if (!create || h->n_series >= PK_PLUGIN_MAX_SERIES) return NULL;
    HostSeries *s = &h->series[h->n_series++];
    memset(s, 0, sizeof *s);
    snprintf(s->chart, sizeof s->chart, "%s", full);
    snprintf(s->series, sizeof s->series, "%s", series);
    return s;
}

/* Room for n points: growth in size_t, never past PK_PLUGIN_MAX_POINTS. */
static int series_reserve(HostSeries *s, long n) {
    if (n < 0 || n > PK_PLUGIN_MAX_POINTS) return -1;
    if (n <= s->cap) return 0;
    long cap = s->cap ? s->cap : 16;
    while (cap < n) cap *= 2;
    if (cap > PK_PLUGIN_MAX_POINTS) cap = PK_PLUGIN_MAX_POINTS;
    double *x = realloc(s->x, sizeof(double) * (size_t)cap);
    if (!x) return -1;
    s->x = x;
    double *y = realloc(s->y, sizeof(double) * (size_t)cap);
    if (!y) return -1;
    s->y = y;
    s->cap = (int)cap;
    return 0;
}

/* Engine log line (worker thread or paused) and, when out is given, the command's output. */
static void host_say(PluginHost *h, PkBuf *out, const char *line) {
    engine_log_line(h->engine, line);
    if (out) pk_buf_printf(out, "%s\n", line);
}

/* A fault outside a command's output (on_step): the log, and the REPL's next output. */
static void host_notice(PluginHost *h, const char *line) {
    engine_log_line(h->engine, line);
    pthread_mutex_lock(&h->mu);
    pk_buf_printf(&h->notices, "%s\n", line);
    pthread_mutex_unlock(&h->mu);
}

/* Applies a validated reply of plugin `name`: logs, tables, series and points; only
 * the log lines after a fault (what came before it, for the post-mortem). */
static void apply_items(PluginHost *h, const char *name, PwReply *r, PkBuf *out, int logs_only) {
    for (int i = 0; i < r->n_items; i++) {
        PwItem *it = &r->items[i];
        char line[PK_PLUGIN_LOG_MAX + 200];
        if (it->kind == PW_ITEM_LOG) {
            snprintf(line, sizeof line, "[%s] %s", name, it->name);
            host_say(h, out, line);
            continue;
        }
        if (logs_only) continue;
        line[0] = 0;
        pthread_mutex_lock(&h->mu);
        if (it->kind == PW_ITEM_TABLE) {
            int slot = -1;
            for (int t = 0; t < h->n_tables; t++)
                if (!strcmp(h->tables[t].plugin, name) && !strcmp(h->tables[t].name, it->name)) slot = t;
            if (slot < 0 && h->n_tables < PK_PLUGIN_MAX_TABLES) slot = h->n_tables++;
            if (slot < 0) {
                snprintf(line, sizeof line, "plugin %s: table %s dropped: the session keeps at most %d tables", name,
                         it->name, PK_PLUGIN_MAX_TABLES);
            } else {
                HostTable *t = &h->tables[slot];
                free_table(t);
                memset(t, 0, sizeof *t);
                snprintf(t->plugin, sizeof t->plugin, "%s", name);
                snprintf(t->name, sizeof t->name, "%s", it->name);
                t->n_cols = it->n_cols;
                t->n_rows = it->n_rows;
                t->cells = it->cells; /* taken over */
                it->cells = NULL;
            }
        } else {
            char full[CHART_FULL_LEN];
            snprintf(full, sizeof full, "%s/%s", name, it->name);
            HostSeries *s = find_series(h, full, it->series, 1);
            long want = it->kind == PW_ITEM_SERIES ? it->n : (s ? s->n + 1L : 1);
            if (!s || series_reserve(s, want)) {
                snprintf(line, sizeof line, "plugin %s: series %s/%s dropped: the session keeps at most %d series of %d points",
                         name, it->name, it->series, PK_PLUGIN_MAX_SERIES, PK_PLUGIN_MAX_POINTS);
            } else if (it->kind == PW_ITEM_SERIES) {
                if (it->n) {
                    memcpy(s->x, it->x, sizeof(double) * (size_t)it->n);
                    memcpy(s->y, it->y, sizeof(double) * (size_t)it->n);
                }
                s->n = it->n;
            } else {
                s->x[s->n] = it->px;
                s->y[s->n] = it->py;
                s->n++;
            }
        }
        pthread_mutex_unlock(&h->mu);
        if (line[0]) host_say(h, out, line);
    }
}

int plugin_host_create(PluginHost **out, Engine *engine, char *err) {
    PluginHost *h = pk_calloc(1, sizeof *h, err);
    if (!h) return PK_FAIL;
    h->engine = engine;
    h->default_timeout_s = PK_PLUGIN_DEFAULT_TIMEOUT;
    pthread_mutex_init(&h->mu, NULL);
    *out = h;
    return PK_OK;
}

double plugin_host_timeout(PluginHost *h) { return default_timeout(h); }

int plugin_host_set_timeout(PluginHost *h, double seconds, char *err) {
    if (!(seconds > 0 && seconds <= PLUGIN_HOST_MAX_TIMEOUT))
        return pk_errf(err, "plugin timeout: expected seconds greater than 0 and at most %d, got %g", PLUGIN_HOST_MAX_TIMEOUT,
                       seconds);
    __atomic_store(&h->default_timeout_s, &seconds, __ATOMIC_RELAXED);
    return PK_OK;
}

static int find_plugin(PluginHost *h, const char *name) {
    for (int i = 0; i < h->n_plugins; i++)
        if (!strcmp(h->plugins[i].name, name)) return i;
    return -1;
}

/* Forgets plugin i (no callback): closes its file, frees its state. */
static void drop_plugin(PluginHost *h, int i) {
    pthread_mutex_lock(&h->mu);
    LoadedPlugin *p = &h->plugins[i];
    if (p->fd >= 0) close(p->fd);
    free(p->state);
    memmove(&h->plugins[i], &h->plugins[i + 1], sizeof(LoadedPlugin) * (size_t)(h->n_plugins - i - 1));
    h->n_plugins--;
    pthread_mutex_unlock(&h->mu);
}

/* Runs on the worker thread after every step (engine step hook): each on_step in a child. */
static void host_on_step(void *ctx, DistillState *ds, int step, int total_steps, int n_losses,
                         const char *const *names, const double *losses) {
    PluginHost *h = ctx;
    PkPluginStepInfo info = {step, total_steps, n_losses, names, losses};
    /* the list changes only on the worker: here (a fault) or in a queued load/unload */
    for (int i = 0; i < h->n_plugins;) {
        LoadedPlugin *p = &h->plugins[i];
        if (!(p->flags & PW_HAS_ON_STEP)) {
            i++;
            continue;
        }
        Call c = {.kind = CALL_STEP, .path = p->path, .fd = p->fd, .p = p, .info = &info,
                  .timeout_s = call_timeout(h, p->timeout_s), .ds = ds};
        Outcome o;
        run_call(h, &c, &o);
        check_state(&o, p);
        char line[800];
        if (!o.ok) {
            snprintf(line, sizeof line, "plugin %s: %s at step %d; plugin unloaded, training goes on", p->name, o.fault, step);
            apply_items(h, p->name, &o.r, NULL, 1); /* its log lines, for the post-mortem */
            pw_reply_free(&o.r);
            drop_plugin(h, i);
            host_notice(h, line);
            continue;
        }
        if (o.r.refused) {
            snprintf(line, sizeof line, "plugin %s: %s; plugin unloaded, training goes on", p->name, o.r.err);
            pw_reply_free(&o.r);
            drop_plugin(h, i);
            host_notice(h, line);
            continue;
        }
        apply_items(h, p->name, &o.r, NULL, 0);
        if (p->state_size) memcpy(p->state, o.r.state, p->state_size);
        if (o.r.rc != 0) {
            snprintf(line, sizeof line, "plugin %s: on_step failed: %s", p->name, o.r.err[0] ? o.r.err : "(no reason given)");
            engine_log_line(h->engine, line);
        }
        pw_reply_free(&o.r);
        i++;
    }
}

/* Runs plugin i's on_unload in a child (when it has one), then forgets it. */
static void unload_at(PluginHost *h, DistillState *ds, int i, PkBuf *out) {
    LoadedPlugin *p = &h->plugins[i];
    if (p->flags & PW_HAS_ON_UNLOAD) {
        Call c = {.kind = CALL_UNLOAD, .path = p->path, .fd = p->fd, .p = p, .timeout_s = call_timeout(h, p->timeout_s),
                  .ds = ds};
        Outcome o;
        run_call(h, &c, &o);
        char line[800] = "";
        if (!o.ok) snprintf(line, sizeof line, "plugin %s: %s; unloaded anyway", p->name, o.fault);
        else if (o.r.refused) snprintf(line, sizeof line, "plugin %s: on_unload not run: %s", p->name, o.r.err);
        apply_items(h, p->name, &o.r, out, !o.ok);
        pw_reply_free(&o.r);
        if (line[0]) {
            if (out) host_say(h, out, line);
            else fprintf(stderr, "promptkd: %s\n", line);
        }
    }
    drop_plugin(h, i);
}

/* Every plugin's on_unload, on the worker (or here once the worker has stopped). */
static int unload_all_work(void *ctx, DistillState *ds, PkBuf *out, char *err) {
    (void)out, (void)err;
    PluginHost *h = ctx;
    while (h->n_plugins > 0) unload_at(h, ds, h->n_plugins - 1, NULL);
    return PK_OK;
}

void plugin_host_destroy(PluginHost *h) {
    if (!h) return;
    engine_set_step_hook(h->engine, NULL, NULL);
    if (h->n_plugins > 0) {
        PkBuf out = {0};
        char err[PK_ERR_LEN];
        if (engine_work(h->engine, unload_all_work, h, &out, err) != PK_OK) /* the run never loaded */
            while (h->n_plugins > 0) drop_plugin(h, h->n_plugins - 1);
        pk_buf_free(&out);
    }
    if (h->notices.len) fprintf(stderr, "%s", h->notices.data); /* faults nobody was shown yet */
    pk_buf_free(&h->notices);
    for (int i = 0; i < h->n_tables; i++) free_table(&h->tables[i]);
    for (int i = 0; i < h->n_series; i++) {
        free(h->series[i].x);
        free(h->series[i].y);
    }
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* A bare name is looked up next to the program (BUILD/plugins/NAME.so: the plugins of
 * this very build, whatever its folder), then as build/plugins/NAME.so. */
static void resolve_plugin_path(const char *name, char *out, size_t len) {
    if (strchr(name, '/') || access(name, F_OK) == 0) {
        snprintf(out, len, "%s", name);
        return;
    }
    char exe[900];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        snprintf(out, len, "%s/plugins/%s.so", exe, name);
        if (access(out, F_OK) == 0) return;
    }
    snprintf(out, len, "build/plugins/%s.so", name);
    if (access(out, F_OK) == 0) return;
    snprintf(out, len, "%s", name);
}

/* A plugin command (load, unload, run) as work for the worker: made on the client thread
 * (arguments checked and copied, the file opened), run on the worker between two steps. */
typedef enum { JOB_LOAD, JOB_UNLOAD, JOB_RUN } JobKind;
struct PluginJob {
    PluginHost *h;
    JobKind kind;
    char name[1024]; /* load: the resolved path; unload, run: the plugin's name */
    int fd;          /* load: the file, -1 once it belongs to the loaded plugin */
    double timeout_s;
    int argc;
    char **argv;
};

void plugin_job_free(void *ctx) {
    PluginJob *j = ctx;
    if (!j) return;
    if (j->fd >= 0) close(j->fd);
    for (int i = 0; i < j->argc; i++) free(j->argv[i]);
    free(j->argv);
    free(j);
}

static PluginJob *job_new(PluginHost *h, JobKind kind, const char *name, char *err) {
    PluginJob *j = calloc(1, sizeof *j);
    if (!j) {
        pk_errf(err, "plugin: out of memory");
        return NULL;
    }
    j->h = h;
    j->kind = kind;
    j->fd = -1;
    snprintf(j->name, sizeof j->name, "%s", name);
    return j;
}

PluginJob *plugin_job_load(PluginHost *h, const char *name, double timeout_s, char *err) {
    char path[1024];
    resolve_plugin_path(name, path, sizeof path);
    if (access(path, R_OK) != 0) {
        if (strchr(name, '/')) return pk_errf(err, "plugin %s: no such file", name), NULL;
        return pk_errf(err, "plugin %s: no such file (also looked for build/plugins/%s.so)", name, name), NULL;
    }
    if (timeout_s < 0 || timeout_s > PLUGIN_HOST_MAX_TIMEOUT)
        return pk_errf(err, "plugin %s: the time limit must be from 0 (the default) to %d s", path,
                       PLUGIN_HOST_MAX_TIMEOUT), NULL;
    PluginJob *j = job_new(h, JOB_LOAD, path, err);
    if (!j) return NULL;
    j->timeout_s = timeout_s;
    j->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (j->fd < 0) {
        pk_errf(err, "plugin %s: cannot open: %s", path, strerror(errno));
        plugin_job_free(j);
        return NULL;
    }
    return j;
}

PluginJob *plugin_job_unload(PluginHost *h, const char *name, char *err) { return job_new(h, JOB_UNLOAD, name, err); }

PluginJob *plugin_job_run(PluginHost *h, const char *name, int argc, const char *const *argv, double timeout_s,
                          char *err) {
    if (timeout_s < 0 || timeout_s > PLUGIN_HOST_MAX_TIMEOUT)
        return pk_errf(err, "plugin run: the time limit must be from 0 (the default) to %d s", PLUGIN_HOST_MAX_TIMEOUT),
               NULL;
    PluginJob *j = job_new(h, JOB_RUN, name, err);
    if (!j) return NULL;
    j->timeout_s = timeout_s;
    j->argv = calloc((size_t)argc + 1, sizeof *j->argv);
    if (!j->argv) {
        plugin_job_free(j);
        return pk_errf(err, "plugin run: out of memory"), NULL;
    }
    for (; j->argc < argc; j->argc++)
        if (!(j->argv[j->argc] = strdup(argv[j->argc]))) {
            plugin_job_free(j);
            return pk_errf(err, "plugin run: out of memory"), NULL;
        }
    return j;
}

static int job_load(PluginJob *j, DistillState *ds, PkBuf *out, char *err) {
    PluginHost *h = j->h;
    const char *path = j->name;
    if (h->n_plugins >= HOST_MAX_PLUGINS) return pk_errf(err, "plugin %s: at most %d plugins at once", path, HOST_MAX_PLUGINS);
    LoadedPlugin p;
    memset(&p, 0, sizeof p);
    snprintf(p.path, sizeof p.path, "%s", path);
    p.fd = j->fd;
    p.timeout_s = j->timeout_s;
    Call c = {.kind = CALL_LOAD, .path = path, .fd = j->fd, .timeout_s = call_timeout(h, j->timeout_s), .ds = ds};
    Outcome o;
    run_call(h, &c, &o);
    const char *who = o.r.have_desc ? o.r.name : path;
    int rc = PK_FAIL;
    if (!o.ok) {
        pk_errf(err, "plugin %s: %s; not loaded", who, o.fault);
        if (o.r.have_desc) apply_items(h, o.r.name, &o.r, out, 1); /* its log lines */
    } else if (o.r.refused) {
        pk_errf(err, "plugin %s: %s", path, o.r.err);
    } else if (!o.r.have_desc || (o.r.state_size && (!o.r.have_state || o.r.state_len != o.r.state_size))) {
        pk_errf(err, "plugin %s: sent a malformed message while loading (no descriptor or state)", path);
    } else if (find_plugin(h, o.r.name) >= 0) {
        pk_errf(err, "plugin %s: a plugin named '%s' is already loaded (unload it first)", path, o.r.name);
    } else if (o.r.rc != 0) {
        apply_items(h, o.r.name, &o.r, out, 1); /* not loaded: its log lines only */
        pk_errf(err, "plugin %s: on_load failed: %s", o.r.name, o.r.err[0] ? o.r.err : "(no reason given)");
    } else {
        snprintf(p.name, sizeof p.name, "%s", o.r.name);
        snprintf(p.description, sizeof p.description, "%s", o.r.description);
        p.flags = o.r.flags;
        p.state_size = o.r.state_size;
        p.state = calloc(1, p.state_size ? p.state_size : 1);
        if (!p.state) {
            pk_errf(err, "plugin %s: out of memory for its state", p.name);
        } else {
            if (p.state_size) memcpy(p.state, o.r.state, p.state_size);
            apply_items(h, p.name, &o.r, out, 0);
            pthread_mutex_lock(&h->mu);
            h->plugins[h->n_plugins++] = p;
            pthread_mutex_unlock(&h->mu);
            j->fd = -1; /* the plugin's now */
            engine_set_step_hook(h->engine, host_on_step, h);
            pk_buf_printf(out, "loaded plugin %s: %s\n", p.name, p.description);
            rc = PK_OK;
        }
    }
    pw_reply_free(&o.r);
    return rc;
}

static int job_unload(PluginJob *j, DistillState *ds, PkBuf *out, char *err) {
    int i = find_plugin(j->h, j->name); /* here: an on_step fault may have unloaded it meanwhile */
    if (i < 0) return pk_errf(err, "plugin unload: no plugin named '%s' is loaded", j->name);
    unload_at(j->h, ds, i, out);
    pk_buf_printf(out, "unloaded %s\n", j->name);
    return PK_OK;
}

static int job_run(PluginJob *j, DistillState *ds, PkBuf *out, char *err) {
    PluginHost *h = j->h;
    const char *name = j->name;
    int i = find_plugin(h, name);
    if (i < 0) return pk_errf(err, "plugin run: no plugin named '%s' is loaded (plugin list)", name);
    LoadedPlugin *p = &h->plugins[i];
    Call c = {.kind = CALL_ANALYZE, .path = p->path, .fd = p->fd, .p = p, .argc = j->argc,
              .argv = (const char *const *)j->argv, .timeout_s = j->timeout_s > 0 ? j->timeout_s : call_timeout(h, p->timeout_s),
              .ds = ds};
    Outcome o;
    run_call(h, &c, &o);
    check_state(&o, p);
    if (!o.ok || o.r.refused) {
        apply_items(h, name, &o.r, out, 1); /* its log lines, for the post-mortem */
        char plugin_name[PK_PLUGIN_NAME_MAX + 1];
        snprintf(plugin_name, sizeof plugin_name, "%s", p->name);
        if (!o.ok) pk_errf(err, "plugin %s: %s; plugin unloaded (the session goes on)", plugin_name, o.fault);
        else pk_errf(err, "plugin %s: %s; plugin unloaded", plugin_name, o.r.err);
        char line[PK_ERR_LEN + 16];
        snprintf(line, sizeof line, "%s", err);
        engine_log_line(h->engine, line);
        pw_reply_free(&o.r);
        drop_plugin(h, i);
        return PK_FAIL;
    }
    apply_items(h, name, &o.r, out, 0);
    if (p->state_size) memcpy(p->state, o.r.state, p->state_size);
    int rc = o.r.rc;
    if (rc != 0) pk_errf(err, "plugin %s: %s", name, o.r.err[0] ? o.r.err : "analysis failed");
    pw_reply_free(&o.r);
    if (rc != 0) return PK_FAIL;
    for (int t = 0;; t++) {
        char title[160];
        char *text = plugin_host_table_text(h, t, title, sizeof title);
        if (!text) break;
        if (!strncmp(title, name, strlen(name)) && title[strlen(name)] == '/') pk_buf_printf(out, "%s\n%s", title, text);
        free(text);
    }
    char names[PK_PLUGIN_MAX_SERIES][64];
    int n = plugin_host_chart_names(h, names, PK_PLUGIN_MAX_SERIES);
    for (int ci = 0; ci < n; ci++)
        if (!strncmp(names[ci], name, strlen(name)) && names[ci][strlen(name)] == '/') pk_buf_printf(out, "chart %s\n", names[ci]);
    return PK_OK;
}


int plugin_job_work(void *ctx, DistillState *ds, PkBuf *out, char *err) {
    PluginJob *j = ctx;
    switch (j->kind) {
    case JOB_LOAD: return job_load(j, ds, out, err);
    case JOB_UNLOAD: return job_unload(j, ds, out, err);
    case JOB_RUN: return job_run(j, ds, out, err);
    }
    return pk_errf(err, "plugin: unknown job");
}

/* The blocking forms: the job on the worker, waited for. */
static int job_wait(PluginHost *h, PluginJob *j, PkBuf *out, char *err) {
    if (!j) return PK_FAIL;
    int rc = engine_work(h->engine, plugin_job_work, j, out, err);
    plugin_job_free(j);
    return rc;
}

int plugin_host_load(PluginHost *h, const char *name, double timeout_s, PkBuf *out, char *err) {
    return job_wait(h, plugin_job_load(h, name, timeout_s, err), out, err);
}

int plugin_host_unload(PluginHost *h, const char *name, PkBuf *out, char *err) {
    return job_wait(h, plugin_job_unload(h, name, err), out, err);
}

int plugin_host_run(PluginHost *h, const char *name, int argc, const char *const *argv, double timeout_s, PkBuf *out,
                    char *err) {
    return job_wait(h, plugin_job_run(h, name, argc, argv, timeout_s, err), out, err);
}

void plugin_host_list(PluginHost *h, PkBuf *out) {
    pthread_mutex_lock(&h->mu);
    if (h->n_plugins == 0) pk_buf_printf(out, "no plugins loaded\n");
    for (int i = 0; i < h->n_plugins; i++) {
        const LoadedPlugin *p = &h->plugins[i];
        pk_buf_printf(out, "%-20s %s (%s)", p->name, p->description, p->path);
        if (p->timeout_s > 0) pk_buf_printf(out, " [time limit %g s]", p->timeout_s);
        pk_buf_printf(out, "\n");
    }
    pthread_mutex_unlock(&h->mu);
}

void plugin_host_take_notices(PluginHost *h, PkBuf *out) {
    pthread_mutex_lock(&h->mu);
    if (h->notices.len) {
        pk_buf_printf(out, "%s", h->notices.data);
        h->notices.len = 0;
        h->notices.data[0] = 0;
    }
    pthread_mutex_unlock(&h->mu);
}

int plugin_host_chart_names(PluginHost *h, char names[][64], int max) {
    int n = 0;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->n_series; i++) {
        int seen = 0;
        for (int j = 0; j < n; j++)
            if (!strcmp(names[j], h->series[i].chart)) seen = 1;
        if (!seen && n < max) snprintf(names[n++], 64, "%s", h->series[i].chart);
    }
    pthread_mutex_unlock(&h->mu);
    return n;
}

int plugin_host_build_chart(PluginHost *h, const char *name, Chart *c, char *err) {
    pthread_mutex_lock(&h->mu);
    int found = 0;
    chart_init(c, name, "x", "value");
    for (int i = 0; i < h->n_series; i++)
        if (!strcmp(h->series[i].chart, name)) {
            found = 1;
            chart_add_series(c, h->series[i].series, h->series[i].x, h->series[i].y, h->series[i].n);
        }
    pthread_mutex_unlock(&h->mu);
    if (!found) {
        chart_free(c);
        return pk_errf(err, "no plugin chart named '%s'", name);
    }
    /* a plugin chart named ".../per_position" or similar reads better as bars when x are small integers */
    if (strstr(name, "position") || strstr(name, "layer")) c->kind = CHART_BARS;
    if (strstr(name, "layer")) snprintf(c->xlabel, sizeof c->xlabel, "layer");
    else if (strstr(name, "position")) snprintf(c->xlabel, sizeof c->xlabel, "position");
    else snprintf(c->xlabel, sizeof c->xlabel, "step");
    return PK_OK;
}

char *plugin_host_table_text(PluginHost *h, int i, char *title, size_t title_len) {
    pthread_mutex_lock(&h->mu);
    if (i < 0 || i >= h->n_tables) {
        pthread_mutex_unlock(&h->mu);
        return NULL;
    }
    HostTable *t = &h->tables[i];
    snprintf(title, title_len, "%s/%s", t->plugin, t->name);
    int widths[PK_PLUGIN_MAX_COLS] = {0};
    for (int r = 0; r <= t->n_rows; r++)
        for (int c = 0; c < t->n_cols; c++) {
            int w = (int)strlen(t->cells[(size_t)r * t->n_cols + c]);
            if (w > 40) w = 40;
            if (w > widths[c]) widths[c] = w;
        }
    PkBuf b = {0};
    for (int r = 0; r <= t->n_rows; r++) {
        for (int c = 0; c < t->n_cols; c++)
            pk_buf_printf(&b, "%s%-*.*s", c ? "  " : "", widths[c], 40, t->cells[(size_t)r * t->n_cols + c]);
        pk_buf_printf(&b, "\n");
    }
    pthread_mutex_unlock(&h->mu);
    if (!b.data) pk_buf_append(&b, "", 0);
    return b.data;
}

int plugin_host_export_json(PluginHost *h, const char *path, char *err) {
    cJSON *root = cJSON_CreateObject(), *tables = cJSON_AddArrayToObject(root, "tables"),
          *series = cJSON_AddArrayToObject(root, "series");
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->n_tables; i++) {
        HostTable *t = &h->tables[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "plugin", t->plugin);
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON *hdr = cJSON_AddArrayToObject(o, "columns"), *rows = cJSON_AddArrayToObject(o, "rows");
        for (int c = 0; c < t->n_cols; c++) cJSON_AddItemToArray(hdr, cJSON_CreateString(t->cells[c]));
        for (int r = 1; r <= t->n_rows; r++) {
            cJSON *row = cJSON_CreateArray();
            for (int c = 0; c < t->n_cols; c++)
                cJSON_AddItemToArray(row, cJSON_CreateString(t->cells[(size_t)r * t->n_cols + c]));
            cJSON_AddItemToArray(rows, row);
        }
        cJSON_AddItemToArray(tables, o);
    }
    for (int i = 0; i < h->n_series; i++) {
        HostSeries *s = &h->series[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "chart", s->chart);
        cJSON_AddStringToObject(o, "series", s->series);
        cJSON_AddItemToObject(o, "x", cJSON_CreateDoubleArray(s->x ? s->x : (double[1]){0}, s->n));
        cJSON_AddItemToObject(o, "y", cJSON_CreateDoubleArray(s->y ? s->y : (double[1]){0}, s->n));
        cJSON_AddItemToArray(series, o);
    }
    pthread_mutex_unlock(&h->mu);
    int rc = pk_write_json_atomic(path, root, err);
    cJSON_Delete(root);
    return rc;
}
