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

/* Command names (NULL-terminated) and each one's usage + description, for help and completion. */
const char *const *session_command_names(void);
const char *session_command_usage(const char *name);
const char *session_command_help(const char *name);

/* Charts: "loss", "rouge", "exposure", "neighbours", and each plugin chart as
 * "PLUGIN/CHART". View settings (EMA weight, log scale) are per chart and used by
 * both the terminal and the PNG export. */
int session_chart_names(Session *s, char names[][64], int max);
int session_build_chart(Session *s, const char *name, Chart *out, char *err);
void session_chart_view(Session *s, const char *name, double *ema, int *log_y);
void session_set_chart_view(Session *s, const char *name, double ema, int log_y);
/* Renders chart `name` to PNG (w x h), atomically. */
int session_export_chart(Session *s, const char *name, const char *path, int w, int h, char *err);
/* Writes every chart to DIR/NAME.png (plugin charts as PLUGIN-CHART.png). */
int session_export_all(Session *s, const char *dir, int w, int h, char *err);

/* Writes every chart (960x540) into the run folder's plots/. */
int session_write_run_plots(Session *s, char *err);

/* Plugin tables, for the TUI's plugin panel: the i-th published table, as text
 * lines (header first) formatted into columns; NULL past the end. Caller frees. */
char *session_plugin_table_text(Session *s, int i, char *title, size_t title_len);

#endif
