#include "common.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int pk_errf(char *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, PK_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return PK_FAIL;
}

void *pk_malloc(size_t n, char *err) {
    void *p = malloc(n ? n : 1);
    if (!p) pk_errf(err, "out of memory allocating %zu bytes", n);
    return p;
}

void *pk_calloc(size_t count, size_t size, char *err) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) pk_errf(err, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

int pk_read_file(const char *path, char **out, size_t *len, char *err) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return pk_errf(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
        fclose(f);
        return pk_errf(err, "%s: not a regular file", path);
    }
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return pk_errf(err, "%s: out of memory reading %zu bytes", path, cap);
    }
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return pk_errf(err, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        return pk_errf(err, "%s: read error", path);
    }
    fclose(f);
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return PK_OK;
}

int pk_write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        if (w == 0) { /* no progress and no reason given: the disk is full */
            errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int pk_write_atomic(const char *path, PkFileFill fill, void *ctx, char *err) {
    /* the temporary's name carries the process id, so a later write can tell one a crash left */
    pk_clean_stale_temp_files(path);
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 40);
    if (!tmp) return pk_errf(err, "%s: out of memory", path);
    snprintf(tmp, pl + 40, "%s.tmp.%ld.XXXXXX", path, (long)getpid());
    int fd = mkstemp(tmp);
    if (fd < 0) {
        pk_errf(err, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        free(tmp);
        return PK_FAIL;
    }
    int rc = PK_OK;
    if (fchmod(fd, 0644) != 0 || fill(ctx, fd) != 0)
        rc = pk_errf(err, "%s: write failed: %s", path, strerror(errno));
    else if (fsync(fd) != 0)
        rc = pk_errf(err, "%s: cannot flush to disk (fsync): %s", path, strerror(errno));
    if (close(fd) != 0 && rc == PK_OK) rc = pk_errf(err, "%s: cannot close: %s", path, strerror(errno));
    if (rc == PK_OK && rename(tmp, path) != 0)
        rc = pk_errf(err, "%s: cannot rename into place: %s", path, strerror(errno));
    if (rc != PK_OK) unlink(tmp);
    free(tmp);
    return rc;
}

typedef struct {
    const void *data;
    size_t len;
} BytesToWrite;

static int fill_bytes(void *ctx, int fd) {
    const BytesToWrite *b = ctx;
    return pk_write_all(fd, b->data, b->len);
}

int pk_write_file_atomic(const char *path, const void *data, size_t len, char *err) {
    BytesToWrite b = {data, len};
    return pk_write_atomic(path, fill_bytes, &b, err);
}

int pk_write_json_atomic(const char *path, const cJSON *root, char *err) {
    char *text = root ? cJSON_Print(root) : NULL;
    if (!text) return pk_errf(err, "%s: out of memory formatting JSON", path);
    PkBuf b = {0};
    int rc = pk_buf_printf(&b, "%s\n", text);
    cJSON_free(text);
    if (rc != PK_OK) {
        pk_buf_free(&b);
        return pk_errf(err, "%s: out of memory", path);
    }
    rc = pk_write_file_atomic(path, b.data, b.len, err);
    pk_buf_free(&b);
    return rc;
}

int pk_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char child[4096];
        if (snprintf(child, sizeof child, "%s/%s", path, de->d_name) >= (int)sizeof child) {
            rc = -1;
            continue;
        }
        if (pk_remove_tree(child) != 0) rc = -1;
    }
    closedir(d);
    if (rmdir(path) != 0) rc = -1;
    return rc;
}

int pk_mkdirs(const char *path, char *err) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return pk_errf(err, "%s: bad folder path", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return pk_errf(err, "%s: cannot create folder: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    if (!pk_is_dir(path)) return pk_errf(err, "%s: exists and is not a folder", path);
    return PK_OK;
}

int pk_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int pk_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int pk_path_join(char *out, size_t outlen, const char *dir, const char *name, char *err) {
    size_t dl = strlen(dir);
    int need_slash = dl > 0 && dir[dl - 1] != '/';
    int w = snprintf(out, outlen, "%s%s%s", dir, need_slash ? "/" : "", name);
    if (w < 0 || (size_t)w >= outlen) return pk_errf(err, "%s/%s: path too long", dir, name);
    return PK_OK;
}

int pk_next_line(const char *text, size_t len, size_t *pos, size_t *start, size_t *line_len) {
    if (*pos >= len) return 0;
    const char *s = text + *pos, *nl = memchr(s, '\n', len - *pos);
    size_t n = nl ? (size_t)(nl - s) : len - *pos;
    *start = *pos;
    *pos += n + (nl ? 1 : 0);
    if (n > 0 && s[n - 1] == '\r') n--;
    *line_len = n;
    return 1;
}

int pk_buf_append(PkBuf *b, const void *data, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1) nc *= 2;
        char *nd = realloc(b->data, nc);
        if (!nd) return PK_FAIL;
        b->data = nd;
        b->cap = nc;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
    return PK_OK;
}

int pk_buf_printf(PkBuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return PK_FAIL;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + (size_t)n + 1) nc *= 2;
        char *nd = realloc(b->data, nc);
        if (!nd) return PK_FAIL;
        b->data = nd;
        b->cap = nc;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return PK_OK;
}

void pk_buf_free(PkBuf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

uint64_t pk_mix64(uint64_t x) {
    uint64_t z = x + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int pk_line_of(const char *text, size_t pos) {
    int line = 1;
    for (size_t i = 0; i < pos; i++)
        if (text[i] == '\n') line++;
    return line;
}

/* SplitMix64 as a generator: the state steps by 0x9e37..., each output mixes the state before it. */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = pk_mix64(*x);
    *x += 0x9e3779b97f4a7c15ULL;
    return z;
}

void pk_rng_seed(PkRng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t pk_rng_u64(PkRng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float pk_rng_float(PkRng *r) { return (float)(pk_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

double pk_rng_double(PkRng *r) { return (double)(pk_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t pk_rng_below(PkRng *r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = pk_rng_u64(r);
    while (x >= limit);
    return x % n;
}

double pk_rng_normal(PkRng *r) {
    double u1 = pk_rng_double(r), u2 = pk_rng_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void pk_rng_shuffle_int(PkRng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)pk_rng_below(r, (uint64_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

double pk_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double pk_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

long pk_json_escaped_nul_at(const char *s, size_t len) {
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && i + 5 < len && !memcmp(s + i + 2, "0000", 4)) return (long)i;
        i++; /* the escaped character */
    }
    return -1;
}

int pk_utf8_decode(const char *str, size_t n, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    /* the second byte's range excludes overlong forms, surrogates and values above U+10FFFF */
    int len;
    uint32_t v;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *cp = 0xFFFD;
        return -1;
    }
    int k = 1;
    for (; k < len && (size_t)k < n; k++) {
        unsigned b = s[k];
        if (k == 1 ? b < lo || b > hi : (b & 0xC0) != 0x80) break;
        v = (v << 6) | (b & 0x3F);
    }
    if (k < len) {
        *cp = 0xFFFD;
        return -k;
    }
    *cp = v;
    return len;
}

int pk_utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

long pk_utf8_invalid_at(const char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int n = pk_utf8_decode(s + i, len - i, &cp);
        if (n < 0) return (long)i;
        i += (size_t)n;
    }
    return -1;
}

/* ---------------------------------------------------------------- temporaries and model folders */

int pk_pid_alive(long pid) {
    if (pid <= 0 || pid > INT_MAX) return 0;
    if (kill((pid_t)pid, 0) == 0) return 1;
    return errno == EPERM;
}

/* `name` is `base` + `mid` + PID, where mid is ".tmp." or ".old."; with `suffix` also
 * + "." + 6 letters or digits (pk_write_atomic's mkstemp part). Returns PID, or 0 when it is not. */
static long temp_pid(const char *name, const char *base, const char *mid, int suffix) {
    size_t bl = strlen(base), ml = strlen(mid);
    if (strncmp(name, base, bl) != 0 || strncmp(name + bl, mid, ml) != 0) return 0;
    const char *p = name + bl + ml;
    long pid = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (++digits > 9) return 0;
        pid = pid * 10 + (*p++ - '0');
    }
    if (digits == 0 || pid <= 0) return 0;
    if (*p == 0) return pid;
    if (!suffix || *p++ != '.') return 0;
    for (int i = 0; i < 6; i++, p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) return 0;
    return *p == 0 ? pid : 0;
}

/* A temporary of a dead process: not ours, and no process with that id. */
static int pid_stale(long pid) { return pid > 0 && pid != (long)getpid() && !pk_pid_alive(pid); }

/* Splits a path into its folder ("." when none) and its last component. */
static int split_path(const char *path, char *dir, size_t dirlen, const char **name) {
    const char *slash = strrchr(path, '/');
    *name = slash ? slash + 1 : path;
    int w;
    if (!slash) w = snprintf(dir, dirlen, ".");
    else if (slash == path) w = snprintf(dir, dirlen, "/");
    else w = snprintf(dir, dirlen, "%.*s", (int)(slash - path), path);
    return w > 0 && (size_t)w < dirlen ? 0 : -1;
}

void pk_clean_stale_temp_files(const char *path) {
    char dir[4096];
    const char *name;
    if (split_path(path, dir, sizeof dir, &name) != 0 || !*name) return;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid = temp_pid(e->d_name, name, ".tmp.", 1);
        if (!pid_stale(pid)) continue;
        char child[4400];
        struct stat st;
        if (snprintf(child, sizeof child, "%s/%s", dir, e->d_name) >= (int)sizeof child) continue;
        if (lstat(child, &st) == 0 && S_ISREG(st.st_mode)) unlink(child);
    }
    closedir(d);
}

static const char *const model_files[] = {"config.json", "model.safetensors", "prompt.safetensors",
                                          "state.safetensors", "run_config.json"};
#define N_MODEL_FILES ((int)(sizeof model_files / sizeof *model_files))

/* 1: one of the model files; 2: a temporary of one (*pid its process, 0 for an older promptkd's
 * random suffix); 0: anything else. */
static int model_entry_kind(const char *name, long *pid) {
    *pid = 0;
    for (int i = 0; i < N_MODEL_FILES; i++) {
        if (!strcmp(name, model_files[i])) return 1;
        if ((*pid = temp_pid(name, model_files[i], ".tmp.", 1)) > 0) return 2;
        size_t l = strlen(model_files[i]);
        if (!strncmp(name, model_files[i], l) && !strncmp(name + l, ".tmp.", 5)) {
            const char *p = name + l + 5; /* an older promptkd: mkstemp's 6 letters or digits */
            int n = 0;
            while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) p++, n++;
            if (n == 6 && *p == 0) return 2;
        }
    }
    return 0;
}

/* config.json of a model folder must be a GPT-2 config (what gpt2_save writes). */
static int check_model_config(const char *dir, const char *path, char *err) {
    struct stat st;
    if (stat(path, &st) != 0 || st.st_size > (1 << 20))
        return pk_errf(err, "%s: not a promptkd model folder: its config.json is not a GPT-2 config; nothing was "
                            "changed: choose a new or empty folder", dir);
    char *text = NULL;
    size_t len = 0;
    char e2[PK_ERR_LEN];
    if (pk_read_file(path, &text, &len, e2) != PK_OK)
        return pk_errf(err, "%s: cannot read its config.json to check it is a model folder: %s", dir, e2);
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *mt = root ? cJSON_GetObjectItemCaseSensitive(root, "model_type") : NULL;
    int ok = cJSON_IsObject(root) && cJSON_IsString(mt) && !strcmp(mt->valuestring, "gpt2");
    cJSON_Delete(root);
    if (!ok)
        return pk_errf(err, "%s: not a promptkd model folder: its config.json is not a GPT-2 config (model_type "
                            "\"gpt2\"); nothing was changed: choose a new or empty folder", dir);
    return PK_OK;
}

/* Checks the entries of a folder: only model files (complete: config.json and model.safetensors
 * present when the folder is not empty) and temporaries of processes that are gone. */
static int scan_model_folder(const char *dir, int need_complete, char *err) {
    DIR *d = opendir(dir);
    if (!d) return pk_errf(err, "%s: cannot read the folder: %s", dir, strerror(errno));
    int has_config = 0, has_model = 0, any = 0, rc = PK_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        any = 1;
        char child[4400];
        struct stat st;
        long pid = 0;
        int kind = model_entry_kind(e->d_name, &pid);
        int fits = snprintf(child, sizeof child, "%s/%s", dir, e->d_name) < (int)sizeof child;
        int lst = fits ? lstat(child, &st) : -1;
        if (kind == 0 || lst != 0 || !S_ISREG(st.st_mode)) {
            const char *what = lst != 0 ? "the entry" : S_ISDIR(st.st_mode) ? "the folder"
                                                      : S_ISLNK(st.st_mode) ? "the symbolic link"
                                                      : S_ISREG(st.st_mode) ? "the file" : "the special file";
            rc = pk_errf(err, "%s: not a promptkd model folder: it holds %s '%.120s'%s, and a model folder holds "
                              "only " PK_MODEL_FOLDER_FILES "; nothing was changed: choose a new or empty folder",
                         dir, what, e->d_name, kind ? " (not a regular file)" : "");
            break;
        }
        if (kind == 2 && pid > 0 && pid != (long)getpid() && pk_pid_alive(pid)) {
            rc = pk_errf(err, "%s: process %ld is writing '%.120s' in it; nothing was changed", dir, pid, e->d_name);
            break;
        }
        if (kind == 1 && !strcmp(e->d_name, "config.json")) has_config = 1;
        if (kind == 1 && !strcmp(e->d_name, "model.safetensors")) has_model = 1;
    }
    closedir(d);
    if (rc != PK_OK || !need_complete || !any) return rc;
    if (!has_config || !has_model)
        return pk_errf(err, "%s: not a complete promptkd model folder: it has no %s; nothing was changed: choose a "
                            "new or empty folder", dir, has_config ? "model.safetensors" : "config.json");
    char path[4400];
    snprintf(path, sizeof path, "%s/config.json", dir);
    return check_model_config(dir, path, err);
}

/* Removes the model files (and their temporaries) of a folder, then the folder; never anything
 * else: a folder that holds another entry stays. 0 when the folder is gone. */
static int remove_model_folder(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid;
        if (!model_entry_kind(e->d_name, &pid)) continue;
        char child[4400];
        struct stat st;
        if (snprintf(child, sizeof child, "%s/%s", dir, e->d_name) >= (int)sizeof child) continue;
        if (lstat(child, &st) == 0 && S_ISREG(st.st_mode)) unlink(child);
    }
    closedir(d);
    return rmdir(dir);
}

int pk_model_folder_check(const char *path, char *err) {
    /* "link/" would make lstat follow the link: the folder is looked at without trailing slashes */
    char dir[4096];
    size_t dl = strlen(path);
    while (dl > 1 && path[dl - 1] == '/') dl--;
    if (dl == 0 || dl >= sizeof dir) return pk_errf(err, "model folder name '%.200s' is empty or too long", path);
    memcpy(dir, path, dl);
    dir[dl] = 0;
    struct stat st;
    if (lstat(dir, &st) != 0) {
        if (errno == ENOENT) return PK_OK;
        return pk_errf(err, "%s: cannot use it as a model folder: %s", dir, strerror(errno));
    }
    if (S_ISLNK(st.st_mode))
        return pk_errf(err, "%s: is a symbolic link; a model folder is written as a real folder: give a new name or "
                            "the folder the link points to", dir);
    if (!S_ISDIR(st.st_mode)) return pk_errf(err, "%s: exists and is not a folder; nothing was changed", dir);
    return scan_model_folder(dir, 1, err);
}

/* A folder name ending in ".tmp.PID" or ".old.PID": the PID, else 0. */
static long folder_temp_pid(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot || dot - name < 5 || (strncmp(dot - 4, ".tmp", 4) != 0 && strncmp(dot - 4, ".old", 4) != 0)) return 0;
    char base[300];
    size_t bl = (size_t)(dot - 4 - name);
    if (bl >= sizeof base) return 0;
    memcpy(base, name, bl);
    base[bl] = 0;
    long pid = temp_pid(name, base, ".tmp.", 0);
    return pid ? pid : temp_pid(name, base, ".old.", 0);
}

/* Removes the temporary folders of model-folder writes whose process is gone: NAME.tmp.PID and
 * NAME.old.PID beside the target (any NAME: a checkpoint step-N.tmp.PID is left by a write that
 * the next ones, to step-M, never repeat), and the target's own DIR.tmp and DIR.old that an
 * older promptkd left. Each only when it is a real folder holding nothing but model files. */
static void clean_stale_folder_temps(const char *parent, const char *name) {
    DIR *d = opendir(parent);
    if (!d) return;
    char **found = NULL;
    int n = 0, cap = 0;
    size_t nl = strlen(name);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *tail = !strncmp(e->d_name, name, nl) ? e->d_name + nl : "";
        int legacy = !strcmp(tail, ".tmp") || !strcmp(tail, ".old");
        if (!legacy && !pid_stale(folder_temp_pid(e->d_name))) continue;
        if (n == cap) {
            int nc = cap ? 2 * cap : 8;
            char **nf = realloc(found, (size_t)nc * sizeof *nf);
            if (!nf) break;
            found = nf, cap = nc;
        }
        if (!(found[n] = strdup(e->d_name))) break;
        n++;
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        char child[4400], e2[PK_ERR_LEN];
        struct stat st;
        if (snprintf(child, sizeof child, "%s/%s", parent, found[i]) < (int)sizeof child && lstat(child, &st) == 0 &&
            S_ISDIR(st.st_mode) && scan_model_folder(child, 0, e2) == PK_OK)
            remove_model_folder(child);
        free(found[i]);
    }
    free(found);
}

/* 0 when `path` is absent, or was a folder of model files only (a temporary of this process
 * from an earlier failed write) and is gone now. */
static int clear_own_temp(const char *path) {
    struct stat st;
    char e2[PK_ERR_LEN];
    if (lstat(path, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode) || scan_model_folder(path, 0, e2) != PK_OK) return -1;
    return remove_model_folder(path);
}

static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int pk_model_folder_write(const char *dir, PkFolderFill fill, void *ctx, char *err) {
    char base[4096], parent[4096], tmp[4200], old[4200];
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    if (dl == 0 || dl >= sizeof base) return pk_errf(err, "model folder name '%.200s' is empty or too long", dir);
    memcpy(base, dir, dl);
    base[dl] = 0;
    const char *name;
    if (split_path(base, parent, sizeof parent, &name) != 0) return pk_errf(err, "%.200s: path too long", dir);
    if (!*name || !strcmp(name, ".") || !strcmp(name, "..") || !strcmp(base, "/"))
        return pk_errf(err, "%s: name the model folder itself (not '.', '..' or '/')", dir);
    if (pk_model_folder_check(base, err) != PK_OK) return PK_FAIL;
    if (!pk_is_dir(parent) && pk_mkdirs(parent, err) != PK_OK) return PK_FAIL;
    clean_stale_folder_temps(parent, name);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", base, (long)getpid());
    snprintf(old, sizeof old, "%s.old.%ld", base, (long)getpid());
    struct stat st;
    /* ours from an earlier failed attempt of this process */
    if (clear_own_temp(tmp) != 0)
        return pk_errf(err, "%s: the temporary folder %s is in the way; nothing was changed", dir, tmp);
    if (mkdir(tmp, 0755) != 0)
        return pk_errf(err, "%s: cannot create the temporary folder %s: %s", dir, tmp, strerror(errno));
    if (fill(ctx, tmp, err) != PK_OK) {
        remove_model_folder(tmp);
        return PK_FAIL;
    }
    /* the target may have changed while the files were written */
    if (pk_model_folder_check(base, err) != PK_OK) {
        remove_model_folder(tmp);
        return PK_FAIL;
    }
    int had = lstat(base, &st) == 0;
    if (had) {
        if (clear_own_temp(old) != 0) {
            remove_model_folder(tmp);
            return pk_errf(err, "%s: the temporary folder %s is in the way; nothing was changed", dir, old);
        }
        if (rename(base, old) != 0) {
            int en = errno;
            remove_model_folder(tmp);
            return pk_errf(err, "%s: cannot move the previous folder aside: %s", dir, strerror(en));
        }
    }
    if (rename(tmp, base) != 0) {
        int en = errno;
        if (had) rename(old, base);
        remove_model_folder(tmp);
        return pk_errf(err, "%s: cannot rename the new folder into place: %s", dir, strerror(en));
    }
    /* only model files go: anything that appeared in the old folder meanwhile stays, in DIR.old.PID */
    if (had) remove_model_folder(old);
    fsync_dir(parent);
    return PK_OK;
}

int pk_canonical_path(const char *path, char *out, size_t outlen, char *err) {
    char abs[8192], probe[8192], tail[8192] = "";
    if (!*path) return pk_errf(err, "an empty path");
    if (path[0] == '/') {
        if (snprintf(abs, sizeof abs, "%s", path) >= (int)sizeof abs)
            return pk_errf(err, "%.200s: path too long", path);
    } else {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd)) return pk_errf(err, "cannot read the current folder: %s", strerror(errno));
        if (snprintf(abs, sizeof abs, "%s/%s", cwd, path) >= (int)sizeof abs)
            return pk_errf(err, "%.200s: path too long", path);
    }
    snprintf(probe, sizeof probe, "%s", abs);
    char *real = NULL;
    for (;;) {
        real = realpath(probe, NULL);
        if (real) break;
        if (errno != ENOENT && errno != ENOTDIR)
            return pk_errf(err, "%.200s: cannot resolve the path: %s", path, strerror(errno));
        char *slash = strrchr(probe, '/');
        if (!slash) return pk_errf(err, "%.200s: cannot resolve the path", path);
        char t2[8192];
        if (snprintf(t2, sizeof t2, "%s/%s", slash + 1, tail) >= (int)sizeof t2)
            return pk_errf(err, "%.200s: path too long", path);
        snprintf(tail, sizeof tail, "%s", t2);
        if (slash == probe) probe[1] = 0;
        else *slash = 0;
    }
    int w = snprintf(out, outlen, "%s", real);
    free(real);
    if (w < 0 || (size_t)w >= outlen) return pk_errf(err, "%.200s: path too long", path);
    size_t n = (size_t)w;
    for (char *save = NULL, *c = strtok_r(tail, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (!strcmp(c, ".")) continue;
        if (!strcmp(c, "..")) {
            char *slash = strrchr(out, '/');
            if (slash && slash != out) *slash = 0, n = (size_t)(slash - out);
            else out[1] = 0, n = 1;
            continue;
        }
        int ww = snprintf(out + n, outlen - n, "%s%s", n > 1 ? "/" : "", c);
        if (ww < 0 || (size_t)ww >= outlen - n) return pk_errf(err, "%.200s: path too long", path);
        n += (size_t)ww;
    }
    return PK_OK;
}

/* What the engine writes in a run folder. */
static const char *const run_owned[] = {"config.json", "metrics.jsonl", "checkpoints", "best", "best.json",
                                        "plots", "eval"};

static int is_run_folder(const char *dir) {
    char p[4400];
    if (snprintf(p, sizeof p, "%s/metrics.jsonl", dir) >= (int)sizeof p || !pk_file_exists(p)) return 0;
    snprintf(p, sizeof p, "%s/checkpoints", dir);
    return pk_is_dir(p);
}

/* D and R canonical. */
static int check_run_conflict(const char *shown, const char *D, const char *R, char *err) {
    size_t dl = strlen(D), rl = strlen(R);
    if (!strcmp(D, R))
        return pk_errf(err, "%s is the run folder itself%s%s%s, which holds the run's config.json, metrics.jsonl and "
                            "checkpoints; nothing was changed: save to a new folder outside it (`save` without a "
                            "folder writes the run's own checkpoints/step-N)",
                       shown, strcmp(shown, R) ? " (" : "", strcmp(shown, R) ? R : "", strcmp(shown, R) ? ")" : "");
    if (dl < rl && !strncmp(R, D, dl) && (R[dl] == '/' || (dl == 1 && D[0] == '/')))
        return pk_errf(err, "%s holds the run folder %s; nothing was changed: save to a new folder outside it", shown,
                       R);
    if (dl > rl && !strncmp(D, R, rl) && D[rl] == '/') {
        const char *c = D + rl + 1;
        size_t cl = strcspn(c, "/");
        for (size_t i = 0; i < sizeof run_owned / sizeof *run_owned; i++)
            if (strlen(run_owned[i]) == cl && !strncmp(c, run_owned[i], cl))
                return pk_errf(err, "%s is inside the run folder %s, in %s%s which the engine writes; nothing was "
                                    "changed: save to a folder outside the run folder (`save` without a folder writes "
                                    "the run's own checkpoints/step-N)",
                               shown, R, run_owned[i], strchr(run_owned[i], '.') ? "," : "/,");
    }
    return PK_OK;
}

int pk_run_folder_conflict(const char *dir, const char *run_path, char *err) {
    char D[4096], R[4096];
    if (pk_canonical_path(dir, D, sizeof D, err) != PK_OK) return PK_FAIL;
    if (run_path && *run_path && pk_canonical_path(run_path, R, sizeof R, err) == PK_OK &&
        check_run_conflict(dir, D, R, err) != PK_OK)
        return PK_FAIL;
    /* any run folder above (or at) the target, live or not */
    snprintf(R, sizeof R, "%s", D);
    for (;;) {
        if (is_run_folder(R) && check_run_conflict(dir, D, R, err) != PK_OK) return PK_FAIL;
        char *slash = strrchr(R, '/');
        if (!slash || (slash == R && !R[1])) break;
        if (slash == R) R[1] = 0;
        else *slash = 0;
    }
    return PK_OK;
}
