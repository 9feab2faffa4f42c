/* Text helpers of the workbench: UTF-8 decoding, display widths, word wrap,
 * number formats and terminal colour mapping. No curses state here, so these are
 * unit-testable on their own. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "tui.h"
#include "tui_internal.h"

int tui_utf8_next(const char *s, size_t n, uint32_t *cp) {
    if (n == 0) {
        *cp = 0;
        return 0;
    }
    int len = pk_utf8_decode(s, n, cp);
    return len > 0 ? len : 1; /* one U+FFFD per bad byte */
}

int tui_cp_width(uint32_t cp, int utf8) {
    if (cp < 0x20 || cp == 0x7f || !utf8) return 1;
    int w = wcwidth((wchar_t)cp);
    return w < 0 ? 1 : w; /* unprintable: drawn as one replacement mark; 0: combining, skipped */
}

int tui_text_width(const char *s, int utf8) {
    size_t n = strlen(s);
    int w = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += (size_t)tui_utf8_next(s + i, n - i, &cp);
        w += tui_cp_width(cp, utf8);
    }
    return w;
}

int tui_wrap(const char *s, int width, int utf8, int *starts, int *lens, int max) {
    if (width < 1) width = 1;
    int len = (int)strlen(s), count = 0;
#define EMIT(st, ln)                                                                                                   \
    do {                                                                                                               \
        if (count < max) starts[count] = (st), lens[count] = (ln);                                                     \
        count++;                                                                                                       \
    } while (0)
    int i = 0;
    while (i < len) {
        int start = i, col = 0, brk = -1, j = i, k = 0;
        while (j < len && s[j] != '\n') {
            uint32_t cp;
            k = tui_utf8_next(s + j, (size_t)(len - j), &cp);
            int w = tui_cp_width(cp, utf8);
            if (col + w > width) break;
            if (cp == ' ') brk = j;
            col += w;
            j += k;
        }
        if (j >= len || s[j] == '\n') {
            EMIT(start, j - start);
            i = j + 1;
            continue;
        }
        if (brk > start) {
            EMIT(start, brk - start);
            i = brk + 1;
        } else {
            if (j == start) { /* one character wider than the line: take it anyway */
                uint32_t cp;
                j += tui_utf8_next(s + j, (size_t)(len - j), &cp);
            }
            EMIT(start, j - start);
            i = j;
        }
        while (i < len && s[i] == ' ') i++; /* a soft break eats the spaces it broke at */
    }
#undef EMIT
    return count;
}

void tui_format_duration(double s, char *out, size_t len) {
    if (!(s > 0) || !isfinite(s)) {
        snprintf(out, len, "-");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, len, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(out, len, "%ld:%02ld", t / 60, t % 60);
}

void tui_format_rate(double v, char *out, size_t len) {
    if (!isfinite(v) || v < 0) v = 0;
    if (v >= 1e9)
        snprintf(out, len, "%.3gG", v / 1e9);
    else if (v >= 1e6)
        snprintf(out, len, "%.3gM", v / 1e6);
    else if (v >= 1e4)
        snprintf(out, len, "%.3gk", v / 1e3);
    else if (v >= 100)
        snprintf(out, len, "%.0f", v);
    else
        snprintf(out, len, "%.3g", v);
}

/* xterm's 6x6x6 cube levels and grey ramp. */
static int cube_level(int v) {
    static const int lv[6] = {0, 95, 135, 175, 215, 255};
    int best = 0;
    for (int i = 1; i < 6; i++)
        if (abs(lv[i] - v) < abs(lv[best] - v)) best = i;
    return best;
}

int tui_rgb_to_xterm256(uint32_t rgb) {
    static const int lv[6] = {0, 95, 135, 175, 215, 255};
    int r = (rgb >> 16) & 255, g = (rgb >> 8) & 255, b = rgb & 255;
    int ri = cube_level(r), gi = cube_level(g), bi = cube_level(b);
    int dr = lv[ri] - r, dg = lv[gi] - g, db = lv[bi] - b;
    long cube_d = (long)dr * dr + (long)dg * dg + (long)db * db;
    int grey = (r + g + b) / 3;
    int gi24 = grey < 8 ? 0 : grey > 238 ? 23 : (grey - 8) / 10;
    int gv = 8 + 10 * gi24;
    long grey_d = (long)(gv - r) * (gv - r) + (long)(gv - g) * (gv - g) + (long)(gv - b) * (gv - b);
    if (grey_d < cube_d) return 232 + gi24;
    return 16 + 36 * ri + 6 * gi + bi;
}

int tui_rgb_to_basic(uint32_t rgb) {
    /* the 8 palette colours have a fixed, distinct-as-possible mapping */
    static const int fixed[8] = {TUI_BASIC_BLUE, TUI_BASIC_RED,     TUI_BASIC_GREEN,   TUI_BASIC_MAGENTA,
                                 TUI_BASIC_YELLOW, TUI_BASIC_CYAN, TUI_BASIC_MAGENTA, TUI_BASIC_YELLOW};
    static const uint32_t pal[8] = {0x0072B2, 0xD55E00, 0x009E73, 0xCC79A7, 0xE69F00, 0x56B4E9, 0x7F3C8D, 0x8C6D31};
    for (int i = 0; i < 8; i++)
        if (pal[i] == rgb) return fixed[i];
    double r = ((rgb >> 16) & 255) / 255.0, g = ((rgb >> 8) & 255) / 255.0, b = (rgb & 255) / 255.0;
    double mx = fmax(r, fmax(g, b)), mn = fmin(r, fmin(g, b)), d = mx - mn;
    if (d < 0.15) return TUI_BASIC_WHITE; /* greys */
    double h;
    if (mx == r)
        h = fmod((g - b) / d + 6.0, 6.0);
    else if (mx == g)
        h = (b - r) / d + 2.0;
    else
        h = (r - g) / d + 4.0;
    h *= 60.0;
    if (h < 30 || h >= 330) return TUI_BASIC_RED;
    if (h < 75) return TUI_BASIC_YELLOW;
    if (h < 165) return TUI_BASIC_GREEN;
    if (h < 195) return TUI_BASIC_CYAN;
    if (h < 255) return TUI_BASIC_BLUE;
    return TUI_BASIC_MAGENTA;
}
