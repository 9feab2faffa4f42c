/* Shared between the workbench's own files (views/tui*.c, views/panel_*.c,
 * views/line_edit.c); not a public interface.
 *
 * The files, in htop's manner:
 *   tui.c         the event loop, signals, snapshots, the log and the message line
 *   tui_keys.c    the key table and every key action (the only file that calls the engine)
 *   tui_screen.c  layout, status line, bottom line, help overlay, one full redraw
 *   tui_draw.c    drawing helpers (text, frames, charts, wrapped text, scrolling)
 *   panel_*.c     one panel each: drawing only, from the snapshot and the view state
 *   line_edit.c   the one-line editor, its history and the one-key question
 *   tui_text.c    text helpers without curses (UTF-8, widths, wrap, formats, colours) */
#ifndef PK_TUI_INTERNAL_H
#define PK_TUI_INTERNAL_H

#include <curses.h>
#include <stddef.h>
#include <stdint.h>
#include <wchar.h>

#include "tui.h"

/* The 8 basic terminal colours, numbered as curses' COLOR_* constants. */
enum {
    TUI_BASIC_BLACK = 0,
    TUI_BASIC_RED = 1,
    TUI_BASIC_GREEN = 2,
    TUI_BASIC_YELLOW = 3,
    TUI_BASIC_BLUE = 4,
    TUI_BASIC_MAGENTA = 5,
    TUI_BASIC_CYAN = 6,
    TUI_BASIC_WHITE = 7
};

/* Decodes one UTF-8 code point from s (n bytes); invalid or truncated input
 * gives U+FFFD for one byte. Returns the bytes used (0 only when n is 0). */
int tui_utf8_next(const char *s, size_t n, uint32_t *cp);
/* Columns a code point takes (control characters and unprintables: 1, combining: 0);
 * every code point is 1 column when utf8 is 0. */
int tui_cp_width(uint32_t cp, int utf8);

/* ------------------------------------------------------------------ workbench state */

#define TUI_TICK_MS 150
#define TUI_LOG_MAX 1000
#define TUI_HIST_MAX 64
#define TUI_EDIT_MAX 1024
#define TUI_MSG_SECONDS 8.0
#define TUI_EXPORT_W 1200
#define TUI_EXPORT_H 720
#define TUI_MAX_CHARTS 32
#define TUI_PAIR_CACHE 48
#define TUI_HPARAM_MAX 256

typedef enum { P_CHART, P_EXPOSURE, P_GEN, P_NEIGH, P_HPARAM, P_LOG, P_PLUGIN, P_COUNT } PanelId;

extern const char *const tui_panel_titles[P_COUNT];

typedef struct {
    int y, x, h, w;
    int visible;
} Rect;

typedef enum { MODE_NORMAL, MODE_EDIT, MODE_ASK } Mode;

/* What a key action asks of the loop (flags). */
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
    char chart_names[TUI_MAX_CHARTS][64];
    int n_charts;
    char chart[64];          /* the chart panel's current chart */
    int has_plugins;
    const EngineSnapshot *snap;

    char **log;              /* the log panel: engine log lines merged with command output */
    int n_log;

    char msg[ENGINE_MESSAGE_LEN]; /* transient status message */
    int msg_err;
    int msg_sticky;          /* shown until the next key (a write error), not TUI_MSG_SECONDS */
    int seen_write_errors;   /* the snapshot's write_errors already shown */
    double msg_time;

    Mode mode;
    int help;
    int help_top;            /* first line of the help overlay shown (it scrolls) */
    char edit_label[160];
    char edit_help[256];     /* shown dim after the text when there is room */
    wchar_t edit[TUI_EDIT_MAX];
    int edit_len, edit_cur;
    char ask[160];

    char *hist[TUI_HIST_MAX]; /* command-line history, oldest first */
    int n_hist;

    uint32_t pair_rgb[TUI_PAIR_CACHE];
    int n_pairs;

    int frames, max_frames;
    int last_key;            /* the key being handled, for actions bound to several keys */
    TuiExit exit_how;
} Tui;

static inline EngineState tui_snap_state(const Tui *t) { return t->snap ? t->snap->state : ENGINE_LOADING; }

/* ------------------------------------------------------------------ tui.c: loop state */

/* Appends a copy of line to lines[*n] (at most max: the oldest goes first). */
void tui_lines_push(char **lines, int *n, int max, const char *line);
/* Appends a line to the log panel (the oldest goes past TUI_LOG_MAX). */
void tui_log_add(Tui *t, const char *line);
/* Adds text (possibly several lines) to the log, each line with a prefix. */
void tui_log_text(Tui *t, const char *prefix, const char *text);
/* The message line (error: bold red) for TUI_MSG_SECONDS. */
void tui_set_msg(Tui *t, int is_err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Takes the newest snapshot; returns 1 when it is newer than the one shown. */
int tui_poll_snapshot(Tui *t);
/* One key as a single int: characters as themselves, function keys negated; 0 when none. */
int tui_read_key(int *code);
/* Waits for the next key while keeping the screen live (new snapshots, resizes).
 * Returns 0 when SIGINT/SIGTERM/SIGHUP arrived instead (the main loop then leaves). */
int tui_wait_key(Tui *t, int *code);

/* ------------------------------------------------------------------ tui_keys.c: key table */

typedef int (*KeyAction)(Tui *t); /* returns R_* flags */

typedef struct {
    int codes[8];       /* >= 0: a character; < 0: -KEY_xxx; unused: 0 */
    const char *keys;   /* as shown in the help */
    const char *help;
    KeyAction fn;
} KeyBinding;

extern const KeyBinding tui_key_table[]; /* ends with fn == NULL */
const KeyBinding *tui_binding_for(int code);
/* Takes the replies to posted lines and the run's own reports (TuiHost.poll) and says them;
 * R_* flags for the loop (R_QUIT after a :quit). Called every tick. */
int tui_take_events(Tui *t);

/* ------------------------------------------------------------------ tui_screen.c */

int tui_panel_available(const Tui *t, int p);
/* Lays out, draws every visible panel, the status and bottom lines, the help; refreshes. */
void tui_draw_all(Tui *t);

/* ------------------------------------------------------------------ tui_draw.c: drawing helpers */

short tui_pair(Tui *t, int pair); /* pair, or 0 without colours */
/* The colour pair drawing a series of this RGB colour (allocated on first use). */
short tui_series_pair(Tui *t, uint32_t rgb);
void tui_put_cp(Tui *t, int y, int x, uint32_t cp, attr_t attr, short pair);
/* Draws at most maxw columns of UTF-8 text (n bytes); returns the columns used. */
int tui_put_text_n(Tui *t, int y, int x, int maxw, const char *s, size_t n, attr_t attr, short pair);
int tui_put_text(Tui *t, int y, int x, int maxw, const char *s, attr_t attr, short pair);
void tui_fill_row(Tui *t, int y, int x, int w, attr_t attr, short pair);
/* A line-drawing character: u under UTF-8, a otherwise. */
void tui_put_line_char(Tui *t, int y, int x, wchar_t u, char a, attr_t attr, short pair);
void tui_draw_frame(Tui *t, Rect r, const char *title, int focused);
Rect tui_inner(Rect r);
/* Draws wrapped text in a column; skip lines of it first. Returns lines needed. */
int tui_draw_wrapped(Tui *t, int y, int x, int w, int h, const char *text, int skip, attr_t attr, short pair);
/* Clamps panel p's scroll position to a list of n_lines in view_h rows and returns it. */
int tui_clamp_scroll(Tui *t, int p, int n_lines, int view_h);
/* The last value of a snapshot series; 0 when there is none yet. */
int tui_last_series_value(const EngineSnapshot *s, const char *name, double *v);
void tui_refresh_chart_names(Tui *t);
int tui_chart_index(const Tui *t);
/* The chart in the focused panel (Charts or Exposure bias); NULL when another panel has the focus. */
const char *tui_focused_chart(const Tui *t);
void tui_draw_chart(Tui *t, Rect r, const char *name);
/* base plus the chart's view settings (" ema 0.6 log"). */
void tui_chart_title(Tui *t, const char *name, const char *base, char *out, size_t len);

/* ------------------------------------------------------------------ panel_*.c: one panel each */

void panel_chart_draw(Tui *t, Rect r);
void panel_exposure_draw(Tui *t, Rect r);
void panel_generations_draw(Tui *t, Rect r);
void panel_neighbours_draw(Tui *t, Rect r);
void panel_hparams_draw(Tui *t, Rect r);
void panel_log_draw(Tui *t, Rect r);
void panel_plugin_draw(Tui *t, Rect r);
/* Display order of the hyper-parameters: live keys first, each group in config_keys() order. */
int tui_hparam_order(const EngineSnapshot *s, int *order, int max);
/* The selected hyper-parameter's index in s (display order in order[n]); the first
 * selection is the student learning rate, the key most often changed. */
int tui_hparam_selected(Tui *t, const EngineSnapshot *s, const int *order, int n);

/* ------------------------------------------------------------------ tui_view.c: RUN/view.json */

/* Writes the view (chart, focus, zoom, every chart's smoothing and log scale) to
 * RUN/view.json atomically. */
int tui_view_save(Tui *t, char *err);
/* Applies RUN/view.json when there is one (*found = 1). A bad file changes nothing:
 * PK_FAIL with a sentence naming the file and the field. */
int tui_view_load(Tui *t, int *found, char *err);

/* ------------------------------------------------------------------ line_edit.c */

void tui_hist_add(Tui *t, const char *line);
/* The one-line editor at the bottom. Returns 1 with the text in out when Enter was
 * pressed, 0 when cancelled (Esc, Ctrl-C, Ctrl-G). use_hist: Up/Down walk the
 * command history. */
int tui_line_edit(Tui *t, const char *label, const char *help, const char *init, char *out, size_t len,
                  int use_hist);
/* Asks a one-key question; returns the key (lower case), 0 on Ctrl-C. */
int tui_ask_key(Tui *t, const char *question, const char *allowed);

#endif
