/* Test plugin: on_load calls abort() (SIGABRT). Loading must fail with a message. */
#include <stdlib.h>

#include "promptkd_plugin.h"

static int on_load(const PkHostApi *api, void *state, char *err) {
    (void)api, (void)state, (void)err;
    abort();
}

static int analyze(const PkHostApi *api, void *state, int argc, const char *const *argv, char *err) {
    (void)api, (void)state, (void)argc, (void)argv, (void)err;
    return 0;
}

static const PkPluginDescriptor descriptor = {
    .abi_version = PROMPTKD_PLUGIN_ABI,
    .name = "abort_on_load",
    .description = "test: aborts in on_load",
    .on_load = on_load,
    .analyze = analyze,
};

const PkPluginDescriptor *promptkd_plugin_entry(void) { return &descriptor; }
