/* Glue between a Session (app/) and the workbench (views/): views/ never sees
 * Session, so each host callback forwards to the session function of the same name. */
#include "tui_main.h"

#include <stdio.h>
#include <string.h>

#include "run_setup.h"

static int host_exec(void *ctx, const char *line, PkBuf *out, char *err) {
    int rc = session_exec(ctx, line, out, err);
    return rc == SESSION_QUIT ? TUI_EXEC_QUIT : rc == SESSION_OK ? TUI_EXEC_OK : TUI_EXEC_ERROR;
}

static int host_chart_names(void *ctx, char names[][64], int max) { return session_chart_names(ctx, names, max); }

static int host_build_chart(void *ctx, const char *name, Chart *out, char *err) {
    return session_build_chart(ctx, name, out, err);
}

static void host_chart_view(void *ctx, const char *name, TuiChartView *out) {
    SessionChartView v;
    session_chart_settings(ctx, name, &v);
    *out = (TuiChartView){.ema = v.ema, .log_y = v.log_y, .window = v.window, .x_time = v.x_time};
}

static int host_set_chart_view(void *ctx, const char *name, const TuiChartView *v, char *err) {
    SessionChartView sv = {.ema = v->ema, .log_y = v->log_y, .window = v->window, .x_time = v->x_time};
    return session_set_chart_settings(ctx, name, &sv, err);
}

static int host_export_chart(void *ctx, const char *name, const char *path, int w, int h, char *err) {
    return session_export_chart(ctx, name, path, w, h, err);
}

static char *host_plugin_table(void *ctx, int i, char *title, size_t title_len) {
    return session_plugin_table_text(ctx, i, title, title_len);
}

static unsigned long host_post(void *ctx, const char *line, char *err) { return session_post(ctx, line, err); }

static int host_poll(void *ctx, TuiEvent *ev) {
    SessionEvent se;
    if (!session_poll_event(ctx, &se)) return 0;
    memset(ev, 0, sizeof *ev);
    ev->reply = se.kind == SESSION_EVENT_REPLY;
    ev->id = se.id;
    ev->status = se.status == SESSION_QUIT ? TUI_EXEC_QUIT : se.status == SESSION_OK ? TUI_EXEC_OK : TUI_EXEC_ERROR;
    ev->logged = se.logged;
    ev->what = se.what;
    ev->out = se.out; /* handed over */
    se.out = NULL;
    snprintf(ev->err, sizeof ev->err, "%s", se.err);
    session_event_clear(&se);
    return 1;
}

static FILE *g_term_in, *g_term_out;

void tui_main_set_terminal(FILE *in, FILE *out) {
    g_term_in = in;
    g_term_out = out;
}

int tui_run_session(Session *s, int max_frames, TuiExit *how, char *err) {
    TuiHost host = {
        .term_in = g_term_in,
        .term_out = g_term_out,
        .ctx = s,
        .engine = session_engine(s),
        .exec = host_exec,
        .chart_names = host_chart_names,
        .build_chart = host_build_chart,
        .chart_view = host_chart_view,
        .set_chart_view = host_set_chart_view,
        .export_chart = host_export_chart,
        .plugin_table = host_plugin_table,
        .post = host_post,
        .poll = host_poll,
    };
    /* a signal before the workbench opened: leave it closed, the caller saves */
    if (run_signal_caught()) {
        if (how) *how = TUI_INTERRUPTED;
        return PK_OK;
    }
    int rc = tui_run(&host, max_frames, how, err);
    /* the workbench caught SIGINT/SIGTERM/SIGHUP with its own handler (it owns the terminal);
     * the program's handler, back in place, must count a next one as the second */
    if (rc == PK_OK && how && *how == TUI_INTERRUPTED) run_signal_note(tui_interrupt_signal());
    return rc;
}
