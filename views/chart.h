/* The one chart model of promptkd: named series over x, with EMA smoothing and a
 * log-scale y axis, rendered two ways from the same prepared geometry: into
 * terminal cells (Unicode braille, ASCII when the locale is not UTF-8, one glyph per
 * series without colour) and into an RGB raster written as PNG (png_export.h); its
 * raw values also export as CSV. Smoothing follows TensorBoard: the debiased EMA is
 * drawn over a faint line of the raw values. */
#ifndef PK_CHART_H
#define PK_CHART_H

#include <stddef.h>
#include <stdint.h>
#include <wchar.h>

#define CHART_MAX_SERIES 32

typedef enum { CHART_LINES, CHART_BARS } ChartKind;

typedef struct {
    char name[64];
    int n;
    double *x, *y;   /* owned copies */
    double *t;       /* owned copy of the elapsed wall-clock seconds at each point, or NULL */
    int run;         /* which run the series comes from (0: the session's own; overlays count up) */
    uint32_t rgb;    /* 0xRRGGBB; 0 picks from the palette by index */
} ChartSeries;

typedef struct {
    char title[128];
    char xlabel[48], ylabel[48];
    ChartKind kind;
    int log_y;       /* log10 y axis (non-positive values are skipped) */
    double ema;      /* smoothing weight in [0, 1): y_s = ema * y_s(prev) + (1 - ema) * y, debiased */
    int window;      /* > 0: show only x > (the largest x) - window, e.g. the last N steps */
    int x_time;      /* draw over each point's t (elapsed wall-clock time) instead of x */
    int n_series;
    ChartSeries series[CHART_MAX_SERIES];
} Chart;

void chart_init(Chart *c, const char *title, const char *xlabel, const char *ylabel);
/* Copies n points; returns 0, or -1 when full or out of memory. */
int chart_add_series(Chart *c, const char *name, const double *x, const double *y, int n);
/* The same with each point's elapsed seconds t (NULL when unknown). */
int chart_add_series_t(Chart *c, const char *name, const double *x, const double *y, const double *t, int n);
void chart_free(Chart *c);
uint32_t chart_series_rgb(const Chart *c, int i);
/* The palette colour of series i (distinct, colour-blind friendly first 8). */
uint32_t chart_palette(int i);
/* a * (1 - t) + b * t, per channel of 0xRRGGBB. */
uint32_t chart_mix_rgb(uint32_t a, uint32_t b, double t);
/* The colour of the k-th series of run r in an overlay: the run's palette colour, shaded by k. */
uint32_t chart_run_shade(int run, int k);
/* The glyph that marks series i without colour: distinct for every i < CHART_MAX_SERIES. */
wchar_t chart_series_glyph(int i, int utf8);
/* How the chart is viewed, for titles: "smoothed 0.6, log y, last 100 steps, wall-clock x";
 * "" when raw, linear, whole and over x. */
void chart_view_text(const Chart *c, char *out, size_t len);
/* The last finite raw value of series s (NaN when none). */
double chart_last_value(const Chart *c, int s);

/* Values after smoothing and the log transform, and the axis ranges and ticks. */
typedef struct {
    int n_series;
    int n[CHART_MAX_SERIES];
    double *x[CHART_MAX_SERIES], *y[CHART_MAX_SERIES]; /* transformed (log10 when log_y); NaN = skip */
    double *raw[CHART_MAX_SERIES];                     /* unsmoothed y, transformed; NULL unless smoothing */
    double xmin, xmax, ymin, ymax;                     /* in transformed units */
    int n_xticks, n_yticks;
    double xticks[16], yticks[16];                     /* transformed units */
    char xtick_labels[16][16], ytick_labels[16][16];
    char xlabel[48];                                   /* the x axis's label as drawn (time axes name their unit) */
    double bar_slot;                                   /* bars: the x width of one series' bar */
    int empty;                                         /* no finite point at all */
} ChartGeometry;
int chart_prepare(const Chart *c, ChartGeometry *g, int max_xticks, int max_yticks);
void chart_geometry_free(ChartGeometry *g);
/* Bars: the x extent [x0, x1] (transformed units) of series s's bar at x. Groups of bars are
 * centred on their x and the x range leaves room for the outermost ones. */
void chart_bar_extent(const ChartGeometry *g, int s, double x, double *x0, double *x1);

/* The legend: one entry per series, "name last-value", wrapped into rows `width` cells wide.
 * Each entry is a marker (2 cells: the glyph or colour swatch and a space) and its text;
 * entries are 2 cells apart. Returns the number of rows (0 without series). */
typedef struct {
    char text[96];
    int row, col; /* where the marker goes */
} ChartLegendItem;
int chart_legend_layout(const Chart *c, int width, ChartLegendItem items[CHART_MAX_SERIES]);

/* Terminal rendering into a w x h grid of cells (row-major): a character, the index
 * of the series that drew it (-1 for axes/labels/blank) and whether it is faint (only
 * the raw line under a smoothed one: draw it dim). flags: CHART_CELLS_UTF8 chooses
 * braille dots (2x4 per cell) over ASCII marks; CHART_CELLS_MONO (no colour) draws
 * every series' points with its own glyph (glyph[s], also in the legend) so series
 * differ without colour. The title is not drawn (the panel frame shows it); the
 * legend takes the last rows, wrapped so every series is listed with its last value. */
enum { CHART_CELLS_UTF8 = 1, CHART_CELLS_MONO = 2 };
typedef struct {
    int w, h;
    wchar_t *ch;
    short *series;
    unsigned char *faint;
    wchar_t glyph[CHART_MAX_SERIES];
    int legend_rows;
} ChartCells;
int chart_render_cells(const Chart *c, int w, int h, int flags, ChartCells *out);
void chart_cells_free(ChartCells *cells);

/* Writes the chart's raw values as CSV, atomically: a header (the x name; "elapsed_s" when the
 * points have times, one "RUN: elapsed_s" per run when they come from several; then each
 * series' name) and one row per x shown, in order, a column per series (empty where a series
 * has no point there). Each series' points are in x order. */
int chart_export_csv(const Chart *c, const char *path, char *err);

/* Formats a tick value compactly ("0.25", "1.2k", "3e-05"). */
void chart_format_tick(double v, char *out, size_t len);
/* Formats a tick value with the precision its axis step needs, so neighbouring ticks never read
 * alike: (400.5, 0.5) -> "400.5", (1.0005, 0.0005) -> "1.0005", (15000, 500) -> "15.0k". */
void chart_format_tick_step(double v, double step, char *out, size_t len);

#endif
