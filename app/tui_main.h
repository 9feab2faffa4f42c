/* The workbench over a Session: fills the TUI's host table (views/tui.h) from the
 * session's command table, charts and plugins, and runs it. `promptkd tui` and
 * `promptkd train` (without --no-tui) both open the workbench through here. */
#ifndef PK_TUI_MAIN_H
#define PK_TUI_MAIN_H

#include <stdio.h>

#include "session.h"
#include "tui.h"

/* Runs the workbench until the person quits, or max_frames redraws (> 0) were
 * drawn. Does not destroy the session. Returns PK_OK (how says how it ended; may
 * be NULL), or PK_FAIL with a sentence in err when no terminal could be opened.
 * Signals: the caller installs run_signals_install() and watches the engine first;
 * after SIGINT/SIGTERM/SIGHUP (how = TUI_INTERRUPTED, run_signal_caught() set, the
 * terminal restored) it calls run_stop_after_signal to save and get the exit status. */
int tui_run_session(Session *s, int max_frames, TuiExit *how, char *err);
/* The terminal the next tui_run_session draws on (NULL, NULL: stdin and stdout). */
void tui_main_set_terminal(FILE *in, FILE *out);

#endif
