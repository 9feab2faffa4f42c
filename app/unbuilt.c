/* Commands not yet linked into this build answer with a clear message. */
#include <stdio.h>

#include "commands.h"

#define PK_WEAK_COMMAND(name, help)                                                          \
    __attribute__((weak)) int cmd_##name(int argc, char **argv) {                            \
        (void)argc;                                                                          \
        fprintf(stderr, "promptkd %s: not available in this build\n", argv[0]);              \
        return 2;                                                                            \
    }
PK_COMMAND_LIST(PK_WEAK_COMMAND)
