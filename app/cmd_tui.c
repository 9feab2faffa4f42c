/* promptkd tui: the live workbench on a run config.
 *
 *   promptkd tui [--config FILE] [--set KEY=VALUE]... [--resume RUN_DIR] [--paused] [--frames N]
 *   promptkd tui --open RUN [RUN...] [--frames N]
 *
 * The config resolves as in train and repl (defaults, the JSON file, each --set);
 * with --resume and no --config, the run folder's own config.json. Training starts
 * at once unless --paused. --frames N leaves after N redraws (tests, headless use).
 * --open shows a finished (or stopped) run read-only, every panel read back from its
 * folder; further RUNs, or a `compare` output folder, are drawn over it in the charts.
 * Under mpirun, a failure on another rank stops the run (FAILED, that rank's sentence on the
 * message line) and leaves the workbench open for reading; quitting says the sentence once more
 * and ends the job with status 1.
 * Exit status: 0 after the person quit; 1 when the session or the terminal could not
 * be opened, or another rank failed the job; 2 for a bad command line or config; 3 when a write into the run folder
 * failed (said on stderr after the workbench closes); 130 after SIGINT (Ctrl-C) or
 * SIGTERM and 129 after SIGHUP, once the current step ended and the unsaved steps were
 * saved (app/run_setup.h: the same in train and repl). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "dist.h"
#include "dist_setup.h"
#include "run_setup.h"
#include "session.h"
#include "tui_main.h"

enum { MAX_OPEN = 1 + SESSION_MAX_OVERLAY };
/* tui --open: a read-only session over the first run, the others overlaid in its charts.
 * A compare folder stands for its runs. */
static int open_runs(char **args, int n_args, int frames) {
    char err[PK_ERR_LEN];
    static SessionRunPath paths[MAX_OPEN];
    int n = 0;
    for (int i = 0; i < n_args; i++) {
        int room = n < MAX_OPEN ? MAX_OPEN - n : 0;
        int k = session_compare_runs(args[i], paths + (room ? n : 0), room);
        if (k == 0 && n < MAX_OPEN) snprintf(paths[n], sizeof *paths, "%s", args[i]);
        n += k ? k : 1;
    }
    if (n > MAX_OPEN) {
        fprintf(stderr, "promptkd tui: --open shows at most %d runs at once (one and %d overlaid); these are %d\n",
                MAX_OPEN, MAX_OPEN - 1, n);
        return RUN_EXIT_USAGE;
    }
    Session *s;
    if (session_open(&s, paths[0], err) != PK_OK) {
        fprintf(stderr, "promptkd tui: --open %s\n", err);
        return RUN_EXIT_FAILED;
    }
    for (int i = 1; i < n; i++) {
        if (session_overlay_add(s, paths[i], NULL, err) != PK_OK) {
            fprintf(stderr, "promptkd tui: --open %s\n", err);
            session_destroy(s);
            return RUN_EXIT_FAILED;
        }
    }
    TuiExit how;
    int status = RUN_EXIT_OK;
    run_signals_install();
    if (tui_run_session(s, frames, &how, err) != PK_OK) {
        fprintf(stderr, "promptkd tui: %s\n", err);
        status = RUN_EXIT_FAILED;
    } else if (run_signal_caught()) {
        status = run_signal_status(run_signal_caught()); /* nothing to save in a run opened read-only */
    }
    session_destroy(s);
    return status;
}

int cmd_tui(int argc, char **argv) {
    const char *config = NULL, *resume = NULL, *open = NULL;
    int paused = 0, frames = 0;
    RunSetSpecs sets = {0};
    Opt opts[] = {
        {"config", OPT_STR, &config, "run config JSON (default " RUN_DEFAULT_CONFIG ")", 0},
        {"resume", OPT_STR, &resume, "continue a run folder from its latest checkpoint", 0},
        {"paused", OPT_FLAG, &paused, "open paused (space starts training)", 0},
        {"frames", OPT_INT, &frames, "leave after N redraws (tests, headless use)", 0},
        {"open", OPT_STR, &open, "show finished runs read-only: --open RUN [RUN...] (more runs, or a compare "
                                 "folder, overlay in the charts)", 0},
    };
    const char *usage = "promptkd tui [--config FILE] [--set KEY=VALUE]... [--resume RUN_DIR] [--paused] [--frames N]\n"
                        "       promptkd tui --open RUN [RUN...] [--frames N]";
    if (run_collect_sets("tui", &argc, argv, &sets)) return 2;
    char *runs[MAX_OPEN];
    int n_runs = 0;
    int rc = cli_parse(usage, argc, argv, opts, sizeof opts / sizeof *opts, runs + 1, MAX_OPEN - 1, &n_runs);
    if (rc) {
        if (rc == 1)
            printf("\nKeys inside: space pause/resume, e edit a hyper-parameter, Tab focus, c chart, s smoothing,\n"
                   "l log scale, x export PNG, z zoom, n/p dev prompt, : any REPL command, ? help, q quit\n"
                   "(asks to save while steps are unsaved). The view (chart, focus, each chart's view settings) is kept\n"
                   "in RUN/view.json and restored by --resume and --open.\n"
                   "--open RUN [RUN...]: a finished or stopped run read-only (keys that would change it say so);\n"
                   "further runs, or a compare output folder, overlay in the charts, one colour per run.\n"
                   "--set KEY=VALUE takes any config key (repeatable), as in train and repl.\n"
                   "Ctrl-C, SIGTERM, SIGHUP: the current step ends, the unsaved steps are saved, the terminal is\n"
                   "restored; exit 130 (129 for SIGHUP); Ctrl-C again leaves at once without saving.\n"
                   "Under mpirun, a failure on another rank stops the run and shows its sentence; q then ends\n"
                   "the job (status 1).\n"
                   "exit status: 0 quit; 1 no session or terminal; 2 bad arguments or config; 3 a write into\n"
                   "the run folder failed (said on stderr); 130/129 after a signal (3 if that save failed).\n");
        return rc == 1 ? 0 : 2;
    }
    if (frames < 0) {
        fprintf(stderr, "promptkd tui: --frames expects a number of redraws >= 0, got %d\n", frames);
        return 2;
    }
    if (open) {
        if (pk_dist_size() > 1) {
            fprintf(stderr, "promptkd tui: --open runs in one process (start it without mpirun)\n");
            return 2;
        }
        if (config || resume || paused || sets.n) {
            fprintf(stderr, "promptkd tui: --open shows runs as they are: --config, --resume, --set and --paused "
                            "do not go with it\n");
            return 2;
        }
        runs[0] = (char *)open;
        return open_runs(runs, n_runs + 1, frames);
    }
    if (n_runs > 0) {
        fprintf(stderr, "promptkd tui: unexpected argument '%s' (more runs go after --open RUN)\n", runs[1]);
        return 2;
    }

    char err[PK_ERR_LEN], resume_config[CONFIG_PATH_LEN + 32];
    if (resume && !config) {
        if (pk_path_join(resume_config, sizeof resume_config, resume, "config.json", err) != PK_OK) {
            fprintf(stderr, "promptkd tui: --resume: %s\n", err);
            return 2;
        }
        if (!pk_file_exists(resume_config)) {
            fprintf(stderr, "promptkd tui: --resume %s: no config.json in that folder (is it a run folder?)\n", resume);
            return 2;
        }
        config = resume_config;
    }
    RunConfig cfg;
    if (run_config_resolve(&cfg, config, &sets, err) != PK_OK) {
        fprintf(stderr, "promptkd tui: %s\n", err);
        return 2;
    }
    /* data-parallel (mpirun): rank 0 shows the workbench on the controlling terminal (the ranks'
     * standard streams are mpirun's pipes), the other ranks follow its engine as under repl */
    FILE *tty_in = NULL, *tty_out = NULL;
    pid_t tty_pgrp = -1;
    dist_default_threads(&cfg);
    if (resume) dist_check_resume_ranks(resume, "promptkd tui");
    if (pk_dist_size() > 1 && pk_dist_rank() == 0) {
        tty_in = fopen("/dev/tty", "r");
        tty_out = tty_in ? fopen("/dev/tty", "w") : NULL;
        if (!tty_out) {
            fprintf(stderr, "promptkd tui: under mpirun the workbench opens the terminal /dev/tty: %s "
                            "(drive the run with `promptkd repl` instead)\n", strerror(errno));
            if (tty_in) fclose(tty_in);
            pk_dist_abort(2);
        }
        /* mpirun starts its ranks in a process group of their own, which the terminal does not
         * read for: rank 0's group becomes the terminal's foreground (SIGTTOU held meanwhile, as a
         * background process must) and gives it back at the end */
        sigset_t ttou, old;
        sigemptyset(&ttou);
        sigaddset(&ttou, SIGTTOU);
        pthread_sigmask(SIG_BLOCK, &ttou, &old);
        tty_pgrp = tcgetpgrp(fileno(tty_in));
        if (tcsetpgrp(fileno(tty_in), getpgrp()) != 0) tty_pgrp = -1;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        tui_main_set_terminal(tty_in, tty_out);
    }
    Session *s;
    run_signals_install(); /* the same signals as train and repl, while loading too */
    int follower = pk_dist_rank() != 0;
    if (session_create(&s, &cfg, resume, !paused && !follower, err) != PK_OK) {
        fprintf(stderr, "promptkd tui: %s\n", err);
        return 1;
    }
    Engine *e = session_engine(s);
    run_signals_watch(e);
    dist_install_test_hooks(e);
    TuiExit how = TUI_QUIT;
    rc = follower ? PK_OK : tui_run_session(s, frames, &how, err);
    /* another rank failed the job (data-parallel): the workbench showed it until the person left;
     * said once more on the terminal given back, and the job ends (dist_end) */
    int job_failed = !follower && dist_say_job_failure(tty_out ? tty_out : stderr);
    if (tty_in) {
        tui_main_set_terminal(NULL, NULL);
        if (tty_pgrp > 0) {
            sigset_t ttou, old;
            sigemptyset(&ttou);
            sigaddset(&ttou, SIGTTOU);
            pthread_sigmask(SIG_BLOCK, &ttou, &old);
            tcsetpgrp(fileno(tty_in), tty_pgrp);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
        fclose(tty_in);
        fclose(tty_out);
    }
    int status = RUN_EXIT_OK, shown = 0;
    if (rc != PK_OK) {
        fprintf(stderr, "promptkd tui: %s\n", err);
        status = RUN_EXIT_FAILED;
    } else if (run_signal_caught()) {
        status = run_stop_after_signal(e, run_signal_caught(), "promptkd tui");
    }
    if (job_failed && status == RUN_EXIT_OK) status = RUN_EXIT_FAILED;
    engine_stop(e, err); /* flushes and closes metrics.jsonl: its failures count too */
    if (run_report_write_errors(e, "promptkd tui", &shown) > 0 && status != RUN_EXIT_FAILED) status = RUN_EXIT_WRITE;
    run_signals_watch(NULL);
    session_destroy(s);
    return status;
}
