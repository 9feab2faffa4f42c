/* The workbench's key table and its actions, in htop's manner: each key calls one
 * function that returns R_* flags for the loop. The actions that act on the run
 * (pause/resume, set, dev prompt, the : command line, save on quit) are here and
 * nowhere else; the panels only draw.
 *
 * One door: every action on the run (space, e, n, p, the ':' line) is a command line of the
 * session's table, posted without waiting (TuiHost.post); its reply comes back with what
 * the run reports by itself through TuiHost.poll (tui_take_events, every tick) and is
 * said on the message line, so a key and the ':' command it stands for answer alike. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "tui_internal.h"

/* A run opened read-only (tui --open) is shown as it was left: keys that would change it
 * answer so at once, in the engine's words, instead of starting an editor or a wait. */
static int refused_read_only(Tui *t, const char *what) {
    if (!t->snap || !t->snap->read_only) return 0;
    tui_set_msg(t, 1, "%s is open read-only: %s", t->snap->run_dir, what);
    return 1;
}

static int quit_flow(Tui *t);

/* A reply to a posted line: the message line says it (its first line), and the Log gets
 * it unless the run's log already holds that line (the Log shows the run's log). */
static int take_reply(Tui *t, int status, const char *out, const char *err, int logged) {
    if (out && *out && (!logged || status == TUI_EXEC_ERROR)) tui_log_text(t, "", out);
    if (status == TUI_EXEC_ERROR) {
        tui_set_msg(t, 1, "%s", err);
        tui_log_text(t, "error: ", err);
        return R_DRAW;
    }
    const char *nl = out ? strchr(out, '\n') : NULL;
    if (out && *out) tui_set_msg(t, 0, "%.*s", (int)(nl ? nl - out : (long)strlen(out)), out);
    tui_poll_snapshot(t);
    if (status == TUI_EXEC_QUIT) return quit_flow(t) | R_DRAW;
    return R_DRAW;
}

/* Posts a command line for the run (keys and ':' alike); the reply comes through
 * tui_take_events. A host without post runs it at once (exec). */
static int post_line(Tui *t, const char *line) {
    char err[PK_ERR_LEN] = "";
    if (t->host->post) {
        if (!t->host->post(t->host->ctx, line, err)) {
            tui_set_msg(t, 1, "%s", err);
            tui_log_text(t, "error: ", err);
        }
        return R_DRAW;
    }
    if (!t->host->exec) {
        tui_set_msg(t, 1, "no command table in this session");
        return R_DRAW;
    }
    PkBuf out = {0};
    int rc = t->host->exec(t->host->ctx, line, &out, err);
    int r = take_reply(t, rc, out.data, err, 0);
    pk_buf_free(&out);
    return r;
}

int tui_take_events(Tui *t) {
    if (!t->host->poll) return R_NONE;
    int r = R_NONE;
    TuiEvent ev;
    while (t->host->poll(t->host->ctx, &ev)) {
        if (ev.reply) {
            r |= take_reply(t, ev.status, ev.out, ev.err, ev.logged);
        } else if (ev.out && !t->msg_sticky && (ev.what == ENGINE_EVENT_STATE || ev.what == ENGINE_EVENT_ERROR)) {
            /* the run's own reports are in its log (the Log panel); the message line says the
             * ones that change what it does, or went wrong */
            const char *nl = strchr(ev.out, '\n');
            tui_set_msg(t, ev.what == ENGINE_EVENT_ERROR, "%.*s", (int)(nl ? nl - ev.out : (long)strlen(ev.out)), ev.out);
            r |= R_DRAW;
        }
        free(ev.out);
    }
    return r;
}

static int act_pause(Tui *t) {
    if (refused_read_only(t, "space does not run it")) return R_DRAW;
    EngineState st = tui_snap_state(t);
    if (st == ENGINE_LOADING) {
        tui_set_msg(t, 1, "still loading; space works once the run is ready");
        return R_DRAW;
    }
    if (st == ENGINE_RUNNING) {
        tui_set_msg(t, 0, "pausing after the current step...");
        return post_line(t, "pause");
    }
    tui_set_msg(t, 0, "resuming...");
    return post_line(t, "resume");
}

/* e: the editor for the selected key, then `set KEY VALUE` as the ':' line would post it:
 * when a key may change (running, paused, never) is the engine's answer, as for :set. */
static int act_edit(Tui *t) {
    const EngineSnapshot *s = t->snap;
    if (!s || s->n_hparams == 0) return R_NONE;
    if (refused_read_only(t, "its hyper-parameters are as the run left them")) return R_DRAW;
    int order[TUI_HPARAM_MAX];
    int n = tui_hparam_order(s, order, TUI_HPARAM_MAX);
    int k = order[tui_hparam_selected(t, s, order, n)];
    char key[64], value[TUI_EDIT_MAX * 4], label[160];
    snprintf(key, sizeof key, "%s", s->hparam_keys[k]);
    const char *help = config_key_help(key);
    snprintf(label, sizeof label, "set %s%s = ", key, config_key_is_live(key) ? "" : " (fixed for the run)");
    if (!tui_line_edit(t, label, help, s->hparam_values[k], value, sizeof value, 0)) {
        tui_set_msg(t, 0, "edit cancelled");
        return R_DRAW;
    }
    /* set KEY "VALUE": quoted, with " and \ escaped, as the command line reads it */
    PkBuf line = {0};
    pk_buf_printf(&line, "set %s \"", key);
    for (const char *p = value; *p; p++) pk_buf_printf(&line, "%s%c", *p == '"' || *p == '\\' ? "\\" : "", *p);
    pk_buf_printf(&line, "\"");
    tui_set_msg(t, 0, "setting %s...", key);
    int r = line.data ? post_line(t, line.data) : R_DRAW;
    pk_buf_free(&line);
    return r;
}

static int act_focus_next(Tui *t) {
    do t->focus = (t->focus + 1) % P_COUNT;
    while (!tui_panel_available(t, t->focus));
    return R_DRAW;
}

static int act_focus_prev(Tui *t) {
    do t->focus = (t->focus + P_COUNT - 1) % P_COUNT;
    while (!tui_panel_available(t, t->focus));
    return R_DRAW;
}

static int act_focus_digit(Tui *t) {
    int p = t->last_key - '1';
    if (p < 0 || p >= P_COUNT || !tui_panel_available(t, p)) return R_NONE;
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
    tui_refresh_chart_names(t);
    if (t->n_charts == 0) return R_NONE;
    snprintf(t->chart, sizeof t->chart, "%s", t->chart_names[(tui_chart_index(t) + 1) % t->n_charts]);
    t->focus = P_CHART;
    return R_DRAW;
}

static int act_chart_prev(Tui *t) {
    tui_refresh_chart_names(t);
    if (t->n_charts == 0) return R_NONE;
    snprintf(t->chart, sizeof t->chart, "%s", t->chart_names[(tui_chart_index(t) + t->n_charts - 1) % t->n_charts]);
    t->focus = P_CHART;
    return R_DRAW;
}

static int act_left(Tui *t) { return t->focus == P_CHART ? act_chart_prev(t) : act_focus_prev(t); }
static int act_right(Tui *t) { return t->focus == P_CHART ? act_chart_next(t) : act_focus_next(t); }

/* The chart a chart key (s, l, x) acts on: the focused one. Without a chart in focus, NULL
 * and the message line says where the key works, so no chart changes out of sight. */
static const char *key_chart(Tui *t, const char *what) {
    const char *name = tui_focused_chart(t);
    if (!name)
        tui_set_msg(t, 1, "%s works on a chart: focus Charts (1) or Exposure bias (2); %s has the focus", what,
                    tui_panel_titles[t->focus]);
    return name;
}

/* Sets chart name's view and says so ("loss: EMA smoothing 0.6"), or why not. */
static int set_view(Tui *t, const char *name, const TuiChartView *v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int set_view(Tui *t, const char *name, const TuiChartView *v, const char *fmt, ...) {
    char err[PK_ERR_LEN], what[128];
    if (!t->host->set_chart_view) return R_NONE;
    if (t->host->set_chart_view(t->host->ctx, name, v, err) != PK_OK) {
        tui_set_msg(t, 1, "%s", err);
        return R_DRAW;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    tui_set_msg(t, 0, "%s: %s", name, what);
    return R_DRAW;
}

static int act_smooth(Tui *t) {
    static const double steps[] = {0.0, 0.6, 0.9};
    const char *name = key_chart(t, "s (smoothing)");
    if (!name) return R_DRAW;
    TuiChartView v = {0};
    if (t->host->chart_view) t->host->chart_view(t->host->ctx, name, &v);
    int next = 0;
    for (int i = 0; i < 3; i++)
        if (fabs(v.ema - steps[i]) < 1e-9) next = (i + 1) % 3;
    v.ema = steps[next];
    return set_view(t, name, &v, "EMA smoothing %.1f", v.ema);
}

static int act_logscale(Tui *t) {
    const char *name = key_chart(t, "l (log scale)");
    if (!name) return R_DRAW;
    TuiChartView v = {0};
    if (t->host->chart_view) t->host->chart_view(t->host->ctx, name, &v);
    v.log_y = !v.log_y;
    return set_view(t, name, &v, "%s y axis", v.log_y ? "log10" : "linear");
}

static int act_zoom(Tui *t) {
    t->zoom = !t->zoom;
    return R_DRAW;
}

static int act_export(Tui *t) {
    const char *name = key_chart(t, "x (export)");
    if (!name) return R_DRAW;
    if (!t->host->export_chart || !t->snap) return R_NONE;
    char file[96], dir[CONFIG_PATH_LEN + 16], path[CONFIG_PATH_LEN + 128], err[PK_ERR_LEN];
    snprintf(file, sizeof file, "%s.png", name);
    for (char *c = file; *c; c++)
        if (*c == '/') *c = '-';
    snprintf(dir, sizeof dir, "%s/plots", t->snap->run_dir);
    if (pk_mkdirs(dir, err) != PK_OK || pk_path_join(path, sizeof path, dir, file, err) != PK_OK ||
        t->host->export_chart(t->host->ctx, name, path, TUI_EXPORT_W, TUI_EXPORT_H, err) != PK_OK) {
        tui_set_msg(t, 1, "export failed: %s", err);
        tui_log_text(t, "error: export failed: ", err);
        return R_DRAW;
    }
    char line[CONFIG_PATH_LEN + 400];
    snprintf(line, sizeof line, "exported %s to %s (%dx%d)", name, path, TUI_EXPORT_W, TUI_EXPORT_H);
    tui_log_add(t, line);
    tui_set_msg(t, 0, "%s", line);
    return R_DRAW;
}

static int act_dev(Tui *t, int delta) {
    if (refused_read_only(t, "the generations shown are the run's last")) return R_DRAW;
    tui_set_msg(t, 0, "generating on the %s dev prompt...", delta > 0 ? "next" : "previous");
    t->scroll[P_GEN] = 0;
    return post_line(t, delta > 0 ? "dev next" : "dev prev");
}
static int act_dev_next(Tui *t) { return act_dev(t, 1); }
static int act_dev_prev(Tui *t) { return act_dev(t, -1); }

static int act_command(Tui *t) {
    char line[TUI_EDIT_MAX * 4];
    if (!tui_line_edit(t, ":", "Enter runs, Esc cancels, Up/Down history, :help lists commands", "", line, sizeof line, 1))
        return R_DRAW;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return R_DRAW;
    tui_hist_add(t, p);
    char echo[TUI_EDIT_MAX * 4 + 4];
    snprintf(echo, sizeof echo, "> %s", p);
    tui_log_add(t, echo);
    tui_set_msg(t, 0, "running: %s", p);
    return post_line(t, p);
}

static int act_help(Tui *t) {
    t->help = !t->help;
    t->help_top = 0;
    return R_DRAW;
}

/* q and the quit command: while the run has unsaved steps (or is running), offer a
 * checkpoint first. SIGINT/SIGTERM/SIGHUP do not come here: they save and leave. */
static int quit_flow(Tui *t) {
    tui_poll_snapshot(t);
    if (tui_snap_state(t) != ENGINE_RUNNING && !(t->snap && t->snap->unsaved_steps > 0)) return R_QUIT;
    int a = tui_ask_key(t, " save a checkpoint before quitting? [y/n/c] ", "ync");
    if (tui_interrupt_signal()) return R_QUIT; /* a signal came while asking: the caller saves */
    if (a == 'c') {
        tui_set_msg(t, 0, "quit cancelled");
        return R_DRAW;
    }
    if (a == 'y') {
        char err[PK_ERR_LEN] = "";
        PkBuf out = {0};
        tui_set_msg(t, 0, "finishing the current step, then saving a checkpoint...");
        tui_draw_all(t);
        /* paused first, so the checkpoint holds the last step taken (the workbench is leaving:
         * these two wait for their replies) */
        if (tui_snap_state(t) == ENGINE_RUNNING && t->host->exec &&
            t->host->exec(t->host->ctx, "pause", &out, err) == TUI_EXEC_ERROR)
            tui_log_text(t, "error: ", err);
        out.len = 0;
        int rc = t->host->exec ? t->host->exec(t->host->ctx, "save", &out, err) : TUI_EXEC_ERROR;
        if (!t->host->exec) snprintf(err, sizeof err, "no command table in this session");
        if (out.data && out.len) tui_log_text(t, "", out.data);
        pk_buf_free(&out);
        if (rc == TUI_EXEC_ERROR) {
            tui_set_msg(t, 1, "save failed, not quitting: %s", err);
            tui_log_text(t, "error: save failed: ", err);
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
    {{'e'}, "e", "edit the selected hyper-parameter (as :set KEY VALUE)", act_edit},
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
    {{'c'}, "c", "next chart in Charts, of these:", act_chart_next},
    {{'C'}, "C", "previous chart", act_chart_prev},
    {{'s'}, "s", "EMA smoothing of the focused chart: 0, 0.6, 0.9 (Charts, Exposure)", act_smooth},
    {{'l'}, "l", "log-scale y axis of the focused chart on/off (Charts, Exposure)", act_logscale},
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

const KeyBinding *tui_binding_for(int code) {
    for (const KeyBinding *b = tui_key_table; b->fn; b++)
        for (int i = 0; i < 8; i++)
            if (b->codes[i] != 0 && b->codes[i] == code) return b;
    return NULL;
}
