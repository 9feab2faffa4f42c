/* What every command that starts a run (train, repl, tui, compare) does the same way:
 * resolving its config (defaults, then the JSON file, then each --set), handling
 * SIGINT/SIGTERM/SIGHUP, reporting failed writes, and the exit status. */
#ifndef PK_RUN_SETUP_H
#define PK_RUN_SETUP_H

#include "config.h"
#include "engine.h"

#define RUN_MAX_SETS 64
#define RUN_DEFAULT_CONFIG "assets/configs/default.json"

typedef struct {
    int n;
    const char *kv[RUN_MAX_SETS]; /* "key=value" */
} RunSetSpecs;

/* Moves every "--set KEY=VALUE" and "--set=KEY=VALUE" out of argv (compacting it,
 * *argc updated) into sets. On a malformed one prints "promptkd CMD: ..." and returns 2. */
int run_collect_sets(const char *cmd, int *argc, char **argv, RunSetSpecs *sets);
/* config_defaults, config_load_json(path or the default config), each set, config_validate. */
int run_config_resolve(RunConfig *cfg, const char *path, const RunSetSpecs *sets, char *err);

/* Exit status of train, repl and tui (`promptkd train --help`, README "Runs"):
 *   0    done (train: finished or stopped at stop_after, checkpoint saved)
 *   1    the run did not load, a step failed, or a non-finite loss paused it (the last
 *        good checkpoint is kept); repl: a script command failed
 *   2    bad command line or config (a fixed key changed on resume included), or the run
 *        folder could not be made or resumed
 *   3    a write into the run folder failed: a checkpoint, metrics.jsonl, eval/, best/ or
 *        config.json (disk full, failed fsync, ...): the sentence, with its full path, is on
 *        stderr (also with --quiet); what was written before it is intact
 *   130  SIGINT (Ctrl-C) or SIGTERM, 129 SIGHUP: the current step finished and a checkpoint
 *        of the unsaved steps was saved (3 instead when that save failed). */
enum { RUN_EXIT_OK = 0, RUN_EXIT_FAILED = 1, RUN_EXIT_USAGE = 2, RUN_EXIT_WRITE = 3, RUN_EXIT_SIGHUP = 129,
       RUN_EXIT_INTERRUPTED = 130 };

/* Signals, handled the same way by train (headless or TUI), repl and tui:
 * the first SIGINT, SIGTERM or SIGHUP asks the watched engine to pause after the current
 * step (engine_interrupt) and is remembered; the front-end then calls run_stop_after_signal
 * (pause, save, exit status), restoring its terminal first. A second SIGINT or SIGTERM
 * leaves at once without saving (status 130, after the registered terminal restore); a
 * repeated SIGHUP is ignored (a dying session may send several), and SIGHUP stays
 * ignored when it was so at start (nohup). SIGPIPE is ignored after
 * the first signal, so a closed terminal or pipe cannot kill the save. Installed without
 * SA_RESTART: a blocked read returns EINTR; run_signal_fd() becomes readable (select). */
void run_signals_install(void);
void run_signals_watch(Engine *e);              /* the engine the first signal pauses (NULL: none) */
void run_signals_on_second(void (*restore)(void)); /* async-signal-safe terminal restore, or NULL */
int run_signal_caught(void);                    /* the first signal caught, or 0 */
int run_signal_fd(void);                        /* readable once a signal was caught; -1 before install */
void run_signal_drain(void);                    /* empties it (readable without a signal caught: a stray byte) */
void run_signal_note(int sig);                  /* a signal another handler caught first (the TUI's) */
int run_signal_status(int sig);                 /* 129 for SIGHUP, 130 otherwise */
/* After the first signal: says what happens on stderr ("PREFIX: SIGTERM: finishing the
 * current step, then saving a checkpoint ..."), pauses the engine, saves a checkpoint when
 * steps are unsaved, and returns the exit status (run_signal_status, or RUN_EXIT_WRITE when
 * the save failed). */
int run_stop_after_signal(Engine *e, int sig, const char *prefix);

/* Write errors since *shown (a count kept by the caller, start at 0): each new one is
 * printed on stderr as "PREFIX: error: SENTENCE" (the last one in full, with how many came
 * before it unseen); returns the total so far. */
int run_report_write_errors(Engine *e, const char *prefix, int *shown);

#endif
