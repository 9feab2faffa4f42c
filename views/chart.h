/* The one chart model of promptkd: named series over x, with EMA smoothing and a
 * log-scale y axis, rendered two ways from the same prepared geometry: into
 * terminal cells (Unicode braille, ASCII when the locale is not UTF-8) and into an
 * RGB raster written as PNG (png_export.h). */
#ifndef PK_CHART_H
#define PK_CHART_H

#include <stddef.h>
#include <stdint.h>
#include <wchar.h>

#define CHART_MAX_SERIES 16

typedef enum { CHART_LINES, CHART_BARS } ChartKind;

typedef struct {
    char name[48];
    int n;
    double *x, *y;   /* owned copies */
    uint32_t rgb;    /* 0xRRGGBB; 0 picks from the palette by index */
} ChartSeries;

typedef struct {
    char title[128];
    char xlabel[48], ylabel[48];
    ChartKind kind;
    int log_y;       /* log10 y axis (non-positive values are skipped) */
    double ema;      /* smoothing weight in [0, 1): y_s = ema * y_s(prev) + (1 - ema) * y, debiased */
    int n_series;
    ChartSeries series[CHART_MAX_SERIES];
} Chart;

void chart_init(Chart *c, const char *title, const char *xlabel, const char *ylabel);
/* Copies n points; returns 0, or -1 when full or out of memory. */
int chart_add_series(Chart *c, const char *name, const double *x, const double *y, int n);
void chart_free(Chart *c);
uint32_t chart_series_rgb(const Chart *c, int i);
/* The palette colour of series i (distinct, colour-blind friendly first 8). */
uint32_t chart_palette(int i);

/* Values after smoothing and the log transform, and the axis ranges and ticks. */
typedef struct {
    int n_series;
    int n[CHART_MAX_SERIES];
    double *x[CHART_MAX_SERIES], *y[CHART_MAX_SERIES]; /* transformed (log10 when log_y); NaN = skip */
    double xmin, xmax, ymin, ymax;                     /* in transformed units */
    int n_xticks, n_yticks;
    double xticks[16], yticks[16];                     /* transformed units */
    char xtick_labels[16][16], ytick_labels[16][16];
    int empty;                                         /* no finite point at all */
} ChartGeometry;
int chart_prepare(const Chart *c, ChartGeometry *g, int max_xticks, int max_yticks);
void chart_geometry_free(ChartGeometry *g);

/* Terminal rendering into a w x h grid of cells (row-major): a character and the
 * index of the series that drew it (-1 for axes/labels/blank). utf8 chooses
 * braille dots (2x4 per cell) or ASCII marks. The title is not drawn (the panel
 * frame shows it); the legend is the last row. */
typedef struct {
    int w, h;
    wchar_t *ch;
    short *series;
} ChartCells;
int chart_render_cells(const Chart *c, int w, int h, int utf8, ChartCells *out);
void chart_cells_free(ChartCells *cells);

/* Formats a tick value compactly ("0.25", "1.2k", "3e-05"). */
void chart_format_tick(double v, char *out, size_t len);
/* Formats a tick value with the precision its axis step needs, so neighbouring ticks never read
 * alike: (400.5, 0.5) -> "400.5", (1.0005, 0.0005) -> "1.0005", (15000, 500) -> "15.0k". */
void chart_format_tick_step(double v, double step, char *out, size_t len);

#endif
