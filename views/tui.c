/* The ncurses workbench over one live Engine (see tui.h).
 *
 * Event loop in the htop manner: get_wch() with a timeout tick, a key table of
 * actions that return redraw flags, and a redraw only when the engine published a
 * new snapshot, the terminal was resized, or a key asked for it. Everything is
 * drawn on stdscr from the current snapshot; modal states (the one-line editor,
 * the command line, the quit question, the help overlay) are modes of the same
 * draw, so the screen stays live while the person types.
 *
 * Engine commands (pause, set, save, ...) wait for the current step to end; the
 * status line says what is being waited for before each one. */
#include <curses.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <wchar.h>

#include "config.h"
#include "tui.h"
#include "tui_internal.h"

#define TICK_MS 150
#define LOG_MAX 1000
#define HIST_MAX 64
#define EDIT_MAX 1024
#define MSG_SECONDS 8.0
#define EXPORT_W 1200
#define EXPORT_H 720
#define MAX_CHARTS 32
#define PAIR_CACHE 48

typedef enum { P_CHART, P_EXPOSURE, P_GEN, P_NEIGH, P_HPARAM, P_LOG, P_PLUGIN, P_COUNT } PanelId;

static const char *const panel_titles[P_COUNT] = {"Charts",          "Exposure bias", "Generations", "Prompt neighbours",
                                                  "Hyper-parameters", "Log",           "Plugins"};

typedef struct {
    int y, x, h, w;
    int visible;
} Rect;

typedef enum { MODE_NORMAL, MODE_EDIT, MODE_ASK } Mode;

enum { R_NONE = 0, R_DRAW = 1, R_QUIT = 2 };

enum { PAIR_FRAME = 1, PAIR_TITLE, PAIR_RUN, PAIR_PAUSE, PAIR_FAIL, PAIR_DONE, PAIR_ERR, PAIR_LIVE, PAIR_DIM,
       PAIR_FIRST_DYNAMIC };

typedef struct {
    const TuiHost *host;
    Engine *engine;
    int utf8, colors, colors256;
    int rows, cols;
    int small;               /* single-panel layout */
    Rect rect[P_COUNT];
    int focus, zoom;         /* zoom: 1 when the focused panel fills the body */
    int scroll[P_COUNT];     /* first line shown (log: lines up from the bottom) */
    int hp_sel;              /* selected hyper-parameter, in display order */
    int hp_sel_set;          /* the initial selection was made */
    char chart_names[MAX_CHARTS][64];
    int n_charts;
    char chart[64];          /* the chart panel's current chart */
    int has_plugins;
    const EngineSnapshot *snap;

    char **log;              /* the log panel: engine log lines merged with command output */
    int n_log;

    char msg[ENGINE_MESSAGE_LEN]; /* transient status message */
    int msg_err;
    int msg_sticky;          /* shown until the next key (a write error), not MSG_SECONDS */
    int seen_write_errors;   /* the snapshot's write_errors already shown */
    double msg_time;

    Mode mode;
    int help;
    char edit_label[160];
    char edit_help[256];     /* shown dim after the text when there is room */
    wchar_t edit[EDIT_MAX];
    int edit_len, edit_cur;
    char ask[160];

    char *hist[HIST_MAX];    /* command-line history, oldest first */
    int n_hist;

    uint32_t pair_rgb[PAIR_CACHE];
    int n_pairs;

    int frames, max_frames;
    int last_key;            /* the key being handled, for actions bound to several keys */
    TuiExit exit_how;
} Tui;

/* ------------------------------------------------------------------ signals */

static volatile sig_atomic_t g_curses_active;
static volatile sig_atomic_t g_interrupt_sig; /* SIGINT, SIGTERM or SIGHUP: leave, the caller saves */
static Engine *volatile g_tui_engine;
static pid_t g_tui_pid; /* the process running the workbench: a forked child must not touch the terminal */
static int g_atexit_registered;
static const int fatal_signals[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGQUIT};
#define N_FATAL ((int)(sizeof fatal_signals / sizeof *fatal_signals))
static const int interrupt_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define N_INTERRUPT ((int)(sizeof interrupt_signals / sizeof *interrupt_signals))
static struct sigaction g_old_fatal[N_FATAL], g_old_interrupt[N_INTERRUPT];

static void restore_terminal(void) {
    if (g_curses_active) {
        g_curses_active = 0;
        endwin();
    }
}

/* Terminal first, then the default action, so a crash never leaves a raw terminal. */
static void on_fatal_signal(int sig) {
    if (getpid() == g_tui_pid) restore_terminal();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* SIGINT, SIGTERM, SIGHUP: as the REPL and headless train (app/run_setup.h). The first
 * pauses the engine after the current step and makes the loop leave (the caller saves);
 * a second SIGINT/SIGTERM restores the terminal and leaves without saving; a repeated
 * SIGHUP is ignored. Async-signal-safe but for endwin, as on_fatal_signal. */
static void on_interrupt_signal(int sig) {
    if (getpid() != g_tui_pid) { /* a child forked before it reset its handlers: the default action */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    if (g_interrupt_sig) {
        if (sig == SIGHUP) return;
        restore_terminal();
        static const char msg[] = "promptkd: a second signal: leaving without saving\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        _exit(130);
    }
    g_interrupt_sig = sig;
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, NULL); /* a hung-up terminal must not kill the save that follows */
    Engine *e = g_tui_engine;
    if (e) engine_interrupt(e);
}

int tui_interrupt_signal(void) { return g_interrupt_sig; }

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_fatal_signal;
    for (int i = 0; i < N_FATAL; i++) sigaction(fatal_signals[i], &sa, &g_old_fatal[i]);
    sa.sa_handler = on_interrupt_signal;
    for (int i = 0; i < N_INTERRUPT; i++) sigaddset(&sa.sa_mask, interrupt_signals[i]);
    for (int i = 0; i < N_INTERRUPT; i++) {
        sigaction(interrupt_signals[i], &sa, &g_old_interrupt[i]);
        /* under nohup SIGHUP stays ignored, as in train and repl */
        if (interrupt_signals[i] == SIGHUP && g_old_interrupt[i].sa_handler == SIG_IGN)
            sigaction(SIGHUP, &g_old_interrupt[i], NULL);
    }
}

static void uninstall_signals(void) {
    for (int i = 0; i < N_FATAL; i++) sigaction(fatal_signals[i], &g_old_fatal[i], NULL);
    for (int i = 0; i < N_INTERRUPT; i++) sigaction(interrupt_signals[i], &g_old_interrupt[i], NULL);
}

/* ------------------------------------------------------------------ drawing primitives */

static short color_pair(Tui *t, int pair) { return t->colors ? (short)pair : 0; }

/* The colour pair drawing a series of this RGB colour (allocated on first use). */
static short series_pair(Tui *t, uint32_t rgb) {
    if (!t->colors) return 0;
    for (int i = 0; i < t->n_pairs; i++)
        if (t->pair_rgb[i] == rgb) return (short)(PAIR_FIRST_DYNAMIC + i);
    if (t->n_pairs == PAIR_CACHE || PAIR_FIRST_DYNAMIC + t->n_pairs >= COLOR_PAIRS) return 0;
    int fg = t->colors256 ? tui_rgb_to_xterm256(rgb) : tui_rgb_to_basic(rgb);
    short p = (short)(PAIR_FIRST_DYNAMIC + t->n_pairs);
    init_pair(p, (short)fg, -1);
    t->pair_rgb[t->n_pairs++] = rgb;
    return p;
}

static void put_cp(Tui *t, int y, int x, uint32_t cp, attr_t attr, short pair) {
    if (y < 0 || x < 0 || y >= t->rows || x >= t->cols) return;
    wchar_t w[2] = {L' ', 0};
    if (cp >= 0x20 && cp != 0x7f) {
        if (!t->utf8 && cp >= 0x80)
            w[0] = L'?';
        else if (t->utf8 && wcwidth((wchar_t)cp) < 0)
            w[0] = (wchar_t)0xfffd;
        else
            w[0] = (wchar_t)cp;
    }
    cchar_t cc;
    setcchar(&cc, w, attr, pair, NULL);
    mvadd_wch(y, x, &cc);
}

/* Draws at most maxw columns of UTF-8 text; returns the columns used. */
static int put_text_n(Tui *t, int y, int x, int maxw, const char *s, size_t n, attr_t attr, short pair) {
    int col = 0;
    for (size_t i = 0; i < n && s[i];) {
        uint32_t cp;
        i += (size_t)tui_utf8_next(s + i, n - i, &cp);
        int w = tui_cp_width(cp, t->utf8);
        if (w == 0) continue;
        if (col + w > maxw) break;
        put_cp(t, y, x + col, cp, attr, pair);
        col += w;
    }
    return col;
}

static int put_text(Tui *t, int y, int x, int maxw, const char *s, attr_t attr, short pair) {
    return put_text_n(t, y, x, maxw, s, strlen(s), attr, pair);
}

static void fill_row(Tui *t, int y, int x, int w, attr_t attr, short pair) {
    for (int i = 0; i < w; i++) put_cp(t, y, x + i, ' ', attr, pair);
}

static void put_line_char(Tui *t, int y, int x, wchar_t u, char a, attr_t attr, short pair) {
    put_cp(t, y, x, t->utf8 ? (uint32_t)u : (uint32_t)(unsigned char)a, attr, pair);
}

static void draw_frame(Tui *t, Rect r, const char *title, int focused) {
    if (r.h < 2 || r.w < 2) return;
    attr_t a = focused ? A_BOLD : A_NORMAL;
    short p = color_pair(t, focused ? PAIR_TITLE : PAIR_FRAME);
    for (int x = 1; x < r.w - 1; x++) {
        put_line_char(t, r.y, r.x + x, focused ? L'\u2501' : L'\u2500', focused ? '=' : '-', a, p);
        put_line_char(t, r.y + r.h - 1, r.x + x, focused ? L'\u2501' : L'\u2500', focused ? '=' : '-', a, p);
    }
    for (int y = 1; y < r.h - 1; y++) {
        put_line_char(t, r.y + y, r.x, focused ? L'\u2503' : L'\u2502', '|', a, p);
        put_line_char(t, r.y + y, r.x + r.w - 1, focused ? L'\u2503' : L'\u2502', '|', a, p);
    }
    put_line_char(t, r.y, r.x, focused ? L'\u250f' : L'\u250c', '+', a, p);
    put_line_char(t, r.y, r.x + r.w - 1, focused ? L'\u2513' : L'\u2510', '+', a, p);
    put_line_char(t, r.y + r.h - 1, r.x, focused ? L'\u2517' : L'\u2514', '+', a, p);
    put_line_char(t, r.y + r.h - 1, r.x + r.w - 1, focused ? L'\u251b' : L'\u2518', '+', a, p);
    if (r.w > 6) {
        char buf[200];
        snprintf(buf, sizeof buf, " %s ", title);
        put_text(t, r.y, r.x + 2, r.w - 4, buf, focused ? A_BOLD | A_REVERSE : A_BOLD,
                 color_pair(t, PAIR_TITLE));
    }
}

static Rect inner(Rect r) {
    Rect i = {r.y + 1, r.x + 1, r.h - 2, r.w - 2, r.visible};
    if (i.h < 0) i.h = 0;
    if (i.w < 0) i.w = 0;
    return i;
}

/* ------------------------------------------------------------------ log and messages */

static void log_add(Tui *t, const char *line) {
    char *copy = strdup(line);
    if (!copy) return;
    if (t->n_log == LOG_MAX) {
        free(t->log[0]);
        memmove(t->log, t->log + 1, (LOG_MAX - 1) * sizeof *t->log);
        t->n_log--;
    }
    t->log[t->n_log++] = copy;
}

/* Adds text (possibly several lines) to the log, each line with a prefix. */
static void log_text(Tui *t, const char *prefix, const char *text) {
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof line, "%s%.*s", prefix, (int)(n < 900 ? n : 900), p);
        log_add(t, line);
        p += n;
        if (*p == '\n') p++;
    }
}

static void set_msg(Tui *t, int is_err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_msg(Tui *t, int is_err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->msg, sizeof t->msg, fmt, ap);
    va_end(ap);
    t->msg_err = is_err;
    t->msg_sticky = 0;
    t->msg_time = pk_now();
}

/* Appends the engine log lines that are new in s compared with the previous
 * snapshot: the engine keeps a sliding window of its last lines, so the new ones
 * are what follows the longest prefix of s that is a suffix of the old window. */
static void merge_engine_log(Tui *t, const EngineSnapshot *s) {
    const EngineSnapshot *old = t->snap;
    int n_new = s->n_log, n_old = old ? old->n_log : 0;
    int fresh = n_new;
    for (int m = n_new < n_old ? n_new : n_old; m > 0; m--) {
        int same = 1;
        for (int i = 0; i < m && same; i++) same = !strcmp(s->log[i], old->log[n_old - m + i]);
        if (same) {
            fresh = n_new - m;
            break;
        }
    }
    for (int i = n_new - fresh; i < n_new; i++) log_add(t, s->log[i]);
}

/* Takes the newest snapshot; returns 1 when it is newer than the one shown. */
static int poll_snapshot(Tui *t) {
    const EngineSnapshot *s = engine_snapshot_acquire(t->engine);
    if (!s) return 0;
    if (t->snap && s->version == t->snap->version) {
        engine_snapshot_release(t->engine, s);
        return 0;
    }
    merge_engine_log(t, s);
    if (t->snap) engine_snapshot_release(t->engine, t->snap);
    t->snap = s;
    /* a failed write into the run folder (checkpoint, metrics.jsonl, ...) stays on the message
     * line until a key: the engine goes on, so nothing else would stop to show it */
    if (s->write_errors > t->seen_write_errors) {
        int n = s->write_errors - t->seen_write_errors;
        if (n > 1)
            set_msg(t, 1, "error (%d writes failed, the last): %s", n, s->write_error);
        else
            set_msg(t, 1, "error: %s", s->write_error);
        t->msg_sticky = 1;
        t->seen_write_errors = s->write_errors;
    }
    return 1;
}

static EngineState snap_state(const Tui *t) { return t->snap ? t->snap->state : ENGINE_LOADING; }

/* ------------------------------------------------------------------ layout */

static int panel_available(const Tui *t, int p) { return p != P_PLUGIN || t->has_plugins; }

static void layout(Tui *t) {
    getmaxyx(stdscr, t->rows, t->cols);
    for (int p = 0; p < P_COUNT; p++) t->rect[p] = (Rect){0, 0, 0, 0, 0};
    int body_y = 1, body_h = t->rows - 2, W = t->cols;
    t->small = t->rows < 16 || t->cols < 60;
    if (body_h < 3 || W < 10) return;
    if (t->zoom || t->small) {
        t->rect[t->focus] = (Rect){body_y, 0, body_h, W, 1};
        return;
    }
    int sidebar = W >= 150 ? 44 : 0; /* wide terminals: hyper-parameters get a full-height column */
    int L = W - sidebar;
    int lw = L * 3 / 5, rw = L - lw;
    int h1 = body_h * 40 / 100, h2 = body_h * 30 / 100, h3 = body_h - h1 - h2;
    int y2 = body_y + h1, y3 = y2 + h2;
    t->rect[P_CHART] = (Rect){body_y, 0, h1, lw, 1};
    t->rect[P_EXPOSURE] = (Rect){body_y, lw, h1, rw, 1};
    t->rect[P_GEN] = (Rect){y2, 0, h2, lw, 1};
    t->rect[P_NEIGH] = (Rect){y2, lw, h2, rw, 1};
    if (sidebar) {
        t->rect[P_HPARAM] = (Rect){body_y, L, body_h, sidebar, 1};
        if (t->has_plugins) {
            t->rect[P_LOG] = (Rect){y3, 0, h3, lw, 1};
            t->rect[P_PLUGIN] = (Rect){y3, lw, h3, rw, 1};
        } else {
            t->rect[P_LOG] = (Rect){y3, 0, h3, L, 1};
        }
    } else {
        t->rect[P_HPARAM] = (Rect){y3, lw, h3, rw, 1};
        if (t->has_plugins) {
            t->rect[P_LOG] = (Rect){y3, 0, h3, lw / 2, 1};
            t->rect[P_PLUGIN] = (Rect){y3, lw / 2, h3, lw - lw / 2, 1};
        } else {
            t->rect[P_LOG] = (Rect){y3, 0, h3, lw, 1};
        }
    }
}

/* ------------------------------------------------------------------ charts */

static void refresh_chart_names(Tui *t) {
    t->n_charts = t->host->chart_names ? t->host->chart_names(t->host->ctx, t->chart_names, MAX_CHARTS) : 0;
    if (t->n_charts < 0) t->n_charts = 0;
    int found = 0;
    for (int i = 0; i < t->n_charts; i++) found |= !strcmp(t->chart_names[i], t->chart);
    if (!found) snprintf(t->chart, sizeof t->chart, "%s", t->n_charts ? t->chart_names[0] : "loss");
}

static int chart_index(const Tui *t) {
    for (int i = 0; i < t->n_charts; i++)
        if (!strcmp(t->chart_names[i], t->chart)) return i;
    return 0;
}

/* The chart a chart key (s, l, x) acts on: the focused chart panel's, else the main one. */
static const char *focused_chart(const Tui *t) { return t->focus == P_EXPOSURE ? "exposure" : t->chart; }

static void draw_chart(Tui *t, Rect r, const char *name) {
    if (r.w < 4 || r.h < 2) return;
    if (!t->snap) { /* nothing published yet: the chart builders read snapshots */
        put_text(t, r.y + r.h / 2, r.x + 1, r.w - 2, "loading...", A_DIM, 0);
        return;
    }
    Chart c;
    char err[PK_ERR_LEN];
    memset(&c, 0, sizeof c);
    if (!t->host->build_chart || t->host->build_chart(t->host->ctx, name, &c, err) != PK_OK) {
        if (!t->host->build_chart) snprintf(err, sizeof err, "no charts in this session");
        put_text(t, r.y + r.h / 2, r.x + 1, r.w - 2, err, A_NORMAL, color_pair(t, PAIR_ERR));
        return;
    }
    ChartCells cells;
    if (chart_render_cells(&c, r.w, r.h, t->utf8, &cells) == 0 && cells.ch) {
        for (int y = 0; y < r.h; y++)
            for (int x = 0; x < r.w; x++) {
                int i = y * r.w + x;
                short s = cells.series[i];
                short p = s >= 0 && s < c.n_series ? series_pair(t, chart_series_rgb(&c, s)) : 0;
                put_cp(t, r.y + y, r.x + x, (uint32_t)cells.ch[i], A_NORMAL, p);
            }
        chart_cells_free(&cells);
    }
    chart_free(&c);
}

static void chart_title(Tui *t, const char *name, const char *base, char *out, size_t len) {
    double ema = 0;
    int log_y = 0;
    if (t->host->chart_view) t->host->chart_view(t->host->ctx, name, &ema, &log_y);
    char view[64] = "";
    if (ema > 0) snprintf(view, sizeof view, " ema %.2g", ema);
    if (log_y) snprintf(view + strlen(view), sizeof view - strlen(view), " log");
    snprintf(out, len, "%s%s", base, view);
}

/* ------------------------------------------------------------------ panels */

static void draw_chart_panel(Tui *t, Rect r) {
    char base[160], title[200];
    int idx = chart_index(t);
    snprintf(base, sizeof base, "%s: %s [%d/%d, c]", panel_titles[P_CHART], t->chart, t->n_charts ? idx + 1 : 0,
             t->n_charts);
    chart_title(t, t->chart, base, title, sizeof title);
    draw_frame(t, r, title, t->focus == P_CHART);
    draw_chart(t, inner(r), t->chart);
}

static void draw_exposure_panel(Tui *t, Rect r) {
    char base[160], title[200];
    const EngineSnapshot *s = t->snap;
    if (s && s->n_exposure > 0) {
        const EngineExposureCurve *c = &s->exposure[s->n_exposure - 1];
        snprintf(base, sizeof base, "%s: step %d, l=%d %.1f%%", panel_titles[P_EXPOSURE], c->step, c->n,
                 c->n ? c->exaccerr[c->n - 1] : 0.0);
    } else {
        snprintf(base, sizeof base, "%s: ExAccErr%%", panel_titles[P_EXPOSURE]);
    }
    chart_title(t, "exposure", base, title, sizeof title);
    draw_frame(t, r, title, t->focus == P_EXPOSURE);
    Rect in = inner(r);
    if (!s || s->n_exposure == 0) {
        put_text(t, in.y + in.h / 2, in.x + 1, in.w - 2, "no ExAccErr curve yet (exposure_interval, or :exposure)",
                 A_NORMAL, color_pair(t, PAIR_DIM));
        return;
    }
    draw_chart(t, in, "exposure");
}

/* Clamps a list scroll position and returns it. */
static int clamp_scroll(Tui *t, int p, int n_lines, int view_h) {
    int max = n_lines - view_h;
    if (max < 0) max = 0;
    if (t->scroll[p] > max) t->scroll[p] = max;
    if (t->scroll[p] < 0) t->scroll[p] = 0;
    return t->scroll[p];
}

/* Draws wrapped text in a column; skip lines of it first. Returns lines needed. */
static int draw_wrapped(Tui *t, int y, int x, int w, int h, const char *text, int skip, attr_t attr, short pair) {
    if (w < 1) return 0;
    enum { MAXL = 512 };
    int starts[MAXL], lens[MAXL];
    int n = tui_wrap(text, w, t->utf8, starts, lens, MAXL);
    int shown = n < MAXL ? n : MAXL;
    for (int i = skip, row = 0; i < shown && row < h; i++, row++)
        put_text_n(t, y + row, x, w, text + starts[i], (size_t)lens[i], attr, pair);
    return n;
}

/* The last value of a snapshot series; 0 when there is none yet. */
static int last_series_value(const EngineSnapshot *s, const char *name, double *v) {
    for (int i = 0; s && i < s->n_series; i++)
        if (s->series[i].n > 0 && !strcmp(s->series[i].name, name)) {
            *v = s->series[i].y[s->series[i].n - 1];
            return 1;
        }
    return 0;
}

static void draw_gen_panel(Tui *t, Rect r) {
    const EngineSnapshot *s = t->snap;
    char title[260];
    if (s && s->dev_count > 0)
        snprintf(title, sizeof title, "%s: T' | T | S, dev %d/%d (n/p), step %d", panel_titles[P_GEN],
                 s->dev_index + 1, s->dev_count, s->gen_step);
    else
        snprintf(title, sizeof title, "%s: T' | T | S", panel_titles[P_GEN]);
    /* the last dev ROUGE-L of S and, beside it, of T' (watched: the prompt may pull T' off its task) */
    double rs, rtp;
    if (last_series_value(s, "dev_rougeL", &rs)) {
        size_t used = strlen(title);
        if (last_series_value(s, "dev_rougeL_tprime", &rtp))
            snprintf(title + used, sizeof title - used, ", dev ROUGE-L S %.2f T' %.2f", rs, rtp);
        else
            snprintf(title + used, sizeof title - used, ", dev ROUGE-L S %.2f", rs);
    }
    draw_frame(t, r, title, t->focus == P_GEN);
    Rect in = inner(r);
    if (in.w < 8 || in.h < 1) return;
    if (!s) return;
    const char *prompt = s->dev_prompt && *s->dev_prompt ? s->dev_prompt : "(no dev prompt yet)";
    /* the prompt: one line in the compact layout, more when there is room */
    int label = put_text(t, in.y, in.x, in.w, "prompt: ", A_BOLD, color_pair(t, PAIR_TITLE));
    int prompt_rows = in.h >= 12 ? 3 : 1, st0, ln0;
    int prompt_lines = tui_wrap(prompt, in.w - label, t->utf8, &st0, &ln0, 1);
    if (prompt_rows > prompt_lines) prompt_rows = prompt_lines > 0 ? prompt_lines : 1;
    draw_wrapped(t, in.y, in.x + label, in.w - label, prompt_rows, prompt, 0, A_NORMAL, 0);
    int top = in.y + prompt_rows, h = in.h - prompt_rows;
    if (h < 2) return;
    const char *heads[3] = {"T' prompted teacher", "T teacher", "S student"};
    const char *texts[3] = {s->gen_prompted_teacher ? s->gen_prompted_teacher : "",
                            s->gen_teacher ? s->gen_teacher : "", s->gen_student ? s->gen_student : ""};
    int colw = (in.w - 2) / 3;
    int need = 0;
    for (int k = 0; k < 3; k++) {
        int x = in.x + k * (colw + 1);
        int w = k == 2 ? in.w - 2 * (colw + 1) : colw;
        put_text(t, top, x, w, heads[k], A_BOLD | A_UNDERLINE, color_pair(t, PAIR_TITLE));
        if (k < 2)
            for (int y = top; y < top + h; y++) put_line_char(t, y, x + colw, L'\u2502', '|', A_NORMAL, color_pair(t, PAIR_FRAME));
        /* empty: nothing generated yet, or this method has no such model */
        int any = *texts[0] || *texts[1] || *texts[2];
        const char *txt = *texts[k]       ? texts[k]
                          : !any          ? "(not generated yet: every gen_interval steps, or n/p)"
                          : k == 0        ? "(no soft prompt in this method)"
                          : k == 1        ? "(no teacher in this method)"
                                          : "(empty)";
        int skip = t->scroll[P_GEN];
        int n = draw_wrapped(t, top + 1, x, w, h - 1, txt, skip, *texts[k] ? A_NORMAL : A_DIM, 0);
        if (n > need) need = n;
    }
    clamp_scroll(t, P_GEN, need, h - 1);
}

static void draw_neigh_panel(Tui *t, Rect r) {
    const EngineSnapshot *s = t->snap;
    draw_frame(t, r, "Prompt neighbours: top-k by cosine, drift", t->focus == P_NEIGH);
    Rect in = inner(r);
    if (in.w < 8 || in.h < 1 || !s) return;
    if (s->prompt_len == 0 || !s->neighbour_tokens) {
        char line[128];
        snprintf(line, sizeof line, "no soft prompt (method %s)", s->method);
        put_text(t, in.y, in.x + 1, in.w - 1, line, A_DIM, 0);
        return;
    }
    int top = clamp_scroll(t, P_NEIGH, s->prompt_len, in.h);
    for (int i = top, row = 0; i < s->prompt_len && row < in.h; i++, row++) {
        int y = in.y + row, x = in.x;
        char head[64];
        snprintf(head, sizeof head, "%d %s%.3f ", i, t->utf8 ? "\u0394" : "d", s->prompt_drift ? s->prompt_drift[i] : 0.0f);
        x += put_text(t, y, x, in.w, head, A_BOLD, color_pair(t, PAIR_TITLE));
        for (int k = 0; k < s->neighbours_k && x < in.x + in.w; k++) {
            const char *tok = s->neighbour_tokens[i * s->neighbours_k + k];
            char shown[200];
            size_t o = 0;
            for (const char *c = tok; *c && o + 4 < sizeof shown; c++) {
                if (*c == ' ') { /* leading spaces matter in BPE tokens: make them visible */
                    if (t->utf8)
                        memcpy(shown + o, "\u00b7", 2), o += 2;
                    else
                        shown[o++] = '_';
                } else {
                    shown[o++] = *c;
                }
            }
            shown[o] = 0;
            char sim[32];
            snprintf(sim, sizeof sim, " %.2f  ", s->neighbour_sims[i * s->neighbours_k + k]);
            int need = tui_text_width(shown, t->utf8) + (int)strlen(sim);
            if (k > 0 && x + need > in.x + in.w) break;
            x += put_text(t, y, x, in.x + in.w - x, shown, A_NORMAL, 0);
            x += put_text(t, y, x, in.x + in.w - x, sim, A_DIM, color_pair(t, PAIR_DIM));
        }
    }
}

/* Display order of the hyper-parameters: live keys (editable while paused) first,
 * each group in config_keys() order. Returns the count. */
static int hparam_order(const EngineSnapshot *s, int *order, int max) {
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < s->n_hparams && n < max; i++)
            if (config_key_is_live(s->hparam_keys[i]) == (pass == 0)) order[n++] = i;
    return n;
}

#define HPARAM_MAX 256

static void draw_hparam_panel(Tui *t, Rect r) {
    const EngineSnapshot *s = t->snap;
    draw_frame(t, r, "Hyper-parameters: * live, e edit", t->focus == P_HPARAM);
    Rect in = inner(r);
    if (in.w < 6 || in.h < 1 || !s) return;
    int order[HPARAM_MAX];
    int n = hparam_order(s, order, HPARAM_MAX);
    if (!t->hp_sel_set) { /* start on the student learning rate, the key most often changed */
        for (int i = 0; i < n; i++)
            if (!strcmp(s->hparam_keys[order[i]], "lr")) t->hp_sel = i;
        t->hp_sel_set = 1;
    }
    if (t->hp_sel >= n) t->hp_sel = n - 1;
    if (t->hp_sel < 0) t->hp_sel = 0;
    /* keep the selection visible */
    if (t->hp_sel < t->scroll[P_HPARAM]) t->scroll[P_HPARAM] = t->hp_sel;
    if (t->hp_sel >= t->scroll[P_HPARAM] + in.h) t->scroll[P_HPARAM] = t->hp_sel - in.h + 1;
    int top = clamp_scroll(t, P_HPARAM, n, in.h);
    int keyw = 0;
    for (int i = 0; i < n; i++) {
        int l = (int)strlen(s->hparam_keys[order[i]]);
        if (l > keyw) keyw = l;
    }
    if (keyw > 17) keyw = 17; /* long keys are cut rather than pushing every value off the panel */
    if (keyw > in.w / 2) keyw = in.w / 2;
    for (int i = top, row = 0; i < n && row < in.h; i++, row++) {
        int k = order[i];
        int y = in.y + row, live = config_key_is_live(s->hparam_keys[k]);
        int sel = i == t->hp_sel;
        attr_t a = sel ? (t->focus == P_HPARAM ? A_REVERSE : A_UNDERLINE) : A_NORMAL;
        if (sel) fill_row(t, y, in.x, in.w, a, 0);
        int x = in.x;
        x += put_text(t, y, x, 2, live ? "* " : "  ", a | A_BOLD, color_pair(t, PAIR_LIVE));
        char key[80];
        snprintf(key, sizeof key, "%-*.*s", keyw, keyw, s->hparam_keys[k]);
        x += put_text(t, y, x, in.x + in.w - x, key, a | (live ? A_BOLD : A_DIM), 0);
        x += put_text(t, y, x, in.x + in.w - x, " = ", a, 0);
        put_text(t, y, x, in.x + in.w - x, s->hparam_values[k], a, 0);
    }
}

static void draw_log_panel(Tui *t, Rect r) {
    draw_frame(t, r, t->scroll[P_LOG] ? "Log (scrolled: End follows)" : "Log", t->focus == P_LOG);
    Rect in = inner(r);
    if (in.w < 2 || in.h < 1) return;
    /* newest at the bottom; each entry wraps */
    int max_up = t->n_log > 0 ? t->n_log - 1 : 0;
    if (t->scroll[P_LOG] > max_up) t->scroll[P_LOG] = max_up;
    if (t->scroll[P_LOG] < 0) t->scroll[P_LOG] = 0;
    int row = in.h;
    enum { MAXL = 64 };
    int starts[MAXL], lens[MAXL];
    for (int i = t->n_log - 1 - t->scroll[P_LOG]; i >= 0 && row > 0; i--) {
        const char *line = t->log[i];
        int n = tui_wrap(line, in.w, t->utf8, starts, lens, MAXL);
        if (n > MAXL) n = MAXL;
        if (n == 0) n = 1, starts[0] = 0, lens[0] = 0;
        int is_err = !strncmp(line, "error", 5) || strstr(line, "failed") || strstr(line, "non-finite");
        int is_cmd = line[0] == '>';
        for (int k = n - 1; k >= 0 && row > 0; k--) {
            row--;
            put_text_n(t, in.y + row, in.x, in.w, line + starts[k], (size_t)lens[k],
                       is_cmd ? A_BOLD : A_NORMAL, color_pair(t, is_err ? PAIR_ERR : is_cmd ? PAIR_TITLE : 0));
        }
    }
}

static void draw_plugin_panel(Tui *t, Rect r) {
    draw_frame(t, r, panel_titles[P_PLUGIN], t->focus == P_PLUGIN);
    Rect in = inner(r);
    if (in.w < 2 || in.h < 1) return;
    /* all tables one after another, each under its title */
    PkBuf all = {0};
    for (int i = 0; t->host->plugin_table; i++) {
        char ttl[128] = "";
        char *text = t->host->plugin_table(t->host->ctx, i, ttl, sizeof ttl);
        if (!text) break;
        pk_buf_printf(&all, "%s[%s]\n%s%s", i ? "\n" : "", ttl, text, text[0] && text[strlen(text) - 1] != '\n' ? "\n" : "");
        free(text);
    }
    if (!all.data) {
        put_text(t, in.y, in.x, in.w, "no plugin table published", A_DIM, 0);
        return;
    }
    int n_lines = 0;
    for (const char *p = all.data; *p; p++) n_lines += *p == '\n';
    int top = clamp_scroll(t, P_PLUGIN, n_lines, in.h);
    const char *p = all.data;
    for (int i = 0, row = 0; *p && row < in.h; i++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (i >= top) {
            put_text_n(t, in.y + row, in.x, in.w, p, n, p[0] == '[' ? A_BOLD : A_NORMAL,
                       p[0] == '[' ? color_pair(t, PAIR_TITLE) : 0);
            row++;
        }
        p += n;
        if (*p == '\n') p++;
    }
    pk_buf_free(&all);
}

static void draw_status(Tui *t) {
    fill_row(t, 0, 0, t->cols, A_REVERSE, 0);
    const EngineSnapshot *s = t->snap;
    EngineState st = snap_state(t);
    int pair = st == ENGINE_RUNNING ? PAIR_RUN : st == ENGINE_PAUSED ? PAIR_PAUSE : st == ENGINE_FAILED ? PAIR_FAIL
                                                                                    : PAIR_DONE;
    char state[32];
    snprintf(state, sizeof state, " %s ", engine_state_name(st));
    for (char *c = state; *c; c++)
        if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
    int x = put_text(t, 0, 0, t->cols, state, A_BOLD | (t->colors ? 0 : A_REVERSE), color_pair(t, pair));
    if (!t->colors) x += put_text(t, 0, x, t->cols - x, " ", A_REVERSE, 0);
    if (!s) return;
    char tps[32], gfl[32], eta[32], line[1200];
    tui_format_rate(s->tokens_per_s, tps, sizeof tps);
    tui_format_rate(s->gflops, gfl, sizeof gfl);
    tui_format_duration(s->eta_s, eta, sizeof eta);
    const char *sep = t->utf8 ? " \u2502 " : " | ";
    const char *right = " ? help ";
    int rw = (int)strlen(right);
    int room = t->cols - x - rw;
    snprintf(line, sizeof line, " step %d/%d%s%s tok/s%s%s GFLOP/s%sETA %s%s%s%s", s->step, s->total_steps, sep, tps,
             sep, gfl, sep, eta, sep, s->method, sep);
    /* the run folder last; when it does not fit, its last two components */
    const char *dir = s->run_dir;
    int left = room - tui_text_width(line, t->utf8);
    if ((int)strlen(dir) > left) {
        const char *cut = dir + strlen(dir);
        for (int slashes = 0; cut > dir;) {
            cut--;
            if (*cut == '/' && ++slashes == 2) break;
        }
        if (cut > dir) {
            size_t used = strlen(line);
            snprintf(line + used, sizeof line - used, "%s%s", t->utf8 ? "\u2026" : "...", cut);
            dir = NULL;
        }
    }
    if (dir) snprintf(line + strlen(line), sizeof line - strlen(line), "%s", dir);
    if (room > 0) put_text(t, 0, x, room, line, A_REVERSE, 0);
    if (t->cols - rw > x) put_text(t, 0, t->cols - rw, rw, right, A_REVERSE | A_BOLD, 0);
}

static const char *const hints =
    "space pause/resume  e edit  Tab focus  c chart  s smooth  l log  x png  z zoom  n/p prompt  : command  ? help  q quit";

static void draw_bottom(Tui *t) {
    int y = t->rows - 1;
    if (y < 1) return;
    fill_row(t, y, 0, t->cols, A_NORMAL, 0);
    if (t->mode == MODE_EDIT) {
        int x = put_text(t, y, 0, t->cols, t->edit_label, A_BOLD, color_pair(t, PAIR_TITLE));
        int room = t->cols - x - 1;
        if (room < 1) return;
        /* scroll the line so the cursor stays visible */
        int first = 0, w_before = 0;
        for (int i = 0; i < t->edit_cur; i++) w_before += tui_cp_width((uint32_t)t->edit[i], t->utf8);
        while (w_before >= room && first < t->edit_cur) w_before -= tui_cp_width((uint32_t)t->edit[first++], t->utf8);
        int col = 0, cur_x = x;
        for (int i = first; i <= t->edit_len; i++) {
            if (i == t->edit_cur) cur_x = x + col;
            if (i == t->edit_len) break;
            int w = tui_cp_width((uint32_t)t->edit[i], t->utf8);
            if (col + w > room) break;
            put_cp(t, y, x + col, (uint32_t)t->edit[i], A_NORMAL, 0);
            col += w;
        }
        int help_w = t->edit_help[0] ? tui_text_width(t->edit_help, t->utf8) : 0;
        if (help_w && room - col - 3 >= help_w)
            put_text(t, y, t->cols - help_w - 1, help_w, t->edit_help, A_DIM, color_pair(t, PAIR_DIM));
        move(y, cur_x);
        return;
    }
    if (t->mode == MODE_ASK) {
        put_text(t, y, 0, t->cols, t->ask, A_BOLD | A_REVERSE, color_pair(t, PAIR_PAUSE));
        return;
    }
    if (t->msg[0] && (t->msg_sticky || pk_now() - t->msg_time < MSG_SECONDS)) {
        put_text(t, y, 0, t->cols, t->msg, t->msg_err ? A_BOLD : A_NORMAL, color_pair(t, t->msg_err ? PAIR_ERR : 0));
        return;
    }
    if (t->snap && (t->snap->state == ENGINE_FAILED) && t->snap->message[0]) {
        put_text(t, y, 0, t->cols, t->snap->message, A_BOLD, color_pair(t, PAIR_ERR));
        return;
    }
    put_text(t, y, 0, t->cols, hints, A_DIM, 0);
}

/* ------------------------------------------------------------------ key table */

typedef int (*KeyAction)(Tui *t);

typedef struct {
    int codes[8];       /* >= 0: a character; < 0: -KEY_xxx; unused: 0 */
    const char *keys;   /* as shown in the help */
    const char *help;
    KeyAction fn;
} KeyBinding;

static const KeyBinding *binding_for(int code);
extern const KeyBinding tui_key_table[];

static void draw_help(Tui *t);

static void draw_all(Tui *t) {
    /* plugin tables may appear at any step: the layout follows */
    int had = t->has_plugins;
    t->has_plugins = 0;
    if (t->host->plugin_table) {
        char ttl[8];
        char *first = t->host->plugin_table(t->host->ctx, 0, ttl, sizeof ttl);
        t->has_plugins = first != NULL;
        free(first);
    }
    if (!panel_available(t, t->focus)) t->focus = P_LOG;
    (void)had;
    refresh_chart_names(t);
    layout(t);
    erase();
    draw_status(t);
    if (t->rows - 2 < 3 || t->cols < 10) {
        put_text(t, t->rows > 1 ? 1 : 0, 0, t->cols, "terminal too small", A_BOLD, 0);
    } else {
        for (int p = 0; p < P_COUNT; p++) {
            Rect r = t->rect[p];
            if (!r.visible || r.w < 2 || r.h < 2) continue;
            switch (p) {
            case P_CHART: draw_chart_panel(t, r); break;
            case P_EXPOSURE: draw_exposure_panel(t, r); break;
            case P_GEN: draw_gen_panel(t, r); break;
            case P_NEIGH: draw_neigh_panel(t, r); break;
            case P_HPARAM: draw_hparam_panel(t, r); break;
            case P_LOG: draw_log_panel(t, r); break;
            case P_PLUGIN: draw_plugin_panel(t, r); break;
            }
        }
    }
    if (t->help) draw_help(t);
    curs_set(t->mode == MODE_EDIT ? 1 : 0);
    draw_bottom(t); /* last: in edit mode it leaves the cursor in the line */
    refresh();
    t->frames++;
}

/* Redraws now (used before blocking engine commands, so the person sees what is waited for). */
static void show_now(Tui *t) {
    draw_all(t);
}

static const char *const help_notes[] = {
    "Ctrl-C, SIGTERM, SIGHUP: finish the step, save the unsaved steps, leave (exit",
    "               130; 129 for SIGHUP); Ctrl-C again leaves at once without saving",
    "editor and :   Enter accepts, Esc cancels, Up/Down history, Ctrl-A/E/U/K",
    "* marks live hyper-parameters (editable while paused); others are fixed",
    "charts: braille when the locale is UTF-8, ASCII otherwise; NO_COLOR honoured",
    "x writes RUN/plots/CHART.png; :export CHART FILE [--size WxH] for others",
    ":help lists the REPL commands",
};
#define N_HELP_NOTES ((int)(sizeof help_notes / sizeof *help_notes))

static int help_lines(void) {
    int n = 0;
    while (tui_key_table[n].fn) n++;
    return n + N_HELP_NOTES;
}

/* The help overlay: every binding of the key table, then the notes; scrolls when
 * the terminal is too short (from line help_top). */
static int help_top;

static void draw_help(Tui *t) {
    int n_keys = 0;
    while (tui_key_table[n_keys].fn) n_keys++;
    int total = help_lines();
    int h = total + 2, w = 80;
    if (w > t->cols) w = t->cols;
    if (h > t->rows - 2) h = t->rows - 2;
    if (h < 3 || w < 10) return;
    int view = h - 2;
    if (help_top > total - view) help_top = total - view;
    if (help_top < 0) help_top = 0;
    int y0 = 1 + (t->rows - 2 - h) / 2, x0 = (t->cols - w) / 2;
    Rect r = {y0, x0, h, w, 1};
    for (int y = 0; y < h; y++) fill_row(t, y0 + y, x0, w, A_NORMAL, 0);
    draw_frame(t, r, view < total ? "Help: keys (Up/Down scroll, other keys close)" : "Help: keys (any key closes)", 1);
    Rect in = inner(r);
    for (int row = 0; row < in.h && help_top + row < total; row++) {
        int i = help_top + row;
        char line[200];
        if (i < n_keys)
            snprintf(line, sizeof line, "%-14s %s", tui_key_table[i].keys, tui_key_table[i].help);
        else
            snprintf(line, sizeof line, "%s", help_notes[i - n_keys]);
        put_text(t, in.y + row, in.x + 1, in.w - 1, line, i < n_keys ? A_NORMAL : A_DIM, 0);
    }
}

/* ------------------------------------------------------------------ input */

/* One key as a single int: characters as themselves, function keys negated. */
static int read_key(int *code) {
    wint_t wc;
    int rc = get_wch(&wc);
    if (rc == ERR) return 0;
    *code = rc == KEY_CODE_YES ? -(int)wc : (int)wc;
    return 1;
}

/* Waits for the next key while keeping the screen live (new snapshots, resizes).
 * Returns 0 when SIGINT/SIGTERM/SIGHUP arrived instead (the main loop then leaves). */
static int wait_key(Tui *t, int *code) {
    for (;;) {
        if (g_interrupt_sig) return 0;
        if (read_key(code)) {
            if (*code == -KEY_RESIZE) {
                draw_all(t);
                continue;
            }
            return 1;
        }
        if (poll_snapshot(t)) draw_all(t);
    }
}

static void hist_add(Tui *t, const char *line) {
    if (!*line) return;
    if (t->n_hist && !strcmp(t->hist[t->n_hist - 1], line)) return;
    char *copy = strdup(line);
    if (!copy) return;
    if (t->n_hist == HIST_MAX) {
        free(t->hist[0]);
        memmove(t->hist, t->hist + 1, (HIST_MAX - 1) * sizeof *t->hist);
        t->n_hist--;
    }
    t->hist[t->n_hist++] = copy;
}

static void edit_set(Tui *t, const char *utf8) {
    t->edit_len = 0;
    size_t n = strlen(utf8);
    for (size_t i = 0; i < n && t->edit_len < EDIT_MAX - 1;) {
        uint32_t cp;
        i += (size_t)tui_utf8_next(utf8 + i, n - i, &cp);
        t->edit[t->edit_len++] = (wchar_t)cp;
    }
    t->edit_cur = t->edit_len;
}

static void edit_get(const Tui *t, char *out, size_t len) {
    size_t o = 0;
    for (int i = 0; i < t->edit_len; i++) {
        uint32_t cp = (uint32_t)t->edit[i];
        char b[4];
        int n;
        if (cp < 0x80) b[0] = (char)cp, n = 1;
        else if (cp < 0x800) b[0] = (char)(0xc0 | cp >> 6), b[1] = (char)(0x80 | (cp & 63)), n = 2;
        else if (cp < 0x10000)
            b[0] = (char)(0xe0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 63)), b[2] = (char)(0x80 | (cp & 63)), n = 3;
        else
            b[0] = (char)(0xf0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 63)),
            b[2] = (char)(0x80 | ((cp >> 6) & 63)), b[3] = (char)(0x80 | (cp & 63)), n = 4;
        if (o + (size_t)n + 1 > len) break;
        memcpy(out + o, b, (size_t)n);
        o += (size_t)n;
    }
    out[o] = 0;
}

/* The one-line editor at the bottom. Returns 1 with the text in out when Enter was
 * pressed, 0 when cancelled (Esc, Ctrl-C, Ctrl-G). use_hist: Up/Down walk the
 * command history. */
static int line_edit(Tui *t, const char *label, const char *help, const char *init, char *out, size_t len,
                     int use_hist) {
    snprintf(t->edit_label, sizeof t->edit_label, "%s", label);
    snprintf(t->edit_help, sizeof t->edit_help, "%s", help ? help : "");
    edit_set(t, init);
    t->mode = MODE_EDIT;
    int hist_pos = t->n_hist, accepted = 0;
    char saved[EDIT_MAX * 4] = "";
    draw_all(t);
    for (;;) {
        int k;
        if (!wait_key(t, &k)) break;
        if (k == '\n' || k == '\r' || k == -KEY_ENTER) {
            accepted = 1;
            break;
        }
        if (k == 27 || k == 7) break; /* Esc, Ctrl-G */
        if (k == -KEY_LEFT || k == 2) {
            if (t->edit_cur > 0) t->edit_cur--;
        } else if (k == -KEY_RIGHT || k == 6) {
            if (t->edit_cur < t->edit_len) t->edit_cur++;
        } else if (k == -KEY_HOME || k == 1) {
            t->edit_cur = 0;
        } else if (k == -KEY_END || k == 5) {
            t->edit_cur = t->edit_len;
        } else if (k == -KEY_BACKSPACE || k == 127 || k == 8) {
            if (t->edit_cur > 0) {
                memmove(t->edit + t->edit_cur - 1, t->edit + t->edit_cur,
                        (size_t)(t->edit_len - t->edit_cur) * sizeof *t->edit);
                t->edit_cur--, t->edit_len--;
            }
        } else if (k == -KEY_DC || k == 4) {
            if (t->edit_cur < t->edit_len) {
                memmove(t->edit + t->edit_cur, t->edit + t->edit_cur + 1,
                        (size_t)(t->edit_len - t->edit_cur - 1) * sizeof *t->edit);
                t->edit_len--;
            }
        } else if (k == 21) { /* Ctrl-U */
            memmove(t->edit, t->edit + t->edit_cur, (size_t)(t->edit_len - t->edit_cur) * sizeof *t->edit);
            t->edit_len -= t->edit_cur;
            t->edit_cur = 0;
        } else if (k == 11) { /* Ctrl-K */
            t->edit_len = t->edit_cur;
        } else if (use_hist && (k == -KEY_UP || k == -KEY_DOWN)) {
            if (hist_pos == t->n_hist) edit_get(t, saved, sizeof saved);
            if (k == -KEY_UP && hist_pos > 0) hist_pos--;
            else if (k == -KEY_DOWN && hist_pos < t->n_hist) hist_pos++;
            edit_set(t, hist_pos < t->n_hist ? t->hist[hist_pos] : saved);
        } else if (k >= 0x20 && k != 0x7f && t->edit_len < EDIT_MAX - 1) {
            memmove(t->edit + t->edit_cur + 1, t->edit + t->edit_cur,
                    (size_t)(t->edit_len - t->edit_cur) * sizeof *t->edit);
            t->edit[t->edit_cur++] = (wchar_t)k;
            t->edit_len++;
        }
        draw_all(t);
    }
    if (accepted) edit_get(t, out, len);
    t->mode = MODE_NORMAL;
    return accepted;
}

/* Asks a one-key question; returns the key (lower case), 0 on Ctrl-C. */
static int ask_key(Tui *t, const char *question, const char *allowed) {
    snprintf(t->ask, sizeof t->ask, "%s", question);
    t->mode = MODE_ASK;
    draw_all(t);
    int answer = 0;
    for (;;) {
        int k;
        if (!wait_key(t, &k)) break;
        if (k == 27) k = 'c';
        if (k >= 'A' && k <= 'Z') k += 'a' - 'A';
        if (k > 0 && k < 128 && strchr(allowed, k)) {
            answer = k;
            break;
        }
    }
    t->mode = MODE_NORMAL;
    return answer;
}

/* ------------------------------------------------------------------ actions */

static int act_pause(Tui *t) {
    char err[PK_ERR_LEN];
    EngineState st = snap_state(t);
    int rc;
    if (st == ENGINE_RUNNING) {
        set_msg(t, 0, "pausing after the current step...");
        show_now(t);
        rc = engine_pause(t->engine, err);
        if (rc == PK_OK) set_msg(t, 0, "paused: e edits a hyper-parameter, space resumes");
    } else if (st == ENGINE_LOADING) {
        set_msg(t, 1, "still loading; space works once the run is ready");
        return R_DRAW;
    } else {
        rc = engine_resume(t->engine, err);
        if (rc == PK_OK) set_msg(t, 0, "running");
    }
    if (rc != PK_OK) {
        set_msg(t, 1, "%s", err);
        log_text(t, "error: ", err);
    }
    poll_snapshot(t);
    return R_DRAW;
}

static int act_edit(Tui *t) {
    const EngineSnapshot *s = t->snap;
    if (!s || s->n_hparams == 0) return R_NONE;
    if (s->state == ENGINE_RUNNING) {
        set_msg(t, 1, "pause first (space)");
        return R_DRAW;
    }
    if (s->state == ENGINE_LOADING) {
        set_msg(t, 1, "still loading; edit once the run is ready");
        return R_DRAW;
    }
    int order[HPARAM_MAX];
    int n = hparam_order(s, order, HPARAM_MAX);
    if (!t->hp_sel_set) {
        for (int i = 0; i < n; i++)
            if (!strcmp(s->hparam_keys[order[i]], "lr")) t->hp_sel = i;
        t->hp_sel_set = 1;
    }
    if (t->hp_sel < 0 || t->hp_sel >= n) t->hp_sel = 0;
    int k = order[t->hp_sel];
    char key[64], value[EDIT_MAX * 4], label[160], err[PK_ERR_LEN];
    snprintf(key, sizeof key, "%s", s->hparam_keys[k]);
    const char *help = config_key_help(key);
    snprintf(label, sizeof label, "set %s%s = ", key, config_key_is_live(key) ? "" : " (fixed for the run)");
    if (!line_edit(t, label, help, s->hparam_values[k], value, sizeof value, 0)) {
        set_msg(t, 0, "edit cancelled");
        return R_DRAW;
    }
    if (snap_state(t) == ENGINE_RUNNING) { /* resumed from the command line meanwhile */
        set_msg(t, 1, "pause first (space)");
        return R_DRAW;
    }
    if (engine_set(t->engine, key, value, err) != PK_OK) {
        set_msg(t, 1, "refused: %s", err);
        log_text(t, "error: ", err);
    } else {
        set_msg(t, 0, "%s = %s", key, value);
    }
    poll_snapshot(t);
    return R_DRAW;
}

static int act_focus_next(Tui *t) {
    do t->focus = (t->focus + 1) % P_COUNT;
    while (!panel_available(t, t->focus));
    return R_DRAW;
}

static int act_focus_prev(Tui *t) {
    do t->focus = (t->focus + P_COUNT - 1) % P_COUNT;
    while (!panel_available(t, t->focus));
    return R_DRAW;
}

static int act_focus_digit(Tui *t) {
    int p = t->last_key - '1';
    if (p < 0 || p >= P_COUNT || !panel_available(t, p)) return R_NONE;
    t->focus = p;
    return R_DRAW;
}

static int panel_page(const Tui *t) {
    int h = t->rect[t->focus].h - 3;
    return h > 1 ? h : 1;
}

static int scroll_by(Tui *t, int d) {
    switch (t->focus) {
    case P_HPARAM: t->hp_sel += d; break;
    case P_LOG: t->scroll[P_LOG] -= d; break; /* up = older */
    case P_GEN:
    case P_NEIGH:
    case P_PLUGIN: t->scroll[t->focus] += d; break;
    default: return R_NONE;
    }
    if (t->hp_sel < 0) t->hp_sel = 0;
    if (t->snap && t->hp_sel >= t->snap->n_hparams) t->hp_sel = t->snap->n_hparams - 1;
    if (t->scroll[t->focus] < 0) t->scroll[t->focus] = 0;
    return R_DRAW;
}

static int act_up(Tui *t) { return t->focus == P_CHART || t->focus == P_EXPOSURE ? act_focus_prev(t) : scroll_by(t, -1); }
static int act_down(Tui *t) { return t->focus == P_CHART || t->focus == P_EXPOSURE ? act_focus_next(t) : scroll_by(t, 1); }
static int act_pgup(Tui *t) { return scroll_by(t, -panel_page(t)); }
static int act_pgdn(Tui *t) { return scroll_by(t, panel_page(t)); }
static int act_home(Tui *t) { return scroll_by(t, -100000); }
static int act_end(Tui *t) { return scroll_by(t, 100000); }

static int act_chart_next(Tui *t) {
    refresh_chart_names(t);
    if (t->n_charts == 0) return R_NONE;
    snprintf(t->chart, sizeof t->chart, "%s", t->chart_names[(chart_index(t) + 1) % t->n_charts]);
    t->focus = P_CHART;
    return R_DRAW;
}

static int act_chart_prev(Tui *t) {
    refresh_chart_names(t);
    if (t->n_charts == 0) return R_NONE;
    snprintf(t->chart, sizeof t->chart, "%s", t->chart_names[(chart_index(t) + t->n_charts - 1) % t->n_charts]);
    t->focus = P_CHART;
    return R_DRAW;
}

static int act_left(Tui *t) { return t->focus == P_CHART ? act_chart_prev(t) : act_focus_prev(t); }
static int act_right(Tui *t) { return t->focus == P_CHART ? act_chart_next(t) : act_focus_next(t); }

static int act_smooth(Tui *t) {
    static const double steps[] = {0.0, 0.6, 0.9};
    const char *name = focused_chart(t);
    double ema = 0;
    int log_y = 0;
    if (t->host->chart_view) t->host->chart_view(t->host->ctx, name, &ema, &log_y);
    int next = 0;
    for (int i = 0; i < 3; i++)
        if (fabs(ema - steps[i]) < 1e-9) next = (i + 1) % 3;
    if (t->host->set_chart_view) t->host->set_chart_view(t->host->ctx, name, steps[next], log_y);
    set_msg(t, 0, "%s: EMA smoothing %.1f", name, steps[next]);
    return R_DRAW;
}

static int act_logscale(Tui *t) {
    const char *name = focused_chart(t);
    double ema = 0;
    int log_y = 0;
    if (t->host->chart_view) t->host->chart_view(t->host->ctx, name, &ema, &log_y);
    if (t->host->set_chart_view) t->host->set_chart_view(t->host->ctx, name, ema, !log_y);
    set_msg(t, 0, "%s: %s y axis", name, !log_y ? "log10" : "linear");
    return R_DRAW;
}

static int act_zoom(Tui *t) {
    t->zoom = !t->zoom;
    return R_DRAW;
}

static int act_export(Tui *t) {
    if (t->focus != P_CHART && t->focus != P_EXPOSURE) {
        set_msg(t, 1, "x exports a chart: focus the Charts or Exposure bias panel (Tab)");
        return R_DRAW;
    }
    const char *name = focused_chart(t);
    if (!t->host->export_chart || !t->snap) return R_NONE;
    char file[96], dir[CONFIG_PATH_LEN + 16], path[CONFIG_PATH_LEN + 128], err[PK_ERR_LEN];
    snprintf(file, sizeof file, "%s.png", name);
    for (char *c = file; *c; c++)
        if (*c == '/') *c = '-';
    snprintf(dir, sizeof dir, "%s/plots", t->snap->run_dir);
    if (pk_mkdirs(dir, err) != PK_OK || pk_path_join(path, sizeof path, dir, file, err) != PK_OK ||
        t->host->export_chart(t->host->ctx, name, path, EXPORT_W, EXPORT_H, err) != PK_OK) {
        set_msg(t, 1, "export failed: %s", err);
        log_text(t, "error: export failed: ", err);
        return R_DRAW;
    }
    char line[CONFIG_PATH_LEN + 400];
    snprintf(line, sizeof line, "exported %s to %s (%dx%d)", name, path, EXPORT_W, EXPORT_H);
    log_add(t, line);
    set_msg(t, 0, "%s", line);
    return R_DRAW;
}

static int act_dev(Tui *t, int delta) {
    char err[PK_ERR_LEN];
    set_msg(t, 0, "generating on the %s dev prompt...", delta > 0 ? "next" : "previous");
    show_now(t);
    if (engine_select_dev(t->engine, delta, err) != PK_OK) {
        set_msg(t, 1, "%s", err);
        log_text(t, "error: ", err);
    } else {
        set_msg(t, 0, "dev prompt selected");
    }
    t->scroll[P_GEN] = 0;
    poll_snapshot(t);
    return R_DRAW;
}
static int act_dev_next(Tui *t) { return act_dev(t, 1); }
static int act_dev_prev(Tui *t) { return act_dev(t, -1); }

static int quit_flow(Tui *t);

static int act_command(Tui *t) {
    char line[EDIT_MAX * 4], err[PK_ERR_LEN];
    if (!line_edit(t, ":", "Enter runs, Esc cancels, Up/Down history, :help lists commands", "", line, sizeof line, 1))
        return R_DRAW;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return R_DRAW;
    hist_add(t, p);
    char echo[EDIT_MAX * 4 + 4];
    snprintf(echo, sizeof echo, "> %s", p);
    log_add(t, echo);
    if (!t->host->exec) {
        set_msg(t, 1, "no command table in this session");
        return R_DRAW;
    }
    set_msg(t, 0, "running: %s", p);
    show_now(t);
    PkBuf out = {0};
    err[0] = 0;
    int rc = t->host->exec(t->host->ctx, p, &out, err);
    if (out.data && out.len) log_text(t, "", out.data);
    pk_buf_free(&out);
    poll_snapshot(t);
    if (rc == TUI_EXEC_ERROR) {
        set_msg(t, 1, "%s", err);
        log_text(t, "error: ", err);
        return R_DRAW;
    }
    set_msg(t, 0, "done: %s", p);
    if (rc == TUI_EXEC_QUIT) return quit_flow(t);
    return R_DRAW;
}

static int act_help(Tui *t) {
    t->help = !t->help;
    help_top = 0;
    return R_DRAW;
}

/* q and the quit command: while the run has unsaved steps (or is running), offer a
 * checkpoint first. SIGINT/SIGTERM/SIGHUP do not come here: they save and leave. */
static int quit_flow(Tui *t) {
    poll_snapshot(t);
    if (snap_state(t) != ENGINE_RUNNING && !(t->snap && t->snap->unsaved_steps > 0)) return R_QUIT;
    int a = ask_key(t, " save a checkpoint before quitting? [y/n/c] ", "ync");
    if (g_interrupt_sig) return R_QUIT; /* a signal came while asking: the caller saves */
    if (a == 'c') {
        set_msg(t, 0, "quit cancelled");
        return R_DRAW;
    }
    if (a == 'y') {
        char err[PK_ERR_LEN] = "";
        PkBuf out = {0};
        set_msg(t, 0, "finishing the current step, then saving a checkpoint...");
        show_now(t);
        /* paused first, so the checkpoint holds the last step taken */
        if (snap_state(t) == ENGINE_RUNNING && engine_pause(t->engine, err) != PK_OK) log_text(t, "error: ", err);
        int rc = t->host->exec ? t->host->exec(t->host->ctx, "save", &out, err) : TUI_EXEC_ERROR;
        if (!t->host->exec) snprintf(err, sizeof err, "no command table in this session");
        if (out.data && out.len) log_text(t, "", out.data);
        pk_buf_free(&out);
        if (rc == TUI_EXEC_ERROR) {
            set_msg(t, 1, "save failed, not quitting: %s", err);
            log_text(t, "error: save failed: ", err);
            return R_DRAW;
        }
        t->exit_how = TUI_QUIT_SAVED;
    }
    return R_QUIT; /* 'n' */
}

static int act_quit(Tui *t) { return quit_flow(t); }

static int act_redraw(Tui *t) {
    (void)t;
    clearok(curscr, TRUE);
    return R_DRAW;
}

static int act_enter(Tui *t) { return t->focus == P_HPARAM ? act_edit(t) : R_NONE; }

#define K(k) (-(k))
const KeyBinding tui_key_table[] = {
    {{' '}, "space", "pause / resume training", act_pause},
    {{'e'}, "e", "edit the selected hyper-parameter (while paused)", act_edit},
    {{'\n', '\r', K(KEY_ENTER)}, "Enter", "in Hyper-parameters: edit the selected one", act_enter},
    {{'1', '2', '3', '4', '5', '6', '7'}, "1-7", "focus: Charts Exposure Generations Neighbours Hyper-params Log Plugins", act_focus_digit},
    {{'\t'}, "Tab", "focus the next panel", act_focus_next},
    {{K(KEY_BTAB)}, "Shift-Tab", "focus the previous panel", act_focus_prev},
    {{K(KEY_UP), 'k'}, "Up, k", "select / scroll up in the focused list", act_up},
    {{K(KEY_DOWN), 'j'}, "Down, j", "select / scroll down in the focused list", act_down},
    {{K(KEY_PPAGE)}, "PgUp", "a page up", act_pgup},
    {{K(KEY_NPAGE)}, "PgDn", "a page down", act_pgdn},
    {{K(KEY_HOME), 'g'}, "Home, g", "top of the list (Log: oldest)", act_home},
    {{K(KEY_END), 'G'}, "End, G", "bottom of the list (Log: follow the newest)", act_end},
    {{K(KEY_LEFT)}, "Left", "previous chart in Charts, else previous panel", act_left},
    {{K(KEY_RIGHT)}, "Right", "next chart in Charts, else next panel", act_right},
    {{'c'}, "c", "next chart: loss, rouge, exposure, neighbours, lr, grad_norm, plugins", act_chart_next},
    {{'C'}, "C", "previous chart", act_chart_prev},
    {{'s'}, "s", "EMA smoothing of the focused chart: 0, 0.6, 0.9", act_smooth},
    {{'l'}, "l", "log-scale y axis of the focused chart on/off", act_logscale},
    {{'x'}, "x", "export the focused chart to RUN/plots/NAME.png", act_export},
    {{'z'}, "z", "zoom the focused panel to the full screen / restore", act_zoom},
    {{'n'}, "n", "next dev prompt in Generations", act_dev_next},
    {{'p'}, "p", "previous dev prompt in Generations", act_dev_prev},
    {{':'}, ":", "command line: every REPL command (output in Log)", act_command},
    {{'?', K(KEY_F(1))}, "?, F1", "this help", act_help},
    {{12}, "Ctrl-L", "redraw the screen", act_redraw},
    {{'q', 'Q'}, "q", "quit (asks to save a checkpoint while running)", act_quit},
    {{0}, NULL, NULL, NULL},
};

static const KeyBinding *binding_for(int code) {
    for (const KeyBinding *b = tui_key_table; b->fn; b++)
        for (int i = 0; i < 8; i++)
            if (b->codes[i] != 0 && b->codes[i] == code) return b;
    return NULL;
}

/* ------------------------------------------------------------------ setup and main loop */

static void init_colors(Tui *t) {
    const char *no_color = getenv("NO_COLOR");
    t->colors = 0;
    if ((no_color && *no_color) || !has_colors()) return;
    if (start_color() != OK) return;
    use_default_colors();
    t->colors = 1;
    t->colors256 = COLORS >= 256;
    init_pair(PAIR_FRAME, COLOR_BLUE, -1);
    init_pair(PAIR_TITLE, COLOR_CYAN, -1);
    init_pair(PAIR_RUN, COLOR_BLACK, COLOR_GREEN);
    init_pair(PAIR_PAUSE, COLOR_BLACK, COLOR_YELLOW);
    init_pair(PAIR_FAIL, COLOR_WHITE, COLOR_RED);
    init_pair(PAIR_DONE, COLOR_BLACK, COLOR_CYAN);
    init_pair(PAIR_ERR, COLOR_RED, -1);
    init_pair(PAIR_LIVE, COLOR_GREEN, -1);
    init_pair(PAIR_DIM, t->colors256 ? 244 : COLOR_WHITE, -1);
}

static void tui_free(Tui *t) {
    if (t->snap) engine_snapshot_release(t->engine, t->snap);
    t->snap = NULL;
    for (int i = 0; i < t->n_log; i++) free(t->log[i]);
    free(t->log);
    for (int i = 0; i < t->n_hist; i++) free(t->hist[i]);
}

int tui_run(const TuiHost *host, int max_frames, TuiExit *how, char *err) {
    if (!host || !host->engine) return pk_errf(err, "tui: no engine to show");
    Tui *t = calloc(1, sizeof *t);
    if (!t) return pk_errf(err, "tui: out of memory");
    t->log = calloc(LOG_MAX, sizeof *t->log);
    if (!t->log) {
        free(t);
        return pk_errf(err, "tui: out of memory");
    }
    /* Only the character type follows the environment: LC_NUMERIC stays "C" so the
     * engine thread keeps writing JSON numbers with a decimal point. */
    char old_ctype[128];
    const char *prev = setlocale(LC_CTYPE, NULL);
    snprintf(old_ctype, sizeof old_ctype, "%s", prev ? prev : "C");
    setlocale(LC_CTYPE, "");
    const char *codeset = nl_langinfo(CODESET);
    t->host = host;
    t->engine = host->engine;
    t->utf8 = codeset && (!strcasecmp(codeset, "UTF-8") || !strcasecmp(codeset, "utf8"));
    t->max_frames = max_frames;
    t->focus = P_CHART;
    t->exit_how = TUI_QUIT;
    snprintf(t->chart, sizeof t->chart, "loss");

    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        if (max_frames <= 0) {
            setlocale(LC_CTYPE, old_ctype);
            tui_free(t);
            free(t);
            return pk_errf(err, "tui: stdin and stdout must be a terminal (or pass --frames N for a headless run)");
        }
    }
    const char *term = getenv("TERM");
    SCREEN *scr = newterm(term && *term ? NULL : "vt100", stdout, stdin);
    if (!scr) {
        setlocale(LC_CTYPE, old_ctype);
        tui_free(t);
        free(t);
        return pk_errf(err, "tui: cannot open the terminal (TERM=%s)", term ? term : "(unset)");
    }
    set_term(scr);
    g_curses_active = 1;
    if (!g_atexit_registered) {
        atexit(restore_terminal);
        g_atexit_registered = 1;
    }
    g_interrupt_sig = 0;
    g_tui_engine = t->engine;
    g_tui_pid = getpid();
    install_signals();
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    intrflush(stdscr, FALSE);
    set_escdelay(25);
    timeout(TICK_MS);
    curs_set(0);
    init_colors(t);
    log_add(t, "promptkd workbench: ? lists the keys, : takes any REPL command");

    poll_snapshot(t);
    int redraw = 1, quit = 0;
    while (!quit) {
        if (redraw) {
            draw_all(t);
            redraw = 0;
            if (t->max_frames > 0 && t->frames >= t->max_frames) {
                t->exit_how = TUI_FRAMES_DONE;
                break;
            }
        }
        if (g_interrupt_sig) break; /* the caller saves and exits 130 (129 for SIGHUP) */
        int k;
        double t0 = pk_now();
        if (read_key(&k)) {
            if (k == -KEY_RESIZE) {
                redraw = 1;
                continue;
            }
            if (t->help) { /* arrows scroll the help, any other key closes it */
                if (k == -KEY_UP || k == 'k') help_top--;
                else if (k == -KEY_DOWN || k == 'j') help_top++;
                else if (k == -KEY_PPAGE) help_top -= 10;
                else if (k == -KEY_NPAGE) help_top += 10;
                else t->help = 0;
                redraw = 1;
                continue;
            }
            if (t->msg_sticky) { /* the key that dismisses a write error still acts */
                t->msg_sticky = 0;
                redraw = 1;
            }
            const KeyBinding *b = binding_for(k);
            if (b) {
                t->last_key = k;
                int r = b->fn(t);
                if (r & R_QUIT) quit = 1;
                if (r & R_DRAW) redraw = 1;
            }
        } else {
            /* stdin at end of file returns at once: keep the tick anyway */
            if (pk_now() - t0 < TICK_MS / 2000.0) napms(TICK_MS);
            if (poll_snapshot(t)) redraw = 1;
            /* --frames: every tick is a frame, so a paused run ends too */
            if (t->max_frames > 0) redraw = 1;
            /* messages expire without a new snapshot too */
            if (t->msg[0] && pk_now() - t->msg_time >= MSG_SECONDS && pk_now() - t->msg_time < MSG_SECONDS + 0.5)
                redraw = 1;
        }
    }
    if (g_interrupt_sig) t->exit_how = TUI_INTERRUPTED;
    curs_set(1);
    restore_terminal();
    delscreen(scr);
    uninstall_signals();
    g_tui_engine = NULL;
    setlocale(LC_CTYPE, old_ctype);
    if (how) *how = t->exit_how;
    tui_free(t);
    free(t);
    return PK_OK;
}
