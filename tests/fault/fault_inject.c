/* A fault injector for the write-failure tests: an LD_PRELOAD shared object that makes
 * chosen libc calls fail as a full disk or a failing device would. Not linked into
 * anything: tests/cli/test_write_failures.sh compiles it on the fly,
 *
 *   cc -shared -fPIC -O1 -o $TMP/fault_inject.so tests/fault/fault_inject.c -ldl
 *
 * and runs the program with LD_PRELOAD=$TMP/fault_inject.so (under AddressSanitizer the
 * ASan runtime must come first: LD_PRELOAD="$(libasan path):$TMP/fault_inject.so").
 *
 * Controlled by the environment (read once, at the first intercepted call):
 *   PK_FAULT_CALL     which calls fail: a comma-separated list of write, fwrite, fflush,
 *                     fsync, fdatasync, rename, close (unset: nothing is injected)
 *   PK_FAULT_PATH     only calls on paths matching this fnmatch(3) pattern (default "*"):
 *                     the file an fd or FILE* has open (/proc/self/fd), or either path
 *                     of a rename
 *   PK_FAULT_AFTER    this many matching calls succeed first (default 0)
 *   PK_FAULT_TIMES    then this many fail (default -1: every later one, a disk that stays full)
 *   PK_FAULT_ERRNO    ENOSPC, EIO, EDQUOT, EROFS, EACCES, EXDEV or a number (default ENOSPC
 *                     for write/fwrite/fflush, EIO for fsync/fdatasync/close/rename)
 *   PK_FAULT_PARTIAL  1: the first failing write(2) writes half its bytes and returns that
 *                     short count (as a filling disk does); the next one fails
 *   PK_FAULT_LOG      a file that gets one line per injected failure ("write /path errno"),
 *                     so a test can tell the fault really fired
 * A failing close(2) still closes the descriptor (as Linux does), then reports the error. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { F_WRITE, F_FWRITE, F_FFLUSH, F_FSYNC, F_FDATASYNC, F_RENAME, F_CLOSE, F_N };
static const char *const call_names[F_N] = {"write", "fwrite", "fflush", "fsync", "fdatasync", "rename", "close"};

static int g_ready;              /* the environment was read */
static int g_enabled[F_N];
static char g_pattern[1024] = "*";
static long g_after, g_times = -1;
static int g_errno;              /* 0: the default of each call */
static int g_partial;
static char g_log[1024];
static long g_matched, g_failed; /* updated with atomics: calls come from several threads */
static int g_partial_done;

static ssize_t (*real_write)(int, const void *, size_t);
static size_t (*real_fwrite)(const void *, size_t, size_t, FILE *);
static int (*real_fflush)(FILE *);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_close)(int);

static void *next_symbol(const char *name) {
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        static const char msg[] = "fault_inject: a libc symbol was not found\n";
        ssize_t (*w)(int, const void *, size_t) = dlsym(RTLD_NEXT, "write");
        if (w) w(2, msg, sizeof msg - 1);
        abort();
    }
    return p;
}

static int errno_named(const char *s) {
    static const struct {
        const char *name;
        int value;
    } names[] = {{"ENOSPC", ENOSPC}, {"EIO", EIO}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS}, {"EACCES", EACCES},
                 {"EXDEV", EXDEV},   {"EPERM", EPERM}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(s, names[i].name)) return names[i].value;
    return atoi(s);
}

static void setup(void) {
    if (__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE)) return;
    real_write = next_symbol("write");
    real_fwrite = next_symbol("fwrite");
    real_fflush = next_symbol("fflush");
    real_fsync = next_symbol("fsync");
    real_fdatasync = next_symbol("fdatasync");
    real_rename = next_symbol("rename");
    real_close = next_symbol("close");
    const char *calls = getenv("PK_FAULT_CALL");
    if (calls) {
        char list[256];
        snprintf(list, sizeof list, "%s", calls);
        for (char *tok = strtok(list, ", "); tok; tok = strtok(NULL, ", "))
            for (int i = 0; i < F_N; i++)
                if (!strcmp(tok, call_names[i])) g_enabled[i] = 1;
    }
    const char *v;
    if ((v = getenv("PK_FAULT_PATH")) && *v) snprintf(g_pattern, sizeof g_pattern, "%s", v);
    if ((v = getenv("PK_FAULT_AFTER"))) g_after = atol(v);
    if ((v = getenv("PK_FAULT_TIMES"))) g_times = atol(v);
    if ((v = getenv("PK_FAULT_ERRNO")) && *v) g_errno = errno_named(v);
    if ((v = getenv("PK_FAULT_PARTIAL"))) g_partial = atoi(v) != 0;
    if ((v = getenv("PK_FAULT_LOG")) && *v) snprintf(g_log, sizeof g_log, "%s", v);
    __atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
}

static int fd_path(int fd, char *out, size_t len) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, len - 1);
    if (n < 0) return -1;
    out[n] = 0;
    return 0;
}

static void log_failure(int call, const char *path, int err) {
    if (!g_log[0]) return;
    int fd = open(g_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    char line[1400];
    int n = snprintf(line, sizeof line, "%s %s %d\n", call_names[call], path, err);
    if (n > 0) real_write(fd, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1));
    real_close(fd);
}

/* 1 when this call must fail (it matched and its turn has come); fills *err. */
static int should_fail(int call, const char *path, const char *path2, int *err) {
    if (!g_enabled[call]) return 0;
    int match = (path && !fnmatch(g_pattern, path, 0)) || (path2 && !fnmatch(g_pattern, path2, 0));
    if (!match) return 0;
    long k = __atomic_add_fetch(&g_matched, 1, __ATOMIC_SEQ_CST);
    if (k <= g_after) return 0;
    if (g_times >= 0 && __atomic_add_fetch(&g_failed, 1, __ATOMIC_SEQ_CST) > g_times) return 0;
    *err = g_errno ? g_errno
                   : (call == F_WRITE || call == F_FWRITE || call == F_FFLUSH) ? ENOSPC : EIO;
    log_failure(call, path ? path : path2, *err);
    return 1;
}

static int fd_should_fail(int call, int fd, int *err) {
    if (!g_enabled[call]) return 0;
    char path[1024];
    if (fd_path(fd, path, sizeof path) != 0) return 0;
    return should_fail(call, path, NULL, err);
}

ssize_t write(int fd, const void *buf, size_t n) {
    setup();
    int err;
    if (n > 0 && fd_should_fail(F_WRITE, fd, &err)) {
        if (g_partial && n > 1 && !__atomic_exchange_n(&g_partial_done, 1, __ATOMIC_SEQ_CST)) {
            ssize_t w = real_write(fd, buf, n / 2); /* a short write: the disk filled up meanwhile */
            if (w >= 0) return w;
        }
        errno = err;
        return -1;
    }
    return real_write(fd, buf, n);
}

size_t fwrite(const void *ptr, size_t size, size_t nmemb, FILE *stream) {
    setup();
    int err;
    if (size && nmemb && fd_should_fail(F_FWRITE, fileno(stream), &err)) {
        errno = err;
        return 0;
    }
    return real_fwrite(ptr, size, nmemb, stream);
}

int fflush(FILE *stream) {
    setup();
    int err;
    if (stream != NULL && fd_should_fail(F_FFLUSH, fileno(stream), &err)) {
        errno = err;
        return EOF;
    }
    return real_fflush(stream);
}

int fsync(int fd) {
    setup();
    int err;
    if (fd_should_fail(F_FSYNC, fd, &err)) {
        errno = err;
        return -1;
    }
    return real_fsync(fd);
}

int fdatasync(int fd) {
    setup();
    int err;
    if (fd_should_fail(F_FDATASYNC, fd, &err)) {
        errno = err;
        return -1;
    }
    return real_fdatasync(fd);
}

int rename(const char *from, const char *to) {
    setup();
    int err;
    if (should_fail(F_RENAME, from, to, &err)) {
        errno = err;
        return -1;
    }
    return real_rename(from, to);
}

int close(int fd) {
    setup();
    int err;
    if (fd_should_fail(F_CLOSE, fd, &err)) {
        real_close(fd);
        errno = err;
        return -1;
    }
    return real_close(fd);
}
