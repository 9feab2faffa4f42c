#include "common.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
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

int pk_write_file_atomic(const char *path, const void *data, size_t len, char *err) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 32);
    if (!tmp) return pk_errf(err, "%s: out of memory", path);
    snprintf(tmp, pl + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        pk_errf(err, "%s: cannot create the temporary file %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return PK_FAIL;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            pk_errf(err, "%s: write failed (temporary file %s): %s", path, tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return PK_FAIL;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        pk_errf(err, "%s: cannot flush (temporary file %s): %s", path, tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return PK_FAIL;
    }
    if (rename(tmp, path) != 0) {
        pk_errf(err, "%s: cannot rename into place: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return PK_FAIL;
    }
    free(tmp);
    return PK_OK;
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

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
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

long pk_utf8_invalid_at(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
        else return (long)i;
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (s[i + k] & 0xC0) != 0x80) return (long)i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return (long)i;
        i += n + 1;
    }
    return -1;
}
