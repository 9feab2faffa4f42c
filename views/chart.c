#include "chart.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void copy_str(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "");
}

void chart_init(Chart *c, const char *title, const char *xlabel, const char *ylabel) {
    memset(c, 0, sizeof *c);
    copy_str(c->title, sizeof c->title, title);
    copy_str(c->xlabel, sizeof c->xlabel, xlabel);
    copy_str(c->ylabel, sizeof c->ylabel, ylabel);
}

int chart_add_series(Chart *c, const char *name, const double *x, const double *y, int n) {
    if (c->n_series >= CHART_MAX_SERIES || n < 0) return -1;
    ChartSeries *s = &c->series[c->n_series];
    memset(s, 0, sizeof *s);
    copy_str(s->name, sizeof s->name, name);
    s->x = malloc(sizeof(double) * (n ? n : 1));
    s->y = malloc(sizeof(double) * (n ? n : 1));
    if (!s->x || !s->y) {
        free(s->x);
        free(s->y);
        return -1;
    }
    if (n) {
        memcpy(s->x, x, sizeof(double) * n);
        memcpy(s->y, y, sizeof(double) * n);
    }
    s->n = n;
    c->n_series++;
    return 0;
}

void chart_free(Chart *c) {
    for (int i = 0; i < c->n_series; i++) {
        free(c->series[i].x);
        free(c->series[i].y);
    }
    c->n_series = 0;
}

uint32_t chart_palette(int i) {
    static const uint32_t pal[] = {0x0072B2, 0xD55E00, 0x009E73, 0xCC79A7, 0xE69F00, 0x56B4E9, 0x7F3C8D, 0x8C6D31};
    return pal[((i % 8) + 8) % 8];
}

uint32_t chart_series_rgb(const Chart *c, int i) { return c->series[i].rgb ? c->series[i].rgb : chart_palette(i); }

void chart_format_tick(double v, char *out, size_t len) {
    double a = fabs(v);
    if (v == 0) snprintf(out, len, "0");
    else if (a >= 1e6 || a < 1e-3) snprintf(out, len, "%.2g", v);
    else if (a >= 1e4) snprintf(out, len, "%.3gk", v / 1e3);
    else if (a >= 100) snprintf(out, len, "%.0f", v);
    else snprintf(out, len, "%.3g", v);
}

/* Digits after the point that tell ticks `step` apart (step > 0): 0.25 -> 2, 5 -> 0. */
static int decimals_for_step(double step) {
    int d = (int)ceil(-log10(step) - 1e-9);
    if (d < 0) d = 0;
    /* a 2.5-type step needs one digit more than its power of ten */
    double scaled = step * pow(10, d);
    if (fabs(scaled - floor(scaled + 0.5)) > 1e-6 * scaled) d++;
    return d;
}

void chart_format_tick_step(double v, double step, char *out, size_t len) {
    double a = fabs(v);
    if (!(step > 0) || !isfinite(step)) {
        chart_format_tick(v, out, len);
        return;
    }
    if (a < step * 1e-9) {
        snprintf(out, len, "0");
    } else if (a >= 1e6 || (a < 1e-3 && step < 1e-3)) {
        /* significant digits from the leading digit of v down to the step's */
        int sig = (int)floor(log10(a)) - (int)floor(log10(step) + 1e-9) + 1;
        if (sig < 1) sig = 1;
        if (sig > 6) sig = 6;
        snprintf(out, len, "%.*e", sig - 1, v);
    } else if (a >= 1e4 && step >= 100) {
        snprintf(out, len, "%.*fk", decimals_for_step(step / 1e3), v / 1e3);
    } else {
        int d = decimals_for_step(step);
        if (d > 6) d = 6;
        snprintf(out, len, "%.*f", d, v);
    }
}

/* "Nice" tick step for a range: 1, 2 or 5 times a power of ten. */
static double nice_step(double range, int max_ticks) {
    if (!(range > 0)) return 1;
    double raw = range / (max_ticks > 1 ? max_ticks - 1 : 1);
    double p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* Ticks at lo, lo + step, ... <= hi (nice multiples), with labels that differ. On a log axis
 * (lo, hi in log10 units) a span of a decade or more gets ticks at whole decades (every k-th when
 * there are many); a shorter span gets nice values of the data's own units, placed at their log. */
static int make_ticks(double lo, double hi, int max_ticks, int log_axis, double *ticks, char labels[][16]) {
    if (max_ticks < 2) max_ticks = 2;
    if (max_ticks > 16) max_ticks = 16;
    int n = 0;
    if (log_axis && hi - lo < 1) {
        double vlo = pow(10, lo), vhi = pow(10, hi);
        double step = nice_step(vhi - vlo, max_ticks);
        for (double t = ceil(vlo / step - 1e-9) * step; t <= vhi + step * 1e-9 && n < 16; t += step) {
            if (!(t > 0)) continue;
            ticks[n] = log10(t);
            chart_format_tick_step(t, step, labels[n], 16);
            n++;
        }
        if (n >= 2) return n;
        n = 0; /* too narrow for two nice values: fall back to exponent ticks */
    }
    double step = nice_step(hi - lo, max_ticks);
    if (log_axis && hi - lo >= 1) step = step < 1 ? 1 : ceil(step);
    double start = ceil(lo / step - 1e-9) * step;
    for (double t = start; t <= hi + step * 1e-9 && n < 16; t += step) {
        double v = fabs(t) < step * 1e-9 ? 0 : t;
        ticks[n] = v;
        if (log_axis) {
            double value = pow(10, v);
            /* a whole decade reads exactly (0.01, 1, 1000); a fractional exponent as before */
            if (fabs(v - floor(v + 0.5)) < 1e-9) chart_format_tick_step(value, value, labels[n], 16);
            else chart_format_tick(value, labels[n], 16);
        } else {
            chart_format_tick_step(v, step, labels[n], 16);
        }
        n++;
    }
    return n;
}

int chart_prepare(const Chart *c, ChartGeometry *g, int max_xticks, int max_yticks) {
    memset(g, 0, sizeof *g);
    g->n_series = c->n_series;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int s = 0; s < c->n_series; s++) {
        const ChartSeries *cs = &c->series[s];
        int n = cs->n;
        g->n[s] = n;
        g->x[s] = malloc(sizeof(double) * (n ? n : 1));
        g->y[s] = malloc(sizeof(double) * (n ? n : 1));
        if (!g->x[s] || !g->y[s]) {
            chart_geometry_free(g);
            return -1;
        }
        /* EMA as TensorBoard does it: debiased so the first points are not pulled to 0 */
        double acc = 0, weight = 0;
        for (int i = 0; i < n; i++) {
            double y = cs->y[i], x = cs->x[i];
            g->x[s][i] = x;
            if (!isfinite(y) || !isfinite(x)) {
                g->y[s][i] = NAN;
                continue;
            }
            if (c->ema > 0 && c->ema < 1) {
                acc = c->ema * acc + (1 - c->ema) * y;
                weight = c->ema * weight + (1 - c->ema);
                y = acc / weight;
            }
            if (c->log_y) y = y > 0 ? log10(y) : NAN;
            g->y[s][i] = y;
            if (!isfinite(y)) continue;
            if (x < xmin) xmin = x;
            if (x > xmax) xmax = x;
            if (y < ymin) ymin = y;
            if (y > ymax) ymax = y;
        }
    }
    if (!isfinite(xmin)) {
        g->empty = 1;
        xmin = 0, xmax = 1, ymin = 0, ymax = 1;
    }
    if (xmax - xmin < 1e-12) xmin -= 0.5, xmax += 0.5;
    if (ymax - ymin < 1e-12 * (fabs(ymax) + 1)) {
        double pad = fabs(ymax) * 0.05 + (c->log_y ? 0.1 : 0.5);
        ymin -= pad, ymax += pad;
    } else {
        double pad = (ymax - ymin) * 0.05;
        ymin -= pad, ymax += pad;
    }
    if (c->kind == CHART_BARS && !c->log_y) {
        if (ymin > 0) ymin = 0;
        if (ymax < 0) ymax = 0;
    }
    g->xmin = xmin, g->xmax = xmax, g->ymin = ymin, g->ymax = ymax;
    g->n_xticks = make_ticks(xmin, xmax, max_xticks, 0, g->xticks, g->xtick_labels);
    g->n_yticks = make_ticks(ymin, ymax, max_yticks, c->log_y, g->yticks, g->ytick_labels);
    return 0;
}

void chart_geometry_free(ChartGeometry *g) {
    for (int s = 0; s < g->n_series; s++) {
        free(g->x[s]);
        free(g->y[s]);
        g->x[s] = g->y[s] = NULL;
    }
}

/* ---- terminal cells ---- */

typedef struct {
    int w, h;          /* in dots */
    unsigned char *on; /* dots */
    short *owner;      /* series that last set the dot */
} DotGrid;

static void dot_set(DotGrid *d, int x, int y, short s) {
    if (x < 0 || y < 0 || x >= d->w || y >= d->h) return;
    d->on[y * d->w + x] = 1;
    d->owner[y * d->w + x] = s;
}

static void dot_line(DotGrid *d, int x0, int y0, int x1, int y1, short s) {
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (int guard = 0; guard < 100000; guard++) {
        dot_set(d, x0, y0, s);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

static void put_text(ChartCells *o, int row, int col, const char *s) {
    if (row < 0 || row >= o->h) return;
    for (; *s && col < o->w; s++, col++)
        if (col >= 0) {
            o->ch[row * o->w + col] = (unsigned char)*s;
            o->series[row * o->w + col] = -1;
        }
}

int chart_render_cells(const Chart *c, int w, int h, int utf8, ChartCells *o) {
    memset(o, 0, sizeof *o);
    if (w < 1 || h < 1) return -1;
    o->w = w, o->h = h;
    o->ch = malloc(sizeof(wchar_t) * w * h);
    o->series = malloc(sizeof(short) * w * h);
    if (!o->ch || !o->series) {
        chart_cells_free(o);
        return -1;
    }
    for (int i = 0; i < w * h; i++) o->ch[i] = L' ', o->series[i] = -1;
    int legend_rows = c->n_series > 0 && h >= 4 ? 1 : 0;
    int xlabel_rows = h >= 3 ? 1 : 0;
    int plot_h = h - legend_rows - xlabel_rows;
    ChartGeometry g;
    if (chart_prepare(c, &g, w / 10 + 1, plot_h / 2 + 1)) {
        chart_cells_free(o);
        return -1;
    }
    int label_w = 0;
    for (int i = 0; i < g.n_yticks; i++) {
        int l = (int)strlen(g.ytick_labels[i]);
        if (l > label_w) label_w = l;
    }
    if (label_w > w / 3) label_w = w / 3;
    int px0 = label_w + 1, plot_w = w - px0;
    if (plot_w < 2 || plot_h < 1) {
        chart_geometry_free(&g);
        return 0; /* too small: blank */
    }
    /* axis line */
    for (int r = 0; r < plot_h; r++) o->ch[r * w + label_w] = utf8 ? L'\u2502' : L'|';
    for (int i = 0; i < g.n_yticks; i++) {
        double f = (g.yticks[i] - g.ymin) / (g.ymax - g.ymin);
        int r = plot_h - 1 - (int)lround(f * (plot_h - 1));
        char lab[24];
        snprintf(lab, sizeof lab, "%*.*s", label_w, label_w, g.ytick_labels[i]);
        put_text(o, r, 0, lab);
    }
    if (xlabel_rows) {
        int row = plot_h;
        int next_free = px0;
        for (int i = 0; i < g.n_xticks; i++) {
            double f = (g.xticks[i] - g.xmin) / (g.xmax - g.xmin);
            int col = px0 + (int)lround(f * (plot_w - 1));
            int l = (int)strlen(g.xtick_labels[i]);
            int start = col - l / 2;
            if (start < next_free) continue;
            if (start + l > w) start = w - l;
            if (start < next_free) continue;
            put_text(o, row, start, g.xtick_labels[i]);
            next_free = start + l + 1;
        }
    }
    /* plot dots */
    int sub_w = utf8 ? 2 : 1, sub_h = utf8 ? 4 : 1;
    DotGrid d = {plot_w * sub_w, plot_h * sub_h, NULL, NULL};
    d.on = calloc((size_t)d.w * d.h, 1);
    d.owner = malloc(sizeof(short) * d.w * d.h);
    if (!d.on || !d.owner) {
        free(d.on);
        free(d.owner);
        chart_geometry_free(&g);
        chart_cells_free(o);
        return -1;
    }
    for (int s = 0; s < g.n_series; s++) {
        int have_prev = 0, px = 0, py = 0;
        for (int i = 0; i < g.n[s]; i++) {
            double y = g.y[s][i];
            if (!isfinite(y)) {
                have_prev = 0;
                continue;
            }
            int x = (int)lround((g.x[s][i] - g.xmin) / (g.xmax - g.xmin) * (d.w - 1));
            int yy = d.h - 1 - (int)lround((y - g.ymin) / (g.ymax - g.ymin) * (d.h - 1));
            if (c->kind == CHART_BARS) {
                double base = g.ymin <= 0 && g.ymax >= 0 ? 0 : g.ymin;
                int y0 = d.h - 1 - (int)lround((base - g.ymin) / (g.ymax - g.ymin) * (d.h - 1));
                dot_line(&d, x, y0, x, yy, (short)s);
            } else if (have_prev) {
                dot_line(&d, px, py, x, yy, (short)s);
            } else {
                dot_set(&d, x, yy, (short)s);
            }
            px = x, py = yy, have_prev = 1;
        }
    }
    static const char ascii_marks[] = "*+o#x%@&";
    for (int r = 0; r < plot_h; r++)
        for (int cc = 0; cc < plot_w; cc++) {
            int bits = 0;
            short owner = -1;
            for (int dy = 0; dy < sub_h; dy++)
                for (int dx = 0; dx < sub_w; dx++) {
                    int idx = (r * sub_h + dy) * d.w + cc * sub_w + dx;
                    if (!d.on[idx]) continue;
                    owner = d.owner[idx];
                    /* braille dot numbering: columns of 1,2,3,7 and 4,5,6,8 */
                    static const int bit[4][2] = {{0, 3}, {1, 4}, {2, 5}, {6, 7}};
                    bits |= 1 << bit[dy][dx];
                }
            if (!bits) continue;
            int cell = r * w + px0 + cc;
            o->ch[cell] = utf8 ? (wchar_t)(0x2800 + bits) : (wchar_t)ascii_marks[owner % 8];
            o->series[cell] = owner;
        }
    free(d.on);
    free(d.owner);
    if (legend_rows) {
        int row = h - 1, col = 0;
        for (int s = 0; s < c->n_series && col < w; s++) {
            if (col + 3 > w) break;
            o->ch[row * w + col] = utf8 ? L'\u25a0' : (wchar_t)ascii_marks[s % 8];
            o->series[row * w + col] = (short)s;
            col += 2;
            put_text(o, row, col, c->series[s].name);
            col += (int)strlen(c->series[s].name) + 2;
        }
        if (c->log_y && col + 5 < w) put_text(o, row, w - 5, "[log]");
    }
    if (g.empty) put_text(o, plot_h / 2, px0 + (plot_w > 9 ? (plot_w - 9) / 2 : 0), "(no data)");
    chart_geometry_free(&g);
    return 0;
}

void chart_cells_free(ChartCells *cells) {
    free(cells->ch);
    free(cells->series);
    cells->ch = NULL;
    cells->series = NULL;
}
