/* GPT-2 byte-level BPE, exact to tiktoken's "gpt2" encoding, and a BPE trainer that writes the same
 * two files (vocab.json, merges.txt).
 *
 * Encoding, as tiktoken does it:
 *   1. split the text at "<|endoftext|>" (when allowed; the special token is emitted as its id);
 *   2. pre-tokenise each segment with GPT-2's regex
 *        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *      implemented by hand over code point classes (letter, number, space, other); \s is
 *      JavaScript's, as in the JS port that produced the reference encodings;
 *   3. a piece that is itself a token is that token; otherwise byte-level BPE: repeatedly merge the
 *      adjacent pair whose concatenation has the lowest merge rank, leftmost first.
 * The rank of a token string is the index of the first merges.txt line producing it; for GPT-2 that
 * order equals the vocabulary id order tiktoken ranks by. */
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "unicode_tables.h"

#define TOK_SPECIAL "<|endoftext|>"
#define TOK_NO_RANK INT_MAX
#define TOK_CACHE_SLOTS (1u << 16)          /* power of two */
#define TOK_CACHE_MAX_ENTRIES (1u << 15)    /* cleared when full, so the load stays <= 1/2 */
#define TOK_CACHE_MAX_PIECE 128             /* longer pieces are rare; not worth caching */

/* ---------------------------------------------------------------------------------------------
 * GPT-2's byte <-> unicode alphabet: printable bytes map to themselves, the other 68 bytes to
 * U+0100.. in increasing byte order. Byte token ids 0..255 follow the same order (printable first). */

typedef struct {
    uint32_t byte_to_cp[256];
    int cp_to_byte[324];     /* -1 where the code point is not in the alphabet */
    int byte_token_order[256]; /* id -> byte, as GPT-2's vocab.json orders the 256 byte tokens */
} ByteAlphabet;

static int byte_is_printable(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); }

static void byte_alphabet_init(ByteAlphabet *a) {
    int n = 0, k = 0;
    for (int i = 0; i < 324; i++) a->cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        if (byte_is_printable(b)) {
            a->byte_to_cp[b] = (uint32_t)b;
            a->byte_token_order[k++] = b;
        } else {
            a->byte_to_cp[b] = 256u + (uint32_t)n++;
        }
        a->cp_to_byte[a->byte_to_cp[b]] = b;
    }
    for (int b = 0; b < 256; b++)
        if (!byte_is_printable(b)) a->byte_token_order[k++] = b;
}

/* ---------------------------------------------------------------------------------------------
 * Code point classes (UTF-8 is decoded by pk_utf8_decode, common.h). */

enum { CLS_OTHER = 0, CLS_LETTER = 1, CLS_NUMBER = 2, CLS_SPACE = 3 };

static int in_ranges(const PkUnicodeRange *r, int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid].first) hi = mid - 1;
        else if (cp > r[mid].last) lo = mid + 1;
        else return 1;
    }
    return 0;
}

static int codepoint_class(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CLS_LETTER;
        if (cp >= '0' && cp <= '9') return CLS_NUMBER;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CLS_SPACE;
        return CLS_OTHER;
    }
    if (in_ranges(pk_unicode_letters, pk_unicode_letters_count, cp)) return CLS_LETTER;
    if (in_ranges(pk_unicode_numbers, pk_unicode_numbers_count, cp)) return CLS_NUMBER;
    if (in_ranges(pk_unicode_spaces, pk_unicode_spaces_count, cp)) return CLS_SPACE;
    return CLS_OTHER;
}

/* ---------------------------------------------------------------------------------------------
 * Pre-tokenisation: GPT-2's regex over characters. Invalid UTF-8 bytes are one "other" character
 * each. Calls emit(ctx, start, end) for each piece (byte offsets into text). */

typedef struct {
    unsigned char *cls;  /* [n_chars] */
    unsigned char *ascii; /* [n_chars] the character when ASCII, else 0 */
    size_t *offset;      /* [n_chars + 1] byte offset of each character */
    size_t cap;
} CharScratch;

static int char_scratch_reserve(CharScratch *cs, size_t n, char *err) {
    if (n <= cs->cap) return PK_OK;
    size_t cap = n < 256 ? 256 : n;
    unsigned char *cls = realloc(cs->cls, cap);
    if (cls) cs->cls = cls;
    unsigned char *ascii = realloc(cs->ascii, cap);
    if (ascii) cs->ascii = ascii;
    size_t *offset = realloc(cs->offset, (cap + 1) * sizeof(size_t));
    if (offset) cs->offset = offset;
    if (!cls || !ascii || !offset) return pk_errf(err, "out of memory while splitting %zu bytes of text", n);
    cs->cap = cap;
    return PK_OK;
}

static void char_scratch_free(CharScratch *cs) {
    free(cs->cls);
    free(cs->ascii);
    free(cs->offset);
    memset(cs, 0, sizeof *cs);
}

typedef int (*PieceFn)(void *ctx, const char *piece, size_t len, char *err);

static int pretokenize(const char *text, size_t len, CharScratch *cs, PieceFn emit, void *ctx, char *err) {
    if (len == 0) return PK_OK;
    if (char_scratch_reserve(cs, len, err) != PK_OK) return PK_FAIL;
    size_t nc = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int n = pk_utf8_decode(text + i, len - i, &cp);
        cs->offset[nc] = i;
        if (n < 0) { /* an invalid byte: a character of its own, neither letter, number nor space */
            cs->cls[nc] = CLS_OTHER;
            cs->ascii[nc] = 0;
            i += 1;
        } else {
            cs->cls[nc] = (unsigned char)codepoint_class(cp);
            cs->ascii[nc] = cp < 0x80 ? (unsigned char)cp : 0;
            i += (size_t)n;
        }
        nc++;
    }
    cs->offset[nc] = len;
    const unsigned char *cls = cs->cls, *ascii = cs->ascii;
    size_t i = 0;
    while (i < nc) {
        size_t end = 0;
        unsigned char c = ascii[i];
        if (c == '\'' && i + 1 < nc) { /* 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, ASCII apostrophe) */
            unsigned char a = ascii[i + 1], b = i + 2 < nc ? ascii[i + 2] : 0;
            if (a == 's' || a == 't' || a == 'm' || a == 'd') end = i + 2;
            else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) end = i + 3;
        }
        if (!end) {
            int k = cls[i];
            size_t j = i;
            /* " ?X+": a single ASCII space joins a following run of letters, numbers or others */
            if (c == ' ' && i + 1 < nc && cls[i + 1] != CLS_SPACE) {
                j = i + 1;
                k = cls[j];
            }
            if (k != CLS_SPACE) {
                end = j + 1;
                while (end < nc && cls[end] == k) end++;
            } else {
                /* \s+(?!\S) takes the run except its last character when a non-space follows;
                 * a lone space before a non-space falls through to \s+ */
                size_t r = i;
                while (r < nc && cls[r] == CLS_SPACE) r++;
                if (r == nc) end = nc;
                else if (r - i >= 2) end = r - 1;
                else end = i + 1;
            }
        }
        if (emit(ctx, text + cs->offset[i], cs->offset[end] - cs->offset[i], err) != PK_OK) return PK_FAIL;
        i = end;
    }
    return PK_OK;
}

/* ---------------------------------------------------------------------------------------------
 * A hash table from byte strings to ids (open addressing, linear probing). */

static uint64_t hash_bytes(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

typedef struct {
    int32_t *slots; /* id, or -1 when empty */
    size_t mask;
} IdTable;

/* ---------------------------------------------------------------------------------------------
 * The tokenizer. */

typedef struct {
    char *key;
    int *ids;
    uint32_t key_len, n_ids;
} CacheEntry;

struct Tokenizer {
    int vocab_size;
    int eos_id;
    char *token_bytes;     /* all token strings, back to back */
    size_t *token_offset;  /* [vocab_size + 1] */
    int *merge_rank;       /* [vocab_size] index of the first merge producing the token, TOK_NO_RANK if none */
    IdTable table;         /* token bytes -> id */
    /* cache of BPE results for pieces (words repeat a lot); guarded so encoding is thread-safe */
    pthread_mutex_t cache_lock;
    CacheEntry *cache;     /* [TOK_CACHE_SLOTS] */
    unsigned cache_entries;
};

static const char *token_ptr(const Tokenizer *t, int id, size_t *len) {
    *len = t->token_offset[id + 1] - t->token_offset[id];
    return t->token_bytes + t->token_offset[id];
}

static int table_find(const Tokenizer *t, const char *s, size_t len) {
    size_t i = (size_t)hash_bytes(s, len) & t->table.mask;
    for (;; i = (i + 1) & t->table.mask) {
        int id = t->table.slots[i];
        if (id < 0) return -1;
        size_t l;
        const char *p = token_ptr(t, id, &l);
        if (l == len && memcmp(p, s, len) == 0) return id;
    }
}

/* Inserts id (whose bytes are already in token_bytes); returns the id already holding the same
 * bytes, or -1 when inserted. */
static int table_insert(Tokenizer *t, int id) {
    size_t len;
    const char *s = token_ptr(t, id, &len);
    size_t i = (size_t)hash_bytes(s, len) & t->table.mask;
    for (;; i = (i + 1) & t->table.mask) {
        int other = t->table.slots[i];
        if (other < 0) {
            t->table.slots[i] = id;
            return -1;
        }
        size_t l;
        const char *p = token_ptr(t, other, &l);
        if (l == len && memcmp(p, s, len) == 0) return other;
    }
}

static void cache_clear(Tokenizer *t) {
    if (!t->cache) return;
    for (unsigned i = 0; i < TOK_CACHE_SLOTS; i++) {
        free(t->cache[i].key);
        free(t->cache[i].ids);
    }
    memset(t->cache, 0, TOK_CACHE_SLOTS * sizeof(CacheEntry));
    t->cache_entries = 0;
}

void tok_free(Tokenizer *t) {
    if (!t) return;
    cache_clear(t);
    free(t->cache);
    pthread_mutex_destroy(&t->cache_lock);
    free(t->token_bytes);
    free(t->token_offset);
    free(t->merge_rank);
    free(t->table.slots);
    free(t);
}

int tok_vocab_size(const Tokenizer *t) { return t->vocab_size; }
int tok_eos_id(const Tokenizer *t) { return t->eos_id; }

const char *tok_token_bytes(const Tokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->vocab_size) return NULL;
    return token_ptr(t, id, len);
}

int tok_token_printable(const Tokenizer *t, int id, char *out, size_t outlen) {
    if (outlen == 0) return -1;
    out[0] = 0;
    size_t n = 0;
    const char *b = tok_token_bytes(t, id, &n);
    if (!b) return -1;
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        char piece[8];
        int plen;
        uint32_t cp;
        int adv = pk_utf8_decode(b + i, n - i, &cp);
        unsigned char c = (unsigned char)b[i];
        if (adv < 0 || cp < 0x20 || cp == 0x7f || cp == '\\' || cp == '"') {
            const char *e = c == '\\' ? "\\\\"
                            : c == '"'  ? "\\\""
                            : c == '\n' ? "\\n"
                            : c == '\r' ? "\\r"
                            : c == '\t' ? "\\t"
                                        : NULL;
            plen = e ? snprintf(piece, sizeof piece, "%s", e) : snprintf(piece, sizeof piece, "\\x%02X", c);
            adv = 1; /* an ill-formed sequence shows every byte */
        } else {
            memcpy(piece, b + i, (size_t)adv);
            plen = adv;
        }
        if (w + (size_t)plen + 1 > outlen) break;
        memcpy(out + w, piece, (size_t)plen);
        w += (size_t)plen;
        i += (size_t)adv;
    }
    out[w] = 0;
    return (int)w;
}

/* Maps a string in GPT-2's byte alphabet back to bytes (out has room for strlen(s) bytes).
 * Returns the byte count, or -1 when a character is outside the alphabet. */
static long alphabet_to_bytes(const ByteAlphabet *a, const char *s, size_t len, char *out) {
    size_t i = 0;
    long n = 0;
    while (i < len) {
        uint32_t cp;
        int k = pk_utf8_decode(s + i, len - i, &cp);
        if (k < 0 || cp >= 324 || a->cp_to_byte[cp] < 0) return -1;
        out[n++] = (char)a->cp_to_byte[cp];
        i += (size_t)k;
    }
    return n;
}

static int load_vocab(Tokenizer *t, const ByteAlphabet *alpha, const char *path, char *err) {
    char *data = NULL;
    size_t len = 0;
    if (pk_read_file(path, &data, &len, err) != PK_OK) return PK_FAIL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!root) {
        size_t pos = end && end >= data && end <= data + len ? (size_t)(end - data) : 0;
        int rc = pk_errf(err, "%s: line %d: not valid JSON (expected an object of token -> id)", path,
                         pk_line_of(data, pos));
        free(data);
        return rc;
    }
    int rc = PK_FAIL;
    if (!cJSON_IsObject(root)) {
        pk_errf(err, "%s: expected a JSON object mapping token strings to ids", path);
        goto done;
    }
    int n = cJSON_GetArraySize(root);
    if (n <= 0) {
        pk_errf(err, "%s: the vocabulary is empty", path);
        goto done;
    }
    t->vocab_size = n;
    size_t total = 0;
    for (cJSON *e = root->child; e; e = e->next) total += strlen(e->string);
    t->token_offset = calloc((size_t)n + 1, sizeof(size_t));
    t->token_bytes = malloc(total + 1);
    t->merge_rank = malloc((size_t)n * sizeof(int));
    size_t *token_len = calloc((size_t)n, sizeof(size_t));
    const cJSON **by_id = calloc((size_t)n, sizeof(cJSON *));
    char *scratch = malloc(total + 1);
    if (!t->token_offset || !t->token_bytes || !t->merge_rank || !token_len || !by_id || !scratch) {
        pk_errf(err, "%s: out of memory for %d tokens", path, n);
        goto free_scratch;
    }
    int entry = 0;
    for (cJSON *e = root->child; e; e = e->next, entry++) {
        double v = e->valuedouble;
        if (!cJSON_IsNumber(e) || (v > -1.0 && v < n && v != (double)(int)v)) {
            pk_errf(err, "%s: entry %d (\"%.60s\"): the id must be an integer", path, entry + 1, e->string);
            goto free_scratch;
        }
        if (!(v >= 0 && v < n)) {
            pk_errf(err, "%s: entry %d (\"%.60s\"): id %g is out of range (ids must be 0..%d for %d entries)", path,
                    entry + 1, e->string, v, n - 1, n);
            goto free_scratch;
        }
        int id = (int)v;
        if (by_id[id]) {
            pk_errf(err, "%s: entry %d (\"%.60s\"): id %d is already used by \"%.60s\"", path, entry + 1, e->string,
                    id, by_id[id]->string);
            goto free_scratch;
        }
        by_id[id] = e;
        long nb = alphabet_to_bytes(alpha, e->string, strlen(e->string), scratch);
        if (nb < 0) {
            pk_errf(err, "%s: entry %d (\"%.60s\"): the token has a character outside GPT-2's byte alphabet", path,
                    entry + 1, e->string);
            goto free_scratch;
        }
        if (nb == 0) {
            pk_errf(err, "%s: entry %d: the token string is empty", path, entry + 1);
            goto free_scratch;
        }
        token_len[id] = (size_t)nb;
    }
    /* lay the tokens out in id order */
    size_t off = 0;
    for (int id = 0; id < n; id++) {
        t->token_offset[id] = off;
        long nb = alphabet_to_bytes(alpha, by_id[id]->string, strlen(by_id[id]->string), t->token_bytes + off);
        off += (size_t)nb;
        t->merge_rank[id] = TOK_NO_RANK;
    }
    t->token_offset[n] = off;
    size_t slots = 1;
    while (slots < (size_t)n * 2) slots <<= 1;
    t->table.slots = malloc(slots * sizeof(int32_t));
    if (!t->table.slots) {
        pk_errf(err, "%s: out of memory for %d tokens", path, n);
        goto free_scratch;
    }
    memset(t->table.slots, 0xFF, slots * sizeof(int32_t));
    t->table.mask = slots - 1;
    t->eos_id = -1;
    for (int id = 0; id < n; id++) {
        int other = table_insert(t, id);
        if (other >= 0) {
            pk_errf(err, "%s: tokens %d (\"%.60s\") and %d (\"%.60s\") stand for the same bytes", path, other,
                    by_id[other]->string, id, by_id[id]->string);
            goto free_scratch;
        }
        size_t l;
        const char *p = token_ptr(t, id, &l);
        if (l == strlen(TOK_SPECIAL) && !memcmp(p, TOK_SPECIAL, l)) t->eos_id = id;
    }
    if (t->eos_id < 0) {
        pk_errf(err, "%s: the vocabulary has no " TOK_SPECIAL " token; promptkd needs it (it ends every response and "
                     "separates pretraining documents): expected GPT-2's vocabulary or one written by promptkd "
                     "bpe-train", path);
        goto free_scratch;
    }
    rc = PK_OK;
free_scratch:
    free(token_len);
    free(by_id);
    free(scratch);
done:
    cJSON_Delete(root);
    free(data);
    return rc;
}

/* A line of a file for an error message: at most 80 bytes, valid UTF-8 kept, any other
 * byte (invalid UTF-8, control characters, NUL) shown as \xNN so the message stays text. */
static void quote_bytes(const char *s, size_t n, char *out, size_t outlen) {
    size_t w = 0, i = 0, shown = n > 80 ? 80 : n;
    while (i < shown && w + 8 < outlen) {
        unsigned char c = (unsigned char)s[i];
        long bad = pk_utf8_invalid_at(s + i, shown - i);
        if (c >= 0x20 && c != 0x7f && bad != 0) {
            size_t run = bad < 0 ? shown - i : (size_t)bad, k = 0;
            while (k < run && w + 5 < outlen && (unsigned char)s[i + k] >= 0x20 && s[i + k] != 0x7f) out[w++] = s[i + k++];
            i += k;
            if (k > 0) continue;
        }
        w += (size_t)snprintf(out + w, outlen - w, "\\x%02X", c);
        i++;
    }
    snprintf(out + w, outlen - w, "%s", n > shown ? "..." : "");
}

static int load_merges(Tokenizer *t, const ByteAlphabet *alpha, const char *path, char *err) {
    char *data = NULL;
    size_t len = 0;
    if (pk_read_file(path, &data, &len, err) != PK_OK) return PK_FAIL;
    char *buf = malloc(len + 1);
    if (!buf) {
        free(data);
        return pk_errf(err, "%s: out of memory", path);
    }
    int rc = PK_FAIL, line = 0, rank = 0;
    size_t pos = 0;
    while (pos < len) {
        size_t eol = pos;
        while (eol < len && data[eol] != '\n') eol++;
        size_t next = eol < len ? eol + 1 : eol;
        line++;
        size_t l = eol - pos;
        if (l > 0 && data[pos + l - 1] == '\r') l--;
        const char *s = data + pos;
        if (line == 1 && l >= 8 && !memcmp(s, "#version", 8)) {
            pos = next;
            continue;
        }
        if (l == 0) {
            /* blank lines may only end the file */
            size_t k = next;
            while (k < len && (data[k] == '\n' || data[k] == '\r' || data[k] == ' ' || data[k] == '\t')) k++;
            if (k == len) break;
            pk_errf(err, "%s: line %d: empty line (expected two tokens separated by one space)", path, line);
            goto done;
        }
        const char *sp = memchr(s, ' ', l);
        if (!sp || sp == s || sp == s + l - 1 || memchr(sp + 1, ' ', (size_t)(s + l - sp - 1))) {
            char shown[256];
            quote_bytes(s, l, shown, sizeof shown);
            pk_errf(err, "%s: line %d: expected two tokens separated by one space, got \"%s\"", path, line, shown);
            goto done;
        }
        size_t la = (size_t)(sp - s), lb = l - la - 1;
        long na = alphabet_to_bytes(alpha, s, la, buf);
        long nb = na < 0 ? -1 : alphabet_to_bytes(alpha, sp + 1, lb, buf + na);
        if (na < 0 || nb < 0) {
            char shown[256];
            quote_bytes(s, l, shown, sizeof shown);
            pk_errf(err, "%s: line %d: \"%s\" has a character outside GPT-2's byte alphabet", path, line, shown);
            goto done;
        }
        int ida = table_find(t, buf, (size_t)na), idb = table_find(t, buf + na, (size_t)nb);
        if (ida < 0 || idb < 0) {
            pk_errf(err, "%s: line %d: the token \"%.*s\" is not in vocab.json", path, line,
                    ida < 0 ? (int)la : (int)lb, ida < 0 ? s : sp + 1);
            goto done;
        }
        int idm = table_find(t, buf, (size_t)(na + nb));
        if (idm < 0) {
            pk_errf(err, "%s: line %d: the merged token \"%.*s%.*s\" is not in vocab.json", path, line, (int)la, s,
                    (int)lb, sp + 1);
            goto done;
        }
        if (t->merge_rank[idm] == TOK_NO_RANK) t->merge_rank[idm] = rank;
        rank++;
        pos = next;
    }
    rc = PK_OK;
done:
    free(buf);
    free(data);
    return rc;
}

int tok_load(Tokenizer **out, const char *dir, char *err) {
    *out = NULL;
    ByteAlphabet alpha;
    byte_alphabet_init(&alpha);
    char vocab_path[4096], merges_path[4096];
    if (pk_path_join(vocab_path, sizeof vocab_path, dir, "vocab.json", err) != PK_OK) return PK_FAIL;
    if (pk_path_join(merges_path, sizeof merges_path, dir, "merges.txt", err) != PK_OK) return PK_FAIL;
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) return pk_errf(err, "out of memory loading the tokenizer in %s", dir);
    pthread_mutex_init(&t->cache_lock, NULL);
    t->eos_id = -1;
    if (load_vocab(t, &alpha, vocab_path, err) != PK_OK || load_merges(t, &alpha, merges_path, err) != PK_OK) {
        tok_free(t);
        return PK_FAIL;
    }
    t->cache = calloc(TOK_CACHE_SLOTS, sizeof(CacheEntry));
    if (!t->cache) {
        tok_free(t);
        return pk_errf(err, "out of memory loading the tokenizer in %s", dir);
    }
    *out = t;
    return PK_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding. */

typedef struct {
    int rank;
    int left, mid, end; /* the pair is piece[left..mid) + piece[mid..end) */
} MergeCandidate;

typedef struct {
    const Tokenizer *t;
    int *ids;
    int n, cap;
    CharScratch chars;
    MergeCandidate *heap;
    int *next, *prev;
    unsigned char *alive;
    size_t piece_cap;
} EncodeState;

static int push_id(EncodeState *st, int id, char *err) {
    if (st->n == st->cap) {
        int cap = st->cap ? st->cap * 2 : 256;
        int *ids = realloc(st->ids, (size_t)cap * sizeof(int));
        if (!ids) return pk_errf(err, "out of memory while encoding (%d tokens)", st->n);
        st->ids = ids;
        st->cap = cap;
    }
    st->ids[st->n++] = id;
    return PK_OK;
}

static int candidate_less(const MergeCandidate *a, const MergeCandidate *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(MergeCandidate *h, int *n, MergeCandidate c) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!candidate_less(&c, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static MergeCandidate heap_pop(MergeCandidate *h, int *n) {
    MergeCandidate top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && candidate_less(&h[c + 1], &h[c])) c++;
        if (!candidate_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

static int rank_of(const Tokenizer *t, const char *s, size_t len) {
    int id = table_find(t, s, len);
    return id < 0 ? TOK_NO_RANK : t->merge_rank[id];
}

static int cache_lookup_and_push(EncodeState *st, const char *piece, size_t len, uint64_t h, char *err) {
    Tokenizer *t = (Tokenizer *)st->t; /* the cache is the only mutable part, under its lock */
    int found = 0, rc = PK_OK;
    pthread_mutex_lock(&t->cache_lock);
    for (size_t i = (size_t)h & (TOK_CACHE_SLOTS - 1);; i = (i + 1) & (TOK_CACHE_SLOTS - 1)) {
        CacheEntry *e = &t->cache[i];
        if (!e->key) break;
        if (e->key_len == len && !memcmp(e->key, piece, len)) {
            found = 1;
            for (uint32_t k = 0; k < e->n_ids && rc == PK_OK; k++) rc = push_id(st, e->ids[k], err);
            break;
        }
    }
    pthread_mutex_unlock(&t->cache_lock);
    return rc != PK_OK ? -1 : found;
}

static void cache_store(EncodeState *st, const char *piece, size_t len, uint64_t h, const int *ids, int n) {
    Tokenizer *t = (Tokenizer *)st->t;
    char *key = malloc(len);
    int *copy = malloc((size_t)n * sizeof(int));
    if (!key || !copy) { /* the cache is an optimisation: skip it when memory is short */
        free(key);
        free(copy);
        return;
    }
    memcpy(key, piece, len);
    memcpy(copy, ids, (size_t)n * sizeof(int));
    pthread_mutex_lock(&t->cache_lock);
    if (t->cache_entries >= TOK_CACHE_MAX_ENTRIES) cache_clear(t);
    size_t i = (size_t)h & (TOK_CACHE_SLOTS - 1);
    for (; t->cache[i].key; i = (i + 1) & (TOK_CACHE_SLOTS - 1))
        if (t->cache[i].key_len == len && !memcmp(t->cache[i].key, piece, len)) break;
    if (t->cache[i].key) { /* another thread stored it meanwhile */
        free(key);
        free(copy);
    } else {
        t->cache[i] = (CacheEntry){key, copy, (uint32_t)len, (uint32_t)n};
        t->cache_entries++;
    }
    pthread_mutex_unlock(&t->cache_lock);
}

static int reserve_piece(EncodeState *st, size_t len, char *err) {
    if (len <= st->piece_cap) return PK_OK;
    size_t cap = len < 64 ? 64 : len * 2;
    MergeCandidate *heap = realloc(st->heap, cap * 3 * sizeof(MergeCandidate));
    if (heap) st->heap = heap;
    int *next = realloc(st->next, (cap + 1) * sizeof(int));
    if (next) st->next = next;
    int *prev = realloc(st->prev, (cap + 1) * sizeof(int));
    if (prev) st->prev = prev;
    unsigned char *alive = realloc(st->alive, cap + 1);
    if (alive) st->alive = alive;
    if (!heap || !next || !prev || !alive) return pk_errf(err, "out of memory encoding a %zu-byte piece", len);
    st->piece_cap = cap;
    return PK_OK;
}

/* Byte-level BPE of one piece, the same merge order as tiktoken: the lowest-rank adjacent pair,
 * leftmost among equals, one merge at a time. A heap of candidates with lazy invalidation keeps
 * it O(n log n) on long pieces. */
static int encode_piece(void *ctx, const char *piece, size_t len, char *err) {
    EncodeState *st = ctx;
    const Tokenizer *t = st->t;
    int whole = table_find(t, piece, len);
    if (whole >= 0 && whole != t->eos_id) return push_id(st, whole, err);
    uint64_t h = hash_bytes(piece, len);
    int cacheable = len <= TOK_CACHE_MAX_PIECE;
    if (cacheable) {
        int found = cache_lookup_and_push(st, piece, len, h, err);
        if (found < 0) return PK_FAIL;
        if (found) return PK_OK;
    }
    if (reserve_piece(st, len, err) != PK_OK) return PK_FAIL;
    int L = (int)len, nh = 0;
    int *next = st->next, *prev = st->prev;
    unsigned char *alive = st->alive;
    for (int i = 0; i < L; i++) {
        next[i] = i + 1;
        prev[i] = i - 1;
        alive[i] = 1;
    }
    for (int i = 0; i + 1 < L; i++) {
        int r = rank_of(t, piece + i, 2);
        if (r != TOK_NO_RANK) heap_push(st->heap, &nh, (MergeCandidate){r, i, i + 1, i + 2});
    }
    while (nh > 0) {
        MergeCandidate c = heap_pop(st->heap, &nh);
        if (!alive[c.left] || next[c.left] != c.mid || next[c.mid] != c.end) continue; /* stale */
        alive[c.mid] = 0;
        next[c.left] = c.end;
        if (c.end < L) prev[c.end] = c.left;
        if (prev[c.left] >= 0) {
            int p = prev[c.left];
            int r = rank_of(t, piece + p, (size_t)(c.end - p));
            if (r != TOK_NO_RANK) heap_push(st->heap, &nh, (MergeCandidate){r, p, c.left, c.end});
        }
        if (c.end < L) {
            int e2 = next[c.end];
            int r = rank_of(t, piece + c.left, (size_t)(e2 - c.left));
            if (r != TOK_NO_RANK) heap_push(st->heap, &nh, (MergeCandidate){r, c.left, c.end, e2});
        }
    }
    int first = st->n;
    for (int i = 0; i < L; i = next[i]) {
        int id = table_find(t, piece + i, (size_t)(next[i] - i));
        if (id < 0) return pk_errf(err, "the vocabulary has no token for byte 0x%02x", (unsigned char)piece[i]);
        if (push_id(st, id, err) != PK_OK) return PK_FAIL;
    }
    if (cacheable) cache_store(st, piece, len, h, st->ids + first, st->n - first);
    return PK_OK;
}

int tok_encode(const Tokenizer *t, const char *text, size_t len, int allow_special, int **ids, int *n, char *err) {
    *ids = NULL;
    *n = 0;
    EncodeState st = {.t = t};
    size_t special_len = 0;
    const char *special = NULL;
    if (allow_special && t->eos_id >= 0) special = tok_token_bytes(t, t->eos_id, &special_len);
    int rc = PK_OK;
    size_t pos = 0;
    while (pos < len && rc == PK_OK) {
        const char *hit = special ? memmem(text + pos, len - pos, special, special_len) : NULL;
        size_t seg_end = hit ? (size_t)(hit - text) : len;
        rc = pretokenize(text + pos, seg_end - pos, &st.chars, encode_piece, &st, err);
        if (rc == PK_OK && hit) rc = push_id(&st, t->eos_id, err);
        pos = hit ? seg_end + special_len : len;
    }
    char_scratch_free(&st.chars);
    free(st.heap);
    free(st.next);
    free(st.prev);
    free(st.alive);
    if (rc != PK_OK) {
        free(st.ids);
        return PK_FAIL;
    }
    if (!st.ids) { /* empty text: still hand back a valid allocation */
        st.ids = malloc(sizeof(int));
        if (!st.ids) return pk_errf(err, "out of memory while encoding");
    }
    *ids = st.ids;
    *n = st.n;
    return PK_OK;
}

int tok_decode(const Tokenizer *t, const int *ids, int n, char **text, size_t *len, char *err) {
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size)
            return pk_errf(err, "token id %d (position %d) is out of range: the vocabulary has ids 0..%d", ids[i], i,
                           t->vocab_size - 1);
        total += t->token_offset[ids[i] + 1] - t->token_offset[ids[i]];
    }
    char *out = malloc(total + 1);
    if (!out) return pk_errf(err, "out of memory decoding %d tokens", n);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t l;
        const char *p = token_ptr(t, ids[i], &l);
        memcpy(out + off, p, l);
        off += l;
    }
    out[off] = 0;
    *text = out;
    *len = off;
    return PK_OK;
}

/* ---------------------------------------------------------------------------------------------
 * BPE training. */

/* A set of byte strings with dense indices (unique words, trained tokens). */
typedef struct {
    PkBuf bytes;
    size_t *off; /* [n + 1] */
    int n, cap;
    int32_t *slots;
    size_t mask;
} StrSet;

static const char *strset_get(const StrSet *s, int i, size_t *len) {
    *len = s->off[i + 1] - s->off[i];
    return s->bytes.data + s->off[i];
}

static int strset_find(const StrSet *s, const char *str, size_t len) {
    if (!s->slots) return -1;
    for (size_t i = (size_t)hash_bytes(str, len) & s->mask;; i = (i + 1) & s->mask) {
        int k = s->slots[i];
        if (k < 0) return -1;
        size_t l;
        const char *p = strset_get(s, k, &l);
        if (l == len && !memcmp(p, str, len)) return k;
    }
}

static void strset_place(StrSet *s, int k) {
    size_t len;
    const char *p = strset_get(s, k, &len);
    size_t i = (size_t)hash_bytes(p, len) & s->mask;
    while (s->slots[i] >= 0) i = (i + 1) & s->mask;
    s->slots[i] = k;
}

/* Appends a string that is not in the set yet; returns its index or -1 when out of memory. */
static int strset_add(StrSet *s, const char *str, size_t len) {
    if (s->n + 1 >= s->cap) {
        int cap = s->cap ? s->cap * 2 : 1024;
        size_t *off = realloc(s->off, ((size_t)cap + 1) * sizeof(size_t));
        if (!off) return -1;
        s->off = off;
        s->cap = cap;
    }
    if ((size_t)(s->n + 1) * 2 > s->mask + 1 || !s->slots) { /* keep the load under 1/2 */
        size_t slots = s->slots ? (s->mask + 1) * 2 : 2048;
        int32_t *fresh = malloc(slots * sizeof(int32_t));
        if (!fresh) return -1;
        free(s->slots);
        s->slots = fresh;
        memset(s->slots, 0xFF, slots * sizeof(int32_t));
        s->mask = slots - 1;
        for (int k = 0; k < s->n; k++) strset_place(s, k);
    }
    if (s->n == 0) s->off[0] = 0;
    if (pk_buf_append(&s->bytes, str, len) != PK_OK) return -1;
    s->off[s->n + 1] = s->bytes.len;
    int k = s->n++;
    strset_place(s, k);
    return k;
}

static void strset_free(StrSet *s) {
    pk_buf_free(&s->bytes);
    free(s->off);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

/* Adjacent symbol pairs with their weighted counts and the words they occur in. */
typedef struct {
    int32_t *a, *b;
    int64_t *count;
    int **where;       /* word indices (may hold words that lost the pair; checked on use) */
    int *where_len, *where_cap;
    int *touched;      /* merge step that last raised the count */
    int n, cap;
    int32_t *slots;    /* pair index, -1 empty */
    size_t mask;
} PairTable;

static uint64_t pair_hash(int32_t a, int32_t b) {
    uint64_t x = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static int pair_find(const PairTable *p, int32_t a, int32_t b) {
    if (!p->slots) return -1;
    for (size_t i = (size_t)pair_hash(a, b) & p->mask;; i = (i + 1) & p->mask) {
        int k = p->slots[i];
        if (k < 0) return -1;
        if (p->a[k] == a && p->b[k] == b) return k;
    }
}

static int pair_grow(PairTable *p) {
    int cap = p->cap ? p->cap * 2 : 4096;
#define PK_GROW(field, type)                                                 \
    do {                                                                     \
        type *q = realloc(p->field, (size_t)cap * sizeof(type));             \
        if (!q) return PK_FAIL;                                              \
        p->field = q;                                                        \
    } while (0)
    PK_GROW(a, int32_t);
    PK_GROW(b, int32_t);
    PK_GROW(count, int64_t);
    PK_GROW(where, int *);
    PK_GROW(where_len, int);
    PK_GROW(where_cap, int);
    PK_GROW(touched, int);
#undef PK_GROW
    p->cap = cap;
    size_t slots = (size_t)cap * 2;
    int32_t *fresh = malloc(slots * sizeof(int32_t));
    if (!fresh) return PK_FAIL;
    free(p->slots);
    p->slots = fresh;
    memset(p->slots, 0xFF, slots * sizeof(int32_t));
    p->mask = slots - 1;
    for (int k = 0; k < p->n; k++) {
        size_t i = (size_t)pair_hash(p->a[k], p->b[k]) & p->mask;
        while (p->slots[i] >= 0) i = (i + 1) & p->mask;
        p->slots[i] = k;
    }
    return PK_OK;
}

/* Returns the pair's index, creating it with count 0; -1 when out of memory. */
static int pair_get(PairTable *p, int32_t a, int32_t b) {
    int k = pair_find(p, a, b);
    if (k >= 0) return k;
    if (p->n == p->cap && pair_grow(p) != PK_OK) return -1;
    k = p->n++;
    p->a[k] = a;
    p->b[k] = b;
    p->count[k] = 0;
    p->where[k] = NULL;
    p->where_len[k] = p->where_cap[k] = 0;
    p->touched[k] = -1;
    size_t i = (size_t)pair_hash(a, b) & p->mask;
    while (p->slots[i] >= 0) i = (i + 1) & p->mask;
    p->slots[i] = k;
    return k;
}

static int pair_add_where(PairTable *p, int k, int word) {
    if (p->where_len[k] > 0 && p->where[k][p->where_len[k] - 1] == word) return PK_OK;
    if (p->where_len[k] == p->where_cap[k]) {
        int cap = p->where_cap[k] ? p->where_cap[k] * 2 : 4;
        int *w = realloc(p->where[k], (size_t)cap * sizeof(int));
        if (!w) return PK_FAIL;
        p->where[k] = w;
        p->where_cap[k] = cap;
    }
    p->where[k][p->where_len[k]++] = word;
    return PK_OK;
}

static void pair_free(PairTable *p) {
    for (int k = 0; k < p->n; k++) free(p->where[k]);
    free(p->a);
    free(p->b);
    free(p->count);
    free(p->where);
    free(p->where_len);
    free(p->where_cap);
    free(p->touched);
    free(p->slots);
    memset(p, 0, sizeof *p);
}

typedef struct {
    int64_t count;
    int pair;
} PairEntry;

typedef struct {
    StrSet words;       /* unique pre-tokenised pieces */
    int64_t *word_count;
    int word_count_cap;
    StrSet tokens;      /* token id -> bytes */
    PairTable pairs;
    PairEntry *heap;
    int heap_n, heap_cap;
} Trainer;

static int count_piece(void *ctx, const char *piece, size_t len, char *err) {
    Trainer *tr = ctx;
    int w = strset_find(&tr->words, piece, len);
    if (w < 0) {
        w = strset_add(&tr->words, piece, len);
        if (w < 0) return pk_errf(err, "out of memory counting words (%d distinct)", tr->words.n);
        if (w >= tr->word_count_cap) {
            int cap = tr->word_count_cap ? tr->word_count_cap * 2 : 1024;
            int64_t *c = realloc(tr->word_count, (size_t)cap * sizeof(int64_t));
            if (!c) return pk_errf(err, "out of memory counting words (%d distinct)", tr->words.n);
            tr->word_count = c;
            tr->word_count_cap = cap;
        }
        tr->word_count[w] = 0;
    }
    tr->word_count[w]++;
    return PK_OK;
}

/* Heap order: higher count first; ties by the pair's byte strings (left, then right), so the
 * result never depends on hash or insertion order. */
static int bytes_cmp(const StrSet *tok, int x, int y) {
    size_t lx, ly;
    const char *px = strset_get(tok, x, &lx), *py = strset_get(tok, y, &ly);
    int c = memcmp(px, py, lx < ly ? lx : ly);
    return c ? c : (lx < ly ? -1 : lx > ly);
}

static int entry_before(const Trainer *tr, const PairEntry *x, const PairEntry *y) {
    if (x->count != y->count) return x->count > y->count;
    const PairTable *p = &tr->pairs;
    int c = bytes_cmp(&tr->tokens, p->a[x->pair], p->a[y->pair]);
    if (!c) c = bytes_cmp(&tr->tokens, p->b[x->pair], p->b[y->pair]);
    return c < 0;
}

static int trainer_push(Trainer *tr, int64_t count, int pair) {
    if (tr->heap_n == tr->heap_cap) {
        int cap = tr->heap_cap ? tr->heap_cap * 2 : 4096;
        PairEntry *h = realloc(tr->heap, (size_t)cap * sizeof(PairEntry));
        if (!h) return PK_FAIL;
        tr->heap = h;
        tr->heap_cap = cap;
    }
    PairEntry e = {count, pair};
    int i = tr->heap_n++;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (!entry_before(tr, &e, &tr->heap[parent])) break;
        tr->heap[i] = tr->heap[parent];
        i = parent;
    }
    tr->heap[i] = e;
    return PK_OK;
}

static PairEntry trainer_pop(Trainer *tr) {
    PairEntry top = tr->heap[0], last = tr->heap[--tr->heap_n];
    int i = 0, n = tr->heap_n;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && entry_before(tr, &tr->heap[c + 1], &tr->heap[c])) c++;
        if (!entry_before(tr, &tr->heap[c], &last)) break;
        tr->heap[i] = tr->heap[c];
        i = c;
    }
    if (n > 0) tr->heap[i] = last;
    return top;
}

static void trainer_free(Trainer *tr) {
    strset_free(&tr->words);
    strset_free(&tr->tokens);
    free(tr->word_count);
    pair_free(&tr->pairs);
    free(tr->heap);
}

/* GPT-2's printable form of a token: each byte as its alphabet character, JSON-escaped. */
static int append_token_text(PkBuf *out, const ByteAlphabet *alpha, const char *bytes, size_t len, int json) {
    for (size_t i = 0; i < len; i++) {
        uint32_t cp = alpha->byte_to_cp[(unsigned char)bytes[i]];
        char u[4];
        int n = pk_utf8_encode(cp, u);
        if (json && (cp == '"' || cp == '\\') && pk_buf_append(out, "\\", 1) != PK_OK) return PK_FAIL;
        if (pk_buf_append(out, u, (size_t)n) != PK_OK) return PK_FAIL;
    }
    return PK_OK;
}

static int write_trained_files(const Trainer *tr, const ByteAlphabet *alpha, const int32_t *merge_a,
                               const int32_t *merge_b, int n_merges, const char *out_dir, char *err) {
    PkBuf vocab = {0}, merges = {0};
    int ok = pk_buf_append(&vocab, "{", 1) == PK_OK;
    for (int id = 0; ok && id < tr->tokens.n; id++) {
        size_t len;
        const char *p = strset_get(&tr->tokens, id, &len);
        ok = pk_buf_append(&vocab, id ? ", \"" : "\"", id ? 3 : 1) == PK_OK &&
             append_token_text(&vocab, alpha, p, len, 1) == PK_OK && pk_buf_printf(&vocab, "\": %d", id) == PK_OK;
    }
    ok = ok && pk_buf_printf(&vocab, ", \"%s\": %d}", TOK_SPECIAL, tr->tokens.n) == PK_OK;
    ok = ok && pk_buf_append(&merges, "#version: 0.2\n", 14) == PK_OK;
    for (int m = 0; ok && m < n_merges; m++) {
        size_t la, lb;
        const char *pa = strset_get(&tr->tokens, merge_a[m], &la), *pb = strset_get(&tr->tokens, merge_b[m], &lb);
        ok = append_token_text(&merges, alpha, pa, la, 0) == PK_OK && pk_buf_append(&merges, " ", 1) == PK_OK &&
             append_token_text(&merges, alpha, pb, lb, 0) == PK_OK && pk_buf_append(&merges, "\n", 1) == PK_OK;
    }
    int rc = PK_FAIL;
    char path[4096];
    if (!ok) pk_errf(err, "out of memory writing the tokenizer files");
    else if (pk_mkdirs(out_dir, err) == PK_OK && pk_path_join(path, sizeof path, out_dir, "vocab.json", err) == PK_OK &&
             pk_write_file_atomic(path, vocab.data, vocab.len, err) == PK_OK &&
             pk_path_join(path, sizeof path, out_dir, "merges.txt", err) == PK_OK &&
             pk_write_file_atomic(path, merges.data, merges.len, err) == PK_OK)
        rc = PK_OK;
    pk_buf_free(&vocab);
    pk_buf_free(&merges);
    return rc;
}

/* Replaces every (a, b) in the word's symbols by merged, left to right. Returns the new length. */
static int merge_word(int32_t *sym, int n, int32_t a, int32_t b, int32_t merged) {
    int w = 0;
    for (int i = 0; i < n;) {
        if (i + 1 < n && sym[i] == a && sym[i + 1] == b) {
            sym[w++] = merged;
            i += 2;
        } else {
            sym[w++] = sym[i++];
        }
    }
    return w;
}

int tok_train_bpe(const char *const *texts, const size_t *lens, int n_texts, int vocab_size, const char *out_dir,
                  char *err) {
    if (vocab_size < 257)
        return pk_errf(err, "vocab_size %d is too small: it needs 256 byte tokens plus <|endoftext|>", vocab_size);
    ByteAlphabet alpha;
    byte_alphabet_init(&alpha);
    Trainer tr = {0};
    CharScratch chars = {0};
    int32_t *syms = NULL, *merge_a = NULL, *merge_b = NULL;
    int *word_len = NULL, *word_stamp = NULL, *touched_list = NULL;
    int rc = PK_FAIL, touched_cap = 0, merges_cap = vocab_size;
    const size_t special_len = strlen(TOK_SPECIAL);

    /* 1. count pre-tokenised words; the special token's text is not training material */
    for (int k = 0; k < n_texts; k++) {
        size_t pos = 0;
        while (pos < lens[k]) {
            const char *hit = memmem(texts[k] + pos, lens[k] - pos, TOK_SPECIAL, special_len);
            size_t seg_end = hit ? (size_t)(hit - texts[k]) : lens[k];
            if (pretokenize(texts[k] + pos, seg_end - pos, &chars, count_piece, &tr, err) != PK_OK) goto done;
            pos = hit ? seg_end + special_len : lens[k];
        }
    }
    if (tr.words.n == 0) {
        pk_errf(err, "no training text: the %d given texts are empty", n_texts);
        goto done;
    }

    /* 2. byte tokens in GPT-2's order; words as byte-token symbols */
    int byte_id[256];
    for (int id = 0; id < 256; id++) {
        char c = (char)alpha.byte_token_order[id];
        if (strset_add(&tr.tokens, &c, 1) != id) goto oom;
        byte_id[alpha.byte_token_order[id]] = id;
    }
    int n_words = tr.words.n;
    size_t total = tr.words.bytes.len;
    syms = malloc((total + 1) * sizeof(int32_t));
    word_len = malloc((size_t)n_words * sizeof(int));
    word_stamp = malloc((size_t)n_words * sizeof(int));
    merge_a = malloc((size_t)vocab_size * sizeof(int32_t));
    merge_b = malloc((size_t)vocab_size * sizeof(int32_t));
    if (!syms || !word_len || !word_stamp || !merge_a || !merge_b) goto oom;
    for (int w = 0; w < n_words; w++) {
        size_t len;
        const char *p = strset_get(&tr.words, w, &len);
        int32_t *s = syms + tr.words.off[w];
        for (size_t i = 0; i < len; i++) s[i] = byte_id[(unsigned char)p[i]];
        word_len[w] = (int)len;
        word_stamp[w] = -1;
        for (size_t i = 0; i + 1 < len; i++) {
            int k = pair_get(&tr.pairs, s[i], s[i + 1]);
            if (k < 0 || pair_add_where(&tr.pairs, k, w) != PK_OK) goto oom;
            tr.pairs.count[k] += tr.word_count[w];
        }
    }
    for (int k = 0; k < tr.pairs.n; k++)
        if (trainer_push(&tr, tr.pairs.count[k], k) != PK_OK) goto oom;

    /* 3. merge the most frequent pair until the vocabulary is full or no pair is left */
    int n_merges = 0;
    while (tr.tokens.n < vocab_size - 1 && tr.heap_n > 0) {
        PairEntry top = trainer_pop(&tr);
        int64_t current = tr.pairs.count[top.pair];
        if (current <= 0) continue;
        if (top.count != current) { /* stale entry: requeue with the live count */
            if (trainer_push(&tr, current, top.pair) != PK_OK) goto oom;
            continue;
        }
        int32_t a = tr.pairs.a[top.pair], b = tr.pairs.b[top.pair];
        size_t la, lb;
        const char *pa = strset_get(&tr.tokens, a, &la);
        const char *pb = strset_get(&tr.tokens, b, &lb);
        char *joined = malloc(la + lb);
        if (!joined) goto oom;
        memcpy(joined, pa, la);
        memcpy(joined + la, pb, lb);
        /* a string reached by an earlier, different split keeps its id */
        int merged = strset_find(&tr.tokens, joined, la + lb);
        if (merged < 0) merged = strset_add(&tr.tokens, joined, la + lb);
        free(joined);
        if (merged < 0) goto oom;
        if (n_merges == merges_cap) {
            merges_cap *= 2;
            int32_t *ma = realloc(merge_a, (size_t)merges_cap * sizeof(int32_t));
            if (ma) merge_a = ma;
            int32_t *mb = realloc(merge_b, (size_t)merges_cap * sizeof(int32_t));
            if (mb) merge_b = mb;
            if (!ma || !mb) goto oom;
        }
        merge_a[n_merges] = a;
        merge_b[n_merges] = b;
        int step = n_merges++;
        int n_touched = 0;
        int *where = tr.pairs.where[top.pair], n_where = tr.pairs.where_len[top.pair];
        for (int wi = 0; wi < n_where; wi++) {
            int w = where[wi];
            if (word_stamp[w] == step) continue;
            word_stamp[w] = step;
            int32_t *s = syms + tr.words.off[w];
            int n = word_len[w], has = 0;
            for (int i = 0; i + 1 < n && !has; i++) has = s[i] == a && s[i + 1] == b;
            if (!has) continue;
            int64_t c = tr.word_count[w];
            for (int i = 0; i + 1 < n; i++) tr.pairs.count[pair_find(&tr.pairs, s[i], s[i + 1])] -= c;
            n = word_len[w] = merge_word(s, n, a, b, merged);
            for (int i = 0; i + 1 < n; i++) {
                int k = pair_get(&tr.pairs, s[i], s[i + 1]);
                if (k < 0) goto oom;
                tr.pairs.count[k] += c;
                if (s[i] == merged || s[i + 1] == merged) {
                    if (pair_add_where(&tr.pairs, k, w) != PK_OK) goto oom;
                    if (tr.pairs.touched[k] != step) {
                        tr.pairs.touched[k] = step;
                        if (n_touched == touched_cap) {
                            touched_cap = touched_cap ? touched_cap * 2 : 256;
                            int *tl = realloc(touched_list, (size_t)touched_cap * sizeof(int));
                            if (!tl) goto oom;
                            touched_list = tl;
                        }
                        touched_list[n_touched++] = k;
                    }
                }
            }
        }
        /* (a, b) cannot come back: new neighbours always involve the merged token */
        free(tr.pairs.where[top.pair]);
        tr.pairs.where[top.pair] = NULL;
        tr.pairs.where_len[top.pair] = tr.pairs.where_cap[top.pair] = 0;
        for (int i = 0; i < n_touched; i++)
            if (tr.pairs.count[touched_list[i]] > 0 &&
                trainer_push(&tr, tr.pairs.count[touched_list[i]], touched_list[i]) != PK_OK)
                goto oom;
    }

    rc = write_trained_files(&tr, &alpha, merge_a, merge_b, n_merges, out_dir, err);
    goto done;
oom:
    pk_errf(err, "out of memory training the BPE (%d words, %d tokens)", tr.words.n, tr.tokens.n);
done:
    trainer_free(&tr);
    char_scratch_free(&chars);
    free(syms);
    free(word_len);
    free(word_stamp);
    free(merge_a);
    free(merge_b);
    free(touched_list);
    return rc;
}
