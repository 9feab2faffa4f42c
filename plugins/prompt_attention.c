/* prompt_attention: how much attention each teacher layer puts on the soft-prompt
 * positions, and how far each prompt vector has moved from its initialisation,
 * now (analyze) and over training (every INTERVAL steps, from on_step).
 *   plugin run prompt_attention [INTERVAL]   (INTERVAL 0 stops tracking)
 * Its one setting lives in the host-owned state block (ABI 2): each call runs in
 * its own process, so static variables or malloc'ed state would not survive. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promptkd_plugin.h"

typedef struct {
    int interval; /* steps between measurements during training */
} State;

static int measure(const PkHostApi *api, int step, int publish_now, char *err) {
    const float *prompt, *init;
    int P, C;
    if (api->prompt(api->host, &prompt, &init, &P, &C) != 1) {
        snprintf(err, PK_PLUGIN_ERR_LEN, "this run has no soft prompt (method without a prompted teacher)");
        return -1;
    }
    const char *split = api->dataset_size(api->host, "valid") > 0 ? "valid" : "train";
    const char *text = api->dataset_prompt(api->host, split, 0);
    if (!text) {
        snprintf(err, PK_PLUGIN_ERR_LEN, "no dev prompt to measure attention on");
        return -1;
    }
    int *ids = NULL, n = 0;
    if (api->encode(api->host, text, &ids, &n, err)) return -1;
    int L = api->num_layers(api->host, PK_MODEL_PROMPTED_TEACHER);
    double mass[1024];
    if (L < 1) {
        snprintf(err, PK_PLUGIN_ERR_LEN, "%s", api->last_error(api->host));
        api->free_ids(ids);
        return -1;
    }
    if (L > 1024) L = 1024; /* prompt_attention refuses a deeper teacher: mass holds 1024 */
    int rc = api->prompt_attention(api->host, ids, n, mass, L, err);
    api->free_ids(ids);
    if (rc) return -1;
    double drift[1024];
    int Pn = P < 1024 ? P : 1024;
    for (int p = 0; p < Pn; p++) {
        double s = 0;
        for (int c = 0; c < C; c++) {
            double d = (double)prompt[(size_t)p * C + c] - init[(size_t)p * C + c];
            s += d * d;
        }
        drift[p] = sqrt(s);
    }
    if (step >= 0) {
        for (int l = 0; l < L; l++) {
            char name[32];
            snprintf(name, sizeof name, "layer %d", l);
            api->append_point(api->host, "attention_over_training", name, step, mass[l]);
        }
        for (int p = 0; p < Pn; p++) {
            char name[32];
            snprintf(name, sizeof name, "p%d", p);
            api->append_point(api->host, "drift_over_training", name, step, drift[p]);
        }
    }
    if (publish_now) {
        double x[1024];
        for (int i = 0; i < 1024; i++) x[i] = i;
        api->publish_series(api->host, "attention_by_layer", "mass on prompt", x, mass, L);
        api->publish_series(api->host, "drift_by_position", "L2 from init", x, drift, Pn);
        const char *headers[] = {"layer", "attention mass on prompt"};
        char **cells = malloc(sizeof(char *) * 2 * L);
        if (!cells) return 0;
        for (int l = 0; l < L; l++) {
            cells[2 * l] = malloc(16);
            cells[2 * l + 1] = malloc(32);
            snprintf(cells[2 * l], 16, "%d", l);
            snprintf(cells[2 * l + 1], 32, "%.4f", mass[l]);
        }
        api->publish_table(api->host, "attention_by_layer", 2, headers, L, (const char *const *)cells);
        for (int i = 0; i < 2 * L; i++) free(cells[i]);
        free(cells);
    }
    return 0;
}

static int on_load(const PkHostApi *api, void *state, char *err) {
    (void)api, (void)err;
    State *s = state; /* zeroed by the host */
    s->interval = 10;
    return 0;
}

static int on_step(const PkHostApi *api, void *state, const PkPluginStepInfo *info, char *err) {
    State *s = state;
    if (s->interval <= 0 || info->step % s->interval != 0) return 0;
    const float *p, *i;
    int P, C;
    if (api->prompt(api->host, &p, &i, &P, &C) != 1) return 0; /* nothing to track in a run without prompt */
    return measure(api, info->step, 0, err);
}

static int analyze(const PkHostApi *api, void *state, int argc, const char *const *argv, char *err) {
    State *s = state;
    if (argc > 1) {
        snprintf(err, PK_PLUGIN_ERR_LEN, "usage: plugin run prompt_attention [INTERVAL]");
        return -1;
    }
    if (argc == 1) {
        char *end;
        long v = strtol(argv[0], &end, 10);
        if (end == argv[0] || *end || v < 0 || v > 1000000) {
            snprintf(err, PK_PLUGIN_ERR_LEN, "INTERVAL must be a whole number from 0 to 1000000, got '%s'", argv[0]);
            return -1;
        }
        s->interval = (int)v;
    }
    return measure(api, -1, 1, err);
}

static const PkPluginDescriptor descriptor = {
    .abi_version = PROMPTKD_PLUGIN_ABI,
    .name = "prompt_attention",
    .description = "attention mass of each teacher layer on the prompt, and prompt drift from init, over training",
    .state_size = sizeof(State),
    .on_load = on_load,
    .on_step = on_step,
    .analyze = analyze,
};

const PkPluginDescriptor *promptkd_plugin_entry(void) { return &descriptor; }
