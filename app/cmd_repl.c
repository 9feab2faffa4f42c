/* promptkd repl: the scripting prompt over a live session (readline, history,
 * completion), or a script run non-interactively with -f FILE or on stdin. */
#include <errno.h>
#include <readline/history.h>
#include <readline/readline.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
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
    static const char *plugin_subs[] = {"load", "unload", "list", "run", "export", NULL};
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

static int run_script(Session *s, FILE *in, const char *name, int keep_going, int echo) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, failures = 0;
    PkBuf out = {0};
    char err[PK_ERR_LEN];
    while ((n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '#') continue;
        if (echo) printf("promptkd> %s\n", p);
        err[0] = 0;
        int rc = session_exec(s, p, &out, err);
        print_output(&out);
        if (rc == SESSION_QUIT) break;
        if (rc == SESSION_ERROR) {
            failures++;
            fprintf(stderr, "promptkd repl: %s:%d: %s\n", name, lineno, err);
            if (!keep_going) break;
        }
    }
    free(line);
    pk_buf_free(&out);
    return failures ? 1 : 0;
}

static int run_interactive(Session *s) {
    char hist[4096];
    int have_hist = history_path(hist, sizeof hist) == 0;
    if (have_hist) read_history(hist);
    completion_session = s;
    rl_attempted_completion_function = complete;
    rl_readline_name = "promptkd";
    PkBuf out = {0};
    char err[PK_ERR_LEN];
    printf("promptkd repl: type help for commands, quit to leave.\n");
    for (;;) {
        char *line = readline("promptkd> ");
        if (!line) {
            printf("\n");
            break;
        }
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p) {
            add_history(p);
            /* append_history needs the file to exist; write_history creates it */
            if (have_hist && (access(hist, F_OK) == 0 ? append_history(1, hist) : write_history(hist)) != 0)
                have_hist = 0;
        }
        err[0] = 0;
        int rc = *p ? session_exec(s, p, &out, err) : SESSION_OK;
        print_output(&out);
        free(line);
        if (rc == SESSION_QUIT) break;
        if (rc == SESSION_ERROR) fprintf(stderr, "error: %s\n", err); /* an error never ends the REPL */
    }
    if (have_hist) history_truncate_file(hist, 2000);
    completion_session = NULL;
    pk_buf_free(&out);
    return 0;
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
    if (rc) return rc == 1 ? 0 : 2;
    RunConfig cfg;
    char err[PK_ERR_LEN];
    if (run_config_resolve(&cfg, config, &sets, err)) {
        fprintf(stderr, "promptkd repl: %s\n", err);
        return 2;
    }
    Session *s;
    if (session_create(&s, &cfg, resume, 0, err)) {
        fprintf(stderr, "promptkd repl: %s\n", err);
        return 1;
    }
    int status;
    if (script) {
        FILE *f = fopen(script, "r");
        if (!f) {
            fprintf(stderr, "promptkd repl: %s: cannot open: %s\n", script, strerror(errno));
            session_destroy(s);
            return 2;
        }
        status = run_script(s, f, script, keep_going, echo);
        fclose(f);
    } else if (!isatty(STDIN_FILENO)) {
        status = run_script(s, stdin, "<stdin>", keep_going, echo);
    } else {
        status = run_interactive(s);
    }
    session_destroy(s);
    return status;
}
