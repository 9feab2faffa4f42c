#include "run_setup.h"

#include <stdio.h>
#include <string.h>

#include "common.h"

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
