/* The workbench's text helpers: UTF-8 decoding (invalid input never skips valid
 * text), display widths, word wrap (byte ranges, forced breaks, long words cut,
 * wide characters), duration and rate formats, colour mapping to 256 and 8 colours. */
#include <locale.h>
#include <string.h>

#include "chart.h"
#include "test.h"
#include "tui.h"
#include "tui_internal.h"

static void test_utf8_decoding(void) {
    uint32_t cp;
    CHECK(tui_utf8_next("A", 1, &cp) == 1 && cp == 'A');
    CHECK(tui_utf8_next("\xc3\xa9", 2, &cp) == 2 && cp == 0xe9);
    CHECK(tui_utf8_next("\xe2\xa0\x81", 3, &cp) == 3 && cp == 0x2801);
    CHECK(tui_utf8_next("\xf0\x9f\x98\x80", 4, &cp) == 4 && cp == 0x1f600);
    /* invalid: one byte consumed, U+FFFD */
    CHECK(tui_utf8_next("\xff", 1, &cp) == 1 && cp == 0xfffd);
    CHECK(tui_utf8_next("\xc3(", 2, &cp) == 1 && cp == 0xfffd);
    CHECK(tui_utf8_next("\xe2\xa0", 2, &cp) == 1 && cp == 0xfffd);         /* truncated */
    CHECK(tui_utf8_next("\xc0\xaf", 2, &cp) == 1 && cp == 0xfffd);         /* overlong */
    CHECK(tui_utf8_next("\xed\xa0\x80", 3, &cp) == 1 && cp == 0xfffd);     /* surrogate */
    CHECK(tui_utf8_next("", 0, &cp) == 0);
}

static void test_widths(void) {
    CHECK(tui_text_width("hello", 1) == 5);
    CHECK(tui_text_width("caf\xc3\xa9", 1) == 4);
    CHECK(tui_text_width("caf\xc3\xa9", 0) == 4);
    CHECK(tui_text_width("\xe6\x97\xa5\xe6\x9c\xac", 1) == 4); /* two CJK characters, 2 columns each */
    CHECK(tui_text_width("\xe6\x97\xa5\xe6\x9c\xac", 0) == 2); /* ASCII mode: one '?' each */
    CHECK(tui_text_width("a\tb", 1) == 3);                     /* control characters take one cell */
}

static int wrap(const char *s, int w, int *st, int *ln) { return tui_wrap(s, w, 1, st, ln, 32); }

static void test_wrap(void) {
    int st[32], ln[32];
    const char *s = "the quick brown fox";
    int n = wrap(s, 10, st, ln);
    CHECK(n == 2);
    CHECK(ln[0] == 9 && !strncmp(s + st[0], "the quick", 9));
    CHECK(!strncmp(s + st[1], "brown fox", 9) && ln[1] == 9);
    /* exact fit: no break */
    CHECK(wrap("abcde", 5, st, ln) == 1 && ln[0] == 5);
    /* newlines force breaks and keep empty lines */
    s = "a\n\nb";
    n = wrap(s, 10, st, ln);
    CHECK(n == 3 && ln[0] == 1 && ln[1] == 0 && s[st[2]] == 'b');
    /* a word longer than the line is cut */
    s = "abcdefghij xy";
    n = wrap(s, 4, st, ln);
    CHECK(n == 4 && ln[0] == 4 && ln[1] == 4 && ln[2] == 2 && !strncmp(s + st[3], "xy", 2));
    /* wide characters are never split: 3 CJK characters in 5 columns -> 2 + 1 */
    s = "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e";
    n = wrap(s, 5, st, ln);
    CHECK(n == 2 && ln[0] == 6 && ln[1] == 3);
    /* width 1 with a wide character still makes progress */
    CHECK(wrap("\xe6\x97\xa5x", 1, st, ln) == 2);
    /* the count is returned even past max */
    CHECK(tui_wrap("a b c d e f", 1, 1, st, ln, 2) == 6);
    CHECK(wrap("", 10, st, ln) == 0);
}

static void test_formats(void) {
    char b[32];
    tui_format_duration(0, b, sizeof b);
    CHECK(!strcmp(b, "-"));
    tui_format_duration(75, b, sizeof b);
    CHECK(!strcmp(b, "1:15"));
    tui_format_duration(3600 + 62, b, sizeof b);
    CHECK(!strcmp(b, "1:01:02"));
    tui_format_rate(950, b, sizeof b);
    CHECK(!strcmp(b, "950"));
    tui_format_rate(12345, b, sizeof b);
    CHECK(!strcmp(b, "12.3k"));
    tui_format_rate(4.56e6, b, sizeof b);
    CHECK(!strcmp(b, "4.56M"));
    tui_format_rate(2.5, b, sizeof b);
    CHECK(!strcmp(b, "2.5"));
}

static void test_colours(void) {
    CHECK(tui_rgb_to_xterm256(0x000000) == 16);
    CHECK(tui_rgb_to_xterm256(0xffffff) == 231);
    CHECK(tui_rgb_to_xterm256(0xff0000) == 196);
    CHECK(tui_rgb_to_xterm256(0x808080) == 244); /* greys go to the grey ramp */
    CHECK(tui_rgb_to_xterm256(0x0072B2) == 16 + 0 * 36 + 1 * 6 + 3); /* cube levels 0, 95, 175 */
    /* the first 4 palette colours (loss curves) stay distinct in 8 colours */
    int seen = 0;
    for (int i = 0; i < 4; i++) seen |= 1 << tui_rgb_to_basic(chart_palette(i));
    CHECK(__builtin_popcount(seen) == 4);
    CHECK(tui_rgb_to_basic(0xff0000) == TUI_BASIC_RED);
    CHECK(tui_rgb_to_basic(0x00ff00) == TUI_BASIC_GREEN);
    CHECK(tui_rgb_to_basic(0x0000ff) == TUI_BASIC_BLUE);
    CHECK(tui_rgb_to_basic(0x999999) == TUI_BASIC_WHITE);
}

int main(void) {
    setlocale(LC_ALL, "C.UTF-8"); /* wcwidth of CJK needs a UTF-8 locale */
    RUN(test_utf8_decoding);
    RUN(test_widths);
    RUN(test_wrap);
    RUN(test_formats);
    RUN(test_colours);
    TEST_EXIT();
}
