/* The chart model in both renderings: terminal cells and PNG read back with libpng. */
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chart.h"
#include "common.h"
#include "font.h"
#include "png_export.h"
#include "test.h"

static void make_two_series(Chart *c) {
    double x[50], a[50], b[50];
    for (int i = 0; i < 50; i++) x[i] = i, a[i] = 5.0 / (1 + i), b[i] = 2 + 0.5 * sin(i / 5.0);
    chart_init(c, "loss curves", "step", "loss");
    CHECK(chart_add_series(c, "student_loss", x, a, 50) == 0);
    CHECK(chart_add_series(c, "prompt_loss", x, b, 50) == 0);
}

static void test_font_loads_ascii(void) {
    Font f;
    char err[PK_ERR_LEN];
    CHECK_MSG(font_load_asset(&f, "Lat15-Terminus14.psf", err) == 0, "%s", err);
    CHECK(f.width == 8 && f.height == 14);
    const unsigned char *a = font_glyph(&f, 'A'), *sp = font_glyph(&f, ' ');
    int on_a = 0, on_sp = 0;
    for (int i = 0; i < f.height; i++) on_a += a[i] != 0, on_sp += sp[i] != 0;
    CHECK(on_a > 5);
    CHECK(on_sp == 0);
    font_free(&f);
    CHECK(font_load(&f, "tests/fixtures/rouge/rougeL-reference.jsonl", err) != 0);
    CHECK(strstr(err, "not a PSF font") != NULL);
}

static void test_prepare_ticks_and_ranges(void) {
    Chart c;
    make_two_series(&c);
    ChartGeometry g;
    CHECK(chart_prepare(&c, &g, 6, 5) == 0);
    CHECK(g.xmin <= 0 && g.xmax >= 49);
    CHECK(g.ymin <= 5.0 / 50 && g.ymax >= 5);
    CHECK(g.n_xticks >= 2 && g.n_yticks >= 2);
    for (int i = 1; i < g.n_xticks; i++) CHECK(g.xticks[i] > g.xticks[i - 1]);
    chart_geometry_free(&g);
    c.log_y = 1;
    CHECK(chart_prepare(&c, &g, 6, 5) == 0);
    CHECK_NEAR(g.y[0][0], log10(5.0), 1e-12);
    chart_geometry_free(&g);
    /* EMA smoothing: debiased, the first point is unchanged, later ones lag */
    c.log_y = 0;
    c.ema = 0.9;
    CHECK(chart_prepare(&c, &g, 6, 5) == 0);
    CHECK_NEAR(g.y[0][0], 5.0, 1e-12);
    CHECK(g.y[0][10] > 5.0 / 11);
    chart_geometry_free(&g);
    chart_free(&c);
}

static void check_labels_distinct(const ChartGeometry *g, int yaxis) {
    int n = yaxis ? g->n_yticks : g->n_xticks;
    CHECK(n >= 2);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            const char *a = yaxis ? g->ytick_labels[i] : g->xtick_labels[i];
            const char *b = yaxis ? g->ytick_labels[j] : g->xtick_labels[j];
            CHECK_MSG(strcmp(a, b) != 0, "ticks %d and %d both read '%s'", i, j, a);
        }
}

/* Labels as precise as the step: narrow ranges never repeat a label; log axes read in the
 * data's units (decades, or nice values inside one decade), never as 0.398 0.501 0.631. */
static void test_tick_labels(void) {
    char out[32];
    chart_format_tick_step(400.5, 0.5, out, sizeof out);
    CHECK_MSG(!strcmp(out, "400.5"), "%s", out);
    chart_format_tick_step(1.0005, 0.0005, out, sizeof out);
    CHECK_MSG(!strcmp(out, "1.0005"), "%s", out);
    chart_format_tick_step(0.25, 0.25, out, sizeof out);
    CHECK_MSG(!strcmp(out, "0.25"), "%s", out);
    chart_format_tick_step(15500, 500, out, sizeof out);
    CHECK_MSG(!strcmp(out, "15.5k"), "%s", out);
    chart_format_tick_step(300, 100, out, sizeof out);
    CHECK_MSG(!strcmp(out, "300"), "%s", out);

    double x[20], y[20];
    Chart c;
    ChartGeometry g;
    for (int i = 0; i < 20; i++) x[i] = 400 + i / 19.0, y[i] = 1 + (i - 10) * 1e-4;
    chart_init(&c, "narrow", "step", "loss");
    CHECK(chart_add_series(&c, "a", x, y, 20) == 0);
    CHECK(chart_prepare(&c, &g, 5, 5) == 0);
    check_labels_distinct(&g, 0);
    check_labels_distinct(&g, 1);
    chart_geometry_free(&g);
    chart_free(&c);

    /* less than a decade on a log axis: nice values, each placed at its log */
    for (int i = 0; i < 20; i++) x[i] = i, y[i] = 0.3 + 0.4 * i / 19.0;
    chart_init(&c, "log narrow", "step", "loss");
    c.log_y = 1;
    CHECK(chart_add_series(&c, "a", x, y, 20) == 0);
    CHECK(chart_prepare(&c, &g, 5, 5) == 0);
    check_labels_distinct(&g, 1);
    for (int i = 0; i < g.n_yticks; i++) {
        double v = strtod(g.ytick_labels[i], NULL);
        CHECK_NEAR(log10(v), g.yticks[i], 1e-9);
        CHECK_NEAR(v * 20, floor(v * 20 + 0.5), 1e-9); /* multiples of 0.05 at least */
    }
    chart_geometry_free(&g);
    chart_free(&c);

    /* three decades: ticks at 0.01, 0.1, 1, 10 */
    for (int i = 0; i < 20; i++) x[i] = i, y[i] = 0.01 * pow(1000, i / 19.0);
    chart_init(&c, "log wide", "step", "loss");
    c.log_y = 1;
    CHECK(chart_add_series(&c, "a", x, y, 20) == 0);
    CHECK(chart_prepare(&c, &g, 6, 6) == 0);
    const char *want[] = {"0.01", "0.1", "1", "10"};
    CHECK(g.n_yticks == 4);
    for (int i = 0; i < g.n_yticks && i < 4; i++) CHECK_MSG(!strcmp(g.ytick_labels[i], want[i]), "%s", g.ytick_labels[i]);
    chart_geometry_free(&g);
    chart_free(&c);
}

static void test_cells_braille_and_ascii(void) {
    Chart c;
    make_two_series(&c);
    ChartCells cells;
    CHECK(chart_render_cells(&c, 60, 14, 1, &cells) == 0);
    int braille = 0, s0 = 0, s1 = 0;
    for (int i = 0; i < cells.w * cells.h; i++) {
        if (cells.ch[i] >= 0x2800 && cells.ch[i] <= 0x28FF) braille++;
        s0 += cells.series[i] == 0, s1 += cells.series[i] == 1;
    }
    CHECK(braille > 20);
    CHECK(s0 > 5 && s1 > 5);
    chart_cells_free(&cells);
    CHECK(chart_render_cells(&c, 60, 14, 0, &cells) == 0);
    int high = 0, marks = 0;
    for (int i = 0; i < cells.w * cells.h; i++) {
        high += cells.ch[i] > 127;
        marks += cells.ch[i] == '*' || cells.ch[i] == '+';
    }
    CHECK(high == 0);
    CHECK(marks > 10);
    chart_cells_free(&cells);
    /* tiny sizes never crash */
    for (int w = 1; w < 8; w++)
        for (int h = 1; h < 6; h++) {
            CHECK(chart_render_cells(&c, w, h, 1, &cells) == 0);
            chart_cells_free(&cells);
        }
    chart_free(&c);
}

static int read_png(const char *path, int *w, int *h, unsigned char **rgb) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(fp);
        return -1;
    }
    png_init_io(png, fp);
    png_read_info(png, info);
    *w = (int)png_get_image_width(png, info);
    *h = (int)png_get_image_height(png, info);
    if (png_get_color_type(png, info) != PNG_COLOR_TYPE_RGB || png_get_bit_depth(png, info) != 8) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(fp);
        return -1;
    }
    *rgb = malloc((size_t)*w * *h * 3);
    for (int y = 0; y < *h; y++) png_read_row(png, *rgb + (size_t)y * *w * 3, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    return 0;
}

static int count_colour(const unsigned char *rgb, int n, uint32_t c) {
    int k = 0;
    for (int i = 0; i < n; i++)
        k += rgb[3 * i] == ((c >> 16) & 255) && rgb[3 * i + 1] == ((c >> 8) & 255) && rgb[3 * i + 2] == (c & 255);
    return k;
}

/* Exports the chart at w x h and reads the picture back (NULL on failure); the file is removed. */
static unsigned char *png_of(const Chart *c, int w, int h) {
    char dir[] = "/tmp/pk_chart_XXXXXX", path[256], err[PK_ERR_LEN];
    if (!mkdtemp(dir)) return NULL;
    snprintf(path, sizeof path, "%s/c.png", dir);
    unsigned char *rgb = NULL;
    int rw = 0, rh = 0;
    CHECK_MSG(chart_export_png(c, w, h, path, err) == 0, "%s", err);
    CHECK(read_png(path, &rw, &rh, &rgb) == 0 && rw == w && rh == h);
    unlink(path);
    rmdir(dir);
    return rgb;
}

static void test_png_export_reads_back(void) {
    char dir[] = "/tmp/pk_chart_XXXXXX", path[256], err[PK_ERR_LEN];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/loss.png", dir);
    Chart c;
    make_two_series(&c);
    c.log_y = 1;
    CHECK_MSG(chart_export_png(&c, 640, 360, path, err) == 0, "%s", err);
    int w = 0, h = 0;
    unsigned char *rgb = NULL;
    CHECK(read_png(path, &w, &h, &rgb) == 0);
    CHECK(w == 640 && h == 360);
    if (rgb) {
        CHECK(count_colour(rgb, w * h, chart_series_rgb(&c, 0)) > 100);
        CHECK(count_colour(rgb, w * h, chart_series_rgb(&c, 1)) > 100);
        CHECK(count_colour(rgb, w * h, 0x202020) > 200); /* text and tick labels were drawn */
        free(rgb);
    }
    /* bars */
    c.kind = CHART_BARS;
    c.log_y = 0;
    CHECK_MSG(chart_export_png(&c, 300, 200, path, err) == 0, "%s", err);
    /* bad size and unwritable path: clear error, no file left behind */
    CHECK(chart_export_png(&c, 10, 10, path, err) != 0);
    CHECK(strstr(err, "64..8192") != NULL);
    char bad[300];
    snprintf(bad, sizeof bad, "%s/missing/x.png", dir);
    CHECK(chart_export_png(&c, 300, 200, bad, err) != 0);
    CHECK(strstr(err, "cannot create") != NULL);
    int pw, ph;
    CHECK(png_parse_size("960x540", &pw, &ph, err) == 0 && pw == 960 && ph == 540);
    CHECK(png_parse_size("960", &pw, &ph, err) != 0);
    CHECK(png_parse_size("10x10", &pw, &ph, err) != 0);
    unlink(path);
    rmdir(dir);
    chart_free(&c);
}

static void test_empty_chart(void) {
    Chart c;
    chart_init(&c, "empty", "step", "value");
    char dir[] = "/tmp/pk_chart_XXXXXX", path[256], err[PK_ERR_LEN];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/e.png", dir);
    CHECK_MSG(chart_export_png(&c, 200, 120, path, err) == 0, "%s", err);
    ChartCells cells;
    CHECK(chart_render_cells(&c, 30, 8, 1, &cells) == 0);
    chart_cells_free(&cells);
    unlink(path);
    rmdir(dir);
    chart_free(&c);
}

/* Many ranges, narrow and wide, offset and negative, linear and log: the step is 1, 2 or 5 times a
 * power of ten, and no two labels on an axis read alike. */
static void test_ticks_on_many_ranges(void) {
    const double los[] = {0, 1, 400, -3, 1e-6, 0.98, 12345, 1e5, -0.001, 7.25};
    const double spans[] = {1e-5, 3e-4, 0.002, 0.05, 0.7, 1, 3.3, 17, 240, 5000, 1e6};
    int ranges = 0;
    for (int a = 0; a < 10; a++)
        for (int b = 0; b < 11; b++)
            for (int log_y = 0; log_y < 2; log_y++)
                for (int maxt = 3; maxt <= 9; maxt += 3) {
                    double lo = los[a], span = spans[b];
                    if (log_y && lo <= 0) lo = fabs(lo) + 1e-3;
                    double x[2] = {lo, lo + span}, y[2] = {lo, lo + span};
                    Chart c;
                    ChartGeometry g;
                    chart_init(&c, "r", "step", "v");
                    c.log_y = log_y;
                    CHECK(chart_add_series(&c, "a", x, y, 2) == 0);
                    CHECK(chart_prepare(&c, &g, maxt, maxt) == 0);
                    check_labels_distinct(&g, 0);
                    check_labels_distinct(&g, 1);
                    double step = g.xticks[1] - g.xticks[0];
                    double m = step / pow(10, floor(log10(step) + 1e-9));
                    CHECK_MSG(fabs(m - 1) < 1e-3 || fabs(m - 2) < 1e-3 || fabs(m - 5) < 1e-3,
                              "x step %g on [%g, %g]", step, lo, lo + span);
                    chart_geometry_free(&g);
                    chart_free(&c);
                    ranges++;
                }
    CHECK(ranges == 10 * 11 * 2 * 3);
}

/* A log axis over decades ticks at whole powers of ten only (every k-th when there are many). */
static void test_log_decade_ticks(void) {
    const double spans[][2] = {{1e-4, 1e2}, {0.05, 30}, {1, 1e9}, {3e-3, 0.2}};
    for (int k = 0; k < 4; k++) {
        double x[30], y[30];
        for (int i = 0; i < 30; i++) x[i] = i, y[i] = spans[k][0] * pow(spans[k][1] / spans[k][0], i / 29.0);
        Chart c;
        ChartGeometry g;
        chart_init(&c, "log", "step", "loss");
        c.log_y = 1;
        CHECK(chart_add_series(&c, "a", x, y, 30) == 0);
        CHECK(chart_prepare(&c, &g, 5, 5) == 0);
        check_labels_distinct(&g, 1);
        CHECK(g.n_yticks >= 2 && g.n_yticks <= 16);
        for (int i = 0; i < g.n_yticks; i++) {
            CHECK_MSG(fabs(g.yticks[i] - floor(g.yticks[i] + 0.5)) < 1e-9, "tick %g is not a decade", g.yticks[i]);
            char *end;
            double v = strtod(g.ytick_labels[i], &end);
            if (*end == 'k') v *= 1000;
            CHECK_NEAR(log10(v), g.yticks[i], 1e-9);
        }
        chart_geometry_free(&g);
        chart_free(&c);
    }
}

/* The row of cells as a narrow string (ASCII cells only). */
static void cells_row(const ChartCells *o, int row, char *out) {
    for (int x = 0; x < o->w; x++) out[x] = o->ch[row * o->w + x] < 128 ? (char)o->ch[row * o->w + x] : '?';
    out[o->w] = 0;
}

static void make_seven_series(Chart *c) {
    double x[20], y[20];
    chart_init(c, "neighbours", "step", "cosine similarity");
    for (int s = 0; s < 7; s++) {
        for (int i = 0; i < 20; i++) x[i] = i * 10, y[i] = 0.1 * s + 0.01 * i;
        char name[32];
        snprintf(name, sizeof name, "neighbour_sim_p%d", s);
        CHECK(chart_add_series(c, name, x, y, 20) == 0);
    }
}

/* Every series is in the legend with its last value, wrapped onto more rows when it needs them,
 * in the terminal and in the PNG. */
static void test_legend_lists_every_series(void) {
    Chart c;
    make_seven_series(&c);
    ChartLegendItem items[CHART_MAX_SERIES];
    int rows = chart_legend_layout(&c, 60, items);
    CHECK(rows >= 3);
    for (int s = 0; s < 7; s++) {
        char want[64];
        snprintf(want, sizeof want, "neighbour_sim_p%d %.4g", s, 0.1 * s + 0.19);
        CHECK_MSG(!strcmp(items[s].text, want), "%s", items[s].text);
        CHECK(items[s].col + 2 + (int)strlen(items[s].text) <= 60);
    }
    CHECK(chart_legend_layout(&c, 10000, items) == 1);
    c.series[0].y[19] = 311234;
    chart_legend_layout(&c, 60, items);
    CHECK_MSG(!strcmp(items[0].text, "neighbour_sim_p0 311.2k"), "%s", items[0].text);
    c.series[0].y[19] = 0.19;
    ChartCells o;
    CHECK(chart_render_cells(&c, 60, 20, 0, &o) == 0);
    CHECK(o.legend_rows == rows);
    for (int s = 0; s < 7; s++) {
        char want[64], line[64];
        snprintf(want, sizeof want, "neighbour_sim_p%d %.4g", s, 0.1 * s + 0.19);
        int found = 0;
        for (int r = o.h - o.legend_rows; r < o.h; r++) {
            cells_row(&o, r, line);
            found |= strstr(line, want) != NULL;
        }
        CHECK_MSG(found, "legend lacks '%s'", want);
    }
    chart_cells_free(&o);
    /* PNG: each of the seven colours is in the picture (lines and legend swatches) */
    int w = 480, h = 320;
    unsigned char *rgb = png_of(&c, w, h);
    if (rgb) {
        /* the bottom rows hold the legend (rows of the 14-pixel font and 4 between): every swatch is there */
        int legend_top = h - chart_legend_layout(&c, (w - 24) / 8, items) * 18 - 6;
        for (int s = 0; s < 7; s++)
            CHECK_MSG(count_colour(rgb + (size_t)legend_top * w * 3, (h - legend_top) * w, chart_series_rgb(&c, s)) >= 40,
                      "no legend swatch of series %d", s);
        free(rgb);
    }
    chart_free(&c);
    /* a picture too small for every entry still draws, keeping half of it for the plot */
    double x[3] = {1, 2, 3}, y[3] = {1, 2, 3};
    chart_init(&c, "many", "step", "v");
    for (int s = 0; s < CHART_MAX_SERIES; s++) {
        char name[64];
        snprintf(name, sizeof name, "compare-run-%02d: prompt_guide_loss", s);
        CHECK(chart_add_series(&c, name, x, y, 3) == 0);
    }
    rgb = png_of(&c, 320, 240);
    CHECK(rgb != NULL);
    free(rgb);
    chart_free(&c);
}

/* Without colour every series draws with its own glyph, listed in the legend. */
static void test_glyph_per_series(void) {
    for (int utf8 = 0; utf8 < 2; utf8++)
        for (int i = 0; i < CHART_MAX_SERIES; i++) {
            wchar_t gi = chart_series_glyph(i, utf8);
            CHECK(gi > ' ' && gi != '|' && gi != '.' && gi != '-');
            for (int j = i + 1; j < CHART_MAX_SERIES; j++) CHECK(gi != chart_series_glyph(j, utf8));
        }
    Chart c;
    make_seven_series(&c);
    for (int utf8 = 0; utf8 < 2; utf8++) {
        ChartCells o;
        CHECK(chart_render_cells(&c, 70, 24, CHART_CELLS_MONO | (utf8 ? CHART_CELLS_UTF8 : 0), &o) == 0);
        for (int s = 0; s < 7; s++) {
            CHECK(o.glyph[s] == chart_series_glyph(s, utf8));
            int plotted = 0, legend = 0;
            for (int i = 0; i < o.w * o.h; i++) {
                if (o.series[i] != s || o.ch[i] != o.glyph[s]) continue;
                if (i / o.w >= o.h - o.legend_rows) legend++;
                else plotted++;
            }
            CHECK_MSG(plotted >= 5 && legend == 1, "series %d: %d cells, %d in the legend", s, plotted, legend);
        }
        chart_cells_free(&o);
    }
    chart_free(&c);
}

/* TensorBoard's smoothing: debiased (the first smoothed point is the first raw one), drawn over
 * a faint raw line; the view is written in the PNG's title. */
static void test_smoothing(void) {
    double x[40], y[40];
    for (int i = 0; i < 40; i++) x[i] = i, y[i] = 3 + ((i * 7) % 5) - 0.05 * i;
    Chart c;
    chart_init(&c, "loss", "step", "loss");
    CHECK(chart_add_series(&c, "student_loss", x, y, 40) == 0);
    c.ema = 0.6;
    ChartGeometry g;
    CHECK(chart_prepare(&c, &g, 5, 5) == 0);
    CHECK(g.raw[0] != NULL);
    CHECK_NEAR(g.y[0][0], y[0], 1e-12);
    CHECK_NEAR(g.raw[0][0], y[0], 1e-12);
    double acc = 0, wsum = 0;
    for (int i = 0; i < 40; i++) {
        acc = 0.6 * acc + 0.4 * y[i];
        wsum = 0.6 * wsum + 0.4;
        CHECK_NEAR(g.y[0][i], acc / wsum, 1e-12);
        CHECK_NEAR(g.raw[0][i], y[i], 1e-12);
    }
    chart_geometry_free(&g);
    c.ema = 0;
    CHECK(chart_prepare(&c, &g, 5, 5) == 0);
    CHECK(g.raw[0] == NULL);
    chart_geometry_free(&g);
    char view[96];
    c.ema = 0.6, c.log_y = 1;
    chart_view_text(&c, view, sizeof view);
    CHECK_MSG(!strcmp(view, "smoothed 0.6, log y"), "%s", view);
    c.log_y = 0;
    /* terminal: the raw line shows as faint cells */
    ChartCells o;
    CHECK(chart_render_cells(&c, 60, 16, CHART_CELLS_UTF8, &o) == 0);
    int faint = 0, bright = 0;
    for (int i = 0; i < o.w * o.h; i++)
        if (o.series[i] == 0) faint += o.faint[i], bright += !o.faint[i];
    CHECK(faint > 5 && bright > 5);
    chart_cells_free(&o);
    /* PNG: the smoothed line in the series colour, the raw one in its faint mix */
    unsigned char *rgb = png_of(&c, 480, 300);
    if (rgb) {
        CHECK(count_colour(rgb, 480 * 300, chart_series_rgb(&c, 0)) > 100);
        CHECK(count_colour(rgb, 480 * 300, chart_mix_rgb(chart_series_rgb(&c, 0), 0xFFFFFF, 0.7)) > 50);
        free(rgb);
    }
    chart_free(&c);
}

/* Grouped bars: every bar, the outermost included, lies inside the x range drawn. */
static void test_bars_inside_plot(void) {
    double x[5] = {0, 1, 2, 3, 4}, a[5] = {1, 2, 3, 2, 1}, b[5] = {2, 1, 2, 1, 2}, d[5] = {0.5, 0.5, 1, 1, 3};
    Chart c;
    chart_init(&c, "attention by layer", "layer", "weight");
    c.kind = CHART_BARS;
    CHECK(chart_add_series(&c, "a", x, a, 5) == 0);
    CHECK(chart_add_series(&c, "b", x, b, 5) == 0);
    CHECK(chart_add_series(&c, "c", x, d, 5) == 0);
    ChartGeometry g;
    CHECK(chart_prepare(&c, &g, 6, 5) == 0);
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < 5; i++) {
            double x0, x1;
            chart_bar_extent(&g, s, x[i], &x0, &x1);
            CHECK_MSG(x0 >= g.xmin - 1e-12 && x1 <= g.xmax + 1e-12, "bar %d of series %d at [%g, %g] outside [%g, %g]",
                      i, s, x0, x1, g.xmin, g.xmax);
            CHECK(x1 > x0);
            if (s > 0) {
                double p0, p1;
                chart_bar_extent(&g, s - 1, x[i], &p0, &p1);
                CHECK(p1 <= x0 + 1e-12); /* side by side, not overlapping */
            }
        }
    chart_geometry_free(&g);
    /* the PNG: both outer series' bars are drawn */
    unsigned char *rgb = png_of(&c, 400, 260);
    if (rgb) {
        int c0 = count_colour(rgb, 400 * 260, chart_series_rgb(&c, 0)), c2 = count_colour(rgb, 400 * 260, chart_series_rgb(&c, 2));
        CHECK(c0 > 200 && c2 > 200);
        free(rgb);
    }
    /* terminal: the first and last series both have cells */
    ChartCells o;
    CHECK(chart_render_cells(&c, 50, 14, CHART_CELLS_UTF8, &o) == 0);
    int s0 = 0, s2 = 0;
    for (int i = 0; i < o.w * (o.h - o.legend_rows); i++) s0 += o.series[i] == 0, s2 += o.series[i] == 2;
    CHECK(s0 >= 5 && s2 >= 5);
    chart_cells_free(&o);
    chart_free(&c);
}

/* A window of the last N steps, and a wall-clock x axis from each point's time. */
static void test_window_and_time_axis(void) {
    double x[50], y[50], t[50];
    for (int i = 0; i < 50; i++) x[i] = i + 1, y[i] = 10 - 0.1 * i, t[i] = 2.5 * i;
    Chart c;
    chart_init(&c, "loss", "step", "loss");
    CHECK(chart_add_series_t(&c, "student_loss", x, y, t, 50) == 0);
    c.window = 10;
    ChartGeometry g;
    CHECK(chart_prepare(&c, &g, 5, 5) == 0);
    CHECK(g.xmin >= 40 && g.xmax <= 51);
    for (int i = 0; i < 50; i++) CHECK(isfinite(g.y[0][i]) == (x[i] > 40));
    chart_geometry_free(&g);
    c.window = 0;
    c.x_time = 1;
    CHECK(chart_prepare(&c, &g, 5, 5) == 0);
    CHECK_NEAR(g.x[0][49], 122.5, 1e-12);
    CHECK(!strcmp(g.xlabel, "elapsed time (s)"));
    chart_geometry_free(&g);
    char view[96];
    c.window = 10;
    chart_view_text(&c, view, sizeof view);
    CHECK_MSG(!strcmp(view, "last 10 steps, wall-clock x"), "%s", view);
    chart_free(&c);
}

/* CSV: a header, one row per x with a column per series (raw values), empty cells where a
 * series has no point, elapsed seconds when known. */
static void test_csv_export(void) {
    double x1[3] = {1, 2, 3}, y1[3] = {0.5, 0.25, 0.125}, t1[3] = {1.5, 3, 4.5};
    double x2[2] = {2, 4}, y2[2] = {7, 8}, t2[2] = {3, 6};
    Chart c;
    chart_init(&c, "loss", "step", "loss");
    c.ema = 0.9; /* raw values, not smoothed ones */
    CHECK(chart_add_series_t(&c, "student_loss", x1, y1, t1, 3) == 0);
    CHECK(chart_add_series_t(&c, "a, \"b\"", x2, y2, t2, 2) == 0);
    char dir[] = "/tmp/pk_chart_XXXXXX", path[256], err[PK_ERR_LEN];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/loss.csv", dir);
    CHECK_MSG(chart_export_csv(&c, path, err) == 0, "%s", err);
    char *text = NULL;
    size_t len = 0;
    CHECK(pk_read_file(path, &text, &len, err) == 0);
    if (text) {
        CHECK_MSG(!strcmp(text, "step,elapsed_s,student_loss,\"a, \"\"b\"\"\"\n"
                                "1,1.5,0.5,\n2,3,0.25,7\n3,4.5,0.125,\n4,6,,8\n"),
                  "%s", text);
        free(text);
    }
    /* two runs: an elapsed column per run, named by its "RUN: " prefix */
    c.series[1].run = 1;
    snprintf(c.series[0].name, sizeof c.series[0].name, "a: student_loss");
    snprintf(c.series[1].name, sizeof c.series[1].name, "b: student_loss");
    c.window = 2;
    CHECK_MSG(chart_export_csv(&c, path, err) == 0, "%s", err);
    CHECK(pk_read_file(path, &text, &len, err) == 0);
    if (text) {
        CHECK_MSG(!strcmp(text, "step,a: elapsed_s,b: elapsed_s,a: student_loss,b: student_loss\n3,4.5,,0.125,\n4,,6,,8\n"),
                  "%s", text);
        free(text);
    }
    snprintf(path, sizeof path, "%s/missing/x.csv", dir);
    CHECK(chart_export_csv(&c, path, err) != 0);
    snprintf(path, sizeof path, "%s/loss.csv", dir);
    unlink(path);
    rmdir(dir);
    chart_free(&c);
}

int main(void) {
    RUN(test_font_loads_ascii);
    RUN(test_prepare_ticks_and_ranges);
    RUN(test_tick_labels);
    RUN(test_cells_braille_and_ascii);
    RUN(test_png_export_reads_back);
    RUN(test_empty_chart);
    RUN(test_ticks_on_many_ranges);
    RUN(test_log_decade_ticks);
    RUN(test_legend_lists_every_series);
    RUN(test_glyph_per_series);
    RUN(test_smoothing);
    RUN(test_bars_inside_plot);
    RUN(test_window_and_time_axis);
    RUN(test_csv_export);
    TEST_EXIT();
}
