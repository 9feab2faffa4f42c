/* core/common.c: the UTF-8 decoder and encoder and the line splitter every reader of text shares. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "test.h"

/* Decodes s whole; writes each step as "cp/len " into out (len < 0: not well-formed). */
static void decode_all(const char *s, size_t n, char *out, size_t outlen) {
    size_t o = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && o < outlen;) {
        uint32_t cp;
        int k = pk_utf8_decode(s + i, n - i, &cp);
        o += (size_t)snprintf(out + o, outlen - o, "%X/%d ", (unsigned)cp, k);
        i += (size_t)(k > 0 ? k : -k);
    }
}

static void test_utf8_decode_well_formed(void) {
    char out[256];
    const char *s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\x7F";
    decode_all(s, strlen(s), out, sizeof out);
    CHECK_MSG(!strcmp(out, "61/1 E9/2 20AC/3 1F600/4 7F/1 "), "%s", out);
    /* the edges: U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFF, U+10000, U+10FFFF */
    const char *e = "\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF";
    decode_all(e, strlen(e), out, sizeof out);
    CHECK_MSG(!strcmp(out, "80/2 7FF/2 800/3 D7FF/3 E000/3 FFFF/3 10000/4 10FFFF/4 "), "%s", out);
    CHECK(pk_utf8_invalid_at(s, strlen(s)) == -1 && pk_utf8_invalid_at(e, strlen(e)) == -1);
    uint32_t cp;
    CHECK(pk_utf8_decode("", 1, &cp) == 1 && cp == 0); /* NUL is a character */
}

/* Each ill-formed piece is one U+FFFD standing for its maximal subpart, as Python's
 * errors="replace" and the Unicode standard's practice count them. */
static void test_utf8_decode_ill_formed(void) {
    char out[256];
    struct {
        const char *bytes, *want;
    } cases[] = {
        {"\x80", "FFFD/-1 "},                          /* stray continuation */
        {"\xC0\xAF", "FFFD/-1 FFFD/-1 "},              /* overlong lead: nothing starts */
        {"\xE0\x80\xAF", "FFFD/-1 FFFD/-1 FFFD/-1 "},  /* overlong 3-byte form */
        {"\xED\xA0\x80", "FFFD/-1 FFFD/-1 FFFD/-1 "},  /* a surrogate */
        {"\xF4\x90\x80\x80", "FFFD/-1 FFFD/-1 FFFD/-1 FFFD/-1 "}, /* above U+10FFFF */
        {"\xF5\x80", "FFFD/-1 FFFD/-1 "},
        {"\xE2\x82", "FFFD/-2 "},                      /* cut short by the end */
        {"\xE2\x82x", "FFFD/-2 78/1 "},                /* cut short by an ASCII byte */
        {"\xF0\x9F\x98", "FFFD/-3 "},
        {"\xC3", "FFFD/-1 "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        decode_all(cases[i].bytes, strlen(cases[i].bytes), out, sizeof out);
        CHECK_MSG(!strcmp(out, cases[i].want), "case %zu: %s (expected %s)", i, out, cases[i].want);
        CHECK(pk_utf8_invalid_at(cases[i].bytes, strlen(cases[i].bytes)) == 0);
    }
    CHECK(pk_utf8_invalid_at("ok\xC3\xA9\xE2\x82", 6) == 4);
}

static void test_utf8_encode_round_trip(void) {
    uint32_t cps[] = {0, 0x41, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF};
    for (size_t i = 0; i < sizeof cps / sizeof *cps; i++) {
        char b[4];
        uint32_t back = 1;
        int n = pk_utf8_encode(cps[i], b);
        CHECK(n >= 1 && n <= 4 && pk_utf8_decode(b, (size_t)n, &back) == n && back == cps[i]);
    }
}

/* The one line splitter: '\n' ends a line, a '\r' before it goes, the last line needs no '\n'. */
static void test_next_line(void) {
    const char text[] = "a\r\n\nbc\rd\n\r\nlast";
    size_t len = sizeof text - 1, pos = 0, start, n;
    char got[128] = "";
    size_t o = 0;
    while (pk_next_line(text, len, &pos, &start, &n))
        o += (size_t)snprintf(got + o, sizeof got - o, "[%.*s]", (int)n, text + start);
    CHECK_MSG(!strcmp(got, "[a][][bc\rd][][last]"), "%s", got);
    CHECK(pos == len && !pk_next_line(text, len, &pos, &start, &n));
    pos = 0;
    CHECK(!pk_next_line("", 0, &pos, &start, &n));
    CHECK(pk_next_line("x\n", 2, &pos, &start, &n) && n == 1 && pos == 2 && !pk_next_line("x\n", 2, &pos, &start, &n));
}

int main(void) {
    RUN(test_utf8_decode_well_formed);
    RUN(test_utf8_decode_ill_formed);
    RUN(test_utf8_encode_round_trip);
    RUN(test_next_line);
    TEST_EXIT();
}
