#include "chart.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static void copy_str(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "");
}

void chart_init(Chart *c, const char *title, const char *xlabel, const char *ylabel) {
    memset(c, 0, sizeof *c);
    copy_str(c->title, sizeof c->title, title);
    copy_str(c->xlabel, sizeof c->xlabel, xlabel);
    copy_str(c->ylabel, sizeof c->ylabel, ylabel);
}

int chart_add_series_t(Chart *c, const char *name, const double *x, const double *y, const double *t, int n) {
    if (c->n_series >= CHART_MAX_SERIES || n < 0) return -1;
    ChartSeries *s = &c->series[c->n_series];
    memset(s, 0, sizeof *s);
    copy_str(s->name, sizeof s->name, name);
    s->x = malloc(sizeof(double) * (n ? n : 1));
    s->y = malloc(sizeof(double) * (n ? n : 1));
    s->t = t ? malloc(sizeof(double) * (n ? n : 1)) : NULL;
    if (!s->x || !s->y || (t && !s->t)) {
        free(s->x);
        free(s->y);
        free(s->t);
        return -1;
    }
    if (n) {
        memcpy(s->x, x, sizeof(double) * n);
        memcpy(s->y, y, sizeof(double) * n);
        if (t) memcpy(s->t, t, sizeof(double) * n);
    }
    s->n = n;
    c->n_series++;
    return 0;
}

int chart_add_series(Chart *c, const char *name, const double *x, const double *y, int n) {
    return chart_add_series_t(c, name, x, y, NULL, n);
}

void chart_free(Chart *c) {
    for (int i = 0; i < c->n_series; i++) {
        free(c->series[i].x);
        free(c->series[i].y);
        free(c->series[i].t);
    }
    c->n_series = 0;
}

uint32_t chart_palette(int i) {
    static const uint32_t pal[] = {0x0072B2, 0xD55E00, 0x009E73, 0xCC79A7, 0xE69F00, 0x56B4E9, 0x7F3C8D, 0x8C6D31};
    return pal[((i % 8) + 8) % 8];
}

uint32_t chart_series_rgb(const Chart *c, int i) { return c->series[i].rgb ? c->series[i].rgb : chart_palette(i); }

uint32_t chart_mix_rgb(uint32_t a, uint32_t b, double t) {
    uint32_t out = 0;
    for (int shift = 16; shift >= 0; shift -= 8) {
        double v = ((a >> shift) & 255) * (1 - t) + ((b >> shift) & 255) * t;
        out |= (uint32_t)lround(v) << shift;
    }
    return out;
}

/* Shades of one hue: the pure colour first, then darker (towards black) and lighter (towards
 * white) mixes in turn. */
uint32_t chart_run_shade(int run, int k) {
    static const double mix[] = {0, -0.35, 0.4, -0.6, 0.6, -0.2, 0.25, -0.75};
    double m = mix[((k % 8) + 8) % 8];
    return chart_mix_rgb(chart_palette(run), m < 0 ? 0x000000 : 0xFFFFFF, fabs(m));
}

wchar_t chart_series_glyph(int i, int utf8) {
    static const wchar_t shapes[] = L"\u25cf\u25cb\u25c6\u25c7\u25b2\u25b3\u25a0\u25a1\u25bc\u25bd\u25c0\u25b6\u2605\u2606\u25ce\u25c9";
    static const char ascii[] = "*+o#x%@&=$~^?!><";
    static const char letters[] = "ABCDEFGHIJKLMNOP";
    i = ((i % CHART_MAX_SERIES) + CHART_MAX_SERIES) % CHART_MAX_SERIES;
    if (i >= 16) return (wchar_t)letters[i - 16];
    return utf8 ? shapes[i] : (wchar_t)ascii[i];
}

void chart_view_text(const Chart *c, char *out, size_t len) {
    PkBuf b = {0};
    if (c->ema > 0) pk_buf_printf(&b, "smoothed %.2g", c->ema);
    if (c->log_y) pk_buf_printf(&b, "%slog y", b.len ? ", " : "");
    if (c->window > 0) pk_buf_printf(&b, "%slast %d steps", b.len ? ", " : "", c->window);
    if (c->x_time) pk_buf_printf(&b, "%swall-clock x", b.len ? ", " : "");
    snprintf(out, len, "%s", b.data ? b.data : "");
    pk_buf_free(&b);
}

double chart_last_value(const Chart *c, int s) {
    const ChartSeries *cs = &c->series[s];
    for (int i = cs->n - 1; i >= 0; i--)
        if (isfinite(cs->y[i]) && isfinite(cs->x[i])) return cs->y[i];
    return NAN;
}

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

/* The next smaller nice step: 10 -> 5 -> 2 -> 1 (times the power of ten). */
static double smaller_step(double step) {
    double p = pow(10, floor(log10(step) + 1e-9));
    double m = step / p;
    return m > 4.5 ? 2 * p : m > 1.5 ? p : 0.5 * p;
}

/* Ticks at nice values of the data's units inside [lo, hi] (at their log10 when at_log), labelled
 * as precisely as the step. A range too narrow for two ticks at the first step gets finer
 * steps until two fit. */
static int value_ticks(double lo, double hi, int max_ticks, int at_log, double *ticks, char labels[][16]) {
    double step = nice_step(hi - lo, max_ticks);
    int n = 0;
    for (int tries = 0; tries < 8 && step > 0; tries++, step = smaller_step(step)) {
        n = 0;
        double first = ceil(lo / step - 1e-9);
        for (int k = 0; n < 16; k++) {
            double t = (first + k) * step;
            if (t > hi + step * 1e-9) break;
            double v = fabs(t) < step * 1e-9 ? 0 : t;
            if (at_log && !(v > 0)) continue;
            ticks[n] = at_log ? log10(v) : v;
            chart_format_tick_step(v, step, labels[n], 16);
            n++;
        }
        if (n >= 2) break;
    }
    return n;
}

/* Axis ticks with labels that differ. On a log axis (lo, hi in log10 units) a span of a decade
 * or more gets ticks at whole decades (every k-th when there are many); a shorter span, or one
 * holding a single decade, gets nice values of the data's own units, placed at their log. */
static int make_ticks(double lo, double hi, int max_ticks, int log_axis, double *ticks, char labels[][16]) {
    if (max_ticks < 2) max_ticks = 2;
    if (max_ticks > 16) max_ticks = 16;
    if (!log_axis) return value_ticks(lo, hi, max_ticks, 0, ticks, labels);
    int n = 0;
    if (hi - lo >= 1) {
        double step = ceil(nice_step(hi - lo, max_ticks));
        if (step < 1) step = 1;
        double first = ceil(lo / step - 1e-9);
        for (int k = 0; n < 16; k++) {
            double e = (first + k) * step;
            if (e > hi + 1e-9) break;
            double value = pow(10, e);
            ticks[n] = e;
            chart_format_tick_step(value, value, labels[n], 16);
            n++;
        }
        if (n >= 2) return n;
    }
    return value_ticks(pow(10, lo), pow(10, hi), max_ticks, 1, ticks, labels);
}

/* The largest finite x of every series: windows count back from it. */
static double chart_last_x(const Chart *c) {
    double last = -INFINITY;
    for (int s = 0; s < c->n_series; s++)
        for (int i = 0; i < c->series[s].n; i++)
            if (isfinite(c->series[s].x[i]) && c->series[s].x[i] > last) last = c->series[s].x[i];
    return last;
}

/* Whether point i of series s is shown: inside the window, and timed on a time axis. */
static int point_shown(const Chart *c, int s, int i, double from_x) {
    const ChartSeries *cs = &c->series[s];
    if (!isfinite(cs->x[i]) || !isfinite(cs->y[i])) return 0;
    if (c->window > 0 && !(cs->x[i] > from_x)) return 0;
    if (c->x_time && (!cs->t || !isfinite(cs->t[i]))) return 0;
    return 1;
}

static double window_start(const Chart *c) { return c->window > 0 ? chart_last_x(c) - c->window : -INFINITY; }

int chart_prepare(const Chart *c, ChartGeometry *g, int max_xticks, int max_yticks) {
    memset(g, 0, sizeof *g);
    g->n_series = c->n_series;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    double from_x = window_start(c);
    int smooth = c->ema > 0 && c->ema < 1;
    /* a time axis reads in minutes once it spans more than ten of them */
    double tscale = 1;
    snprintf(g->xlabel, sizeof g->xlabel, "%s", c->xlabel);
    if (c->x_time) {
        double tmax = 0;
        for (int s = 0; s < c->n_series; s++)
            for (int i = 0; i < c->series[s].n; i++)
                if (point_shown(c, s, i, from_x) && c->series[s].t[i] > tmax) tmax = c->series[s].t[i];
        if (tmax > 600) tscale = 1.0 / 60;
        snprintf(g->xlabel, sizeof g->xlabel, "%s", tscale < 1 ? "elapsed time (min)" : "elapsed time (s)");
    }
    for (int s = 0; s < c->n_series; s++) {
        const ChartSeries *cs = &c->series[s];
        int n = cs->n;
        g->n[s] = n;
        g->x[s] = malloc(sizeof(double) * (n ? n : 1));
        g->y[s] = malloc(sizeof(double) * (n ? n : 1));
        if (smooth) g->raw[s] = malloc(sizeof(double) * (n ? n : 1));
        if (!g->x[s] || !g->y[s] || (smooth && !g->raw[s])) {
            chart_geometry_free(g);
            return -1;
        }
        /* EMA as TensorBoard does it: debiased so the first points are not pulled to 0; it runs
         * over every point, shown or not, so a window shows the same curve cut shorter */
        double acc = 0, weight = 0;
        for (int i = 0; i < n; i++) {
            double y = cs->y[i], sy = y;
            g->x[s][i] = c->x_time ? (cs->t ? cs->t[i] * tscale : NAN) : cs->x[i];
            if (isfinite(y) && isfinite(cs->x[i]) && smooth) {
                acc = c->ema * acc + (1 - c->ema) * y;
                weight = c->ema * weight + (1 - c->ema);
                sy = acc / weight;
            }
            if (!point_shown(c, s, i, from_x)) {
                g->y[s][i] = NAN;
                if (smooth) g->raw[s][i] = NAN;
                continue;
            }
            if (c->log_y) {
                y = y > 0 ? log10(y) : NAN;
                sy = sy > 0 ? log10(sy) : NAN;
            }
            g->y[s][i] = sy;
            if (smooth) g->raw[s][i] = y;
            double x = g->x[s][i];
            for (int k = 0; k < 2; k++) {
                double v = k ? y : sy;
                if (!isfinite(v)) continue;
                if (x < xmin) xmin = x;
                if (x > xmax) xmax = x;
                if (v < ymin) ymin = v;
                if (v > ymax) ymax = v;
            }
        }
    }
    if (!isfinite(xmin)) {
        g->empty = 1;
        xmin = 0, xmax = 1, ymin = 0, ymax = 1;
    }
    if (c->kind == CHART_BARS) {
        /* a group of bars is 0.8 of the closest two x apart; the range leaves half a gap outside
         * the outermost groups so their edge bars are drawn whole */
        double gap = INFINITY;
        for (int s = 0; s < c->n_series; s++)
            for (int i = 0; i < g->n[s]; i++) {
                if (!isfinite(g->y[s][i])) continue;
                for (int t = 0; t < c->n_series; t++)
                    for (int j = 0; j < g->n[t]; j++) {
                        double d = fabs(g->x[t][j] - g->x[s][i]);
                        if (isfinite(g->y[t][j]) && d > 1e-12 && d < gap) gap = d;
                    }
            }
        if (!isfinite(gap)) gap = 1;
        g->bar_slot = 0.8 * gap / (c->n_series > 0 ? c->n_series : 1);
        xmin -= gap / 2, xmax += gap / 2;
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
        free(g->raw[s]);
        g->x[s] = g->y[s] = g->raw[s] = NULL;
    }
}

void chart_bar_extent(const ChartGeometry *g, int s, double x, double *x0, double *x1) {
    double left = x - g->bar_slot * g->n_series / 2;
    *x0 = left + s * g->bar_slot;
    *x1 = *x0 + g->bar_slot;
}

int chart_legend_layout(const Chart *c, int width, ChartLegendItem items[CHART_MAX_SERIES]) {
    int row = 0, col = 0;
    for (int s = 0; s < c->n_series; s++) {
        ChartLegendItem *it = &items[s];
        double v = chart_last_value(c, s);
        char value[32] = "";
        /* four significant digits; thousands as k, so throughput reads 311.2k, not 3.112e+05 */
        if (isfinite(v) && fabs(v) >= 1e4 && fabs(v) < 1e7) snprintf(value, sizeof value, " %.4gk", v / 1e3);
        else if (isfinite(v)) snprintf(value, sizeof value, " %.4g", v);
        snprintf(it->text, sizeof it->text, "%s%s", c->series[s].name, value);
        int need = 2 + (int)strlen(it->text);
        if (col > 0 && col + need > width) row++, col = 0;
        it->row = row, it->col = col;
        col += need + 2;
    }
    return c->n_series ? row + 1 : 0;
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

/* Draws series s's line (or bars) into the dot grid; raw: the faint unsmoothed line. */
static void dot_series(DotGrid *d, const Chart *c, const ChartGeometry *g, int s, int raw) {
    const double *ys = raw ? g->raw[s] : g->y[s];
    short owner = (short)(raw ? -2 - s : s); /* raw dots are told apart by a negative owner */
    int have_prev = 0, px = 0, py = 0;
    for (int i = 0; i < g->n[s]; i++) {
        double y = ys[i];
        if (!isfinite(y) || !isfinite(g->x[s][i])) {
            have_prev = 0;
            continue;
        }
        double fx = (g->x[s][i] - g->xmin) / (g->xmax - g->xmin) * (d->w - 1);
        int x = (int)lround(fx);
        int yy = d->h - 1 - (int)lround((y - g->ymin) / (g->ymax - g->ymin) * (d->h - 1));
        if (c->kind == CHART_BARS) {
            double base = g->ymin <= 0 && g->ymax >= 0 ? 0 : g->ymin;
            int y0 = d->h - 1 - (int)lround((base - g->ymin) / (g->ymax - g->ymin) * (d->h - 1));
            double b0, b1;
            chart_bar_extent(g, s, g->x[s][i], &b0, &b1);
            int c0 = (int)ceil((b0 - g->xmin) / (g->xmax - g->xmin) * (d->w - 1));
            int c1 = (int)floor((b1 - g->xmin) / (g->xmax - g->xmin) * (d->w - 1));
            if (c1 < c0) c0 = c1 = (int)lround(((b0 + b1) / 2 - g->xmin) / (g->xmax - g->xmin) * (d->w - 1));
            for (int col = c0; col <= c1; col++) dot_line(d, col, y0, col, yy, owner);
        } else if (have_prev) {
            dot_line(d, px, py, x, yy, owner);
        } else {
            dot_set(d, x, yy, owner);
        }
        px = x, py = yy, have_prev = 1;
    }
}

int chart_render_cells(const Chart *c, int w, int h, int flags, ChartCells *o) {
    memset(o, 0, sizeof *o);
    if (w < 1 || h < 1) return -1;
    int utf8 = (flags & CHART_CELLS_UTF8) != 0, mono = (flags & CHART_CELLS_MONO) != 0;
    o->w = w, o->h = h;
    for (int s = 0; s < CHART_MAX_SERIES; s++) o->glyph[s] = chart_series_glyph(s, utf8);
    o->ch = malloc(sizeof(wchar_t) * w * h);
    o->series = malloc(sizeof(short) * w * h);
    o->faint = calloc((size_t)w * h, 1);
    if (!o->ch || !o->series || !o->faint) {
        chart_cells_free(o);
        return -1;
    }
    for (int i = 0; i < w * h; i++) o->ch[i] = L' ', o->series[i] = -1;
    /* the legend lists every series: as many rows as it wraps into, while the plot keeps 2 */
    ChartLegendItem items[CHART_MAX_SERIES];
    int legend_rows = chart_legend_layout(c, w, items);
    if (h < 4) legend_rows = 0;
    int xlabel_rows = h >= 3 ? 1 : 0;
    if (legend_rows > h - xlabel_rows - 2) legend_rows = h - xlabel_rows - 2 > 0 ? h - xlabel_rows - 2 : 0;
    o->legend_rows = legend_rows;
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
    /* plot dots: braille 2x4 per cell; one glyph per cell in ASCII and without colour */
    int fine = utf8 && !mono;
    int sub_w = fine ? 2 : 1, sub_h = fine ? 4 : 1;
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
    /* the raw lines first, faint, then every smoothed line over them */
    for (int s = 0; s < g.n_series; s++)
        if (g.raw[s]) dot_series(&d, c, &g, s, 1);
    for (int s = 0; s < g.n_series; s++) dot_series(&d, c, &g, s, 0);
    for (int r = 0; r < plot_h; r++)
        for (int cc = 0; cc < plot_w; cc++) {
            int bits = 0;
            short owner = -1, raw_owner = -1;
            for (int dy = 0; dy < sub_h; dy++)
                for (int dx = 0; dx < sub_w; dx++) {
                    int idx = (r * sub_h + dy) * d.w + cc * sub_w + dx;
                    if (!d.on[idx]) continue;
                    if (d.owner[idx] >= 0) owner = d.owner[idx];
                    else raw_owner = (short)(-2 - d.owner[idx]);
                    /* braille dot numbering: columns of 1,2,3,7 and 4,5,6,8 */
                    static const int bit[4][2] = {{0, 3}, {1, 4}, {2, 5}, {6, 7}};
                    bits |= 1 << bit[dy][dx];
                }
            if (!bits) continue;
            int cell = r * w + px0 + cc;
            int faint = owner < 0;
            if (faint) owner = raw_owner;
            if (fine) o->ch[cell] = (wchar_t)(0x2800 + bits);
            else if (faint) o->ch[cell] = utf8 ? L'\u00b7' : L'.';
            else o->ch[cell] = o->glyph[owner % CHART_MAX_SERIES];
            o->series[cell] = owner;
            o->faint[cell] = (unsigned char)faint;
        }
    free(d.on);
    free(d.owner);
    for (int s = 0; s < c->n_series; s++) {
        if (items[s].row >= legend_rows) break;
        int row = h - legend_rows + items[s].row, col = items[s].col;
        if (col >= w) continue;
        o->ch[row * w + col] = mono || !utf8 ? o->glyph[s] : L'\u25a0';
        o->series[row * w + col] = (short)s;
        put_text(o, row, col + 2, items[s].text);
    }
    if (g.empty) put_text(o, plot_h / 2, px0 + (plot_w > 9 ? (plot_w - 9) / 2 : 0), "(no data)");
    chart_geometry_free(&g);
    return 0;
}

void chart_cells_free(ChartCells *cells) {
    free(cells->ch);
    free(cells->series);
    free(cells->faint);
    cells->ch = NULL;
    cells->series = NULL;
    cells->faint = NULL;
}

/* ---- CSV ---- */

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(PkBuf *b, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        pk_buf_printf(b, "%s", s);
        return;
    }
    pk_buf_append(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"') pk_buf_append(b, "\"", 1);
        pk_buf_append(b, s, 1);
    }
    pk_buf_append(b, "\"", 1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int chart_export_csv(const Chart *c, const char *path, char *err) {
    double from_x = window_start(c);
    /* the rows: every x a series shows, once, in order */
    size_t total = 0;
    for (int s = 0; s < c->n_series; s++) total += (size_t)c->series[s].n;
    double *xs = malloc(sizeof(double) * (total ? total : 1));
    if (!xs) return pk_errf(err, "%s: out of memory", path);
    size_t nx = 0;
    /* an elapsed-time column per run whose series have times: "elapsed_s" for one run, else
     * named by the run's "RUN: " prefix; run_first[k] is the first series of the k-th such run */
    int run_first[CHART_MAX_SERIES], n_runs = 0, all_runs = 0;
    for (int s = 0; s < c->n_series; s++) {
        int seen = 0;
        for (int q = 0; q < s; q++) seen |= c->series[q].run == c->series[s].run;
        all_runs += !seen;
        if (c->series[s].t) {
            int have = 0;
            for (int k = 0; k < n_runs; k++) have |= c->series[run_first[k]].run == c->series[s].run;
            if (!have) run_first[n_runs++] = s;
        }
        for (int i = 0; i < c->series[s].n; i++)
            if (point_shown(c, s, i, from_x)) xs[nx++] = c->series[s].x[i];
    }
    qsort(xs, nx, sizeof *xs, cmp_double);
    PkBuf b = {0};
    csv_field(&b, c->xlabel[0] ? c->xlabel : "x");
    for (int k = 0; k < n_runs; k++) {
        const char *name = c->series[run_first[k]].name, *colon = strstr(name, ": ");
        char label[96];
        if (all_runs == 1) snprintf(label, sizeof label, "elapsed_s");
        else if (colon) snprintf(label, sizeof label, "%.*selapsed_s", (int)(colon + 2 - name), name);
        else snprintf(label, sizeof label, "run %d: elapsed_s", c->series[run_first[k]].run);
        pk_buf_append(&b, ",", 1);
        csv_field(&b, label);
    }
    for (int s = 0; s < c->n_series; s++) {
        pk_buf_append(&b, ",", 1);
        csv_field(&b, c->series[s].name);
    }
    pk_buf_append(&b, "\n", 1);
    int next[CHART_MAX_SERIES] = {0};
    for (size_t j = 0; j < nx; j++) {
        if (j > 0 && xs[j] == xs[j - 1]) continue;
        double x = xs[j];
        pk_buf_printf(&b, "%.10g", x);
        /* each series' point at x: series are in x order, so a cursor per series walks forward */
        int at[CHART_MAX_SERIES];
        for (int s = 0; s < c->n_series; s++) {
            const ChartSeries *cs = &c->series[s];
            at[s] = -1;
            while (next[s] < cs->n && (!point_shown(c, s, next[s], from_x) || cs->x[next[s]] < x)) next[s]++;
            if (next[s] < cs->n && cs->x[next[s]] == x) at[s] = next[s]++;
        }
        for (int k = 0; k < n_runs; k++) {
            double t = NAN;
            for (int s = 0; s < c->n_series && !isfinite(t); s++)
                if (at[s] >= 0 && c->series[s].t && c->series[s].run == c->series[run_first[k]].run) t = c->series[s].t[at[s]];
            if (isfinite(t)) pk_buf_printf(&b, ",%.6g", t);
            else pk_buf_append(&b, ",", 1);
        }
        for (int s = 0; s < c->n_series; s++) {
            if (at[s] >= 0) pk_buf_printf(&b, ",%.9g", c->series[s].y[at[s]]);
            else pk_buf_append(&b, ",", 1);
        }
        pk_buf_append(&b, "\n", 1);
    }
    free(xs);
    int rc = b.data ? pk_write_file_atomic(path, b.data, b.len, err) : pk_errf(err, "%s: out of memory", path);
    pk_buf_free(&b);
    return rc;
}
