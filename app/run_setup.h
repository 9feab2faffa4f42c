/* Resolving a run's config the same way in every command that starts one
 * (train, repl, tui, compare): defaults, then the JSON file, then each --set. */
#ifndef PK_RUN_SETUP_H
#define PK_RUN_SETUP_H

#include "config.h"

#define RUN_MAX_SETS 64
#define RUN_DEFAULT_CONFIG "assets/configs/default.json"

typedef struct {
    int n;
    const char *kv[RUN_MAX_SETS]; /* "key=value" */
} RunSetSpecs;

/* Moves every "--set KEY=VALUE" and "--set=KEY=VALUE" out of argv (compacting it,
 * *argc updated) into sets. On a malformed one prints "promptkd CMD: ..." and returns 2. */
int run_collect_sets(const char *cmd, int *argc, char **argv, RunSetSpecs *sets);
/* config_defaults, config_load_json(path or the default config), each set, config_validate. */
int run_config_resolve(RunConfig *cfg, const char *path, const RunSetSpecs *sets, char *err);

#endif
