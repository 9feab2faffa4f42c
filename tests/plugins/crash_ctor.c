/* Test plugin: a constructor that crashes (dlopen runs it before anything else). */
#include <stddef.h>

#include "promptkd_plugin.h"

/* a wild pointer (not NULL, which UBSan would catch first), itself volatile: the compiler
 * may neither fold the store nor drop the function */
volatile int *volatile pk_test_nowhere = (volatile int *)(size_t)64;

__attribute__((constructor, used)) void pk_test_crash_at_load(void) { *pk_test_nowhere = 1; }

static int analyze(const PkHostApi *api, void *state, int argc, const char *const *argv, char *err) {
    (void)api, (void)state, (void)argc, (void)argv, (void)err;
    return 0;
}

static const PkPluginDescriptor descriptor = {
    .abi_version = PROMPTKD_PLUGIN_ABI,
    .name = "crash_ctor",
    .description = "test: its constructor segfaults",
    .analyze = analyze,
};

const PkPluginDescriptor *promptkd_plugin_entry(void) { return &descriptor; }
