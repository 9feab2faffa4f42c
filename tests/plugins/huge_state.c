/* Test plugin: asks for a state block beyond PK_PLUGIN_MAX_STATE; loading is refused. */
#include "promptkd_plugin.h"

static int analyze(const PkHostApi *api, void *state, int argc, const char *const *argv, char *err) {
    (void)api, (void)state, (void)argc, (void)argv, (void)err;
    return 0;
}

static const PkPluginDescriptor descriptor = {
    .abi_version = PROMPTKD_PLUGIN_ABI,
    .name = "huge_state",
    .description = "test: state_size 1 GiB",
    .state_size = (size_t)1 << 30,
    .analyze = analyze,
};

const PkPluginDescriptor *promptkd_plugin_entry(void) { return &descriptor; }
