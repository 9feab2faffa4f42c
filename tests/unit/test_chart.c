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

int main(void) {
    RUN(test_font_loads_ascii);
    RUN(test_prepare_ticks_and_ranges);
    RUN(test_tick_labels);
    RUN(test_cells_braille_and_ascii);
    RUN(test_png_export_reads_back);
    RUN(test_empty_chart);
    TEST_EXIT();
}
