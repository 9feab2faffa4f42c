/* Drawing helpers shared by the panels and the screen: colour pairs, UTF-8 text cut to
 * a width, frames with titles, wrapped text, list scrolling, and charts drawn from the
 * chart layer's cells. Everything draws on stdscr. */
#include <stdio.h>
#include <string.h>

#include "tui_internal.h"

short tui_pair(Tui *t, int pair) { return t->colors ? (short)pair : 0; }

/* The colour pair drawing a series of this RGB colour (allocated on first use). */
short tui_series_pair(Tui *t, uint32_t rgb) {
    if (!t->colors) return 0;
    for (int i = 0; i < t->n_pairs; i++)
        if (t->pair_rgb[i] == rgb) return (short)(PAIR_FIRST_DYNAMIC + i);
    if (t->n_pairs == TUI_PAIR_CACHE || PAIR_FIRST_DYNAMIC + t->n_pairs >= COLOR_PAIRS) return 0;
    int fg = t->colors256 ? tui_rgb_to_xterm256(rgb) : tui_rgb_to_basic(rgb);
    short p = (short)(PAIR_FIRST_DYNAMIC + t->n_pairs);
    init_pair(p, (short)fg, -1);
    t->pair_rgb[t->n_pairs++] = rgb;
    return p;
}

void tui_put_cp(Tui *t, int y, int x, uint32_t cp, attr_t attr, short pair) {
    if (y < 0 || x < 0 || y >= t->rows || x >= t->cols) return;
    wchar_t w[2] = {L' ', 0};
    if (cp >= 0x20 && cp != 0x7f) {
        if (!t->utf8 && cp >= 0x80)
            w[0] = L'?';
        else if (t->utf8 && wcwidth((wchar_t)cp) < 0)
            w[0] = (wchar_t)0xfffd;
        else
            w[0] = (wchar_t)cp;
    }
    cchar_t cc;
    setcchar(&cc, w, attr, pair, NULL);
    mvadd_wch(y, x, &cc);
}

/* Draws at most maxw columns of UTF-8 text; returns the columns used. */
int tui_put_text_n(Tui *t, int y, int x, int maxw, const char *s, size_t n, attr_t attr, short pair) {
    int col = 0;
    for (size_t i = 0; i < n && s[i];) {
        uint32_t cp;
        i += (size_t)tui_utf8_next(s + i, n - i, &cp);
        int w = tui_cp_width(cp, t->utf8);
        if (w == 0) continue;
        if (col + w > maxw) break;
        tui_put_cp(t, y, x + col, cp, attr, pair);
        col += w;
    }
    return col;
}

int tui_put_text(Tui *t, int y, int x, int maxw, const char *s, attr_t attr, short pair) {
    return tui_put_text_n(t, y, x, maxw, s, strlen(s), attr, pair);
}

void tui_fill_row(Tui *t, int y, int x, int w, attr_t attr, short pair) {
    for (int i = 0; i < w; i++) tui_put_cp(t, y, x + i, ' ', attr, pair);
}

void tui_put_line_char(Tui *t, int y, int x, wchar_t u, char a, attr_t attr, short pair) {
    tui_put_cp(t, y, x, t->utf8 ? (uint32_t)u : (uint32_t)(unsigned char)a, attr, pair);
}

void tui_draw_frame(Tui *t, Rect r, const char *title, int focused) {
    if (r.h < 2 || r.w < 2) return;
    attr_t a = focused ? A_BOLD : A_NORMAL;
    short p = tui_pair(t, focused ? PAIR_TITLE : PAIR_FRAME);
    for (int x = 1; x < r.w - 1; x++) {
        tui_put_line_char(t, r.y, r.x + x, focused ? L'\u2501' : L'\u2500', focused ? '=' : '-', a, p);
        tui_put_line_char(t, r.y + r.h - 1, r.x + x, focused ? L'\u2501' : L'\u2500', focused ? '=' : '-', a, p);
    }
    for (int y = 1; y < r.h - 1; y++) {
        tui_put_line_char(t, r.y + y, r.x, focused ? L'\u2503' : L'\u2502', '|', a, p);
        tui_put_line_char(t, r.y + y, r.x + r.w - 1, focused ? L'\u2503' : L'\u2502', '|', a, p);
    }
    tui_put_line_char(t, r.y, r.x, focused ? L'\u250f' : L'\u250c', '+', a, p);
    tui_put_line_char(t, r.y, r.x + r.w - 1, focused ? L'\u2513' : L'\u2510', '+', a, p);
    tui_put_line_char(t, r.y + r.h - 1, r.x, focused ? L'\u2517' : L'\u2514', '+', a, p);
    tui_put_line_char(t, r.y + r.h - 1, r.x + r.w - 1, focused ? L'\u251b' : L'\u2518', '+', a, p);
    if (r.w > 6) {
        char buf[200];
        snprintf(buf, sizeof buf, " %s ", title);
        tui_put_text(t, r.y, r.x + 2, r.w - 4, buf, focused ? A_BOLD | A_REVERSE : A_BOLD,
                 tui_pair(t, PAIR_TITLE));
    }
}

Rect tui_inner(Rect r) {
    Rect i = {r.y + 1, r.x + 1, r.h - 2, r.w - 2, r.visible};
    if (i.h < 0) i.h = 0;
    if (i.w < 0) i.w = 0;
    return i;
}

/* ------------------------------------------------------------------ charts */

void tui_refresh_chart_names(Tui *t) {
    t->n_charts = t->host->chart_names ? t->host->chart_names(t->host->ctx, t->chart_names, TUI_MAX_CHARTS) : 0;
    if (t->n_charts < 0) t->n_charts = 0;
    int found = 0;
    for (int i = 0; i < t->n_charts; i++) found |= !strcmp(t->chart_names[i], t->chart);
    if (!found) snprintf(t->chart, sizeof t->chart, "%s", t->n_charts ? t->chart_names[0] : "loss");
}

int tui_chart_index(const Tui *t) {
    for (int i = 0; i < t->n_charts; i++)
        if (!strcmp(t->chart_names[i], t->chart)) return i;
    return 0;
}

/* The chart a chart key (s, l, x) acts on: the focused chart panel's, else the main one. */
const char *tui_focused_chart(const Tui *t) {
    return t->focus == P_EXPOSURE ? "exposure" : t->focus == P_CHART ? t->chart : NULL;
}

void tui_draw_chart(Tui *t, Rect r, const char *name) {
    if (r.w < 4 || r.h < 2) return;
    if (!t->snap) { /* nothing published yet: the chart builders read snapshots */
        tui_put_text(t, r.y + r.h / 2, r.x + 1, r.w - 2, "loading...", A_DIM, 0);
        return;
    }
    Chart c;
    char err[PK_ERR_LEN];
    memset(&c, 0, sizeof c);
    if (!t->host->build_chart || t->host->build_chart(t->host->ctx, name, &c, err) != PK_OK) {
        if (!t->host->build_chart) snprintf(err, sizeof err, "no charts in this session");
        tui_put_text(t, r.y + r.h / 2, r.x + 1, r.w - 2, err, A_NORMAL, tui_pair(t, PAIR_ERR));
        return;
    }
    ChartCells cells;
    /* without colour every series draws with its own glyph; the raw line under a smoothed one is dim */
    int flags = (t->utf8 ? CHART_CELLS_UTF8 : 0) | (t->colors ? 0 : CHART_CELLS_MONO);
    if (chart_render_cells(&c, r.w, r.h, flags, &cells) == 0 && cells.ch) {
        for (int y = 0; y < r.h; y++)
            for (int x = 0; x < r.w; x++) {
                int i = y * r.w + x;
                short s = cells.series[i];
                short p = s >= 0 && s < c.n_series ? tui_series_pair(t, chart_series_rgb(&c, s)) : 0;
                tui_put_cp(t, r.y + y, r.x + x, (uint32_t)cells.ch[i], cells.faint[i] ? A_DIM : A_NORMAL, p);
            }
        chart_cells_free(&cells);
    }
    chart_free(&c);
}

void tui_chart_title(Tui *t, const char *name, const char *base, char *out, size_t len) {
    TuiChartView v = {0};
    if (t->host->chart_view) t->host->chart_view(t->host->ctx, name, &v);
    char view[96] = "";
    if (v.ema > 0) snprintf(view, sizeof view, " ema %.2g", v.ema);
    if (v.log_y) snprintf(view + strlen(view), sizeof view - strlen(view), " log");
    if (v.window > 0) snprintf(view + strlen(view), sizeof view - strlen(view), " last %d", v.window);
    if (v.x_time) snprintf(view + strlen(view), sizeof view - strlen(view), " x time");
    snprintf(out, len, "%s%s", base, view);
}

/* Clamps a list scroll position and returns it. */
int tui_clamp_scroll(Tui *t, int p, int n_lines, int view_h) {
    int max = n_lines - view_h;
    if (max < 0) max = 0;
    if (t->scroll[p] > max) t->scroll[p] = max;
    if (t->scroll[p] < 0) t->scroll[p] = 0;
    return t->scroll[p];
}

/* Draws wrapped text in a column; skip lines of it first. Returns lines needed. */
int tui_draw_wrapped(Tui *t, int y, int x, int w, int h, const char *text, int skip, attr_t attr, short pair) {
    if (w < 1) return 0;
    enum { MAXL = 512 };
    int starts[MAXL], lens[MAXL];
    int n = tui_wrap(text, w, t->utf8, starts, lens, MAXL);
    int shown = n < MAXL ? n : MAXL;
    for (int i = skip, row = 0; i < shown && row < h; i++, row++)
        tui_put_text_n(t, y + row, x, w, text + starts[i], (size_t)lens[i], attr, pair);
    return n;
}

/* The last value of a snapshot series; 0 when there is none yet. */
int tui_last_series_value(const EngineSnapshot *s, const char *name, double *v) {
    for (int i = 0; s && i < s->n_series; i++)
        if (s->series[i].n > 0 && !strcmp(s->series[i].name, name)) {
            *v = s->series[i].y[s->series[i].n - 1];
            return 1;
        }
    return 0;
}
