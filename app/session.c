#include "session.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "plugin_host.h"
#include "png_export.h"
#include "run_dir.h"

#define SESSION_MAX_VIEWS 32
#define SESSION_MAX_ARGS 32

typedef struct {
    char chart[64];
    SessionChartView view;
} ChartView;

/* A finished run drawn in the same charts, through a read-only engine. */
typedef struct {
    Engine *engine;
    char name[64];  /* the run folder's name, made unique */
    char path[4096]; /* canonical */
} OverlayRun;

/* How the reply of a command that went to the engine is told: finish formats it (NULL: the
 * engine's reply as it is), arg is what finish needs of the command line. */
typedef void (*FinishFn)(Session *s, const char *arg, const EngineEvent *ev, PkBuf *out);
typedef struct {
    int set; /* a command asked for the engine (defer_to_engine) */
    EngineCommand cmd;
    FinishFn finish;
    char arg[64];
} Defer;

/* A posted line whose engine reply has not been told yet. */
typedef struct Pending {
    unsigned long id, engine_id;
    FinishFn finish;
    char arg[64];
    struct Pending *next;
} Pending;

/* A reply made here (a command answered without the engine), waiting for session_poll_event. */
typedef struct Ready {
    SessionEvent ev;
    struct Ready *next;
} Ready;

struct Session {
    Engine *engine;
    PluginHost *plugins;
    /* the one door: commands posted (session_post), answered through session_poll_event */
    Defer defer;
    unsigned long next_id;
    Pending *pending;
    Ready *ready_head, *ready_tail;
    int n_views;
    ChartView views[SESSION_MAX_VIEWS];
    int n_overlay;
    OverlayRun overlay[SESSION_MAX_OVERLAY];
};

/* A session over an engine already made (engine_create or engine_open): its plugin host. */
static int session_around(Session **out, Session *s, char *err) {
    if (plugin_host_create(&s->plugins, s->engine, err)) {
        engine_destroy(s->engine);
        free(s);
        return PK_FAIL;
    }
    *out = s;
    return PK_OK;
}

int session_create(Session **out, const RunConfig *cfg, const char *resume_dir, int autostart, char *err) {
    *out = NULL;
    Session *s = pk_calloc(1, sizeof *s, err);
    if (!s) return PK_FAIL;
    if (engine_create(&s->engine, cfg, resume_dir, autostart, err)) {
        free(s);
        return PK_FAIL;
    }
    return session_around(out, s, err);
}

int session_open(Session **out, const char *run_dir, char *err) {
    *out = NULL;
    Session *s = pk_calloc(1, sizeof *s, err);
    if (!s) return PK_FAIL;
    if (engine_open(&s->engine, run_dir, err)) {
        free(s);
        return PK_FAIL;
    }
    return session_around(out, s, err);
}

void session_destroy(Session *s) {
    if (!s) return;
    const EngineSnapshot *snap = engine_snapshot_acquire(s->engine);
    /* a run opened read-only is left as it was found */
    int finished = snap && snap->state == ENGINE_FINISHED && !snap->read_only;
    engine_snapshot_release(s->engine, snap);
    session_overlay_clear(s);
    char err[PK_ERR_LEN];
    if (finished && pk_dist_rank() == 0 && session_write_run_plots(s, err) != PK_OK) fprintf(stderr, "promptkd: plots: %s\n", err);
    plugin_host_destroy(s->plugins); /* before the engine: plugins hold host calls into it */
    engine_destroy(s->engine);
    while (s->pending) {
        Pending *p = s->pending;
        s->pending = p->next;
        free(p);
    }
    while (s->ready_head) {
        Ready *r = s->ready_head;
        s->ready_head = r->next;
        session_event_clear(&r->ev);
        free(r);
    }
    free(s);
}

Engine *session_engine(Session *s) { return s->engine; }

/* ---- charts ---- */

/* The built-in charts, in the order the TUI's c key cycles through them. */
typedef struct {
    const char *name, *title, *xlabel, *ylabel;
} BuiltinChart;
static const BuiltinChart builtin_charts[] = {
    {"loss", "loss curves", "step", "loss"},
    {"rouge", "dev ROUGE-L", "step", "ROUGE-L"},
    {"exposure", "exposure bias: ExAccErr over generation length", "generation length l", "ExAccErr (%)"},
    {"neighbours", "prompt tokens: similarity to nearest vocabulary token", "step", "cosine similarity"},
    {"lr", "learning rate (student, prompt)", "step", "learning rate"},
    {"grad_norm", "gradient norm before clipping (student, prompt)", "step", "global L2 norm"},
    {"throughput", "throughput", "step", "tokens/s"},
    {"exaccerr", "exposure bias over training: ExAccErr at the longest l", "step", "ExAccErr (%)"},
    {"policy", "MiniLLM reward and on-policy batches", "step", "reward / share"},
};
#define N_BUILTIN_CHARTS ((int)(sizeof builtin_charts / sizeof *builtin_charts))

static const BuiltinChart *find_builtin_chart(const char *name) {
    for (int i = 0; i < N_BUILTIN_CHARTS; i++)
        if (!strcmp(builtin_charts[i].name, name)) return &builtin_charts[i];
    return NULL;
}

/* The chart of a series: from run_dir's series table, else by its name (series of older runs). */
static const char *series_chart(const char *key) {
    const RunSeriesInfo *info = run_series_find(key);
    if (info) return info->chart;
    if (!strncmp(key, "neighbour_sim", 13)) return "neighbours";
    if (strstr(key, "rouge")) return "rouge";
    if (strstr(key, "loss")) return "loss";
    return NULL;
}

/* A chart's default view: the scale and smoothing the series table gives its first series
 * (smoothing 0.6, TensorBoard's default), the whole run over steps. */
static void chart_default_view(const char *name, SessionChartView *v) {
    memset(v, 0, sizeof *v);
    int n = 0;
    const RunSeriesInfo *table = run_series_info(&n);
    for (int i = 0; i < n; i++)
        if (!strcmp(table[i].chart, name)) {
            v->log_y = table[i].log_y;
            v->ema = table[i].smooth ? 0.6 : 0;
            return;
        }
}

static ChartView *find_view(Session *s, const char *name, int create) {
    for (int i = 0; i < s->n_views; i++)
        if (!strcmp(s->views[i].chart, name)) return &s->views[i];
    if (!create || s->n_views >= SESSION_MAX_VIEWS) return NULL;
    ChartView *v = &s->views[s->n_views++];
    snprintf(v->chart, sizeof v->chart, "%s", name);
    chart_default_view(name, &v->view);
    return v;
}

void session_chart_settings(Session *s, const char *name, SessionChartView *out) {
    ChartView *v = find_view(s, name, 1);
    if (v) *out = v->view;
    else chart_default_view(name, out);
}

int session_set_chart_settings(Session *s, const char *name, const SessionChartView *view, char *err) {
    if (!(view->ema >= 0 && view->ema < 1)) return pk_errf(err, "%s: smoothing must be in [0, 1), got %g", name, view->ema);
    if (view->window < 0) return pk_errf(err, "%s: the window must be a number of steps, got %d", name, view->window);
    ChartView *v = find_view(s, name, 1);
    if (!v) return pk_errf(err, "%s: no room for the view settings of more than %d charts", name, SESSION_MAX_VIEWS);
    v->view = *view;
    return PK_OK;
}

int session_chart_names(Session *s, char names[][64], int max) {
    int n = 0;
    for (int i = 0; i < N_BUILTIN_CHARTS && n < max; i++) snprintf(names[n++], 64, "%s", builtin_charts[i].name);
    if (n < max) n += plugin_host_chart_names(s->plugins, names + n, max - n);
    return n;
}

/* Adds run `run`'s series of chart `b` from its snapshot. In an overlay each series is named
 * "RUN: series" and coloured in the run's hue; alone, names and palette are the plain ones.
 * Returns how many points were added. */
static int add_run_series(Chart *c, const BuiltinChart *b, const EngineSnapshot *snap, int run, const char *run_name,
                          int overlay) {
    int first = c->n_series, points = 0;
    char label[64];
    if (!strcmp(b->name, "exposure")) {
        /* ExAccErr over l: every curve of the run, or only its latest in an overlay */
        for (int i = overlay ? snap->n_exposure - 1 : 0; i >= 0 && i < snap->n_exposure; i++) {
            const EngineExposureCurve *e = &snap->exposure[i];
            double *x = malloc(sizeof(double) * (e->n ? e->n : 1));
            if (!x) continue;
            for (int l = 0; l < e->n; l++) x[l] = l + 1;
            if (overlay) snprintf(label, sizeof label, "%.40s: step %d", run_name, e->step);
            else snprintf(label, sizeof label, "step %d", e->step);
            if (chart_add_series(c, label, x, e->exaccerr, e->n) == 0) points += e->n;
            free(x);
        }
    } else {
        for (int i = 0; i < snap->n_series; i++) {
            const EngineSeries *se = &snap->series[i];
            const char *chart = series_chart(se->name);
            if (!chart || strcmp(chart, b->name)) continue;
            if (overlay) snprintf(label, sizeof label, "%.40s: %s", run_name, se->name);
            else snprintf(label, sizeof label, "%s", se->name);
            if (chart_add_series_t(c, label, se->x, se->y, se->t, se->n) == 0) points += se->n;
        }
    }
    for (int k = first; k < c->n_series; k++) {
        c->series[k].run = run;
        if (overlay) c->series[k].rgb = chart_run_shade(run, k - first);
    }
    return points;
}

/* Drops the series from index `from` on. */
static void chart_truncate(Chart *c, int from) {
    for (int i = from; i < c->n_series; i++) {
        free(c->series[i].x);
        free(c->series[i].y);
        free(c->series[i].t);
    }
    c->n_series = from;
}

static const char *own_run_name(Session *s) {
    const char *run = engine_run_path(s->engine);
    const char *slash = run ? strrchr(run, '/') : NULL;
    return slash ? slash + 1 : run && run[0] ? run : "this run";
}

int session_build_chart(Session *s, const char *name, Chart *c, char *err) {
    const BuiltinChart *b = find_builtin_chart(name);
    if (!b) {
        if (strchr(name, '/')) {
            if (plugin_host_build_chart(s->plugins, name, c, err)) return PK_FAIL;
        } else {
            char names[64][64];
            int n = session_chart_names(s, names, 64);
            PkBuf known = {0};
            for (int i = 0; i < n; i++) pk_buf_printf(&known, "%s%s", i ? ", " : "", names[i]);
            pk_errf(err, "unknown chart '%s' (charts: %s)", name, known.data ? known.data : "");
            pk_buf_free(&known);
            return PK_FAIL;
        }
    } else {
        chart_init(c, b->title, b->xlabel, b->ylabel);
        int overlay = s->n_overlay > 0;
        const EngineSnapshot *snap = engine_snapshot_acquire(s->engine);
        /* the session's own run; in an overlay only when it has points to show */
        if (add_run_series(c, b, snap, 0, own_run_name(s), overlay) == 0 && overlay) chart_truncate(c, 0);
        engine_snapshot_release(s->engine, snap);
        for (int r = 0; r < s->n_overlay; r++) {
            const EngineSnapshot *o = engine_snapshot_acquire(s->overlay[r].engine);
            add_run_series(c, b, o, r + 1, s->overlay[r].name, 1);
            engine_snapshot_release(s->overlay[r].engine, o);
        }
    }
    SessionChartView v;
    session_chart_settings(s, name, &v);
    c->ema = v.ema;
    c->log_y = v.log_y;
    c->window = v.window;
    c->x_time = v.x_time;
    return PK_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t l = strlen(s), k = strlen(suffix);
    return l > k && !strcmp(s + l - k, suffix);
}

int session_export_chart(Session *s, const char *name, const char *path, int w, int h, char *err) {
    Chart c;
    if (session_build_chart(s, name, &c, err)) return PK_FAIL;
    int rc = ends_with(path, ".csv") ? chart_export_csv(&c, path, err) : chart_export_png(&c, w, h, path, err);
    chart_free(&c);
    return rc;
}

int session_export_all(Session *s, const char *dir, int w, int h, char *err) {
    if (pk_mkdirs(dir, err)) return PK_FAIL;
    char names[64][64];
    int n = session_chart_names(s, names, 64);
    for (int i = 0; i < n; i++)
        for (int csv = 0; csv < 2; csv++) {
            char file[72], path[4096];
            snprintf(file, sizeof file, "%.63s.%s", names[i], csv ? "csv" : "png");
            for (char *p = file; *p; p++)
                if (*p == '/') *p = '-';
            if (pk_path_join(path, sizeof path, dir, file, err)) return PK_FAIL;
            if (session_export_chart(s, names[i], path, w, h, err)) return PK_FAIL;
        }
    return PK_OK;
}

int session_write_run_plots(Session *s, char *err) {
    const char *run = engine_run_path(s->engine);
    if (!run || !run[0]) return pk_errf(err, "this session has no run folder");
    char dir[4096];
    if (pk_path_join(dir, sizeof dir, run, "plots", err)) return PK_FAIL;
    /* the run's own plots show the run alone, whatever is overlaid on screen */
    int n_overlay = s->n_overlay;
    s->n_overlay = 0;
    int rc = session_export_all(s, dir, 960, 540, err);
    s->n_overlay = n_overlay;
    return rc;
}

/* ---- overlay ---- */

static int has_metrics(const char *dir) {
    char path[4096], ignore[PK_ERR_LEN];
    return pk_path_join(path, sizeof path, dir, "metrics.jsonl", ignore) == PK_OK && pk_file_exists(path);
}

/* Opens one run folder read-only into the overlay, named after its folder (made unique). */
static int overlay_add_run(Session *s, const char *dir, PkBuf *out, char *err) {
    if (s->n_overlay >= SESSION_MAX_OVERLAY)
        return pk_errf(err, "open %s: the overlay holds at most %d runs (close all first)", dir, SESSION_MAX_OVERLAY);
    char canon[4096], own[4096];
    if (pk_canonical_path(dir, canon, sizeof canon, err)) return PK_FAIL;
    const char *run = engine_run_path(s->engine);
    char ignore[PK_ERR_LEN];
    if (run && run[0] && pk_canonical_path(run, own, sizeof own, ignore) == PK_OK && !strcmp(own, canon))
        return pk_errf(err, "open %s: that is this session's own run", dir);
    for (int i = 0; i < s->n_overlay; i++)
        if (!strcmp(s->overlay[i].path, canon)) return pk_errf(err, "open %s: already open as %s", dir, s->overlay[i].name);
    OverlayRun *o = &s->overlay[s->n_overlay];
    memset(o, 0, sizeof *o);
    if (engine_open(&o->engine, canon, err)) return PK_FAIL;
    snprintf(o->path, sizeof o->path, "%s", canon);
    const char *base = strrchr(canon, '/');
    base = base && base[1] ? base + 1 : canon;
    snprintf(o->name, sizeof o->name, "%.50s", base);
    for (int k = 2, clash = 1; clash; k++) {
        clash = run && run[0] && !strcmp(o->name, own_run_name(s));
        for (int i = 0; i < s->n_overlay; i++) clash |= !strcmp(s->overlay[i].name, o->name);
        if (clash) snprintf(o->name, sizeof o->name, "%.50s-%d", base, k);
    }
    const EngineSnapshot *snap = engine_snapshot_acquire(o->engine);
    if (out) pk_buf_printf(out, "opened %s: %s, step %d/%d (%s)\n", o->name, snap->method, snap->step, snap->total_steps, canon);
    engine_snapshot_release(o->engine, snap);
    s->n_overlay++;
    return PK_OK;
}

int session_compare_runs(const char *dir, SessionRunPath *out, int max) {
    char runs[sizeof(SessionRunPath)], ignore[PK_ERR_LEN];
    if (has_metrics(dir) || pk_path_join(runs, sizeof runs, dir, "runs", ignore) != PK_OK || !pk_is_dir(runs))
        return 0;
    struct dirent **names;
    int n = scandir(runs, &names, NULL, alphasort), found = 0;
    for (int i = 0; i < n; i++) {
        SessionRunPath run;
        if (names[i]->d_name[0] != '.' && pk_path_join(run, sizeof run, runs, names[i]->d_name, ignore) == PK_OK &&
            has_metrics(run)) {
            if (found < max) memcpy(out[found], run, sizeof run);
            found++;
        }
        free(names[i]);
    }
    if (n >= 0) free(names);
    return found;
}

int session_overlay_add(Session *s, const char *run_dir, PkBuf *out, char *err) {
    if (!pk_is_dir(run_dir)) return pk_errf(err, "open %s: no such folder", run_dir);
    if (has_metrics(run_dir)) return overlay_add_run(s, run_dir, out, err);
    char runs[sizeof(SessionRunPath)];
    if (pk_path_join(runs, sizeof runs, run_dir, "runs", err)) return PK_FAIL;
    if (!pk_is_dir(runs))
        return pk_errf(err, "open %s: not a run folder (no metrics.jsonl) nor a compare folder (no runs/)", run_dir);
    SessionRunPath *paths = malloc(SESSION_MAX_OVERLAY * sizeof *paths);
    if (!paths) return pk_errf(err, "open %s: out of memory", run_dir);
    int n = session_compare_runs(run_dir, paths, SESSION_MAX_OVERLAY);
    /* runs past the overlay's room meet overlay_add_run's refusal, which names the limit */
    int rc = n ? PK_OK : pk_errf(err, "open %s: the compare folder has no runs with metrics.jsonl in %s", run_dir, runs);
    for (int i = 0; rc == PK_OK && i < n; i++)
        rc = i < SESSION_MAX_OVERLAY ? overlay_add_run(s, paths[i], out, err)
                                     : pk_errf(err, "open %s: the overlay holds at most %d runs (close all first)",
                                               run_dir, SESSION_MAX_OVERLAY);
    free(paths);
    return rc;
}

int session_overlay_count(Session *s) { return s->n_overlay; }

const char *session_overlay_name(Session *s, int i) { return i >= 0 && i < s->n_overlay ? s->overlay[i].name : ""; }

const char *session_overlay_path(Session *s, int i) { return i >= 0 && i < s->n_overlay ? s->overlay[i].path : ""; }

void session_overlay_clear(Session *s) {
    for (int i = 0; i < s->n_overlay; i++) engine_destroy(s->overlay[i].engine);
    s->n_overlay = 0;
}

char *session_plugin_table_text(Session *s, int i, char *title, size_t title_len) {
    return plugin_host_table_text(s->plugins, i, title, title_len);
}

/* ---- the command table ---- */

typedef int (*CommandFn)(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err);

typedef struct {
    const char *name;
    const char *usage;
    const char *help;
    CommandFn fn;
} SessionCommand;

#define SESSION_MAX_COUNT 100000000
static int parse_count(const char *cmd, const char *what, const char *arg, int *n, char *err) {
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < 1 || v > SESSION_MAX_COUNT)
        return pk_errf(err, "%s: expected a whole number of %s from 1 to %d, got '%s'", cmd, what, SESSION_MAX_COUNT,
                       arg);
    *n = (int)v;
    return PK_OK;
}

static void append_latest_losses(const EngineSnapshot *snap, PkBuf *out) {
    for (int i = 0; i < snap->n_series; i++) {
        const EngineSeries *se = &snap->series[i];
        if (se->n > 0) pk_buf_printf(out, "  %-20s %.6g (step %.0f)\n", se->name, se->y[se->n - 1], se->x[se->n - 1]);
    }
}

/* A command that goes to the engine: the session posts cmd (its strings are copied then)
 * and tells the reply with finish (NULL: the engine's reply as it is) when it comes. */
static int defer_to_engine(Session *s, const EngineCommand *cmd, FinishFn finish, const char *arg) {
    s->defer.set = 1;
    s->defer.cmd = *cmd;
    s->defer.finish = finish;
    snprintf(s->defer.arg, sizeof s->defer.arg, "%s", arg ? arg : "");
    return PK_OK;
}

/* finish of run and resume: what was ordered */
static void finish_arg(Session *s, const char *arg, const EngineEvent *ev, PkBuf *out) {
    (void)s, (void)ev;
    pk_buf_printf(out, "%s\n", arg);
}

/* finish of step: where the run is now, and its latest losses */
static void finish_step(Session *s, const char *arg, const EngineEvent *ev, PkBuf *out) {
    (void)arg, (void)ev;
    const EngineSnapshot *snap = engine_snapshot_acquire(s->engine);
    pk_buf_printf(out, "step %d/%d\n", snap->step, snap->total_steps);
    append_latest_losses(snap, out);
    engine_snapshot_release(s->engine, snap);
}

static int cmd_status(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)argv, (void)rest;
    if (argc > 1) return pk_errf(err, "status: takes no arguments");
    const EngineSnapshot *snap = engine_snapshot_acquire(s->engine);
    pk_buf_printf(out, "%s  %s  step %d/%d", engine_state_name(snap->state), snap->method, snap->step, snap->total_steps);
    if (snap->tokens_per_s > 0)
        pk_buf_printf(out, "  %.0f tok/s  %.2f GFLOP/s  ETA %.0fs", snap->tokens_per_s, snap->gflops, snap->eta_s);
    pk_buf_printf(out, "\n");
    if (snap->message[0]) pk_buf_printf(out, "  %s\n", snap->message);
    if (snap->run_dir[0]) pk_buf_printf(out, "  run folder: %s\n", snap->run_dir);
    append_latest_losses(snap, out);
    engine_snapshot_release(s->engine, snap);
    return PK_OK;
}

static int cmd_run(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)rest;
    if (argc > 2) return pk_errf(err, "usage: run [N]");
    if (argc == 2) {
        int n = 0;
        if (parse_count("run", "steps", argv[1], &n, err)) return PK_FAIL;
        char said[48];
        snprintf(said, sizeof said, "running %d steps", n);
        return defer_to_engine(s, &(EngineCommand){.kind = ENGINE_CMD_RUN_STEPS, .n = n}, finish_arg, said);
    }
    (void)out;
    return defer_to_engine(s, &(EngineCommand){.kind = ENGINE_CMD_RESUME}, finish_arg, "running");
}

static int cmd_pause(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)argv, (void)rest;
    (void)out;
    if (argc > 1) return pk_errf(err, "pause: takes no arguments");
    return defer_to_engine(s, &(EngineCommand){.kind = ENGINE_CMD_PAUSE}, NULL, NULL);
}

static int cmd_resume(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)argv, (void)rest;
    (void)out;
    if (argc > 1) return pk_errf(err, "resume: takes no arguments");
    return defer_to_engine(s, &(EngineCommand){.kind = ENGINE_CMD_RESUME}, finish_arg, "running");
}

static int cmd_step(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)rest;
    int n = 1;
    if (argc > 2) return pk_errf(err, "usage: step [N]");
    if (argc == 2 && parse_count("step", "steps", argv[1], &n, err)) return PK_FAIL;
    (void)out;
    return defer_to_engine(s, &(EngineCommand){.kind = ENGINE_CMD_STEP, .n = n}, finish_step, NULL);
}

static int cmd_set(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)rest;
    (void)out;
    if (argc != 3) return pk_errf(err, "usage: set KEY VALUE (keys: see `get`)");
    /* the engine says "KEY: OLD -> NEW" once applied at the step boundary */
    return defer_to_engine(s, &(EngineCommand){.kind = ENGINE_CMD_SET, .key = argv[1], .value = argv[2]}, NULL, NULL);
}

static int cmd_get(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)rest;
    if (argc > 2) return pk_errf(err, "usage: get [KEY]");
    if (argc == 2) {
        char v[1024];
        if (engine_get(s->engine, argv[1], v, sizeof v, err)) return PK_FAIL;
        pk_buf_printf(out, "%s = %s\n", argv[1], v);
        return PK_OK;
    }
    const char *const *keys = config_keys();
    for (int i = 0; keys[i]; i++) {
        char v[1024];
        if (engine_get(s->engine, keys[i], v, sizeof v, err)) return PK_FAIL;
        pk_buf_printf(out, "%c %-20s %s\n", config_key_is_live(keys[i]) ? '*' : ' ', keys[i], v);
    }
    pk_buf_printf(out, "(* = live: set changes it during the run, at the next step boundary)\n");
    return PK_OK;
}

static int cmd_eval(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)rest;
    if (argc > 2) return pk_errf(err, "usage: eval [valid|test|train]");
    const char *split = argc == 2 ? argv[1] : "valid";
    if (strcmp(split, "valid") && strcmp(split, "test") && strcmp(split, "train"))
        return pk_errf(err, "eval: split must be valid, test or train, got '%s'", split);
    (void)out;
    return defer_to_engine(s, &(EngineCommand){.kind = ENGINE_CMD_EVAL, .text = split}, NULL, NULL);
}

static int cmd_generate(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)argv;
    if (argc < 2 || !rest || !*rest) return pk_errf(err, "usage: generate TEXT");
    (void)out;
    return defer_to_engine(s, &(EngineCommand){.kind = ENGINE_CMD_GENERATE, .text = rest}, NULL, NULL);
}

static int cmd_neighbours(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)rest;
    int k = 5;
    if (argc > 2) return pk_errf(err, "usage: neighbours [K]");
    if (argc == 2 && parse_count("neighbours", "tokens per vector", argv[1], &k, err)) return PK_FAIL;
    const EngineSnapshot *snap = engine_snapshot_acquire(s->engine);
    int rc = PK_OK;
    if (snap->prompt_len == 0 || snap->neighbours_k == 0) {
        rc = pk_errf(err, "neighbours: this run has no soft prompt (method %s) or none measured yet", snap->method);
    } else {
        if (k > snap->neighbours_k) {
            pk_buf_printf(out, "(showing %d: the run keeps neighbours_k = %d; `set neighbours_k %d` for more)\n",
                          snap->neighbours_k, snap->neighbours_k, k);
            k = snap->neighbours_k;
        }
        for (int p = 0; p < snap->prompt_len; p++) {
            pk_buf_printf(out, "p%-2d drift %.4f |", p, snap->prompt_drift ? snap->prompt_drift[p] : 0.0);
            for (int j = 0; j < k; j++)
                pk_buf_printf(out, " %s (%.3f)", snap->neighbour_tokens[p * snap->neighbours_k + j],
                              snap->neighbour_sims[p * snap->neighbours_k + j]);
            pk_buf_printf(out, "\n");
        }
    }
    engine_snapshot_release(s->engine, snap);
    return rc;
}

static int cmd_dev(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)rest, (void)out;
    if (argc != 2 || (strcmp(argv[1], "next") && strcmp(argv[1], "prev"))) return pk_errf(err, "usage: dev next|prev");
    int delta = !strcmp(argv[1], "next") ? 1 : -1;
    return defer_to_engine(s, &(EngineCommand){.kind = ENGINE_CMD_SELECT_DEV, .n = delta}, NULL, NULL);
}

static int cmd_exposure(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)argv, (void)rest;
    if (argc > 1) return pk_errf(err, "exposure: takes no arguments");
    (void)out;
    return defer_to_engine(s, &(EngineCommand){.kind = ENGINE_CMD_EXPOSURE}, NULL, NULL);
}

static int cmd_save(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)rest;
    if (argc > 2) return pk_errf(err, "usage: save [DIR]");
    /* DIR is a folder of its own: never the run folder or what the engine writes in it, and never
     * a folder of other files (the engine's write checks that again, and replaces only a model folder) */
    if (argc == 2 && (pk_run_folder_conflict(argv[1], engine_run_path(s->engine), err) != PK_OK ||
                      pk_model_folder_check(argv[1], err) != PK_OK))
        return PK_FAIL;
    (void)out;
    return defer_to_engine(s, &(EngineCommand){.kind = ENGINE_CMD_SAVE, .text = argc == 2 ? argv[1] : NULL}, NULL,
                           NULL);
}

static int cmd_export(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)rest;
    int w = 960, h = 540, npos = 0;
    const char *pos[2] = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size")) {
            if (i + 1 >= argc) return pk_errf(err, "export: --size needs WxH");
            if (png_parse_size(argv[++i], &w, &h, err)) return PK_FAIL;
        } else if (!strncmp(argv[i], "--size=", 7)) {
            if (png_parse_size(argv[i] + 7, &w, &h, err)) return PK_FAIL;
        } else if (npos < 2) {
            pos[npos++] = argv[i];
        } else {
            return pk_errf(err, "usage: export CHART FILE.png [--size WxH] | export CHART FILE.csv | export all DIR [--size WxH]");
        }
    }
    if (npos != 2)
        return pk_errf(err, "usage: export CHART FILE.png [--size WxH] | export CHART FILE.csv | export all DIR [--size WxH]");
    if (!strcmp(pos[0], "all")) {
        if (session_export_all(s, pos[1], w, h, err)) return PK_FAIL;
        pk_buf_printf(out, "wrote every chart to %s/ (PNG %dx%d and CSV)\n", pos[1], w, h);
        return PK_OK;
    }
    int csv = ends_with(pos[1], ".csv");
    if (!csv && !ends_with(pos[1], ".png"))
        return pk_errf(err, "export: the file name must end in .png or .csv, got '%s'", pos[1]);
    if (session_export_chart(s, pos[0], pos[1], w, h, err)) return PK_FAIL;
    if (csv) pk_buf_printf(out, "wrote %s\n", pos[1]);
    else pk_buf_printf(out, "wrote %s (%dx%d)\n", pos[1], w, h);
    return PK_OK;
}

#define PLUGIN_USAGE \
    "usage: plugin load FILE [--timeout S] | unload NAME | list | run NAME [--timeout S] [ARGS...] | timeout [S] | " \
    "export FILE.json"

/* Seconds for --timeout / plugin timeout: a number in (0, PLUGIN_HOST_MAX_TIMEOUT]. */
static int parse_timeout(const char *what, const char *arg, double *out, char *err) {
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !(v > 0 && v <= PLUGIN_HOST_MAX_TIMEOUT))
        return pk_errf(err, "%s: expected seconds, a number greater than 0 and at most %d, got '%s'", what,
                       PLUGIN_HOST_MAX_TIMEOUT, arg);
    *out = v;
    return PK_OK;
}

/* Takes `--timeout S` / `--timeout=S` out of words[0..*n) (not after a `--`, which is
 * itself dropped so plugin arguments may look like options). */
static int take_timeout(const char *what, char **words, int *n, double *timeout, char *err) {
    int o = 0, literal = 0;
    for (int i = 0; i < *n; i++) {
        if (!literal && !strcmp(words[i], "--")) {
            literal = 1;
        } else if (!literal && !strcmp(words[i], "--timeout")) {
            if (i + 1 >= *n) return pk_errf(err, "%s: --timeout needs seconds", what);
            if (parse_timeout(what, words[++i], timeout, err)) return PK_FAIL;
        } else if (!literal && !strncmp(words[i], "--timeout=", 10)) {
            if (parse_timeout(what, words[i] + 10, timeout, err)) return PK_FAIL;
        } else {
            words[o++] = words[i];
        }
    }
    *n = o;
    return PK_OK;
}

/* plugin load, unload and run: work for the engine's worker, between two steps (the run is
 * not paused for them); what the plugin said is the reply */
static int defer_plugin_job(Session *s, PluginJob *job) {
    if (!job) return PK_FAIL;
    EngineCommand c = {.kind = ENGINE_CMD_WORK, .work = plugin_job_work, .ctx = job, .ctx_free = plugin_job_free};
    return defer_to_engine(s, &c, NULL, NULL);
}

static int cmd_plugin(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)rest;
    if (argc < 2) return pk_errf(err, PLUGIN_USAGE);
    const char *sub = argv[1];
    if (!strcmp(sub, "list") && argc == 2) {
        plugin_host_list(s->plugins, out);
        return PK_OK;
    }
    if (!strcmp(sub, "load") && argc >= 3) {
        int n = argc - 2;
        double timeout = 0;
        if (take_timeout("plugin load", argv + 2, &n, &timeout, err)) return PK_FAIL;
        if (n != 1) return pk_errf(err, "usage: plugin load FILE [--timeout S]");
        return defer_plugin_job(s, plugin_job_load(s->plugins, argv[2], timeout, err));
    }
    if (!strcmp(sub, "unload") && argc == 3) return defer_plugin_job(s, plugin_job_unload(s->plugins, argv[2], err));
    if (!strcmp(sub, "run") && argc >= 3) {
        int n = argc - 3;
        double timeout = 0;
        if (take_timeout("plugin run", argv + 3, &n, &timeout, err)) return PK_FAIL;
        return defer_plugin_job(s, plugin_job_run(s->plugins, argv[2], n, (const char *const *)argv + 3, timeout, err));
    }
    if (!strcmp(sub, "timeout") && argc <= 3) {
        if (argc == 3) {
            double v = 0;
            if (parse_timeout("plugin timeout", argv[2], &v, err) || plugin_host_set_timeout(s->plugins, v, err))
                return PK_FAIL;
        }
        pk_buf_printf(out, "plugin calls time out after %g s\n", plugin_host_timeout(s->plugins));
        return PK_OK;
    }
    if (!strcmp(sub, "export") && argc == 3) {
        if (plugin_host_export_json(s->plugins, argv[2], err)) return PK_FAIL;
        pk_buf_printf(out, "wrote %s\n", argv[2]);
        return PK_OK;
    }
    return pk_errf(err, PLUGIN_USAGE);
}

#define VIEW_USAGE "usage: view CHART [ema X] [log on|off] [window N|all] [x step|time]"

static int cmd_view(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)rest;
    if (argc < 2) return pk_errf(err, VIEW_USAGE);
    Chart probe;
    if (session_build_chart(s, argv[1], &probe, err)) return PK_FAIL;
    chart_free(&probe);
    SessionChartView v;
    session_chart_settings(s, argv[1], &v);
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) return pk_errf(err, "view: '%s' needs a value (%s)", argv[i], VIEW_USAGE);
        const char *val = argv[i + 1];
        char *end;
        if (!strcmp(argv[i], "ema") || !strcmp(argv[i], "smooth")) {
            double x = strtod(val, &end);
            if (end == val || *end || !(x >= 0 && x < 1))
                return pk_errf(err, "view: ema expects a number in [0, 1), got '%s'", val);
            v.ema = x;
        } else if (!strcmp(argv[i], "log")) {
            if (!strcmp(val, "on")) v.log_y = 1;
            else if (!strcmp(val, "off")) v.log_y = 0;
            else return pk_errf(err, "view: log expects on or off, got '%s'", val);
        } else if (!strcmp(argv[i], "window")) {
            if (!strcmp(val, "all") || !strcmp(val, "off")) {
                v.window = 0;
            } else {
                int n = 0;
                if (parse_count("view window", "steps", val, &n, err)) return PK_FAIL;
                v.window = n;
            }
        } else if (!strcmp(argv[i], "x")) {
            if (!strcmp(val, "step")) v.x_time = 0;
            else if (!strcmp(val, "time")) v.x_time = 1;
            else return pk_errf(err, "view: x expects step or time, got '%s'", val);
        } else {
            return pk_errf(err, "view: unknown setting '%s' (ema, log, window, x)", argv[i]);
        }
    }
    if (session_set_chart_settings(s, argv[1], &v, err)) return PK_FAIL;
    char window[32] = "all";
    if (v.window) snprintf(window, sizeof window, "last %d steps", v.window);
    pk_buf_printf(out, "%s: ema %.2f, log %s, window %s, x %s\n", argv[1], v.ema, v.log_y ? "on" : "off", window,
                  v.x_time ? "time" : "step");
    return PK_OK;
}

static int cmd_open(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)rest;
    if (argc == 1) {
        int n = session_overlay_count(s);
        if (!n) pk_buf_printf(out, "no runs in the overlay (open RUN adds one)\n");
        for (int i = 0; i < n; i++)
            pk_buf_printf(out, "%s  %s\n", session_overlay_name(s, i), session_overlay_path(s, i));
        return PK_OK;
    }
    for (int i = 1; i < argc; i++)
        if (session_overlay_add(s, argv[i], out, err)) return PK_FAIL;
    return PK_OK;
}

static int cmd_close(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)rest;
    if (argc != 2 || strcmp(argv[1], "all")) return pk_errf(err, "usage: close all");
    int n = session_overlay_count(s);
    session_overlay_clear(s);
    pk_buf_printf(out, "closed %d overlaid run%s\n", n, n == 1 ? "" : "s");
    return PK_OK;
}

static int cmd_charts(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)argv, (void)rest;
    if (argc > 1) return pk_errf(err, "charts: takes no arguments");
    char names[64][64];
    int n = session_chart_names(s, names, 64);
    for (int i = 0; i < n; i++) pk_buf_printf(out, "%s\n", names[i]);
    return PK_OK;
}

static int cmd_help(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err);

static int cmd_quit(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)s, (void)argv, (void)rest, (void)out;
    if (argc > 1) return pk_errf(err, "quit: takes no arguments");
    return SESSION_QUIT;
}

static const SessionCommand session_commands[] = {
    {"status", "status", "state, step, throughput, ETA and the latest losses", cmd_status},
    {"run", "run [N]", "run to the end (or N more steps, then pause); returns at once", cmd_run},
    {"pause", "pause", "pause after the current step", cmd_pause},
    {"resume", "resume", "continue running", cmd_resume},
    {"step", "step [N]", "run N steps (default 1) and wait for them", cmd_step},
    {"set", "set KEY VALUE",
     "change a live hyper-parameter, running or paused: applied at the next step boundary (see get)", cmd_set},
    {"get", "get [KEY]", "show one or every hyper-parameter", cmd_get},
    {"eval", "eval [SPLIT]", "ROUGE-L of the student on valid (default), test or train", cmd_eval},
    {"generate", "generate TEXT", "generations of T', T and S for an instruction", cmd_generate},
    {"dev", "dev next|prev", "generations of T', T and S on the next or previous dev prompt", cmd_dev},
    {"neighbours", "neighbours [K]", "nearest vocabulary tokens of each soft-prompt vector", cmd_neighbours},
    {"exposure", "exposure", "measure exposure bias (ExAccErr) now", cmd_exposure},
    {"save", "save [DIR]",
     "write a checkpoint to the run's checkpoints/, or to DIR outside the run folder: a new or empty folder, or "
     "one promptkd wrote (only " PK_MODEL_FOLDER_FILES "), which it replaces",
     cmd_save},
    {"export", "export CHART FILE.png [--size WxH] | export CHART FILE.csv | export all DIR",
     "write a chart as PNG, or its raw values as CSV (a row per step); all: both for every chart", cmd_export},
    {"charts", "charts", "list the charts that export", cmd_charts},
    {"view", "view CHART [ema X] [log on|off] [window N|all] [x step|time]",
     "how a chart is drawn (terminal and exports): smoothing, log scale, the last N steps, wall-clock x", cmd_view},
    {"open", "open [RUN|COMPARE_DIR]...",
     "overlay finished runs (read-only) in the charts, each in its own colour, series named \"RUN: series\"; "
     "a compare folder adds each of its runs; alone: list them",
     cmd_open},
    {"close", "close all", "remove every overlaid run from the charts", cmd_close},
    {"plugin",
     "plugin load FILE [--timeout S] | unload NAME | list | run NAME [--timeout S] [ARGS] | timeout [S] | "
     "export FILE.json",
     "analysis plugins, each call in a child process: a crash or a call past its time limit (60 s unless set) "
     "unloads the plugin with a message; the session and its training go on",
     cmd_plugin},
    {"help", "help [COMMAND]", "list commands, or describe one", cmd_help},
    {"quit", "quit", "leave; while steps are unsaved the REPL and the TUI ask whether to save first (a script saves)", cmd_quit},
};
#define N_SESSION_COMMANDS ((int)(sizeof session_commands / sizeof *session_commands))

static const SessionCommand *find_command(const char *name) {
    for (int i = 0; i < N_SESSION_COMMANDS; i++)
        if (!strcmp(session_commands[i].name, name)) return &session_commands[i];
    if (!strcmp(name, "exit")) return find_command("quit");
    if (!strcmp(name, "neighbors")) return find_command("neighbours");
    return NULL;
}

static int cmd_help(Session *s, int argc, char **argv, const char *rest, PkBuf *out, char *err) {
    (void)s, (void)rest;
    if (argc > 2) return pk_errf(err, "usage: help [COMMAND]");
    if (argc == 2) {
        const SessionCommand *c = find_command(argv[1]);
        if (!c) return pk_errf(err, "help: unknown command '%s'", argv[1]);
        pk_buf_printf(out, "%s\n  %s\n", c->usage, c->help);
        return PK_OK;
    }
    for (int i = 0; i < N_SESSION_COMMANDS; i++)
        pk_buf_printf(out, "  %-44s %s\n", session_commands[i].usage, session_commands[i].help);
    return PK_OK;
}

const char *const *session_command_names(void) {
    static const char *names[N_SESSION_COMMANDS + 1];
    for (int i = 0; i < N_SESSION_COMMANDS; i++) names[i] = session_commands[i].name;
    names[N_SESSION_COMMANDS] = NULL;
    return names;
}

const char *session_command_usage(const char *name) {
    const SessionCommand *c = find_command(name);
    return c ? c->usage : NULL;
}

const char *session_command_help(const char *name) {
    const SessionCommand *c = find_command(name);
    return c ? c->help : NULL;
}

/* Splits a line into words: whitespace separates, "double quotes" group (with \" and \\
 * escapes), '#' at a word start begins a comment. Returns the count, or -1 with err. */
static int split_words(char *line, char **argv, int max, const char **rest_after_first, char *err) {
    int argc = 0;
    char *p = line, *w = line;
    *rest_after_first = NULL;
    for (;;) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p || *p == '#') break;
        if (argc == 1) *rest_after_first = p;
        if (argc >= max) return pk_errf(err, "too many words on one line (at most %d)", max);
        argv[argc++] = w;
        int quoted = 0;
        while (*p && (quoted || !isspace((unsigned char)*p))) {
            if (*p == '"') {
                quoted = !quoted;
                p++;
            } else if (*p == '\\' && quoted && (p[1] == '"' || p[1] == '\\')) {
                *w++ = p[1];
                p += 2;
            } else {
                *w++ = *p++;
            }
        }
        if (quoted) return pk_errf(err, "unterminated quote");
        int at_end = !*p;
        *w++ = 0;
        if (at_end) break;
        p++;
    }
    return argc;
}

/* Runs one line. A command answered here fills out (or err) and returns its status; one that
 * goes to the engine is posted before the line's words are freed: *engine_id (0 when
 * nothing was posted) and *how, to tell its reply. */
static int run_line(Session *s, const char *line, PkBuf *out, char *err, unsigned long *engine_id, Defer *how) {
    *engine_id = 0;
    size_t len = strlen(line);
    char *copy = malloc(len + 1), *raw = malloc(len + 1);
    if (!copy || !raw) {
        free(copy);
        free(raw);
        pk_errf(err, "out of memory");
        return SESSION_ERROR;
    }
    memcpy(copy, line, len + 1);
    memcpy(raw, line, len + 1);
    char *argv[SESSION_MAX_ARGS + 1];
    const char *rest_in_copy = NULL;
    int argc = split_words(copy, argv, SESSION_MAX_ARGS, &rest_in_copy, err);
    int rc = SESSION_OK;
    if (argc < 0) {
        rc = SESSION_ERROR;
    } else if (argc > 0) {
        argv[argc] = NULL;
        const SessionCommand *c = find_command(argv[0]);
        if (!c) {
            pk_errf(err, "unknown command '%s' (type help)", argv[0]);
            rc = SESSION_ERROR;
        } else {
            /* the raw rest of the line after the command word, unquoted when it is one quoted string */
            const char *rest = NULL;
            char *rest_buf = NULL;
            if (argc > 1) {
                const char *r = raw + (rest_in_copy - copy);
                size_t rl = strlen(r);
                while (rl > 0 && isspace((unsigned char)r[rl - 1])) rl--;
                rest_buf = malloc(rl + 1);
                if (rest_buf) {
                    memcpy(rest_buf, r, rl);
                    rest_buf[rl] = 0;
                    if (argc == 2) snprintf(rest_buf, rl + 1, "%s", argv[1]);
                }
                rest = rest_buf;
            }
            s->defer.set = 0;
            int r = c->fn(s, argc, argv, rest, out, err);
            if (r == PK_OK && s->defer.set) {
                *how = s->defer;
                *engine_id = engine_post(s->engine, &s->defer.cmd, err);
                if (!*engine_id) {
                    if (s->defer.cmd.ctx_free) s->defer.cmd.ctx_free(s->defer.cmd.ctx); /* still ours */
                    r = PK_FAIL;
                }
            } else if (s->defer.set && s->defer.cmd.ctx_free) {
                s->defer.cmd.ctx_free(s->defer.cmd.ctx);
            }
            s->defer.set = 0;
            free(rest_buf);
            rc = r == SESSION_QUIT ? SESSION_QUIT : r == PK_OK ? SESSION_OK : SESSION_ERROR;
        }
    }
    free(copy);
    free(raw);
    return rc;
}

/* Tells an engine reply: the output (lines ending in '\n') or the error sentence. */
static int tell_reply(Session *s, const Defer *how, const EngineEvent *ev, PkBuf *out, char *err) {
    if (ev->status != PK_OK) {
        if (ev->output) pk_buf_printf(out, "%s", ev->output);
        snprintf(err, PK_ERR_LEN, "%s", ev->text ? ev->text : "out of memory");
        return SESSION_ERROR;
    }
    if (how->finish) {
        how->finish(s, how->arg, ev, out);
    } else if (ev->text && *ev->text) {
        size_t n = strlen(ev->text);
        pk_buf_printf(out, "%s%s", ev->text, ev->text[n - 1] == '\n' ? "" : "\n");
    }
    return SESSION_OK;
}

int session_exec(Session *s, const char *line, PkBuf *out, char *err) {
    unsigned long id;
    Defer how;
    int rc = run_line(s, line, out, err, &id, &how);
    if (id) {
        EngineEvent ev;
        engine_wait_reply(s->engine, id, &ev);
        rc = tell_reply(s, &how, &ev, out, err);
        engine_event_clear(&ev);
    }
    plugin_host_take_notices(s->plugins, out); /* plugin faults during training (on_step) */
    return rc;
}

void session_event_clear(SessionEvent *ev) {
    if (!ev) return;
    free(ev->out);
    memset(ev, 0, sizeof *ev);
}

static void ready_push(Session *s, Ready *r) {
    r->next = NULL;
    if (s->ready_tail)
        s->ready_tail->next = r;
    else
        s->ready_head = r;
    s->ready_tail = r;
}

unsigned long session_post(Session *s, const char *line, char *err) {
    Ready *r = calloc(1, sizeof *r);
    if (!r) return pk_errf(err, "out of memory"), 0;
    PkBuf out = {0};
    unsigned long engine_id;
    Defer how;
    int rc = run_line(s, line, &out, r->ev.err, &engine_id, &how);
    unsigned long id = ++s->next_id;
    if (engine_id) {
        Pending *p = calloc(1, sizeof *p);
        if (p) {
            p->id = id;
            p->engine_id = engine_id;
            p->finish = how.finish;
            snprintf(p->arg, sizeof p->arg, "%s", how.arg);
            p->next = s->pending;
            s->pending = p;
            pk_buf_free(&out);
            free(r);
            return id;
        }
        /* no room to remember it: wait for the reply here rather than lose it */
        EngineEvent ev;
        engine_wait_reply(s->engine, engine_id, &ev);
        rc = tell_reply(s, &how, &ev, &out, r->ev.err);
        engine_event_clear(&ev);
    }
    r->ev.kind = SESSION_EVENT_REPLY;
    r->ev.id = id;
    r->ev.status = rc;
    r->ev.out = out.data ? out.data : strdup("");
    ready_push(s, r);
    return id;
}

int session_poll_event(Session *s, SessionEvent *ev) {
    memset(ev, 0, sizeof *ev);
    if (s->ready_head) {
        Ready *r = s->ready_head;
        s->ready_head = r->next;
        if (!s->ready_head) s->ready_tail = NULL;
        *ev = r->ev;
        free(r);
        return 1;
    }
    PkBuf notices = {0};
    plugin_host_take_notices(s->plugins, &notices); /* plugin faults during training (on_step) */
    if (notices.len) {
        ev->kind = SESSION_EVENT_RUN;
        ev->what = ENGINE_EVENT_ERROR;
        ev->out = notices.data;
        return 1;
    }
    pk_buf_free(&notices);
    EngineEvent e;
    while (engine_poll_event(s->engine, &e)) {
        ev->step = e.step;
        ev->state = e.state;
        ev->what = e.kind;
        if (e.kind != ENGINE_EVENT_REPLY) {
            ev->kind = SESSION_EVENT_RUN;
            PkBuf out = {0};
            pk_buf_printf(&out, "%s\n", e.text ? e.text : "");
            ev->out = out.data;
            engine_event_clear(&e);
            return 1;
        }
        Pending **pp = &s->pending;
        while (*pp && (*pp)->engine_id != e.id) pp = &(*pp)->next;
        if (!*pp) { /* a reply to a command posted past the session (engine_post): not ours to tell */
            engine_event_clear(&e);
            continue;
        }
        Pending *p = *pp;
        *pp = p->next;
        Defer how = {.finish = p->finish};
        snprintf(how.arg, sizeof how.arg, "%s", p->arg);
        PkBuf out = {0};
        ev->kind = SESSION_EVENT_REPLY;
        ev->id = p->id;
        ev->logged = e.logged;
        ev->status = tell_reply(s, &how, &e, &out, ev->err);
        ev->out = out.data ? out.data : strdup("");
        free(p);
        engine_event_clear(&e);
        return 1;
    }
    return 0;
}
