/* One screen of the workbench: the layout of the panels, the status line, the bottom
 * line (editor, question, message or key hints), the help overlay, and the full redraw
 * that puts them together. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui_internal.h"

const char *const tui_panel_titles[P_COUNT] = {"Charts",          "Exposure bias", "Generations", "Prompt neighbours",
                                               "Hyper-parameters", "Log",           "Plugins"};

/* Each panel's drawing function, in PanelId order. */
static void (*const panel_draw[P_COUNT])(Tui *t, Rect r) = {
    panel_chart_draw, panel_exposure_draw, panel_generations_draw, panel_neighbours_draw,
    panel_hparams_draw, panel_log_draw,     panel_plugin_draw,
};

/* ------------------------------------------------------------------ layout */

int tui_panel_available(const Tui *t, int p) { return p != P_PLUGIN || t->has_plugins; }

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

/* ------------------------------------------------------------------ status and bottom lines */

static void draw_status(Tui *t) {
    tui_fill_row(t, 0, 0, t->cols, A_REVERSE, 0);
    const EngineSnapshot *s = t->snap;
    EngineState st = tui_snap_state(t);
    int pair = st == ENGINE_RUNNING ? PAIR_RUN : st == ENGINE_PAUSED ? PAIR_PAUSE : st == ENGINE_FAILED ? PAIR_FAIL
                                                                                    : PAIR_DONE;
    char state[48];
    /* a run opened read-only (tui --open) says so first: nothing here changes it */
    snprintf(state, sizeof state, " %s%s ", engine_state_name(st), t->snap && t->snap->read_only ? ", read-only" : "");
    for (char *c = state; *c; c++)
        if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
    int x = tui_put_text(t, 0, 0, t->cols, state, A_BOLD | (t->colors ? 0 : A_REVERSE), tui_pair(t, pair));
    if (!t->colors) x += tui_put_text(t, 0, x, t->cols - x, " ", A_REVERSE, 0);
    if (!s) return;
    char tps[32] = "-", gfl[32] = "-", eta[48] = "-", line[1200];
    /* rates are of running steps: a paused run has none (its last ones would read as live);
     * the ETA counts running time only, so a paused run shows what is left to run */
    if (st == ENGINE_RUNNING) {
        tui_format_rate(s->tokens_per_s, tps, sizeof tps);
        tui_format_rate(s->gflops, gfl, sizeof gfl);
        tui_format_duration(s->eta_s, eta, sizeof eta);
    } else if (s->read_only) {
        /* a stopped run shown as it was left: no rates, nothing to run */
    } else if (st == ENGINE_PAUSED && s->eta_s > 0) {
        char left[32];
        tui_format_duration(s->eta_s, left, sizeof left);
        snprintf(eta, sizeof eta, "paused (%s to run)", left);
    } else if (st == ENGINE_PAUSED) {
        snprintf(eta, sizeof eta, "paused");
    }
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
    if (room > 0) tui_put_text(t, 0, x, room, line, A_REVERSE, 0);
    if (t->cols - rw > x) tui_put_text(t, 0, t->cols - rw, rw, right, A_REVERSE | A_BOLD, 0);
}

static const char *const hints =
    "space pause/resume  e edit  Tab focus  c chart  s smooth  l log  x png  z zoom  n/p prompt  : command  ? help  q quit";
static const char *const hints_read_only =
    "read-only  Tab focus  c chart  s smooth  l log  x png  z zoom  : command  ? help  q quit";

static void draw_bottom(Tui *t) {
    int y = t->rows - 1;
    if (y < 1) return;
    tui_fill_row(t, y, 0, t->cols, A_NORMAL, 0);
    if (t->mode == MODE_EDIT) {
        int x = tui_put_text(t, y, 0, t->cols, t->edit_label, A_BOLD, tui_pair(t, PAIR_TITLE));
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
            tui_put_cp(t, y, x + col, (uint32_t)t->edit[i], A_NORMAL, 0);
            col += w;
        }
        int help_w = t->edit_help[0] ? tui_text_width(t->edit_help, t->utf8) : 0;
        if (help_w && room - col - 3 >= help_w)
            tui_put_text(t, y, t->cols - help_w - 1, help_w, t->edit_help, A_DIM, tui_pair(t, PAIR_DIM));
        move(y, cur_x);
        return;
    }
    if (t->mode == MODE_ASK) {
        tui_put_text(t, y, 0, t->cols, t->ask, A_BOLD | A_REVERSE, tui_pair(t, PAIR_PAUSE));
        return;
    }
    if (t->msg[0] && (t->msg_sticky || pk_now() - t->msg_time < TUI_MSG_SECONDS)) {
        tui_put_text(t, y, 0, t->cols, t->msg, t->msg_err ? A_BOLD : A_NORMAL, tui_pair(t, t->msg_err ? PAIR_ERR : 0));
        return;
    }
    if (t->snap && (t->snap->state == ENGINE_FAILED) && t->snap->message[0]) {
        tui_put_text(t, y, 0, t->cols, t->snap->message, A_BOLD, tui_pair(t, PAIR_ERR));
        return;
    }
    tui_put_text(t, y, 0, t->cols, t->snap && t->snap->read_only ? hints_read_only : hints, A_DIM, 0);
}
static void draw_help(Tui *t);

void tui_draw_all(Tui *t) {
    /* plugin tables may appear at any step: the layout follows */
    int had = t->has_plugins;
    t->has_plugins = 0;
    if (t->host->plugin_table) {
        char ttl[8];
        char *first = t->host->plugin_table(t->host->ctx, 0, ttl, sizeof ttl);
        t->has_plugins = first != NULL;
        free(first);
    }
    if (!tui_panel_available(t, t->focus)) t->focus = P_LOG;
    (void)had;
    tui_refresh_chart_names(t);
    layout(t);
    erase();
    draw_status(t);
    if (t->rows - 2 < 3 || t->cols < 10) {
        tui_put_text(t, t->rows > 1 ? 1 : 0, 0, t->cols, "terminal too small", A_BOLD, 0);
    } else {
        for (int p = 0; p < P_COUNT; p++) {
            Rect r = t->rect[p];
            if (!r.visible || r.w < 2 || r.h < 2) continue;
            panel_draw[p](t, r);
        }
    }
    if (t->help) draw_help(t);
    curs_set(t->mode == MODE_EDIT ? 1 : 0);
    draw_bottom(t); /* last: in edit mode it leaves the cursor in the line */
    refresh();
    t->frames++;
}

static const char *const help_notes[] = {
    "Ctrl-C, SIGTERM, SIGHUP: finish the step, save the unsaved steps, leave (exit",
    "               130; 129 for SIGHUP); Ctrl-C again leaves at once without saving",
    "editor and :   Enter accepts, Esc cancels, Up/Down history, Ctrl-A/E/U/K",
    "* marks live hyper-parameters (editable while paused); others are fixed",
    "charts: braille when the locale is UTF-8, ASCII otherwise; NO_COLOR honoured",
    "x writes RUN/plots/CHART.png; :export CHART FILE [--size WxH] for others",
    "the view (chart, focus, each chart's :view settings) is kept in RUN/view.json",
    "tui --open RUN [RUN...]: a finished run read-only, more runs overlaid; :open RUN",
    ":help lists the REPL commands",
};
#define N_HELP_NOTES ((int)(sizeof help_notes / sizeof *help_notes))

/* The help overlay's lines: every binding of the key table (under c the charts this session
 * has, wrapped), then the notes. Returns the count; *n_keys: how many lines are keys. */
enum { HELP_MAX_LINES = 96, HELP_LINE = 200 };
static int help_build(Tui *t, int width, char lines[][HELP_LINE], int *n_keys) {
    int n = 0;
    for (const KeyBinding *b = tui_key_table; b->fn && n < HELP_MAX_LINES; b++) {
        snprintf(lines[n++], HELP_LINE, "%-14s %s", b->keys, b->help);
        if (b->codes[0] != 'c') continue;
        /* under c, the charts as they are now, in its order (plugin charts join once drawn) */
        PkBuf list = {0};
        for (int i = 0; i < t->n_charts; i++)
            pk_buf_printf(&list, "%s%s", t->chart_names[i], i + 1 < t->n_charts ? ", " : "");
        if (!list.data) continue;
        int starts[16], lens[16];
        int k = tui_wrap(list.data, width - 17, t->utf8, starts, lens, 16);
        for (int i = 0; i < k && i < 16 && n < HELP_MAX_LINES; i++)
            snprintf(lines[n++], HELP_LINE, "%-14s   %.*s", "", lens[i], list.data + starts[i]);
        pk_buf_free(&list);
    }
    *n_keys = n;
    for (int i = 0; i < N_HELP_NOTES && n < HELP_MAX_LINES; i++) snprintf(lines[n++], HELP_LINE, "%s", help_notes[i]);
    return n;
}

/* The help overlay; scrolls when the terminal is too short (from line t->help_top). */
static void draw_help(Tui *t) {
    int w = 80;
    if (w > t->cols) w = t->cols;
    static char lines[HELP_MAX_LINES][HELP_LINE];
    int n_keys;
    int total = help_build(t, w - 3, lines, &n_keys);
    int h = total + 2;
    if (h > t->rows - 2) h = t->rows - 2;
    if (h < 3 || w < 10) return;
    int view = h - 2;
    if (t->help_top > total - view) t->help_top = total - view;
    if (t->help_top < 0) t->help_top = 0;
    int y0 = 1 + (t->rows - 2 - h) / 2, x0 = (t->cols - w) / 2;
    Rect r = {y0, x0, h, w, 1};
    for (int y = 0; y < h; y++) tui_fill_row(t, y0 + y, x0, w, A_NORMAL, 0);
    tui_draw_frame(t, r, view < total ? "Help: keys (Up/Down scroll, other keys close)" : "Help: keys (any key closes)", 1);
    Rect in = tui_inner(r);
    for (int row = 0; row < in.h && t->help_top + row < total; row++) {
        int i = t->help_top + row;
        tui_put_text(t, in.y + row, in.x + 1, in.w - 1, lines[i], i < n_keys ? A_NORMAL : A_DIM, 0);
    }
}
