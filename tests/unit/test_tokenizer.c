/* The GPT-2 tokenizer against tiktoken's encodings (every fixture line), special token, invalid
 * UTF-8, id range errors, malformed vocab/merges files, and the BPE trainer. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "test.h"
#include "tokenizer.h"

#define GPT2_DIR "tests/fixtures/gpt2-tokenizer"

static Tokenizer *gpt2;

typedef struct {
    char **texts;
    size_t *lens;
    int **ids;
    int *n_ids;
    int n;
} Fixture;

static Fixture fixture;

static void load_fixture(void) {
    char err[PK_ERR_LEN], *data;
    size_t len;
    if (pk_read_file(GPT2_DIR "/encodings.jsonl", &data, &len, err) != PK_OK) {
        printf("    %s\n", err);
        return;
    }
    int cap = 512;
    fixture.texts = calloc((size_t)cap, sizeof(char *));
    fixture.lens = calloc((size_t)cap, sizeof(size_t));
    fixture.ids = calloc((size_t)cap, sizeof(int *));
    fixture.n_ids = calloc((size_t)cap, sizeof(int));
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line && fixture.n < cap; line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(line);
        cJSON *text = cJSON_GetObjectItem(o, "text"), *ids = cJSON_GetObjectItem(o, "ids");
        if (!cJSON_IsString(text) || !cJSON_IsArray(ids)) {
            printf("    bad fixture line %d\n", fixture.n + 1);
            cJSON_Delete(o);
            continue;
        }
        int k = fixture.n++;
        fixture.texts[k] = strdup(text->valuestring);
        fixture.lens[k] = strlen(text->valuestring);
        fixture.n_ids[k] = cJSON_GetArraySize(ids);
        fixture.ids[k] = malloc(sizeof(int) * (size_t)(fixture.n_ids[k] + 1));
        for (int i = 0; i < fixture.n_ids[k]; i++) fixture.ids[k][i] = cJSON_GetArrayItem(ids, i)->valueint;
        cJSON_Delete(o);
    }
    free(data);
}

static void free_fixture(void) {
    for (int k = 0; k < fixture.n; k++) {
        free(fixture.texts[k]);
        free(fixture.ids[k]);
    }
    free(fixture.texts);
    free(fixture.lens);
    free(fixture.ids);
    free(fixture.n_ids);
}

static int same_ids(const int *a, int na, const int *b, int nb) {
    return na == nb && (na == 0 || !memcmp(a, b, sizeof(int) * (size_t)na));
}

static void test_load_gpt2(void) {
    CHECK(gpt2 != NULL);
    if (!gpt2) return;
    CHECK(tok_vocab_size(gpt2) == 50257);
    CHECK(tok_eos_id(gpt2) == 50256);
    size_t len;
    const char *p = tok_token_bytes(gpt2, 198, &len);
    CHECK(p && len == 1 && p[0] == '\n');
    p = tok_token_bytes(gpt2, 995, &len); /* " world" */
    CHECK(p && len == 6 && !memcmp(p, " world", 6));
    CHECK(tok_token_bytes(gpt2, 50257, &len) == NULL);
    CHECK(tok_token_bytes(gpt2, -1, &len) == NULL);
}

/* Every line of tiktoken's reference: encoding and decoding identical; also a second pass that
 * goes through the word cache. */
static void test_fixture_exact(void) {
    if (!gpt2) return;
    CHECK(fixture.n >= 300);
    char err[PK_ERR_LEN];
    int encode_mismatch = 0, decode_mismatch = 0;
    double t0 = pk_now();
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < fixture.n; k++) {
            int *ids = NULL, n = 0;
            if (tok_encode(gpt2, fixture.texts[k], fixture.lens[k], 1, &ids, &n, err) != PK_OK) {
                printf("    line %d: %s\n", k + 1, err);
                encode_mismatch++;
                continue;
            }
            if (!same_ids(ids, n, fixture.ids[k], fixture.n_ids[k])) {
                if (encode_mismatch < 5) printf("    encode mismatch on line %d: %.60s\n", k + 1, fixture.texts[k]);
                encode_mismatch++;
            }
            free(ids);
            char *text = NULL;
            size_t len = 0;
            if (tok_decode(gpt2, fixture.ids[k], fixture.n_ids[k], &text, &len, err) != PK_OK ||
                len != fixture.lens[k] || memcmp(text, fixture.texts[k], len)) {
                if (decode_mismatch < 5) printf("    decode mismatch on line %d\n", k + 1);
                decode_mismatch++;
            }
            free(text);
        }
    double secs = pk_now() - t0;
    printf("    %d lines x 2 passes: %d encode, %d decode mismatches, %.3f s\n", fixture.n, encode_mismatch,
           decode_mismatch, secs);
    CHECK(encode_mismatch == 0);
    CHECK(decode_mismatch == 0);
    CHECK(secs < (getenv("PROMPTKD_SANITIZED") ? 20.0 : 1.0));
}

/* Cases beyond the fixture (ideographic and line-separator spaces before words, NBSP, non-ASCII
 * numbers, combining marks, titlecase and modifier letters, contractions, trailing whitespace),
 * with ids from a straightforward implementation of tiktoken's algorithm over this vocab.json. */
static void test_more_cases(void) {
    if (!gpt2) return;
    static const struct {
        const char *text;
        int ids[16];
        int n;
    } cases[] = {
        {"a\u3000\u3000b", {64, 5099, 222, 5099, 222, 65}, 6},
        {"x \u2028\u2028 y", {87, 564, 101, 447, 101, 331}, 6},
        {"\u00a0\u00a0word", {1849, 1849, 4775}, 3},
        {"\u0660\u0661\u0662 \u2167\u00bd", {149, 254, 149, 94, 149, 95, 2343, 227, 100, 23141}, 10},
        {"e\u0301t\u00e9 \ufb01ne", {68, 136, 223, 83, 2634, 27332, 105, 223, 710}, 9},
        {"\u01c5emal \u02b0", {131, 227, 368, 282, 220, 134, 108}, 7},
        {"it's 'S 'll'd'", {270, 338, 705, 50, 705, 297, 1549, 6}, 8},
        {"\t\t\tx\n \n  y  ", {197, 197, 197, 87, 198, 220, 198, 220, 331, 220, 220}, 11},
        {"1.5e10 $100", {16, 13, 20, 68, 940, 720, 3064}, 7},
        {"?? !!  ..", {3548, 37867, 220, 11485}, 4},
        {"\u200bzero \u200d", {9525, 22570, 564, 235}, 4},
        {"\u0915\u0903\u0915 test", {11976, 243, 11976, 225, 11976, 243, 1332}, 7},
    };
    char err[PK_ERR_LEN];
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int *ids = NULL, n = 0;
        CHECK(tok_encode(gpt2, cases[k].text, strlen(cases[k].text), 1, &ids, &n, err) == PK_OK);
        CHECK_MSG(same_ids(ids, n, cases[k].ids, cases[k].n), "case %zu", k);
        free(ids);
    }
}

static void test_special_token(void) {
    if (!gpt2) return;
    char err[PK_ERR_LEN];
    const char *s = "a<|endoftext|>b<|endoftext|>";
    int *ids, n;
    CHECK(tok_encode(gpt2, s, strlen(s), 1, &ids, &n, err) == PK_OK);
    int want[] = {64, 50256, 65, 50256};
    CHECK(same_ids(ids, n, want, 4));
    free(ids);
    /* not allowed: the same characters are ordinary text, never id 50256, and decode back */
    CHECK(tok_encode(gpt2, s, strlen(s), 0, &ids, &n, err) == PK_OK);
    int has_special = 0;
    for (int i = 0; i < n; i++) has_special |= ids[i] == 50256;
    CHECK(!has_special && n > 4);
    char *text;
    size_t len;
    CHECK(tok_decode(gpt2, ids, n, &text, &len, err) == PK_OK);
    CHECK(len == strlen(s) && !memcmp(text, s, len));
    free(text);
    free(ids);
    /* a partial special token is plain text */
    s = "<|endoftext|";
    CHECK(tok_encode(gpt2, s, strlen(s), 1, &ids, &n, err) == PK_OK);
    for (int i = 0; i < n; i++) CHECK(ids[i] != 50256);
    free(ids);
}

static void check_roundtrip(const char *s, size_t len) {
    char err[PK_ERR_LEN];
    int *ids = NULL, n = 0;
    int ok = tok_encode(gpt2, s, len, 0, &ids, &n, err) == PK_OK;
    CHECK_MSG(ok, "%s", err);
    char *text = NULL;
    size_t out_len = 0;
    ok = ok && tok_decode(gpt2, ids, n, &text, &out_len, err) == PK_OK;
    CHECK(ok && out_len == len && !memcmp(text, s, len));
    free(ids);
    free(text);
}

static void test_invalid_utf8(void) {
    if (!gpt2) return;
    const char *cases[] = {"\xff", "\xfe\xff abc", "caf\xc3", "\xe6\x97 x", "\xc0\xaf", "\xed\xa0\x80 surrogate",
                           "\xf4\x90\x80\x80", "x\x80y", "\xf0\x9f\x98", "  \xff\xff  \x80\n"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_roundtrip(cases[i], strlen(cases[i]));
    check_roundtrip("a\0b", 3); /* NUL bytes are just bytes */
    /* random byte strings */
    PkRng rng;
    pk_rng_seed(&rng, 7);
    char buf[64];
    for (int k = 0; k < 300; k++) {
        size_t len = (size_t)pk_rng_below(&rng, sizeof buf);
        for (size_t i = 0; i < len; i++) buf[i] = (char)pk_rng_below(&rng, 256);
        check_roundtrip(buf, len);
    }
    /* an invalid byte is a non-letter: it splits words instead of joining them */
    char err[PK_ERR_LEN];
    int *ids, n;
    const char *s = "hello\xffworld";
    CHECK(tok_encode(gpt2, s, strlen(s), 0, &ids, &n, err) == PK_OK);
    CHECK(n >= 3 && ids[0] == 31373 && ids[n - 1] == 6894); /* "hello" ... "world" */
    free(ids);
}

static void test_decode_out_of_range(void) {
    if (!gpt2) return;
    char err[PK_ERR_LEN] = "", *text = NULL;
    size_t len;
    int ids[] = {15496, 50257};
    CHECK(tok_decode(gpt2, ids, 2, &text, &len, err) == PK_FAIL);
    CHECK(text == NULL);
    CHECK_MSG(strstr(err, "50257") != NULL, "%s", err);
    int neg[] = {-3};
    CHECK(tok_decode(gpt2, neg, 1, &text, &len, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "-3") != NULL, "%s", err);
    /* every in-range id decodes, even to invalid UTF-8 */
    int partial[] = {447}; /* a lone UTF-8 lead fragment */
    CHECK(tok_decode(gpt2, partial, 1, &text, &len, err) == PK_OK);
    CHECK(len == 2);
    free(text);
    CHECK(tok_decode(gpt2, NULL, 0, &text, &len, err) == PK_OK && len == 0 && text && text[0] == 0);
    free(text);
}

typedef struct {
    int mismatches;
} ThreadResult;

static void *encode_all(void *arg) {
    ThreadResult *r = arg;
    char err[PK_ERR_LEN];
    for (int k = fixture.n - 1; k >= 0; k--) {
        int *ids, n;
        if (tok_encode(gpt2, fixture.texts[k], fixture.lens[k], 1, &ids, &n, err) != PK_OK) {
            r->mismatches++;
            continue;
        }
        if (!same_ids(ids, n, fixture.ids[k], fixture.n_ids[k])) r->mismatches++;
        free(ids);
    }
    return NULL;
}

/* The word cache is shared: concurrent encoders must agree with the reference. */
static void test_concurrent_encode(void) {
    if (!gpt2) return;
    pthread_t th[3];
    ThreadResult res[3] = {{0}};
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, encode_all, &res[i]);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    CHECK(res[0].mismatches + res[1].mismatches + res[2].mismatches == 0);
}

/* --- malformed files ------------------------------------------------------------------------ */

static char tmp_root[64];

static void write_text(const char *dir, const char *name, const char *content) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fputs(content, f);
    fclose(f);
}

/* Writes a tokenizer folder and loads it; returns the load status, err filled. */
static int load_pair(const char *vocab, const char *merges, char *err) {
    char dir[128];
    snprintf(dir, sizeof dir, "%s/bad", tmp_root);
    pk_mkdirs(dir, err);
    write_text(dir, "vocab.json", vocab);
    write_text(dir, "merges.txt", merges);
    Tokenizer *t = NULL;
    int rc = tok_load(&t, dir, err);
    tok_free(t);
    return rc;
}

static void expect_load_error(const char *vocab, const char *merges, const char *file, const char *what) {
    char err[PK_ERR_LEN] = "";
    int rc = load_pair(vocab, merges, err);
    CHECK_MSG(rc == PK_FAIL, "loaded although it should fail: %s", what);
    CHECK_MSG(strstr(err, file) != NULL && strstr(err, what) != NULL, "error '%s' lacks '%s' / '%s'", err, file,
              what);
}

static const char *small_vocab = "{\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"abc\": 4, \"<|endoftext|>\": 5}";

static void test_small_vocab_loads(void) {
    char err[PK_ERR_LEN] = "";
    CHECK_MSG(load_pair(small_vocab, "#version: 0.2\na b\nab c\n", err) == PK_OK, "%s", err);
    /* no header, CRLF line ends, no final newline */
    CHECK_MSG(load_pair(small_vocab, "a b\r\nab c", err) == PK_OK, "%s", err);
    Tokenizer *t = NULL;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/bad", tmp_root);
    CHECK(tok_load(&t, dir, err) == PK_OK);
    if (!t) return;
    int *ids, n;
    /* this vocabulary has no token for the space byte: a clean error, not a crash */
    CHECK(tok_encode(t, "abc cab", 7, 1, &ids, &n, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "0x20") != NULL, "%s", err);
    CHECK(tok_encode(t, "abcab", 5, 1, &ids, &n, err) == PK_OK);
    int want[] = {4, 3};
    CHECK(same_ids(ids, n, want, 2));
    free(ids);
    CHECK(tok_eos_id(t) == 5);
    tok_free(t);
}

static void test_bad_vocab(void) {
    const char *merges = "#version: 0.2\n";
    expect_load_error("{\"a\": 0,\n \"b\" 1,\n \"c\": 2}", merges, "vocab.json", "line 2");
    expect_load_error("not json", merges, "vocab.json", "line 1");
    expect_load_error("[\"a\", \"b\"]", merges, "vocab.json", "object");
    expect_load_error("{\"a\": 0, \"b\": 1.5}", merges, "vocab.json", "integer");
    expect_load_error("{\"a\": 0, \"b\": \"1\"}", merges, "vocab.json", "entry 2");
    expect_load_error("{\"a\": 0, \"b\": 0}", merges, "vocab.json", "already used");
    expect_load_error("{\"a\": 0, \"b\": 7}", merges, "vocab.json", "out of range");
    expect_load_error("{\"a\": 0, \"b\": -1}", merges, "vocab.json", "out of range");
    expect_load_error("{\"a\": 0, \"b c\": 1}", merges, "vocab.json", "byte alphabet");
    expect_load_error("{\"a\": 0, \"\\n\": 1}", merges, "vocab.json", "byte alphabet");
    expect_load_error("{\"a\": 0, \"a\": 1}", merges, "vocab.json", "same bytes");
    expect_load_error("{}", merges, "vocab.json", "empty");
    /* every response ends with <|endoftext|>: a vocabulary without it is refused, naming the file */
    expect_load_error("{\"a\": 0, \"b\": 1, \"ab\": 2}", "a b\n", "bad/vocab.json",
                      "the vocabulary has no <|endoftext|> token");
    expect_load_error("{\"a\": 0, \"<|endoftext|\": 1}", merges, "bad/vocab.json", "no <|endoftext|> token");
}

static void test_bad_merges(void) {
    expect_load_error(small_vocab, "#version: 0.2\na b\nab\n", "merges.txt", "line 3");
    expect_load_error(small_vocab, "#version: 0.2\na b c\n", "merges.txt", "line 2");
    expect_load_error(small_vocab, "a  b\n", "merges.txt", "line 1");
    expect_load_error(small_vocab, "a b\nab x\n", "merges.txt", "line 2: the token \"x\" is not in vocab.json");
    expect_load_error(small_vocab, "a b\nb a\n", "merges.txt", "line 2: the merged token \"ba\"");
    expect_load_error(small_vocab, "a b\n\nab c\n", "merges.txt", "line 2");
    expect_load_error(small_vocab, "a b\nab \xc3\n", "merges.txt", "line 2");
}

static void test_missing_files(void) {
    char err[PK_ERR_LEN] = "";
    Tokenizer *t = NULL;
    CHECK(tok_load(&t, "tests/fixtures/no-such-tokenizer", err) == PK_FAIL);
    CHECK(t == NULL);
    CHECK_MSG(strstr(err, "no-such-tokenizer/vocab.json") != NULL, "%s", err);
}

/* --- trainer ------------------------------------------------------------------------------------ */

/* A small deterministic corpus: a few hundred sentences from word lists, one frequent word. */
static char *make_corpus(size_t *len) {
    const char *subjects[] = {"The teacher", "A student", "Our model", "The prompt", "Every layer", "Μια γάτα"};
    const char *verbs[] = {"learns", "predicts", "distills", "samples", "writes", "reads"};
    const char *objects[] = {"the distillation loss", "12 tokens", "a soft prompt", "its own samples",
                             "the distillation target", "naïve résumé café", "日本語のテキスト"};
    PkBuf b = {0};
    PkRng rng;
    pk_rng_seed(&rng, 42);
    for (int i = 0; i < 600; i++) {
        pk_buf_printf(&b, "%s %s %s with distillation.%s", subjects[pk_rng_below(&rng, 6)],
                      verbs[pk_rng_below(&rng, 6)], objects[pk_rng_below(&rng, 7)], i % 7 ? " " : "\n\n");
    }
    *len = b.len;
    return b.data;
}

static int files_equal(const char *a, const char *b) {
    char err[PK_ERR_LEN], *da = NULL, *db = NULL;
    size_t la = 0, lb = 0;
    int eq = pk_read_file(a, &da, &la, err) == PK_OK && pk_read_file(b, &db, &lb, err) == PK_OK && la == lb &&
             !memcmp(da, db, la);
    free(da);
    free(db);
    return eq;
}

static void test_train_bpe(void) {
    char err[PK_ERR_LEN] = "", dir1[128], dir2[128];
    size_t len;
    char *corpus = make_corpus(&len);
    const char *texts[2] = {corpus, "extra text <|endoftext|> after"};
    size_t lens[2] = {len, strlen(texts[1])};
    snprintf(dir1, sizeof dir1, "%s/bpe1", tmp_root);
    snprintf(dir2, sizeof dir2, "%s/bpe2", tmp_root);
    double t0 = pk_now();
    CHECK_MSG(tok_train_bpe(texts, lens, 2, 400, dir1, err) == PK_OK, "%s", err);
    printf("    trained 400 tokens on %zu bytes in %.3f s\n", len, pk_now() - t0);
    CHECK_MSG(tok_train_bpe(texts, lens, 2, 400, dir2, err) == PK_OK, "%s", err);
    char a[256], b[256];
    snprintf(a, sizeof a, "%s/vocab.json", dir1);
    snprintf(b, sizeof b, "%s/vocab.json", dir2);
    CHECK(files_equal(a, b));
    snprintf(a, sizeof a, "%s/merges.txt", dir1);
    snprintf(b, sizeof b, "%s/merges.txt", dir2);
    CHECK(files_equal(a, b));
    char *merges = NULL;
    size_t mlen;
    CHECK(pk_read_file(a, &merges, &mlen, err) == PK_OK && mlen > 14 && !memcmp(merges, "#version: 0.2\n", 14));
    free(merges);

    Tokenizer *t = NULL;
    CHECK_MSG(tok_load(&t, dir1, err) == PK_OK, "%s", err);
    if (!t) {
        free(corpus);
        return;
    }
    CHECK(tok_vocab_size(t) == 400);
    CHECK(tok_eos_id(t) == 399);
    /* the 256 byte tokens carry GPT-2's ids */
    int same_bytes = 1;
    for (int id = 0; id < 256 && gpt2; id++) {
        size_t l1, l2;
        const char *p1 = tok_token_bytes(t, id, &l1), *p2 = tok_token_bytes(gpt2, id, &l2);
        same_bytes &= l1 == 1 && l2 == 1 && p1[0] == p2[0];
    }
    CHECK(same_bytes);
    /* a frequent word is one token */
    int *ids, n;
    CHECK(tok_encode(t, " distillation", 13, 0, &ids, &n, err) == PK_OK);
    CHECK_MSG(n == 1, "\" distillation\" took %d tokens", n);
    free(ids);
    /* round trips: the corpus, unseen text, invalid bytes, the special token */
    const char *unseen = "Zebras \xff\xfe quietly 4096 \xf0\x9f\x98\x80 <|endoftext|>";
    CHECK(tok_encode(t, unseen, strlen(unseen), 1, &ids, &n, err) == PK_OK);
    CHECK(n > 0 && ids[n - 1] == 399);
    free(ids);
    char *text;
    size_t tlen;
    CHECK(tok_encode(t, corpus, len, 0, &ids, &n, err) == PK_OK);
    CHECK(n < (int)len / 2); /* it compresses */
    CHECK(tok_decode(t, ids, n, &text, &tlen, err) == PK_OK && tlen == len && !memcmp(text, corpus, len));
    free(text);
    free(ids);
    CHECK(tok_encode(t, unseen, strlen(unseen), 0, &ids, &n, err) == PK_OK);
    CHECK(tok_decode(t, ids, n, &text, &tlen, err) == PK_OK && tlen == strlen(unseen) && !memcmp(text, unseen, tlen));
    free(text);
    free(ids);
    tok_free(t);

    /* a tiny corpus runs out of pairs: the vocabulary stays below the request */
    const char *tiny[1] = {"ab ab ab"};
    size_t tiny_len[1] = {8};
    CHECK_MSG(tok_train_bpe(tiny, tiny_len, 1, 1000, dir2, err) == PK_OK, "%s", err);
    CHECK(tok_load(&t, dir2, err) == PK_OK);
    if (t) CHECK(tok_vocab_size(t) > 257 && tok_vocab_size(t) < 1000);
    tok_free(t);
    /* refusals */
    CHECK(tok_train_bpe(texts, lens, 2, 256, dir2, err) == PK_FAIL && strstr(err, "256"));
    const char *empty[1] = {""};
    size_t zero[1] = {0};
    CHECK(tok_train_bpe(empty, zero, 1, 300, dir2, err) == PK_FAIL && strstr(err, "no training text"));
    free(corpus);
}

static void remove_tree(void) {
    if (pk_remove_tree(tmp_root) != 0) printf("    could not remove %s\n", tmp_root);
}

/* The one printable form of a token (the neighbours table, the TUI, the REPL show it). */
static void test_token_printable(void) {
    char err[PK_ERR_LEN], out[64];
    Tokenizer *tok = NULL;
    if (tok_load(&tok, "tests/fixtures/gpt2-tokenizer", err)) {
        printf("    %s\n", err);
        CHECK(0);
        return;
    }
    CHECK(tok_token_printable(tok, 345, out, sizeof out) == 4 && !strcmp(out, " you"));
    CHECK(tok_token_printable(tok, 198, out, sizeof out) == 2 && !strcmp(out, "\\n"));
    CHECK(tok_token_printable(tok, 1, out, sizeof out) == 2 && !strcmp(out, "\\\""));
    CHECK(tok_token_printable(tok, 59, out, sizeof out) == 2 && !strcmp(out, "\\\\"));
    CHECK(tok_token_printable(tok, 0, out, sizeof out) == 1 && !strcmp(out, "!"));
    /* a token that is half of a UTF-8 character shows its bytes */
    size_t n = 0;
    const unsigned char *b = (const unsigned char *)tok_token_bytes(tok, 447, &n);
    CHECK(b && n == 2 && b[0] == 0xE2 && b[1] == 0x80);
    CHECK(tok_token_printable(tok, 447, out, sizeof out) == 8 && !strcmp(out, "\\xE2\\x80"));
    CHECK(tok_token_printable(tok, 50256, out, sizeof out) > 0 && !strcmp(out, "<|endoftext|>"));
    CHECK(tok_token_printable(tok, 50257, out, sizeof out) == -1 && out[0] == 0);
    /* cut at a piece boundary when the buffer is short */
    CHECK(tok_token_printable(tok, 447, out, 6) == 4 && !strcmp(out, "\\xE2"));
    tok_free(tok);
}

int main(void) {
    RUN(test_token_printable);
    char err[PK_ERR_LEN];
    snprintf(tmp_root, sizeof tmp_root, "/tmp/pk-tokenizer-XXXXXX");
    if (!mkdtemp(tmp_root)) {
        printf("FAIL mkdtemp\n");
        return 1;
    }
    if (tok_load(&gpt2, GPT2_DIR, err) != PK_OK) printf("    %s\n", err);
    load_fixture();
    RUN(test_load_gpt2);
    RUN(test_fixture_exact);
    RUN(test_more_cases);
    RUN(test_special_token);
    RUN(test_invalid_utf8);
    RUN(test_decode_out_of_range);
    RUN(test_concurrent_encode);
    RUN(test_small_vocab_loads);
    RUN(test_bad_vocab);
    RUN(test_bad_merges);
    RUN(test_missing_files);
    RUN(test_train_bpe);
    tok_free(gpt2);
    free_fixture();
    remove_tree();
    TEST_EXIT();
}
