/* promptkd: subcommand dispatch. A bare `promptkd` opens the workbench on the default experiment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "dist_setup.h"
#include "parallel.h"

typedef struct {
    const char *name; /* as typed: underscores become dashes */
    int (*fn)(int, char **);
    const char *help;
} Command;

#define PK_COMMAND_ENTRY(name, help) {#name, cmd_##name, help},
static const Command commands[] = {PK_COMMAND_LIST(PK_COMMAND_ENTRY)};
#undef PK_COMMAND_ENTRY

static int same_name(const char *typed, const char *name) {
    for (; *typed && *name; typed++, name++) {
        char a = *typed == '-' ? '_' : *typed;
        if (a != *name) return 0;
    }
    return *typed == 0 && *name == 0;
}

static void usage(FILE *out) {
    fprintf(out, "usage: promptkd [COMMAND] [ARGS...]\n\nWithout a command: the workbench on assets/configs/default.json.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s", commands[i].name);
        for (char *p = name; *p; p++)
            if (*p == '_') *p = '-';
        fprintf(out, "  %-12s %s\n", name, commands[i].help);
    }
    fprintf(out, "\n`promptkd COMMAND --help` describes a command.\n");
}

/* The environment is read here, once for the whole process; core takes what it says as
 * parameters. PROMPTKD_THREADS: the thread count when a command or config says 0;
 * PROMPTKD_GEMM=blas: OpenBLAS's own threads for GEMMs instead of the pool. */
static void read_environment(void) {
    const char *threads = getenv("PROMPTKD_THREADS"), *gemm = getenv("PROMPTKD_GEMM");
    pk_threads_defaults(threads ? atoi(threads) : 0, gemm && !strcmp(gemm, "blas") ? PK_GEMM_BLAS : PK_GEMM_POOL);
}

int main(int argc, char **argv) {
    read_environment();
    if (argc < 2) {
        char *tui_argv[] = {"tui", "--config", "assets/configs/default.json", NULL};
        int rc = dist_begin("tui");
        return rc ? rc : dist_end(cmd_tui(3, tui_argv));
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (same_name(argv[1], commands[i].name)) {
            /* under mpirun: MPI around the commands that run data-parallel (app/dist_setup.h) */
            int rc = dist_begin(commands[i].name);
            if (rc) return rc;
            return dist_end(commands[i].fn(argc - 1, argv + 1));
        }
    fprintf(stderr, "promptkd: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
