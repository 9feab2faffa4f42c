/* The ncurses workbench: status bar, loss/ROUGE/plugin charts, exposure bias,
 * prompt neighbours, T' | T | S generations, editable hyper-parameters, log and
 * plugin tables, over one live Engine.
 *
 * views/ never includes app/: the TUI reads engine snapshots (core/engine.h) and
 * reaches everything the program adds around the engine (the shared command table,
 * charts with their view settings, PNG export, plugin tables) through the TuiHost
 * callback table below. app/tui_main.c fills it from a Session. */
#ifndef PK_TUI_H
#define PK_TUI_H

#include <stddef.h>

#include "chart.h"
#include "common.h"
#include "engine.h"

/* Return values of TuiHost.exec (the same numbers as the session's command table). */
enum { TUI_EXEC_OK = 0, TUI_EXEC_ERROR = -1, TUI_EXEC_QUIT = 1 };

/* How a chart is viewed, in the terminal and the exports alike. */
typedef struct {
    double ema; /* smoothing weight in [0, 1) */
    int log_y;  /* log10 y axis */
    int window; /* > 0: only the last N steps */
    int x_time; /* x axis: elapsed wall-clock time instead of steps */
} TuiChartView;

struct TuiEvent;
typedef struct {
    void *ctx;      /* passed back to every callback */
    Engine *engine; /* snapshots, pause/resume/set, dev prompt selection */
    /* Runs one command line (REPL syntax); output for the person appended to out.
     * Returns TUI_EXEC_OK, TUI_EXEC_ERROR (sentence in err) or TUI_EXEC_QUIT. */
    int (*exec)(void *ctx, const char *line, PkBuf *out, char *err);
    /* Chart names ("loss", "rouge", "exposure", "neighbours", "PLUGIN/CHART"...). */
    int (*chart_names)(void *ctx, char names[][64], int max);
    /* Builds a chart with its view settings applied; the caller frees it (chart_free). */
    int (*build_chart)(void *ctx, const char *name, Chart *out, char *err);
    /* A chart's view settings (as the session keeps them per chart); set refuses bad ones. */
    void (*chart_view)(void *ctx, const char *name, TuiChartView *out);
    int (*set_chart_view)(void *ctx, const char *name, const TuiChartView *v, char *err);
    /* Writes chart `name` as a w x h PNG at path, atomically. */
    int (*export_chart)(void *ctx, const char *name, const char *path, int w, int h, char *err);
    /* The i-th plugin table as text lines, NULL past the end; the caller frees. May be NULL. */
    char *(*plugin_table)(void *ctx, int i, char *title, size_t title_len);
    /* The one door without blocking: every key that acts on the run and the ':' line post a
     * command line (the table exec runs) and return; post returns its id (0 with err). poll
     * takes the next reply or report of the run (1 with *ev filled; the TUI frees ev->out). */
    unsigned long (*post)(void *ctx, const char *line, char *err);
    int (*poll)(void *ctx, struct TuiEvent *ev);
    /* The terminal to draw on and read keys from; NULL: stdin and stdout. Under mpirun the ranks'
     * standard streams are pipes, and rank 0 opens the controlling terminal itself. */
    FILE *term_in, *term_out;
} TuiHost;

/* A reply to a posted line, or what the run reports by itself. */
typedef struct TuiEvent {
    int reply;            /* 1: the reply to the posted line `id`; 0: the run reports by itself */
    unsigned long id;
    int status;           /* reply: TUI_EXEC_OK, TUI_EXEC_ERROR (sentence in err) or TUI_EXEC_QUIT */
    int logged;           /* reply: the run's log (the Log panel) already has its lines */
    EngineEventKind what; /* report: ENGINE_EVENT_EVAL, _STATE, _ERROR, ... */
    char *out;            /* lines for the person (malloc'ed, may be NULL) */
    char err[PK_ERR_LEN];
} TuiEvent;

/* How the workbench ended. */
typedef enum {
    TUI_QUIT,        /* q / quit command, answered "n" or nothing to save */
    TUI_QUIT_SAVED,  /* q answered "y": a checkpoint was saved through the `save` command */
    TUI_FRAMES_DONE, /* max_frames redraws were drawn */
    TUI_INTERRUPTED  /* SIGINT (Ctrl-C), SIGTERM or SIGHUP: see tui_interrupt_signal() */
} TuiExit;

/* Runs the workbench on the controlling terminal until the person quits, or
 * max_frames redraws were drawn (max_frames > 0: tests and headless use; every
 * tick then redraws). Sets LC_CTYPE from the environment while it runs (braille
 * charts when the codeset is UTF-8, ASCII otherwise; LC_NUMERIC is left alone),
 * honours NO_COLOR, and restores the terminal on every exit path and on
 * SIGSEGV/SIGABRT/SIGBUS/SIGFPE/SIGQUIT (then re-raised).
 * SIGINT (Ctrl-C), SIGTERM and SIGHUP are handled as the REPL and headless train
 * handle them (app/run_setup.h): the first asks the engine to pause after the current
 * step (engine_interrupt), the workbench leaves at once, restores the terminal and
 * returns TUI_INTERRUPTED; the caller then saves the unsaved steps and exits 130 (129
 * for SIGHUP). A second SIGINT or SIGTERM before the workbench is gone restores the
 * terminal and exits 130 without saving; a repeated SIGHUP is ignored.
 * q (and the quit command) asks whether to save first while the run has unsaved steps.
 * Write errors of the run (snapshot write_errors) show on the message line until a key.
 * Returns PK_OK with *how filled (may be NULL), or PK_FAIL with a sentence in err
 * when no terminal could be opened. */
int tui_run(const TuiHost *host, int max_frames, TuiExit *how, char *err);
/* The signal that ended the last tui_run with TUI_INTERRUPTED, else 0. */
int tui_interrupt_signal(void);

/* Text helpers shared by the panels (pure functions, unit-testable). */

/* Display columns of a UTF-8 string (invalid bytes count 1 each, control
 * characters 1); utf8 = 0 counts every code point as one column. */
int tui_text_width(const char *s, int utf8);
/* Greedy word wrap of UTF-8 text to `width` columns: fills starts[i]/lens[i]
 * (byte offsets) for at most max lines and returns the number of lines the
 * whole text needs. Newlines force a break; words wider than the line are cut. */
int tui_wrap(const char *s, int width, int utf8, int *starts, int *lens, int max);
/* Formats seconds as H:MM:SS (or M:SS under an hour); "-" when unknown (<= 0). */
void tui_format_duration(double s, char *out, size_t len);
/* Compact rate: 950, 12.3k, 4.56M. */
void tui_format_rate(double v, char *out, size_t len);
/* The xterm 256-colour index nearest to an RGB colour, and one of the 8 basic
 * curses colours (COLOR_RED...) for it. */
int tui_rgb_to_xterm256(uint32_t rgb);
int tui_rgb_to_basic(uint32_t rgb);

#endif
