/* Test plugin: on_step never returns from its STEP-th call (state: step 2 by default,
 * `plugin run loop_on_step N` changes it); earlier calls append a point, so the test
 * sees that the plugin ran, and that the state survives between calls. */
#include <stdio.h>
#include <stdlib.h>

#include "promptkd_plugin.h"

typedef struct {
    int calls, hang_at;
} State;

static int on_load(const PkHostApi *api, void *state, char *err) {
    (void)api, (void)err;
    ((State *)state)->hang_at = 2;
    return 0;
}

static int on_step(const PkHostApi *api, void *state, const PkPluginStepInfo *info, char *err) {
    (void)err;
    State *s = state;
    s->calls++;
    if (s->calls >= s->hang_at) {
        api->log(api->host, "looping forever");
        for (volatile unsigned long i = 0;; i++) {
        }
    }
    return api->append_point(api->host, "calls", "on_step calls", info->step, s->calls);
}

static int analyze(const PkHostApi *api, void *state, int argc, const char *const *argv, char *err) {
    (void)api;
    State *s = state;
    if (argc == 1) s->hang_at = atoi(argv[0]);
    snprintf(err, PK_PLUGIN_ERR_LEN, "unused");
    char line[64];
    snprintf(line, sizeof line, "calls %d, hangs at call %d", s->calls, s->hang_at);
    api->log(api->host, line);
    return 0;
}

static const PkPluginDescriptor descriptor = {
    .abi_version = PROMPTKD_PLUGIN_ABI,
    .name = "loop_on_step",
    .description = "test: on_step loops forever from its second call",
    .state_size = sizeof(State),
    .on_load = on_load,
    .on_step = on_step,
    .analyze = analyze,
};

const PkPluginDescriptor *promptkd_plugin_entry(void) { return &descriptor; }
