/* promptkd repl: the scripting prompt over a live session (readline, history,
 * completion), or a script run non-interactively with -f FILE or on stdin.
 *
 * Leaving: `quit` (or Ctrl-D) while the run has unsaved steps asks whether to save a
 * checkpoint first, as the TUI does; a script (-f FILE or stdin) saves them at `quit`,
 * at its end, and when a failing command stops it. SIGINT (Ctrl-C), SIGTERM and SIGHUP
 * are handled as in train and the TUI (app/run_setup.h): the current step ends, the
 * unsaved steps are saved, the terminal is restored, exit 130 (129 for SIGHUP); a
 * second Ctrl-C leaves at once without saving. Under mpirun, a failure on another rank is
 * said as the run's lines are ("promptkd: rank K: ...; ending the job"), the unsaved steps are
 * saved, and the job ends with status 1. Failed writes into the run folder
 * (checkpoints, metrics.jsonl, ...) are printed as they happen, also above the prompt,
 * and make the exit status 3.
 *
 * Interactive, a line is posted to the session (session_post) and its reply awaited while
 * what the run reports by itself (evaluations, checkpoints, the end of the run, errors, a
 * pause by a signal) is printed as it comes: between prompts above the line being typed,
 * which is drawn again as it was. A script waits until the run has loaded before its first
 * command, so the first command sees the run, not the loading. */
#include <errno.h>
#include <readline/history.h>
#include <readline/readline.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <termios.h>
#include <unistd.h>

#include <fcntl.h>

#include "cli.h"
#include "commands.h"
#include "dist.h"
#include "dist_setup.h"
#include "run_setup.h"
#include "session.h"

static Session *completion_session;

static char *dup_match(const char *s) {
    char *d = malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

/* readline's generator protocol: called with state 0 first, then until NULL */
static const char *const *gen_words;
static char gen_charts[64][64];
static const char *gen_chart_ptrs[65];
static char *word_generator(const char *text, int state) {
    static int i;
    static size_t len;
    if (!state) i = 0, len = strlen(text);
    while (gen_words && gen_words[i]) {
        const char *w = gen_words[i++];
        if (!strncmp(w, text, len)) return dup_match(w);
    }
    return NULL;
}

static char **complete(const char *text, int start, int end) {
    (void)end;
    /* the words before the one being completed */
    char *line = rl_line_buffer;
    char first[64] = "";
    int nwords = 0;
    for (int i = 0; i < start;) {
        while (i < start && (line[i] == ' ' || line[i] == '\t')) i++;
        if (i >= start) break;
        int j = i;
        while (j < start && line[j] != ' ' && line[j] != '\t') j++;
        if (nwords == 0) snprintf(first, sizeof first, "%.*s", j - i, line + i);
        nwords++;
        i = j;
    }
    static const char *plugin_subs[] = {"load", "unload", "list", "run", "timeout", "export", NULL};
    static const char *splits[] = {"valid", "test", "train", NULL};
    gen_words = NULL;
    if (nwords == 0) gen_words = session_command_names();
    else if ((!strcmp(first, "set") || !strcmp(first, "get")) && nwords == 1) gen_words = config_keys();
    else if (!strcmp(first, "help") && nwords == 1) gen_words = session_command_names();
    else if (!strcmp(first, "eval") && nwords == 1) gen_words = splits;
    else if (!strcmp(first, "plugin") && nwords == 1) gen_words = plugin_subs;
    else if ((!strcmp(first, "export") || !strcmp(first, "view")) && nwords == 1 && completion_session) {
        int n = session_chart_names(completion_session, gen_charts, 63);
        int k = 0;
        if (!strcmp(first, "export")) gen_chart_ptrs[k++] = "all";
        for (int i = 0; i < n && k < 64; i++) gen_chart_ptrs[k++] = gen_charts[i];
        gen_chart_ptrs[k] = NULL;
        gen_words = gen_chart_ptrs;
    }
    if (gen_words) {
        rl_attempted_completion_over = 1;
        return rl_completion_matches(text, word_generator);
    }
    return NULL; /* readline completes file names */
}

static int history_path(char *out, size_t len) {
    const char *state = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    char dir[3072];
    if (state && *state) snprintf(dir, sizeof dir, "%s/promptkd", state);
    else if (home && *home) snprintf(dir, sizeof dir, "%s/.local/state/promptkd", home);
    else return -1;
    char err[PK_ERR_LEN];
    if (pk_mkdirs(dir, err)) return -1;
    snprintf(out, len, "%s/history", dir);
    return 0;
}

static void print_output(PkBuf *out) {
    if (out->len) fputs(out->data, stdout);
    fflush(stdout);
    out->len = 0;
    if (out->data) out->data[0] = 0;
}

/* ---------------------------------------------------------------- what the run says by itself */

/* A script says the writes into the run folder that failed, after each command (the
 * interactive REPL says them, and everything else the run reports, as events). */
typedef struct {
    int write_errors;
} Seen;

static int g_errors_shown; /* write errors already printed (the final report adds only new ones) */

static void seen_init(Engine *e, Seen *seen) {
    const EngineSnapshot *s = engine_snapshot_acquire(e);
    seen->write_errors = s ? s->write_errors : 0;
    engine_snapshot_release(e, s);
}

/* Appends to out the write errors new since *seen (lines ending in '\n'); returns 1 if any. */
static int seen_news(Engine *e, Seen *seen, PkBuf *out) {
    const EngineSnapshot *s = engine_snapshot_acquire(e);
    if (!s) return 0;
    int any = 0;
    if (s->write_errors > seen->write_errors) {
        int n = s->write_errors - seen->write_errors;
        if (n > 1)
            pk_buf_printf(out, "error: %d writes into the run folder failed; the last: %s\n", n, s->write_error);
        else
            pk_buf_printf(out, "error: %s\n", s->write_error);
        seen->write_errors = s->write_errors;
        g_errors_shown = s->write_errors;
        any = 1;
    }
    engine_snapshot_release(e, s);
    return any;
}

/* ---------------------------------------------------------------- leaving */

static int unsaved_steps(Engine *e, int *running) {
    const EngineSnapshot *s = engine_snapshot_acquire(e);
    int n = s ? s->unsaved_steps : 0;
    if (running) *running = s && s->state == ENGINE_RUNNING;
    engine_snapshot_release(e, s);
    return n;
}

/* Pauses (so the checkpoint holds the last step taken) and saves into the run; prints the
 * outcome. Returns PK_OK or PK_FAIL. */
static int save_before_leaving(Engine *e) {
    char err[PK_ERR_LEN], reply[PK_ERR_LEN + 128];
    int running = 0;
    unsaved_steps(e, &running);
    if (running && engine_pause(e, err) != PK_OK) {
        fprintf(stderr, "promptkd repl: %s\n", err);
        return PK_FAIL;
    }
    if (!unsaved_steps(e, NULL)) return PK_OK;
    if (engine_save(e, NULL, reply, sizeof reply, err) != PK_OK) {
        fprintf(stderr, "promptkd repl: error: checkpoint not saved: %s\n", err);
        return PK_FAIL;
    }
    printf("%s\n", reply);
    fflush(stdout);
    return PK_OK;
}

/* ---------------------------------------------------------------- scripts */

/* Lines from a file descriptor, read with select() beside the signal pipe, so a signal
 * ends a wait on a FIFO or a terminal whichever thread the kernel gave it to. */
typedef struct {
    int fd;
    char *buf;
    size_t len, cap;
    int eof;
} LineReader;

/* 1 with a line (without its newline) in *line (malloc'ed: the caller frees), 0 at the end,
 * -1 when a signal came, -2 on a read error (errno), -3 when another rank failed the job
 * (data-parallel: looked at every 200 ms while waiting for input). */
static int next_line(LineReader *r, char **line) {
    for (;;) {
        if (run_signal_caught()) return -1;
        if (pk_dist_job_failure(NULL)) return -3;
        char *nl = r->len ? memchr(r->buf, '\n', r->len) : NULL;
        if (nl || (r->eof && r->len)) {
            size_t n = nl ? (size_t)(nl - r->buf) : r->len;
            char *out = malloc(n + 1);
            if (!out) return -2;
            memcpy(out, r->buf, n);
            out[n] = 0;
            size_t used = nl ? n + 1 : n;
            memmove(r->buf, r->buf + used, r->len - used);
            r->len -= used;
            *line = out;
            return 1;
        }
        if (r->eof) return 0;
        int sfd = run_signal_fd();
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(r->fd, &fds);
        if (sfd >= 0) FD_SET(sfd, &fds);
        int maxfd = r->fd > sfd ? r->fd : sfd;
        struct timeval tick = {0, 200000};
        int n = select(maxfd + 1, &fds, NULL, NULL, pk_dist_size() > 1 ? &tick : NULL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -2;
        }
        if (n == 0) continue;
        if (!FD_ISSET(r->fd, &fds)) { /* the signal pipe, without a signal of ours: nothing to wait for there */
            run_signal_drain();
            continue;
        }
        if (r->cap - r->len < 4096) {
            size_t nc = r->cap ? 2 * r->cap : 8192;
            char *nb = realloc(r->buf, nc);
            if (!nb) return -2;
            r->buf = nb, r->cap = nc;
        }
        ssize_t got = read(r->fd, r->buf + r->len, r->cap - r->len);
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return -2;
        }
        if (got == 0) r->eof = 1;
        r->len += (size_t)got;
    }
}

/* Until the run has loaded (or failed to), or a signal comes. */
static void wait_loaded(Engine *e) {
    for (;;) {
        const EngineSnapshot *snap = engine_snapshot_acquire(e);
        int loading = snap && snap->state == ENGINE_LOADING;
        engine_snapshot_release(e, snap);
        if (!loading || run_signal_caught()) return;
        engine_wait_idle(e, 0.1);
    }
}

/* Returns the exit status: 0, 1 (a command failed), 3 (a write failed), 130/129 (signal). */
static int run_script(Session *s, int fd, const char *name, int keep_going, int echo) {
    Engine *e = session_engine(s);
    LineReader r = {.fd = fd};
    char *line = NULL;
    int lineno = 0, failures = 0, rc_read;
    PkBuf out = {0}, news = {0};
    char err[PK_ERR_LEN];
    Seen seen;
    seen_init(e, &seen);
    wait_loaded(e);
    while ((rc_read = next_line(&r, &line)) == 1) {
        lineno++;
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '#') {
            free(line);
            continue;
        }
        if (echo) printf("promptkd> %s\n", p);
        err[0] = 0;
        int rc = session_exec(s, p, &out, err);
        free(line);
        line = NULL;
        print_output(&out);
        if (seen_news(e, &seen, &news)) {
            fprintf(stderr, "promptkd repl: %s", news.data);
            news.len = 0;
        }
        if (run_signal_caught()) break;
        if (dist_say_job_failure(stderr)) { /* another rank failed: the job ends */
            failures++;
            break;
        }
        if (rc == SESSION_QUIT) break;
        if (rc == SESSION_ERROR) {
            failures++;
            fprintf(stderr, "promptkd repl: %s:%d: %s\n", name, lineno, err);
            if (!keep_going) break;
        }
    }
    if (rc_read == -2) {
        fprintf(stderr, "promptkd repl: %s: cannot read: %s\n", name, strerror(errno));
        failures++;
    }
    if (rc_read == -3 && dist_say_job_failure(stderr)) failures++;
    free(line);
    free(r.buf);
    pk_buf_free(&out);
    pk_buf_free(&news);
    if (run_signal_caught()) return run_stop_after_signal(e, run_signal_caught(), "promptkd repl");
    /* leaving a script is a quit: the steps it took are saved */
    if (save_before_leaving(e) != PK_OK) return RUN_EXIT_WRITE;
    return failures ? RUN_EXIT_FAILED : RUN_EXIT_OK;
}

/* ---------------------------------------------------------------- interactive */

static struct termios g_tty_saved;
static int g_tty_saved_ok;

/* The second signal's way out: the terminal as it was (tcsetattr is async-signal-safe). */
static void restore_tty(void) {
    if (g_tty_saved_ok) tcsetattr(STDIN_FILENO, TCSANOW, &g_tty_saved);
}

static char *g_line;
static int g_have_line, g_eof;

static void on_line(char *line) {
    g_have_line = 1;
    g_eof = line == NULL;
    g_line = line;
    rl_callback_handler_remove(); /* the terminal is the program's again while the command runs */
}

/* One line of what the run reported by itself, as the REPL says it. */
static void event_line(const SessionEvent *ev, PkBuf *out) {
    const char *text = ev->out ? ev->out : "out of memory\n";
    if (ev->what == ENGINE_EVENT_WRITE_ERROR) {
        pk_buf_printf(out, "error: %s", text);
        g_errors_shown++;
    } else if (ev->what == ENGINE_EVENT_ERROR && !strncmp(text, "plugin ", 7)) {
        pk_buf_printf(out, "%s", text); /* a plugin fault says who it is */
    } else {
        pk_buf_printf(out, "run: %s", text);
    }
}

/* Prints text above the prompt line being edited, then draws the prompt and the text typed so far again. */
static void print_above_prompt(const char *text) {
    int point = rl_point;
    char *typed = rl_copy_text(0, rl_end);
    rl_save_prompt();
    rl_replace_line("", 0);
    rl_redisplay();
    fputs(text, stderr);
    fflush(stderr);
    rl_restore_prompt();
    rl_replace_line(typed ? typed : "", 0);
    rl_point = point;
    rl_forced_update_display();
    free(typed);
}

/* quit: while steps are unsaved, ask whether to save first; else leave. */
static void quit_asks(Engine *e, char *ask_prompt, size_t len, int *asking, int *leave) {
    int k = unsaved_steps(e, NULL);
    if (k > 0) {
        snprintf(ask_prompt, len, "save a checkpoint of the %d unsaved step%s before quitting? [y/n/c] ", k,
                 k == 1 ? "" : "s");
        *asking = 1;
    } else {
        *leave = 1;
    }
}

static int run_interactive(Session *s) {
    Engine *e = session_engine(s);
    char hist[4096];
    int have_hist = history_path(hist, sizeof hist) == 0;
    if (have_hist) read_history(hist);
    completion_session = s;
    rl_attempted_completion_function = complete;
    rl_readline_name = "promptkd";
    rl_catch_signals = 0; /* SIGINT, SIGTERM, SIGHUP are the program's (run_setup.h) */
    g_tty_saved_ok = tcgetattr(STDIN_FILENO, &g_tty_saved) == 0;
    run_signals_on_second(restore_tty);
    PkBuf news = {0};
    char err[PK_ERR_LEN];
    printf("promptkd repl: type help for commands, quit to leave.\n");
    fflush(stdout);
    const char *main_prompt = "promptkd> ";
    char ask_prompt[160] = "";
    int asking = 0, installed = 0, status = RUN_EXIT_OK, leave = 0, was_help = 0;
    unsigned long waiting = 0; /* the posted line whose reply is awaited (no prompt meanwhile) */
    while (!leave) {
        if (!installed && !waiting) {
            g_have_line = 0;
            rl_callback_handler_install(asking ? ask_prompt : main_prompt, on_line);
            installed = 1;
        }
        int sfd = run_signal_fd();
        fd_set fds;
        FD_ZERO(&fds);
        if (!waiting) FD_SET(STDIN_FILENO, &fds);
        if (sfd >= 0) FD_SET(sfd, &fds);
        struct timeval tv = {0, 100000};
        int n = select((sfd > STDIN_FILENO ? sfd : STDIN_FILENO) + 1, &fds, NULL, NULL, &tv);
        if (run_signal_caught()) break;
        if (n < 0 && errno != EINTR) break;
        /* the reply awaited, and what the run says by itself meanwhile */
        SessionEvent ev;
        int quit = 0;
        while (session_poll_event(s, &ev)) {
            if (ev.kind == SESSION_EVENT_REPLY) {
                if (ev.id == waiting) waiting = 0;
                if (ev.out) fputs(ev.out, stdout);
                fflush(stdout);
                if (ev.status == SESSION_OK && was_help)
                    printf("  Ctrl-C, SIGTERM, SIGHUP: the current step ends, the unsaved steps are saved, exit 130\n"
                           "  (129 for SIGHUP); Ctrl-C again leaves without saving. quit asks to save while steps are\n"
                           "  unsaved.\n");
                /* an error never ends the REPL; a command cut short by a signal is said by the signal's lines */
                if (ev.status == SESSION_ERROR && !run_signal_caught()) fprintf(stderr, "error: %s\n", ev.err);
                if (ev.status == SESSION_QUIT) quit = 1;
                was_help = 0;
            } else {
                event_line(&ev, &news);
            }
            session_event_clear(&ev);
        }
        /* another rank failed the job (data-parallel): said as the run's lines are, then the
         * unsaved steps are saved and the job ends */
        char failure[PK_ERR_LEN];
        int job_failed = pk_dist_job_failure(failure);
        if (job_failed) {
            pk_buf_printf(&news, "promptkd: %s; ending the job\n", failure);
            dist_say_job_failure(NULL); /* said here: dist_end does not say it again */
        }
        if (news.len) {
            if (installed) print_above_prompt(news.data);
            else fputs(news.data, stderr), fflush(stderr);
            news.len = 0;
        }
        if (job_failed) {
            if (save_before_leaving(e) != PK_OK) status = RUN_EXIT_WRITE;
            else status = RUN_EXIT_FAILED;
            break;
        }
        if (quit) {
            quit_asks(e, ask_prompt, sizeof ask_prompt, &asking, &leave);
            fflush(stdout);
            continue;
        }
        if (n <= 0 || waiting) continue;
        if (!FD_ISSET(STDIN_FILENO, &fds)) { /* the signal pipe without a signal of ours */
            run_signal_drain();
            continue;
        }
        rl_callback_read_char();
        if (!g_have_line) continue;
        installed = 0; /* on_line removed the handler */
        char *line = g_line;
        int eof = g_eof;
        g_line = NULL;
        if (eof) printf("\n");
        const char *p = line ? line : "";
        while (*p == ' ' || *p == '\t') p++;
        if (asking) { /* save a checkpoint before quitting? [y/n/c] */
            asking = 0;
            if (eof || *p == 'y' || *p == 'Y') {
                if (save_before_leaving(e) == PK_OK) leave = 1;
                else if (eof) leave = 1, status = RUN_EXIT_WRITE; /* no more input to ask with */
                else fprintf(stderr, "error: save failed, not quitting (answer n to quit without saving)\n");
            } else if (*p == 'n' || *p == 'N') {
                leave = 1;
            } else {
                printf("quit cancelled\n");
            }
            free(line);
            continue;
        }
        if (eof) {
            quit_asks(e, ask_prompt, sizeof ask_prompt, &asking, &leave); /* Ctrl-D: as quit */
        } else if (*p) {
            add_history(p);
            /* append_history needs the file to exist; write_history creates it */
            if (have_hist && (access(hist, F_OK) == 0 ? append_history(1, hist) : write_history(hist)) != 0)
                have_hist = 0;
            err[0] = 0;
            was_help = !strcmp(p, "help");
            waiting = session_post(s, p, err);
            if (!waiting) fprintf(stderr, "error: %s\n", err);
        }
        free(line);
        fflush(stdout);
    }
    if (installed) rl_callback_handler_remove();
    if (run_signal_caught()) {
        printf("\n");
        fflush(stdout);
        status = run_stop_after_signal(e, run_signal_caught(), "promptkd repl");
    }
    if (have_hist) history_truncate_file(hist, 2000);
    completion_session = NULL;
    run_signals_on_second(NULL);
    pk_buf_free(&news);
    return status;
}

int cmd_repl(int argc, char **argv) {
    const char *config = NULL, *script = NULL, *resume = NULL;
    int keep_going = 0, echo = 0;
    RunSetSpecs sets = {0};
    /* -f is the one short option: map it to --file */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-f")) argv[i] = "--file";
    Opt opts[] = {
        {"config", OPT_STR, &config, "run config JSON (default assets/configs/default.json)", 0},
        {"file", OPT_STR, &script, "run the commands of FILE (also -f FILE), then exit", 0},
        {"keep-going", OPT_FLAG, &keep_going, "in a script, go on after a failing command (exit 1 at the end)", 0},
        {"echo", OPT_FLAG, &echo, "in a script, print each command before its output", 0},
        {"resume", OPT_STR, &resume, "continue a run folder from its latest checkpoint", 0},
    };
    if (run_collect_sets("repl", &argc, argv, &sets)) return 2;
    int rc = cli_parse("promptkd repl [--config FILE] [--set KEY=VALUE]... [-f SCRIPT] [--keep-going]", argc, argv,
                       opts, sizeof opts / sizeof *opts, NULL, 0, NULL);
    if (rc == 1)
        printf("\nLeaving: quit (or Ctrl-D) asks to save a checkpoint while the run has unsaved steps; a script\n"
               "saves them when it ends (quit, its last line, or a failing command).\n"
               "Ctrl-C, SIGTERM, SIGHUP: the current step ends, the unsaved steps are saved, the terminal is\n"
               "restored; exit 130 (129 for SIGHUP). Ctrl-C again leaves at once without saving.\n"
               "Under mpirun, a failure on another rank is said on rank 0 (\"promptkd: rank K: ...; ending the\n"
               "job\"), the unsaved steps are saved and the job ends with status 1.\n"
               "exit status: 0 done; 1 a script command failed, or the run did not load; 2 bad arguments or\n"
               "config; 3 a write into the run folder failed (checkpoint, metrics.jsonl, ...: said on stderr);\n"
               "130/129 after a signal (3 if that save failed).\n");
    if (rc) return rc == 1 ? 0 : 2;
    RunConfig cfg;
    char err[PK_ERR_LEN];
    if (run_config_resolve(&cfg, config, &sets, err)) {
        fprintf(stderr, "promptkd repl: %s\n", err);
        return 2;
    }
    int fd = -1;
    if (script) {
        fd = open(script, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "promptkd repl: %s: cannot open: %s\n", script, strerror(errno));
            return 2;
        }
    }
    run_signals_install(); /* before the session: a signal while loading counts too */
    Session *s;
    if (session_create(&s, &cfg, resume, 0, err)) {
        fprintf(stderr, "promptkd repl: %s\n", err);
        if (fd >= 0) close(fd);
        return 1;
    }
    Engine *e = session_engine(s);
    run_signals_watch(e);
    dist_install_test_hooks(e);
    int status;
    if (pk_dist_rank() != 0) { /* data-parallel: rank 0 takes the commands, this rank follows its engine */
        status = RUN_EXIT_OK;
        if (fd >= 0) close(fd);
    } else if (script) {
        status = run_script(s, fd, script, keep_going, echo);
        close(fd);
    } else if (!isatty(STDIN_FILENO)) {
        status = run_script(s, STDIN_FILENO, "<stdin>", keep_going, echo);
    } else {
        status = run_interactive(s);
    }
    engine_stop(e, err); /* flushes and closes metrics.jsonl: its failures count too */
    const EngineSnapshot *snap = engine_snapshot_acquire(e);
    int loaded = snap && snap->loaded;
    engine_snapshot_release(e, snap);
    /* said as they happened; what came at the very end (closing the log) is said now */
    int shown = g_errors_shown;
    if (run_report_write_errors(e, "promptkd repl", &shown) > 0 && status != RUN_EXIT_USAGE) status = RUN_EXIT_WRITE;
    if (!loaded && status == RUN_EXIT_OK) status = RUN_EXIT_FAILED;
    run_signals_watch(NULL);
    session_destroy(s);
    return status;
}
