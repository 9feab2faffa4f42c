#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_help(const char *usage, const Opt *opts, int nopts) {
    printf("usage: %s\n", usage);
    for (int i = 0; i < nopts; i++) {
        const char *arg = opts[i].kind == OPT_FLAG ? "" : opts[i].kind == OPT_STR ? " VALUE" : " N";
        printf("  --%s%s%*s%s%s\n", opts[i].name, arg, (int)(24 - strlen(opts[i].name) - strlen(arg)) > 1 ? (int)(24 - strlen(opts[i].name) - strlen(arg)) : 1, "",
               opts[i].help ? opts[i].help : "", opts[i].required ? " (required)" : "");
    }
}

static int set_value(const char *usage, const Opt *o, const char *val) {
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case OPT_STR: *(const char **)o->dest = val; return 0;
    case OPT_INT: {
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end || v < INT_MIN || v > INT_MAX) {
            fprintf(stderr, "%s: --%s expects an integer, got '%s'\n", usage, o->name, val);
            return 2;
        }
        *(int *)o->dest = (int)v;
        return 0;
    }
    case OPT_U64: {
        if (val[0] == '-') {
            fprintf(stderr, "%s: --%s expects a non-negative integer, got '%s'\n", usage, o->name, val);
            return 2;
        }
        unsigned long long v = strtoull(val, &end, 10);
        if (errno || end == val || *end) {
            fprintf(stderr, "%s: --%s expects a non-negative integer, got '%s'\n", usage, o->name, val);
            return 2;
        }
        *(unsigned long long *)o->dest = v;
        return 0;
    }
    case OPT_FLOAT: {
        float v = strtof(val, &end);
        if (errno || end == val || *end || !isfinite(v)) {
            fprintf(stderr, "%s: --%s expects a number, got '%s'\n", usage, o->name, val);
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
                fprintf(stderr, "%s: unknown option '%.*s' (see --help)\n", usage, (int)nl + 2, a);
                return 2;
            }
            const Opt *o = &opts[found];
            const char *val = NULL;
            if (o->kind == OPT_FLAG) {
                if (eq) {
                    fprintf(stderr, "%s: --%s takes no value\n", usage, o->name);
                    return 2;
                }
            } else if (eq) {
                val = eq + 1;
            } else {
                if (i + 1 >= argc) {
                    fprintf(stderr, "%s: --%s needs a value\n", usage, o->name);
                    return 2;
                }
                val = argv[++i];
            }
            int rc = set_value(usage, o, val);
            if (rc) return rc;
            if (found < 64) seen[found] = 1;
        } else {
            if (np >= max_pos) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", usage, a);
                return 2;
            }
            pos[np++] = argv[i];
        }
    }
    for (int k = 0; k < nopts && k < 64; k++)
        if (opts[k].required && !seen[k]) {
            fprintf(stderr, "%s: --%s is required\n", usage, opts[k].name);
            return 2;
        }
    if (npos) *npos = np;
    return 0;
}

int cli_fail(const char *cmd, const char *msg) {
    fprintf(stderr, "promptkd %s: %s\n", cmd, msg);
    return 1;
}
