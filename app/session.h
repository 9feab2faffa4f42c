/* A session: one live Engine plus what the person's tools add around it (plugins,
 * chart view settings), and the ONE command table shared by the REPL and the TUI's
 * ':' line, so every command behaves the same in both. */
#ifndef PK_SESSION_H
#define PK_SESSION_H

#include <stddef.h>

#include "chart.h"
#include "common.h"
#include "config.h"
#include "engine.h"

typedef struct Session Session;

/* Creates the engine for cfg (see engine_create) and an empty plugin host. */
int session_create(Session **out, const RunConfig *cfg, const char *resume_dir, int autostart, char *err);
/* A session over a finished or stopped run folder opened read-only (engine_open): every
 * panel and chart from the folder, every command that would change the run refused. */
int session_open(Session **out, const char *run_dir, char *err);
/* Unloads plugins and destroys the engine (no save: callers save first if asked).
 * A run that finished gets its charts written to RUN/plots/ first (a failure is
 * reported on stderr: nothing else is left to report it to). */
void session_destroy(Session *s);
Engine *session_engine(Session *s);

/* Executes one command line ("set lr 1e-4", "export loss out.png --size 800x400", ...).
 * Output for the person is appended to out. Returns SESSION_OK, SESSION_QUIT (the
 * command was quit), or SESSION_ERROR with a sentence in err. Never exits. */
enum { SESSION_OK = 0, SESSION_ERROR = -1, SESSION_QUIT = 1 };
int session_exec(Session *s, const char *line, PkBuf *out, char *err);

/* The same command table without blocking, for front-ends that must keep drawing and
 * reading keys (the TUI, the interactive REPL). session_post runs the line's checks and
 * either answers at once or posts the engine command (the engine's one queue) and
 * returns; its reply, and everything the run reports by itself (evaluations,
 * checkpoints, exposure, the end of the run, pauses, errors, write failures, plugin
 * faults), come back from session_poll_event in the order they happen. session_exec is
 * session_post + waiting for that reply (scripts). */
typedef enum {
    SESSION_EVENT_REPLY, /* the reply to a posted line: id, status, out (and err) */
    SESSION_EVENT_RUN    /* the run reports by itself: what, step, state, out */
} SessionEventKind;

typedef struct {
    SessionEventKind kind;
    unsigned long id;     /* REPLY: what session_post returned */
    int status;           /* REPLY: SESSION_OK, SESSION_ERROR (sentence in err) or SESSION_QUIT */
    EngineEventKind what; /* RUN: ENGINE_EVENT_EVAL, _CHECKPOINT, _EXPOSURE, _STATE, _ERROR, ... */
    int step;
    EngineState state;    /* the run's state right after it */
    int logged;           /* REPLY: the run's log has its own lines for it (a view of that log need not repeat it) */
    char *out;            /* lines for the person, each ending in '\n' (may be ""; NULL only out of memory) */
    char err[PK_ERR_LEN];
} SessionEvent;

/* Returns the line's id (> 0), or 0 with err when out of memory. Never blocks on the
 * worker: an error in the line itself comes back as a REPLY with SESSION_ERROR too. */
unsigned long session_post(Session *s, const char *line, char *err);
/* 1 with the next event in *ev (release it with session_event_clear), 0 when none. */
int session_poll_event(Session *s, SessionEvent *ev);
void session_event_clear(SessionEvent *ev);

/* Command names (NULL-terminated) and each one's usage + description, for help and completion. */
const char *const *session_command_names(void);
const char *session_command_usage(const char *name);
const char *session_command_help(const char *name);

/* Charts: "loss", "rouge", "exposure" (ExAccErr over l), "neighbours", "lr", "grad_norm",
 * "throughput", "exaccerr" (ExAccErr at the longest l over steps), "policy" (MiniLLM's reward and
 * on-policy share), and each plugin chart as
 * "PLUGIN/CHART". With runs in the overlay (session_overlay_add) the built-in charts draw
 * every run, one hue per run, series named "RUN: series". */
int session_chart_names(Session *s, char names[][64], int max);
int session_build_chart(Session *s, const char *name, Chart *out, char *err);

/* How a chart is viewed, per chart, by the terminal and the exports alike. Defaults: the
 * series table's (losses and gradient norms smoothed 0.6 on a log axis), whole run, steps. */
typedef struct {
    double ema;  /* smoothing weight in [0, 1) (TensorBoard's debiased EMA over a faint raw line) */
    int log_y;   /* log10 y axis */
    int window;  /* > 0: only the last N steps */
    int x_time;  /* x axis: elapsed wall-clock time instead of steps */
} SessionChartView;
void session_chart_settings(Session *s, const char *name, SessionChartView *out);
int session_set_chart_settings(Session *s, const char *name, const SessionChartView *v, char *err);
/* Writes chart `name`, atomically: as CSV when path ends in ".csv" (raw values, a row per
 * step), else as PNG (w x h). */
int session_export_chart(Session *s, const char *name, const char *path, int w, int h, char *err);
/* Writes every chart to DIR/NAME.png and DIR/NAME.csv (plugin charts as PLUGIN-CHART.*). */
int session_export_all(Session *s, const char *dir, int w, int h, char *err);

/* Writes every chart (960x540, and CSV) into the run folder's plots/. */
int session_write_run_plots(Session *s, char *err);

/* Overlay: other runs drawn in the same charts. Adds the run folder `run_dir` (opened
 * read-only), or every run of a `compare` output folder (its runs/ subfolders); fails
 * naming the folder when it is neither, is open already, or the overlay is full.
 * What was added is appended to out (may be NULL), one line per run. */
#define SESSION_MAX_OVERLAY 8
/* The run folders of a compare output folder (DIR/runs/METHOD-sSEED, each with metrics.jsonl), by
 * name; the first max into out. Returns how many it holds, 0 when DIR is a run itself or has no runs/. */
typedef char SessionRunPath[4096];
int session_compare_runs(const char *dir, SessionRunPath *out, int max);
int session_overlay_add(Session *s, const char *run_dir, PkBuf *out, char *err);
int session_overlay_count(Session *s);
/* The i-th overlay run's name ("" past the end) and folder. */
const char *session_overlay_name(Session *s, int i);
const char *session_overlay_path(Session *s, int i);
void session_overlay_clear(Session *s);

/* Plugin tables, for the TUI's plugin panel: the i-th published table, as text
 * lines (header first) formatted into columns; NULL past the end. Caller frees. */
char *session_plugin_table_text(Session *s, int i, char *title, size_t title_len);

#endif
