/* The ncurses workbench over one live Engine (see tui.h): the event loop, signals,
 * snapshots, the log and the message line. The rest lives beside it (tui_internal.h
 * lists the files): the key table in tui_keys.c, one file per panel, the line editor.
 *
 * Event loop in the htop manner: get_wch() with a timeout tick, a key table of
 * actions that return redraw flags, and a redraw only when the engine published a
 * new snapshot, the terminal was resized, or a key asked for it. Everything is
 * drawn on stdscr from the current snapshot; modal states (the one-line editor,
 * the command line, the quit question, the help overlay) are modes of the same
 * draw, so the screen stays live while the person types. */
#include <curses.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tui.h"
#include "tui_internal.h"

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

/* ------------------------------------------------------------------ log and messages */

void tui_lines_push(char **lines, int *n, int max, const char *line) {
    char *copy = strdup(line);
    if (!copy) return;
    if (*n == max) {
        free(lines[0]);
        memmove(lines, lines + 1, (size_t)(max - 1) * sizeof *lines);
        (*n)--;
    }
    lines[(*n)++] = copy;
}

void tui_log_add(Tui *t, const char *line) { tui_lines_push(t->log, &t->n_log, TUI_LOG_MAX, line); }

/* Adds text (possibly several lines) to the log, each line with a prefix. */
void tui_log_text(Tui *t, const char *prefix, const char *text) {
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof line, "%s%.*s", prefix, (int)(n < 900 ? n : 900), p);
        tui_log_add(t, line);
        p += n;
        if (*p == '\n') p++;
    }
}

void tui_set_msg(Tui *t, int is_err, const char *fmt, ...) {
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
    for (int i = n_new - fresh; i < n_new; i++) tui_log_add(t, s->log[i]);
}

/* Takes the newest snapshot; returns 1 when it is newer than the one shown. */
int tui_poll_snapshot(Tui *t) {
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
            tui_set_msg(t, 1, "error (%d writes failed, the last): %s", n, s->write_error);
        else
            tui_set_msg(t, 1, "error: %s", s->write_error);
        t->msg_sticky = 1;
        t->seen_write_errors = s->write_errors;
    }
    return 1;
}

/* ------------------------------------------------------------------ input */

int tui_read_key(int *code) {
    wint_t wc;
    int rc = get_wch(&wc);
    if (rc == ERR) return 0;
    *code = rc == KEY_CODE_YES ? -(int)wc : (int)wc;
    return 1;
}

int tui_wait_key(Tui *t, int *code) {
    for (;;) {
        if (g_interrupt_sig) return 0;
        if (tui_read_key(code)) {
            if (*code == -KEY_RESIZE) {
                tui_draw_all(t);
                continue;
            }
            return 1;
        }
        if (tui_poll_snapshot(t)) tui_draw_all(t);
    }
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
    t->log = calloc(TUI_LOG_MAX, sizeof *t->log);
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

    FILE *term_in = host->term_in ? host->term_in : stdin, *term_out = host->term_out ? host->term_out : stdout;
    if (!isatty(fileno(term_in)) || !isatty(fileno(term_out))) {
        if (max_frames <= 0) {
            setlocale(LC_CTYPE, old_ctype);
            tui_free(t);
            free(t);
            return pk_errf(err, "tui: stdin and stdout must be a terminal (or pass --frames N for a headless run)");
        }
    }
    const char *term = getenv("TERM");
    SCREEN *scr = newterm(term && *term ? NULL : "vt100", term_out, term_in);
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
    timeout(TUI_TICK_MS);
    curs_set(0);
    init_colors(t);
    tui_log_add(t, "promptkd workbench: ? lists the keys, : takes any REPL command");

    tui_poll_snapshot(t);
    /* the view this run was left in (--resume, --open) */
    char verr[PK_ERR_LEN];
    int found = 0;
    if (tui_view_load(t, &found, verr) != PK_OK) {
        /* the message line names the file inside the run (the log has the full path) */
        const char *dir = engine_run_path(t->engine), *shown = verr;
        size_t n = dir ? strlen(dir) : 0;
        if (n && !strncmp(verr, dir, n) && verr[n] == '/') shown = verr + n + 1;
        tui_set_msg(t, 1, "%s; the default view is used", shown);
        tui_log_text(t, "error: ", verr);
    } else if (found) {
        tui_log_add(t, "view restored from view.json");
    }
    int redraw = 1, quit = 0;
    while (!quit) {
        if (redraw) {
            tui_draw_all(t);
            redraw = 0;
            if (t->max_frames > 0 && t->frames >= t->max_frames) {
                t->exit_how = TUI_FRAMES_DONE;
                break;
            }
        }
        if (g_interrupt_sig) break; /* the caller saves and exits 130 (129 for SIGHUP) */
        int k;
        double t0 = pk_now();
        if (tui_read_key(&k)) {
            if (k == -KEY_RESIZE) {
                redraw = 1;
                continue;
            }
            if (t->help) { /* arrows scroll the help, any other key closes it */
                if (k == -KEY_UP || k == 'k') t->help_top--;
                else if (k == -KEY_DOWN || k == 'j') t->help_top++;
                else if (k == -KEY_PPAGE) t->help_top -= 10;
                else if (k == -KEY_NPAGE) t->help_top += 10;
                else t->help = 0;
                redraw = 1;
                continue;
            }
            if (t->msg_sticky) { /* the key that dismisses a write error still acts */
                t->msg_sticky = 0;
                redraw = 1;
            }
            const KeyBinding *b = tui_binding_for(k);
            if (b) {
                t->last_key = k;
                int r = b->fn(t);
                if (r & R_QUIT) quit = 1;
                if (r & R_DRAW) redraw = 1;
            }
        } else {
            /* stdin at end of file returns at once: keep the tick anyway */
            if (pk_now() - t0 < TUI_TICK_MS / 2000.0) napms(TUI_TICK_MS);
            if (tui_poll_snapshot(t)) redraw = 1;
            int r = tui_take_events(t); /* replies to what the keys and ':' posted, the run's reports */
            if (r & R_QUIT) quit = 1;
            if (r & R_DRAW) redraw = 1;
            /* --frames: every tick is a frame, so a paused run ends too */
            if (t->max_frames > 0) redraw = 1;
            /* messages expire without a new snapshot too */
            if (t->msg[0] && pk_now() - t->msg_time >= TUI_MSG_SECONDS && pk_now() - t->msg_time < TUI_MSG_SECONDS + 0.5)
                redraw = 1;
        }
    }
    if (g_interrupt_sig) t->exit_how = TUI_INTERRUPTED;
    /* the view is kept for the next opening of the run; a run that recorded nothing yet has
     * no folder to keep (the engine removes what it made there) */
    tui_poll_snapshot(t);
    int save_view = t->snap && t->snap->step > 0, view_saved = 1;
    if (save_view) view_saved = tui_view_save(t, verr) == PK_OK;
    curs_set(1);
    restore_terminal();
    delscreen(scr);
    uninstall_signals();
    g_tui_engine = NULL;
    setlocale(LC_CTYPE, old_ctype);
    if (!view_saved) fprintf(stderr, "promptkd: the view was not kept: %s\n", verr);
    if (how) *how = t->exit_how;
    tui_free(t);
    free(t);
    return PK_OK;
}

