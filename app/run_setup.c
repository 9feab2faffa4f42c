#include "run_setup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "dist.h"

int run_collect_sets(const char *cmd, int *argc, char **argv, RunSetSpecs *sets) {
    int out = 1;
    sets->n = 0;
    for (int i = 1; i < *argc; i++) {
        const char *kv = NULL;
        if (!strcmp(argv[i], "--set")) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "promptkd %s: --set needs KEY=VALUE\n", cmd);
                return 2;
            }
            kv = argv[++i];
        } else if (!strncmp(argv[i], "--set=", 6)) {
            kv = argv[i] + 6;
        } else {
            argv[out++] = argv[i];
            continue;
        }
        const char *eq = strchr(kv, '=');
        if (!eq || eq == kv) {
            fprintf(stderr, "promptkd %s: --set expects KEY=VALUE, got '%s'\n", cmd, kv);
            return 2;
        }
        if (sets->n >= RUN_MAX_SETS) {
            fprintf(stderr, "promptkd %s: at most %d --set options\n", cmd, RUN_MAX_SETS);
            return 2;
        }
        sets->kv[sets->n++] = kv;
    }
    argv[out] = NULL;
    *argc = out;
    return 0;
}

int run_config_resolve(RunConfig *cfg, const char *path, const RunSetSpecs *sets, char *err) {
    config_defaults(cfg);
    if (config_load_json(cfg, path ? path : RUN_DEFAULT_CONFIG, err)) return PK_FAIL;
    for (int i = 0; sets && i < sets->n; i++) {
        const char *kv = sets->kv[i], *eq = strchr(kv, '=');
        char key[128];
        size_t kl = (size_t)(eq - kv);
        if (kl >= sizeof key) return pk_errf(err, "--set %s: key too long", kv);
        memcpy(key, kv, kl);
        key[kl] = 0;
        char inner[PK_ERR_LEN];
        if (config_set(cfg, key, eq + 1, inner)) return pk_errf(err, "--set %s: %s", kv, inner);
    }
    return config_validate(cfg, err);
}

/* ---------------------------------------------------------------- signals */

static volatile sig_atomic_t g_signal;          /* the first one caught */
static Engine *volatile g_engine;
static void (*volatile g_restore)(void);
static int g_pipe[2] = {-1, -1};
static int g_installed;
static pid_t g_pid; /* the process that installed the handlers (a forked child is not it) */

int run_signal_status(int sig) { return sig == SIGHUP ? RUN_EXIT_SIGHUP : RUN_EXIT_INTERRUPTED; }

/* Only async-signal-safe calls: flags, sigaction, write, _exit (and the restore hook, which
 * must be so too: tcsetattr, endwin as the TUI already does on fatal signals). */
static void on_signal(int sig) {
    int saved_errno = errno;
    if (getpid() != g_pid) { /* a child forked before it reset its handlers: the default action */
        signal(sig, SIG_DFL);
        raise(sig);
        errno = saved_errno;
        return;
    }
    if (g_signal) {
        if (sig != SIGHUP) {
            void (*restore)(void) = g_restore;
            if (restore) restore();
            static const char msg[] = "\npromptkd: a second signal: leaving without saving\n";
            ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
            (void)w;
            _exit(RUN_EXIT_INTERRUPTED);
        }
        errno = saved_errno;
        return;
    }
    g_signal = sig;
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, NULL);
    Engine *e = g_engine;
    if (e) engine_interrupt(e);
    if (g_pipe[1] >= 0) {
        char c = (char)sig;
        ssize_t w = write(g_pipe[1], &c, 1);
        (void)w;
    }
    errno = saved_errno;
}

void run_signals_install(void) {
    if (!g_installed) {
        if (pipe(g_pipe) == 0) {
            for (int i = 0; i < 2; i++) {
                fcntl(g_pipe[i], F_SETFD, FD_CLOEXEC);
                fcntl(g_pipe[i], F_SETFL, fcntl(g_pipe[i], F_GETFL) | O_NONBLOCK);
            }
        } else {
            g_pipe[0] = g_pipe[1] = -1;
        }
        g_installed = 1;
    }
    g_pid = getpid();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGHUP);
    sa.sa_flags = 0; /* no SA_RESTART: a blocked read in the main thread returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* under nohup SIGHUP stays ignored: the run goes on when the terminal goes */
    struct sigaction old;
    if (sigaction(SIGHUP, NULL, &old) != 0 || old.sa_handler != SIG_IGN) sigaction(SIGHUP, &sa, NULL);
}

void run_signals_watch(Engine *e) {
    g_engine = e;
    if (e && g_signal) engine_interrupt(e); /* it came before the engine existed */
}

void run_signals_on_second(void (*restore)(void)) { g_restore = restore; }

int run_signal_caught(void) { return g_signal; }

int run_signal_fd(void) { return g_pipe[0]; }

void run_signal_drain(void) {
    char buf[64];
    while (g_pipe[0] >= 0 && read(g_pipe[0], buf, sizeof buf) > 0) {
    }
}

void run_signal_note(int sig) {
    if (!sig || g_signal) return;
    g_signal = sig;
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, NULL);
    if (g_pipe[1] >= 0) {
        char c = (char)sig;
        ssize_t w = write(g_pipe[1], &c, 1);
        (void)w;
    }
}

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    }
    return "a signal";
}

int run_stop_after_signal(Engine *e, int sig, const char *prefix) {
    int status = run_signal_status(sig);
    /* data-parallel: rank 0 saves and speaks for the job (mpirun signals every rank, and ends the
     * others when rank 0 leaves; a rank waiting for a failed job to end gets its SIGTERM here) */
    if (pk_dist_rank() != 0) return status;
    fprintf(stderr, "%s: %s: finishing the current step, then saving a checkpoint%s\n", prefix, signal_name(sig),
            sig == SIGHUP ? "" : " (Ctrl-C again leaves without saving)");
    fflush(stderr);
    char err[PK_ERR_LEN], reply[PK_ERR_LEN + 128];
    const EngineSnapshot *s = engine_snapshot_acquire(e);
    int loaded = s && s->loaded;
    engine_snapshot_release(e, s);
    if (!loaded) {
        /* still loading: the pause waits for the load (the engine applies it after) */
        engine_wait_idle(e, 1e9);
        s = engine_snapshot_acquire(e);
        loaded = s && s->loaded;
        if (!loaded) fprintf(stderr, "%s: nothing to save: %s\n", prefix, s ? s->message : "the run did not load");
        engine_snapshot_release(e, s);
        if (!loaded) return status;
    }
    if (engine_pause(e, err) != PK_OK) fprintf(stderr, "%s: %s\n", prefix, err);
    s = engine_snapshot_acquire(e);
    int unsaved = s ? s->unsaved_steps : 0, last = s ? s->last_checkpoint_step : -1, step = s ? s->step : 0;
    int nonfinite = s && !strncmp(s->message, "non-finite", 10);
    if (nonfinite && !unsaved)
        fprintf(stderr, "%s: nothing saved: %s\n", prefix, s->message);
    engine_snapshot_release(e, s);
    if (nonfinite && !unsaved) return status;
    if (unsaved > 0) {
        if (engine_save(e, NULL, reply, sizeof reply, err) != PK_OK) {
            fprintf(stderr, "%s: error: checkpoint not saved: %s\n", prefix, err);
            return RUN_EXIT_WRITE;
        }
        fprintf(stderr, "%s: %s\n", prefix, reply);
    } else if (last >= 0) {
        fprintf(stderr, "%s: nothing to save: checkpoint step-%d holds every step\n", prefix, last);
    } else {
        fprintf(stderr, "%s: nothing to save: no step was taken (step %d)\n", prefix, step);
    }
    return status;
}

int run_report_write_errors(Engine *e, const char *prefix, int *shown) {
    const EngineSnapshot *s = engine_snapshot_acquire(e);
    int n = s ? s->write_errors : 0;
    if (s && n > *shown) {
        if (n - *shown > 1)
            fprintf(stderr, "%s: error: %d writes into the run folder failed; the last: %s\n", prefix, n - *shown,
                    s->write_error);
        else
            fprintf(stderr, "%s: error: %s\n", prefix, s->write_error);
        fflush(stderr);
        *shown = n;
    }
    engine_snapshot_release(e, s);
    return n;
}
