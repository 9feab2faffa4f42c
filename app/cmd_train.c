/* promptkd train: run a distillation config headless, with a progress line.
 *
 *   promptkd train --config FILE [--set key=value ...] [--resume RUN_DIR] [--no-tui] [--quiet]
 *
 * Without --no-tui, on a terminal, the run opens in the workbench (as `promptkd tui`
 * does, already running); otherwise it runs headless.
 *
 * Exit status (run_setup.h, printed by --help): 0 when the run finished or stopped at
 * stop_after with its checkpoint saved; 1 when loading failed, a step failed (under mpirun
 * on any rank: rank 0 says the failing rank's sentence and ends the job) or a
 * non-finite loss paused the run; 2 for a bad command line or config; 3 when a write
 * into the run folder failed (a checkpoint, metrics.jsonl, ...: the sentence is on
 * stderr, also with --quiet); 130 after SIGINT/SIGTERM and 129 after SIGHUP, once the
 * current step has ended and a checkpoint of the unsaved steps is saved. The run
 * folder is printed on stdout (unless the run did not load: its new folder is removed). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "dist.h"
#include "dist_setup.h"
#include "engine.h"
#include "run_setup.h"
#include "session.h"
#include "tui_main.h"

/* Shared with cmd_compare.c (declared there): signals and the progress text. */
void train_install_signals(void);
int train_interrupted(void);
void train_progress_line(const EngineSnapshot *s, char *out, size_t len);

/* compare trains one engine after another: the same handlers, without an engine to watch */
void train_install_signals(void) { run_signals_install(); }

int train_interrupted(void) { return run_signal_caught() != 0; }

static void fmt_duration(double s, char *out, size_t len) {
    if (!(s >= 0) || s > 1e8) {
        snprintf(out, len, "--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, len, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60)
        snprintf(out, len, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(out, len, "%lds", t);
}

void train_progress_line(const EngineSnapshot *s, char *out, size_t len) {
    size_t used = 0;
    int n = snprintf(out, len, "step %d/%d", s->step, s->total_steps);
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < s->n_series && used < len; i++) {
        const EngineSeries *se = &s->series[i];
        if (!se->n || !strstr(se->name, "loss")) continue;
        /* "prompt_guide_loss" -> "guide" etc. would be cryptic: keep the names */
        n = snprintf(out + used, len - used, "  %s %.4f", se->name, se->y[se->n - 1]);
        if (n > 0) used += (size_t)n;
    }
    for (int i = 0; i < s->n_series && used < len; i++) {
        const EngineSeries *se = &s->series[i];
        /* dev_rougeL and, for runs with a prompt, dev_rougeL_tprime (T') */
        if (!se->n || strncmp(se->name, "dev_rougeL", 10)) continue;
        n = snprintf(out + used, len - used, "  %s %.2f", se->name, se->y[se->n - 1]);
        if (n > 0) used += (size_t)n;
    }
    char eta[32];
    fmt_duration(s->eta_s, eta, sizeof eta);
    if (used < len) snprintf(out + used, len - used, "  %.0f tok/s  %.2f GFLOP/s  ETA %s", s->tokens_per_s, s->gflops, eta);
}

/* Prints the progress line: rewritten in place on a terminal, one line per call otherwise. */
static void show_progress(const EngineSnapshot *s, int tty, int final) {
    char line[1024];
    train_progress_line(s, line, sizeof line);
    if (tty)
        fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
    else
        fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

static const char train_epilog[] =
    "exit status: 0 finished, or stopped at stop_after, with its checkpoint saved; 1 the run did not\n"
    "load, a step failed (under mpirun: on any rank, said by rank 0), or a non-finite loss or model\n"
    "paused it (the last good checkpoint is kept); 2 bad arguments or config (a fixed key changed on\n"
    "resume too), or the run folder could not be made or resumed (the message says why); 3 a write\n"
    "into the run folder failed during the run (a checkpoint, metrics.jsonl, eval/, best/,\n"
    "config.json: disk full, failed fsync, ...), said on stderr with the full path even with --quiet;\n"
    "130 SIGINT (Ctrl-C) or SIGTERM, 129 SIGHUP: the current step ends and a checkpoint of the\n"
    "unsaved steps is saved first (3 if that fails); a second Ctrl-C or SIGTERM leaves at once\n"
    "without saving, a repeated SIGHUP is ignored.\n"
    "The run folder (run_dir/name) is printed on stdout; config keys: see `promptkd tui` or the README.\n";

/* The exit status once the run has stopped: what went wrong said on stderr. */
static int final_status(Engine *e, int status, int *shown_errors) {
    int errors = run_report_write_errors(e, "promptkd train", shown_errors);
    if (status == RUN_EXIT_FAILED || status == RUN_EXIT_USAGE) return status;
    return errors > 0 ? RUN_EXIT_WRITE : status;
}

/* The workbench on a terminal: the same signals, exit status and write-error report. */
static int train_in_tui(Session *session) {
    char err[PK_ERR_LEN];
    Engine *e = session_engine(session);
    TuiExit how;
    int trc = tui_run_session(session, 0, &how, err);
    int status = RUN_EXIT_OK, shown = 0;
    if (trc != PK_OK) {
        fprintf(stderr, "promptkd train: %s (use --no-tui to run headless)\n", err);
        status = RUN_EXIT_FAILED;
    } else if (run_signal_caught()) {
        status = run_stop_after_signal(e, run_signal_caught(), "promptkd train");
    }
    engine_stop(e, err);
    status = final_status(e, status, &shown);
    run_signals_watch(NULL);
    session_destroy(session);
    return status;
}

int cmd_train(int argc, char **argv) {
    const char *config_path = NULL, *resume = NULL, *set_placeholder = NULL;
    int no_tui = 0, quiet = 0;
    Opt opts[] = {
        {"config", OPT_STR, &config_path, "JSON run config (optional with --resume: the run's config.json)", 0},
        {"set", OPT_STR, &set_placeholder, "key=value over the config; repeatable", 0},
        {"resume", OPT_STR, &resume, "run folder to continue from its latest checkpoint", 0},
        {"no-tui", OPT_FLAG, &no_tui, "run headless with a progress line on stderr", 0},
        {"quiet", OPT_FLAG, &quiet, "no progress line", 0},
    };
    const char *usage = "promptkd train --config FILE [--set key=value ...] [--resume RUN_DIR] [--no-tui] [--quiet]";
    RunSetSpecs sets = {0};
    if (run_collect_sets("train", &argc, argv, &sets)) return 2;
    int rc = cli_parse(usage, argc, argv, opts, (int)(sizeof opts / sizeof *opts), NULL, 0, NULL);
    if (rc == 1) {
        fputs(train_epilog, stdout);
        return 0;
    }
    if (rc) return 2;

    char err[PK_ERR_LEN];
    RunConfig cfg;
    if (!config_path && !resume) {
        fprintf(stderr, "promptkd train: --config FILE is required (or --resume RUN_DIR)\n");
        return 2;
    }
    char resumed_config[CONFIG_PATH_LEN + 32];
    if (!config_path) {
        if (pk_path_join(resumed_config, sizeof resumed_config, resume, "config.json", err) != PK_OK) {
            fprintf(stderr, "promptkd train: --resume: %s\n", err);
            return 2;
        }
        if (!pk_file_exists(resumed_config)) {
            fprintf(stderr, "promptkd train: --resume %s: no config.json in that folder (is it a run folder?)\n",
                    resume);
            return 2;
        }
        config_path = resumed_config;
    }
    /* defaults, the file, each --set, then the whole config checked */
    if (run_config_resolve(&cfg, config_path, &sets, err) != PK_OK) {
        fprintf(stderr, "promptkd train: %s\n", err);
        return 2;
    }

    /* data-parallel (mpirun): rank 0 speaks and writes, the other ranks only compute */
    dist_default_threads(&cfg);
    if (pk_dist_rank() != 0) quiet = 1;
    if (pk_dist_size() > 1) no_tui = 1;
    if (resume) dist_check_resume_ranks(resume, "promptkd train");

    /* before the session: a signal while loading is handled like one later */
    run_signals_install();
    Session *session = NULL;
    if (session_create(&session, &cfg, resume, 1, err) != PK_OK) {
        fprintf(stderr, "promptkd train: %s\n", err);
        return RUN_EXIT_USAGE;
    }
    Engine *e = session_engine(session);
    run_signals_watch(e);
    dist_install_test_hooks(e);
    if (!no_tui && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) return train_in_tui(session);

    /* headless too runs a session: the same engine, and a finished run's plots/ */
    int tty = isatty(STDERR_FILENO);
    double last_print = 0;
    unsigned long last_version = 0;
    int shown_errors = 0, line_open = 0; /* line_open: a progress line without its newline on the terminal */
    EngineState st;
    for (;;) {
        st = engine_wait_idle(e, tty ? 0.1 : 0.25);
        if (run_signal_caught()) break;
        /* a failed write is said at once, with or without --quiet */
        const EngineSnapshot *w = engine_snapshot_acquire(e);
        int new_errors = w && w->write_errors > shown_errors;
        engine_snapshot_release(e, w);
        if (new_errors) {
            if (line_open) fprintf(stderr, "\n");
            line_open = 0;
            run_report_write_errors(e, "promptkd train", &shown_errors);
        }
        int idle = st != ENGINE_RUNNING && st != ENGINE_LOADING;
        if (!quiet) {
            double now = pk_now();
            if (idle || now - last_print >= (tty ? 0.1 : 1.0)) {
                const EngineSnapshot *s = engine_snapshot_acquire(e);
                if (s && s->version != last_version && s->step > 0) {
                    show_progress(s, tty, 0);
                    line_open = tty;
                    last_version = s->version;
                    last_print = now;
                }
                engine_snapshot_release(e, s);
            }
        }
        if (idle) break;
    }

    int status = RUN_EXIT_OK;
    const EngineSnapshot *s = engine_snapshot_acquire(e);
    int loaded = s && s->loaded;
    if (run_signal_caught()) {
        engine_snapshot_release(e, s);
        s = NULL;
        if (line_open) fprintf(stderr, "\n");
        status = run_stop_after_signal(e, run_signal_caught(), "promptkd train");
    } else if (st == ENGINE_FAILED) {
        if (line_open) fprintf(stderr, "\n");
        /* another rank's failure (data-parallel): its sentence, and the job ends (dist_end) */
        if (!dist_say_job_failure(stderr)) fprintf(stderr, "promptkd train: %s\n", s ? s->message : "failed");
        status = RUN_EXIT_FAILED;
    } else if (s && !strncmp(s->message, "non-finite", 10)) {
        if (line_open) fprintf(stderr, "\n");
        fprintf(stderr, "promptkd train: %s\n", s->message);
        status = RUN_EXIT_FAILED;
    } else if (s && st == ENGINE_PAUSED && strncmp(s->message, "stopped after", 13)) {
        /* paused by itself for another reason (the log could not be written): say why */
        if (line_open) fprintf(stderr, "\n");
        fprintf(stderr, "promptkd train: %s\n", s->message);
    } else if (!quiet && s) {
        if (tty || s->version != last_version) show_progress(s, tty, 1);
        fprintf(stderr, "promptkd train: %s\n", s->message);
    }
    engine_snapshot_release(e, s);
    engine_stop(e, err); /* flushes and closes metrics.jsonl: its failures count too */
    status = final_status(e, status, &shown_errors);
    /* the folder, unless the run did not load or recorded nothing (then it was removed) */
    if (loaded && pk_dist_rank() == 0 && pk_is_dir(engine_run_path(e))) printf("%s\n", engine_run_path(e));
    if (fflush(stdout) != 0 && status == RUN_EXIT_OK) status = RUN_EXIT_WRITE; /* the run folder line is output too */
    run_signals_watch(NULL);
    session_destroy(session);
    return status;
}
