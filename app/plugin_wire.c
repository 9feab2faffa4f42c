#include "plugin_wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

const char *pw_phase_name(int phase) {
    switch (phase) {
    case PW_IN_DLOPEN: return "its constructors (dlopen)";
    case PW_IN_ENTRY: return PROMPTKD_PLUGIN_ENTRY;
    case PW_IN_ON_LOAD: return "on_load";
    case PW_IN_ANALYZE: return "analyze";
    case PW_IN_ON_STEP: return "on_step";
    case PW_IN_ON_UNLOAD: return "on_unload";
    case PW_IN_SENDING: return "its results";
    default: return "the child before loading";
    }
}

/* ---------------------------------------------------------------- writing */

static void put(PwBuf *b, const void *p, size_t n) {
    if (b->oom) return;
    if (n > ((size_t)-1) / 2 - b->len) {
        b->oom = 1;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        unsigned char *d = realloc(b->data, cap);
        if (!d) {
            b->oom = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
}

void pw_put_u32(PwBuf *b, uint32_t v) { put(b, &v, sizeof v); }
void pw_put_i32(PwBuf *b, int32_t v) { put(b, &v, sizeof v); }
void pw_put_u64(PwBuf *b, uint64_t v) { put(b, &v, sizeof v); }
void pw_put_f64(PwBuf *b, double v) { put(b, &v, sizeof v); }
void pw_put_bytes(PwBuf *b, const void *p, size_t n) { put(b, p, n); }
void pw_put_str(PwBuf *b, const char *s, size_t n) {
    if (n > UINT32_MAX) {
        b->oom = 1;
        return;
    }
    pw_put_u32(b, (uint32_t)n);
    put(b, s, n);
}

void pw_buf_free(PwBuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

int pw_write_frame(int fd, uint32_t type, const void *payload, size_t len) {
    if (len > UINT32_MAX) return -1;
    uint32_t hdr[2] = {type, (uint32_t)len};
    if (pk_write_all(fd, hdr, sizeof hdr)) return -1;
    return pk_write_all(fd, payload, len);
}

/* ---------------------------------------------------------------- reading */

int pw_valid_name(const char *s, size_t len, size_t max) {
    if (!s || len < 1 || len > max || s[0] == '.') return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return 0;
    }
    return 1;
}

int pw_printable(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) return 0;
    }
    return 1;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when invalid or a C1 control. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    uint32_t cp;
    int k = pk_utf8_decode((const char *)s, n, &cp);
    return k > 0 && !(cp >= 0x80 && cp <= 0x9f) ? (size_t)k : 0;
}

/* A NUL-terminated copy with control characters (tab: space) and bytes that are not
 * UTF-8 replaced by '?'. */
static char *clean_text(const unsigned char *s, size_t n) {
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(s + i, n - i);
        if (k == 0) {
            out[o++] = '?';
            i++;
        } else if (k == 1) {
            unsigned char c = s[i++];
            out[o++] = c == '\t' ? ' ' : (c < 0x20 || c == 0x7f) ? '?' : (char)c;
        } else {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        }
    }
    out[o] = 0;
    return out;
}

typedef struct {
    const unsigned char *p;
    size_t left;
} Rd;

static int rd(Rd *r, void *out, size_t n) {
    if (r->left < n) return -1;
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
    return 0;
}

/* A string field: *s points into the frame, *n its length. */
static int rd_str(Rd *r, const char **s, uint32_t *n) {
    if (rd(r, n, sizeof *n) || r->left < *n) return -1;
    *s = (const char *)r->p;
    r->p += *n;
    r->left -= *n;
    return 0;
}

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

static void free_item(PwItem *it) {
    free(it->name);
    free(it->series);
    if (it->cells) {
        for (size_t i = 0; i < (size_t)(it->n_rows + 1) * (size_t)it->n_cols; i++) free(it->cells[i]);
        free(it->cells);
    }
    free(it->x);
    free(it->y);
}

void pw_reply_free(PwReply *r) {
    for (int i = 0; i < r->n_items; i++) free_item(&r->items[i]);
    free(r->items);
    free(r->state);
    memset(r, 0, sizeof *r);
}

static PwItem *new_item(PwReply *r) {
    if (r->n_items == r->cap_items) {
        int cap = r->cap_items ? r->cap_items * 2 : 16;
        PwItem *it = realloc(r->items, sizeof *it * (size_t)cap);
        if (!it) return NULL;
        r->items = it;
        r->cap_items = cap;
    }
    PwItem *it = &r->items[r->n_items++];
    memset(it, 0, sizeof *it);
    return it;
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* chart + series names of SERIES and POINT frames */
static int rd_chart_series(Rd *f, PwItem *it, const char *what, char *err, size_t el) {
    const char *c, *s;
    uint32_t cn, sn;
    if (rd_str(f, &c, &cn) || rd_str(f, &s, &sn)) return fail(err, el, "%s frame cut short", what);
    if (!pw_valid_name(c, cn, PK_PLUGIN_NAME_MAX))
        return fail(err, el, "%s: chart name of %u bytes is not 1..%d letters, digits, '_', '-', '.'", what, cn,
                    PK_PLUGIN_NAME_MAX);
    if (sn < 1 || sn > PK_PLUGIN_SERIES_NAME_MAX || !pw_printable(s, sn))
        return fail(err, el, "%s: series name of %u bytes is not 1..%d printable bytes", what, sn,
                    PK_PLUGIN_SERIES_NAME_MAX);
    it->name = dup_bytes(c, cn);
    it->series = dup_bytes(s, sn);
    if (!it->name || !it->series) return fail(err, el, "out of memory");
    return 0;
}

static int parse_frame(uint32_t type, Rd *f, PwReply *r, char *err, size_t el) {
    switch (type) {
    case PW_PHASE: {
        uint32_t ph;
        if (rd(f, &ph, sizeof ph) || ph >= PW_N_PHASES) return fail(err, el, "PHASE frame malformed");
        r->phase = (int)ph;
        break;
    }
    case PW_DESC: {
        int32_t abi;
        uint32_t flags;
        uint64_t ss;
        const char *name, *desc;
        uint32_t nn, dn;
        if (r->have_desc) return fail(err, el, "a second descriptor");
        if (rd(f, &abi, sizeof abi) || rd(f, &flags, sizeof flags) || rd(f, &ss, sizeof ss) || rd_str(f, &name, &nn) ||
            rd_str(f, &desc, &dn))
            return fail(err, el, "descriptor frame cut short");
        if (abi != PROMPTKD_PLUGIN_ABI) return fail(err, el, "descriptor of ABI %d", (int)abi);
        if (flags & ~(uint32_t)(PW_HAS_ON_LOAD | PW_HAS_ON_UNLOAD | PW_HAS_ON_STEP))
            return fail(err, el, "descriptor flags 0x%x", (unsigned)flags);
        if (ss > PK_PLUGIN_MAX_STATE) return fail(err, el, "state_size %llu", (unsigned long long)ss);
        if (r->have_state && r->state_len != ss) return fail(err, el, "a state block before the descriptor");
        if (!pw_valid_name(name, nn, PK_PLUGIN_NAME_MAX)) return fail(err, el, "descriptor name malformed");
        if (dn > PK_PLUGIN_DESCRIPTION_MAX) return fail(err, el, "description of %u bytes", dn);
        char *d = clean_text((const unsigned char *)desc, dn);
        if (!d) return fail(err, el, "out of memory");
        snprintf(r->description, sizeof r->description, "%s", d);
        free(d);
        memcpy(r->name, name, nn);
        r->name[nn] = 0;
        r->abi = abi;
        r->flags = flags;
        r->state_size = (size_t)ss;
        r->have_desc = 1;
        break;
    }
    case PW_LOG: {
        const char *s;
        uint32_t n;
        if (rd_str(f, &s, &n)) return fail(err, el, "LOG frame cut short");
        if (n > PK_PLUGIN_LOG_MAX) return fail(err, el, "a log line of %u bytes (at most %d)", n, PK_PLUGIN_LOG_MAX);
        PwItem *it = new_item(r);
        if (!it) return fail(err, el, "out of memory");
        it->kind = PW_ITEM_LOG;
        if (!(it->name = clean_text((const unsigned char *)s, n))) return fail(err, el, "out of memory");
        break;
    }
    case PW_TABLE: {
        const char *name;
        uint32_t nn, cols, rows;
        if (rd_str(f, &name, &nn) || rd(f, &cols, sizeof cols) || rd(f, &rows, sizeof rows))
            return fail(err, el, "TABLE frame cut short");
        if (!pw_valid_name(name, nn, PK_PLUGIN_TABLE_NAME_MAX)) return fail(err, el, "table name malformed");
        if (cols < 1 || cols > PK_PLUGIN_MAX_COLS || rows > PK_PLUGIN_MAX_ROWS)
            return fail(err, el, "table of %u columns and %u rows", cols, rows);
        size_t n_cells = (size_t)(rows + 1) * cols;
        /* every cell needs at least its 4-byte length: refuse counts the frame cannot hold */
        if (n_cells > f->left / 4) return fail(err, el, "table frame shorter than its %zu cells", n_cells);
        PwItem *it = new_item(r);
        if (!it) return fail(err, el, "out of memory");
        it->kind = PW_ITEM_TABLE;
        it->n_cols = (int)cols;
        it->n_rows = (int)rows;
        it->name = dup_bytes(name, nn);
        it->cells = calloc(n_cells, sizeof *it->cells);
        if (!it->name || !it->cells) return fail(err, el, "out of memory");
        for (size_t i = 0; i < n_cells; i++) {
            const char *s;
            uint32_t n;
            if (rd_str(f, &s, &n)) return fail(err, el, "TABLE frame cut short at cell %zu", i);
            if (n > PK_PLUGIN_MAX_CELL) return fail(err, el, "a cell of %u bytes (at most %d)", n, PK_PLUGIN_MAX_CELL);
            if (!(it->cells[i] = clean_text((const unsigned char *)s, n))) return fail(err, el, "out of memory");
        }
        break;
    }
    case PW_SERIES: {
        PwItem *it = new_item(r);
        if (!it) return fail(err, el, "out of memory");
        it->kind = PW_ITEM_SERIES;
        if (rd_chart_series(f, it, "SERIES", err, el)) return -1;
        uint32_t n;
        if (rd(f, &n, sizeof n)) return fail(err, el, "SERIES frame cut short");
        if (n > PK_PLUGIN_MAX_POINTS) return fail(err, el, "a series of %u points (at most %d)", n, PK_PLUGIN_MAX_POINTS);
        if (f->left != (size_t)n * 2 * sizeof(double)) return fail(err, el, "SERIES frame is not %u points long", n);
        it->n = (int)n;
        it->x = malloc(sizeof(double) * (n ? n : 1));
        it->y = malloc(sizeof(double) * (n ? n : 1));
        if (!it->x || !it->y) return fail(err, el, "out of memory");
        rd(f, it->x, sizeof(double) * n);
        rd(f, it->y, sizeof(double) * n);
        break;
    }
    case PW_POINT: {
        PwItem *it = new_item(r);
        if (!it) return fail(err, el, "out of memory");
        it->kind = PW_ITEM_POINT;
        if (rd_chart_series(f, it, "POINT", err, el)) return -1;
        if (rd(f, &it->px, sizeof(double)) || rd(f, &it->py, sizeof(double))) return fail(err, el, "POINT frame cut short");
        break;
    }
    case PW_STATE: {
        if (r->have_state) return fail(err, el, "a second state block");
        if (f->left > PK_PLUGIN_MAX_STATE) return fail(err, el, "a state block of %zu bytes", f->left);
        if (r->have_desc && f->left != r->state_size)
            return fail(err, el, "a state block of %zu bytes, the descriptor said %zu", f->left, r->state_size);
        r->state = malloc(f->left ? f->left : 1);
        if (!r->state) return fail(err, el, "out of memory");
        r->state_len = f->left;
        rd(f, r->state, f->left);
        r->have_state = 1;
        break;
    }
    case PW_RESULT: {
        int32_t rc;
        uint32_t refused;
        const char *s;
        uint32_t n;
        if (rd(f, &rc, sizeof rc) || rd(f, &refused, sizeof refused) || rd_str(f, &s, &n))
            return fail(err, el, "RESULT frame cut short");
        if (refused > 1 || n >= PK_PLUGIN_ERR_LEN) return fail(err, el, "RESULT frame malformed");
        char *e = clean_text((const unsigned char *)s, n);
        if (!e) return fail(err, el, "out of memory");
        snprintf(r->err, sizeof r->err, "%s", e);
        free(e);
        r->rc = rc;
        r->refused = (int)refused;
        r->have_result = 1;
        break;
    }
    default: return fail(err, el, "a frame of unknown type %u", type);
    }
    if (f->left) return fail(err, el, "%zu stray bytes after a frame of type %u", f->left, type);
    return 0;
}

int pw_parse(const unsigned char *buf, size_t len, PwReply *r, char *err, size_t err_len) {
    memset(r, 0, sizeof *r);
    if (len > (size_t)PK_PLUGIN_MAX_OUTPUT)
        return fail(err, err_len, "more than %d MiB of output", PK_PLUGIN_MAX_OUTPUT >> 20);
    size_t off = 0;
    while (off < len) {
        if (r->have_result) return fail(err, err_len, "frames after the result");
        if (len - off < PW_HEADER_LEN) return fail(err, err_len, "a frame header cut short");
        uint32_t hdr[2];
        memcpy(hdr, buf + off, sizeof hdr);
        off += PW_HEADER_LEN;
        if (hdr[1] > len - off) return fail(err, err_len, "a frame of %u bytes cut short", hdr[1]);
        Rd f = {buf + off, hdr[1]};
        off += hdr[1];
        if (parse_frame(hdr[0], &f, r, err, err_len)) return -1;
    }
    return 0;
}
