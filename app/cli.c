#include "cli.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void print_help(const char *usage, const Opt *opts, int nopts) {
    printf("usage: %s\n", usage);
    for (int i = 0; i < nopts; i++) {
        const char *arg = opts[i].kind == OPT_FLAG ? "" : opts[i].kind == OPT_STR ? " VALUE" : " N";
        printf("  --%s%s%*s%s%s\n", opts[i].name, arg, (int)(24 - strlen(opts[i].name) - strlen(arg)) > 1 ? (int)(24 - strlen(opts[i].name) - strlen(arg)) : 1, "",
               opts[i].help ? opts[i].help : "", opts[i].required ? " (required)" : "");
    }
}

/* Length of the command part of a usage line: the leading lowercase words
 * ("promptkd data stats" of "promptkd data stats FILE --tokenizer DIR"). */
static int command_len(const char *usage) {
    const char *p = usage, *end = usage;
    while (*p) {
        const char *w = p;
        while (*p && *p != ' ' && *p != '\n') {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || (*p == '-' && p > w))) return (int)(end - usage);
            p++;
        }
        if (p == w) break;
        end = p;
        if (*p != ' ') break;
        p++;
    }
    return (int)(end - usage);
}

/* Every parse error is one line, "promptkd CMD: <what was wrong> (see promptkd CMD --help)". */
static void parse_error(const char *usage, const char *fmt, ...) {
    int n = command_len(usage);
    fprintf(stderr, "%.*s: ", n, usage);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see %.*s --help)\n", n, usage);
}

static int set_value(const char *usage, const Opt *o, const char *val) {
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case OPT_STR: *(const char **)o->dest = val; return 0;
    case OPT_INT: {
        long v = strtol(val, &end, 10);
        if (end == val || *end) {
            parse_error(usage, "--%s expects an integer, got '%s'", o->name, val);
            return 2;
        }
        if (errno || v < INT_MIN || v > INT_MAX) {
            parse_error(usage, "--%s is out of range: got '%s', expected an integer from %d to %d", o->name, val, INT_MIN,
                        INT_MAX);
            return 2;
        }
        *(int *)o->dest = (int)v;
        return 0;
    }
    case OPT_U64: {
        if (val[0] == '-') {
            parse_error(usage, "--%s expects a non-negative integer, got '%s'", o->name, val);
            return 2;
        }
        unsigned long long v = strtoull(val, &end, 10);
        if (end == val || *end) {
            parse_error(usage, "--%s expects a non-negative integer, got '%s'", o->name, val);
            return 2;
        }
        if (errno) {
            parse_error(usage, "--%s is out of range: got '%s', expected an integer from 0 to %llu", o->name, val,
                        ULLONG_MAX);
            return 2;
        }
        *(unsigned long long *)o->dest = v;
        return 0;
    }
    case OPT_FLOAT: {
        /* read as a double first: "1e-40" is a number, only too small for a float */
        double d = strtod(val, &end);
        if (end == val || *end || isnan(d)) {
            parse_error(usage, "--%s expects a number, got '%s'", o->name, val);
            return 2;
        }
        float v = (float)d;
        if (isinf(d) || !isfinite(v) || (d != 0 && fabs(d) < FLT_MIN)) {
            parse_error(usage, "--%s is out of range: got '%s', expected 0 or a number whose magnitude is between %.3g "
                               "and %.3g",
                        o->name, val, (double)FLT_MIN, (double)FLT_MAX);
            return 2;
        }
        *(float *)o->dest = v;
        return 0;
    }
    case OPT_FLAG: *(int *)o->dest = 1; return 0;
    }
    return 2;
}

int cli_parse(const char *usage, int argc, char **argv, const Opt *opts, int nopts, char **pos, int max_pos,
              int *npos) {
    int seen[64] = {0};
    int np = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(usage, opts, nopts);
            return 1;
        }
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t nl = eq ? (size_t)(eq - name) : strlen(name);
            int found = -1;
            for (int k = 0; k < nopts; k++)
                if (strlen(opts[k].name) == nl && !strncmp(opts[k].name, name, nl)) found = k;
            if (found < 0) {
                parse_error(usage, "unknown option '%.*s'", (int)nl + 2, a);
                return 2;
            }
            const Opt *o = &opts[found];
            const char *val = NULL;
            if (o->kind == OPT_FLAG) {
                if (eq) {
                    parse_error(usage, "--%s takes no value", o->name);
                    return 2;
                }
            } else if (eq) {
                val = eq + 1;
            } else {
                if (i + 1 >= argc) {
                    parse_error(usage, "--%s needs a value", o->name);
                    return 2;
                }
                val = argv[++i];
            }
            int rc = set_value(usage, o, val);
            if (rc) return rc;
            if (found < 64) seen[found] = 1;
        } else {
            if (np >= max_pos) {
                parse_error(usage, "unexpected argument '%s'", a);
                return 2;
            }
            pos[np++] = argv[i];
        }
    }
    for (int k = 0; k < nopts && k < 64; k++)
        if (opts[k].required && !seen[k]) {
            parse_error(usage, "--%s is required", opts[k].name);
            return 2;
        }
    if (npos) *npos = np;
    return 0;
}

int cli_fail(const char *cmd, const char *msg) {
    fprintf(stderr, "promptkd %s: %s\n", cmd, msg);
    return 1;
}

int cli_check_output(const char *cmd, const char *opt, const char *path) {
    struct stat st;
    size_t n = strlen(path);
    if (n == 0) {
        fprintf(stderr, "promptkd %s: --%s is empty; expected a file path\n", cmd, opt);
        return 1;
    }
    if (path[n - 1] == '/' || (stat(path, &st) == 0 && S_ISDIR(st.st_mode))) {
        fprintf(stderr, "promptkd %s: --%s %s is a folder; expected a file path\n", cmd, opt, path);
        return 1;
    }
    char dir[4096];
    errno = 0;
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "promptkd %s: --%s %s: %s %s\n", cmd, opt, path, dir,
                errno == ENOENT ? "does not exist" : "is not a folder");
        return 1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "promptkd %s: --%s %s: the folder %s is not writable\n", cmd, opt, path, dir);
        return 1;
    }
    return 0;
}

int cli_check_vocab(const char *cmd, const char *model_dir, int model_vocab, const char *tok_dir, int tok_vocab) {
    if (model_vocab == tok_vocab) return 0;
    fprintf(stderr,
            "promptkd %s: the model in %s has vocab_size %d but the tokenizer in %s has %d tokens; they must be the "
            "same vocabulary (was the model trained with another tokenizer?)\n",
            cmd, model_dir, model_vocab, tok_dir, tok_vocab);
    return 1;
}
