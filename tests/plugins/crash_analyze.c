/* Test plugin: analyze writes through a wild pointer (SIGSEGV), or with an argument
 * calls exit(3) ("exit"), abort() ("abort") or never returns ("hang", or "closefds":
 * closes every descriptor, the pipe to the session included, then loops); "arm" returns
 * normally and makes the next on_step segfault. The session must report each, unload
 * the plugin and go on. "daemon" returns normally but leaves a grandchild sleeping
 * with the pipe open: the call must still end at once and the grandchild be killed. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "promptkd_plugin.h"

typedef struct {
    int armed;
} State;

static void crash(void) {
    /* a wild pointer (not NULL, which UBSan would catch first), volatile both ways: a real store */
    volatile int *volatile p = (volatile int *)(size_t)64;
    *p = 42;
}

static int on_step(const PkHostApi *api, void *state, const PkPluginStepInfo *info, char *err) {
    (void)api, (void)info, (void)err;
    if (((State *)state)->armed) crash();
    return 0;
}

static int analyze(const PkHostApi *api, void *state, int argc, const char *const *argv, char *err) {
    (void)err;
    if (argc == 1 && !strcmp(argv[0], "arm")) {
        ((State *)state)->armed = 1;
        return 0;
    }
    if (argc == 1 && !strcmp(argv[0], "daemon")) {
        pid_t pid = fork();
        if (pid == 0) {
            sleep(1000);
            _exit(0);
        }
        char line[64];
        snprintf(line, sizeof line, "grandchild %ld", (long)pid);
        api->log(api->host, line);
        return 0;
    }
    if (argc == 1 && !strcmp(argv[0], "closefds")) {
        for (int fd = 3; fd < 1024; fd++) close(fd);
        for (volatile unsigned long i = 0;; i++) {
        }
    }
    printf("crash_analyze: this line goes to stderr, not to the session's output\n");
    fflush(stdout);
    api->log(api->host, "about to crash");
    if (argc == 1 && !strcmp(argv[0], "exit")) exit(3);
    if (argc == 1 && !strcmp(argv[0], "abort")) abort();
    if (argc == 1 && !strcmp(argv[0], "hang"))
        for (volatile unsigned long i = 0;; i++) {
        }
    crash();
    return 0;
}

static const PkPluginDescriptor descriptor = {
    .abi_version = PROMPTKD_PLUGIN_ABI,
    .name = "crash_analyze",
    .description = "test: segfaults in analyze (or on_step once armed)",
    .state_size = sizeof(State),
    .on_step = on_step,
    .analyze = analyze,
};

const PkPluginDescriptor *promptkd_plugin_entry(void) { return &descriptor; }
