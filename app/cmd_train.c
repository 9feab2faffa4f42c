/* promptkd train: run a distillation config headless, with a progress line.
 *
 *   promptkd train --config FILE [--set key=value ...] [--resume RUN_DIR] [--no-tui] [--quiet]
 *
 * Without --no-tui, on a terminal, the run opens in the workbench (as `promptkd tui`
 * does, already running); otherwise it runs headless.
 *
 * Exit status: 0 when the run finished or stopped at stop_after (a checkpoint is
 * saved either way); 1 when loading failed or a non-finite loss paused the run;
 * 2 for a bad command line or config; 130 after Ctrl-C / SIGTERM, once the current
 * step has ended and a checkpoint is saved. The run folder is printed on stdout. */
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
#include "engine.h"
#include "run_setup.h"
#include "session.h"
#include "tui_main.h"

/* Shared with cmd_compare.c (declared there): signals and the progress text. */
void train_install_signals(void);
int train_interrupted(void);
void train_progress_line(const EngineSnapshot *s, char *out, size_t len);

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    if (interrupted) _exit(130); /* a second Ctrl-C: leave now, without the checkpoint */
    interrupted = 1;
}

void train_install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int train_interrupted(void) { return interrupted != 0; }

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
        printf("exit status: 0 finished or stopped at stop_after (checkpoint saved); 1 load failure or\n"
               "non-finite loss (the last good checkpoint is kept); 2 bad arguments or config; 130 interrupted\n"
               "by Ctrl-C or SIGTERM (the current step ends and a checkpoint is saved first).\n"
               "The run folder (run_dir/name) is printed on stdout; config keys: see `promptkd tui` or the README.\n");
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

    if (!no_tui && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
        Session *session = NULL;
        if (session_create(&session, &cfg, resume, 1, err) != PK_OK) {
            fprintf(stderr, "promptkd train: %s\n", err);
            return 2;
        }
        TuiExit how;
        int trc = tui_run_session(session, 0, &how, err);
        session_destroy(session);
        if (trc != PK_OK) {
            fprintf(stderr, "promptkd train: %s (use --no-tui to run headless)\n", err);
            return 1;
        }
        return 0;
    }

    train_install_signals();
    /* headless too runs a session: the same engine, and a finished run's plots/ */
    Session *session = NULL;
    if (session_create(&session, &cfg, resume, 1, err) != PK_OK) {
        fprintf(stderr, "promptkd train: %s\n", err);
        return 2;
    }
    Engine *e = session_engine(session);
    int tty = isatty(STDERR_FILENO);
    double last_print = 0;
    unsigned long last_version = 0;
    EngineState st;
    for (;;) {
        st = engine_wait_idle(e, tty ? 0.1 : 0.25);
        if (interrupted) break;
        int idle = st != ENGINE_RUNNING && st != ENGINE_LOADING;
        if (!quiet) {
            double now = pk_now();
            if (idle || now - last_print >= (tty ? 0.1 : 1.0)) {
                const EngineSnapshot *s = engine_snapshot_acquire(e);
                if (s && s->version != last_version && s->step > 0) {
                    show_progress(s, tty, 0);
                    last_version = s->version;
                    last_print = now;
                }
                engine_snapshot_release(e, s);
            }
        }
        if (idle) break;
    }

    int status = 0;
    const EngineSnapshot *s = engine_snapshot_acquire(e);
    if (interrupted) {
        /* the current step ends, then a checkpoint, then out */
        if (tty && !quiet) fprintf(stderr, "\n");
        fprintf(stderr, "promptkd train: interrupted; finishing the current step and saving (Ctrl-C again quits "
                        "without saving)\n");
        char reply[1024];
        engine_snapshot_release(e, s);
        if (engine_pause(e, err) != PK_OK) fprintf(stderr, "promptkd train: %s\n", err);
        s = engine_snapshot_acquire(e);
        if (s && s->state == ENGINE_FAILED)
            fprintf(stderr, "promptkd train: %s\n", s->message);
        else if (engine_save(e, NULL, reply, sizeof reply, err) != PK_OK)
            fprintf(stderr, "promptkd train: %s\n", err);
        else
            fprintf(stderr, "promptkd train: %s\n", reply);
        status = 130;
    } else if (st == ENGINE_FAILED) {
        if (tty && !quiet) fprintf(stderr, "\n");
        fprintf(stderr, "promptkd train: %s\n", s ? s->message : "failed");
        status = 1;
    } else if (s && !strncmp(s->message, "non-finite", 10)) {
        if (tty && !quiet) fprintf(stderr, "\n");
        fprintf(stderr, "promptkd train: %s\n", s->message);
        status = 1;
    } else {
        if (!quiet && s) {
            if (tty || s->version != last_version) show_progress(s, tty, 1);
            fprintf(stderr, "promptkd train: %s\n", s->message);
        }
    }
    printf("%s\n", engine_run_path(e));
    fflush(stdout);
    engine_snapshot_release(e, s);
    engine_stop(e, err);
    session_destroy(session);
    return status;
}
