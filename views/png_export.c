#include "png_export.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "font.h"

int raster_init(Raster *r, int w, int h, uint32_t bg) {
    r->w = w, r->h = h;
    r->rgb = malloc((size_t)w * h * 3);
    if (!r->rgb) return -1;
    raster_fill_rect(r, 0, 0, w, h, bg);
    return 0;
}

void raster_free(Raster *r) {
    free(r->rgb);
    r->rgb = NULL;
}

static void blend(Raster *r, int x, int y, uint32_t rgb, double a) {
    if (x < 0 || y < 0 || x >= r->w || y >= r->h || a <= 0) return;
    if (a > 1) a = 1;
    unsigned char *p = r->rgb + ((size_t)y * r->w + x) * 3;
    int c[3] = {(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255};
    for (int k = 0; k < 3; k++) p[k] = (unsigned char)lround(p[k] * (1 - a) + c[k] * a);
}

void raster_fill_rect(Raster *r, int x, int y, int w, int h, uint32_t rgb) {
    for (int yy = y; yy < y + h; yy++)
        for (int xx = x; xx < x + w; xx++) blend(r, xx, yy, rgb, 1);
}

/* Coverage of a pixel by a thick segment, from the distance of the pixel centre to the segment. */
void raster_line(Raster *r, double x0, double y0, double x1, double y1, double width, uint32_t rgb) {
    double half = width / 2;
    int minx = (int)floor(fmin(x0, x1) - half - 1), maxx = (int)ceil(fmax(x0, x1) + half + 1);
    int miny = (int)floor(fmin(y0, y1) - half - 1), maxy = (int)ceil(fmax(y0, y1) + half + 1);
    if (minx < 0) minx = 0;
    if (miny < 0) miny = 0;
    if (maxx >= r->w) maxx = r->w - 1;
    if (maxy >= r->h) maxy = r->h - 1;
    double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (int y = miny; y <= maxy; y++)
        for (int x = minx; x <= maxx; x++) {
            double px = x + 0.5, py = y + 0.5;
            double t = len2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / len2 : 0;
            if (t < 0) t = 0;
            if (t > 1) t = 1;
            double ex = x0 + t * dx - px, ey = y0 + t * dy - py;
            double dist = sqrt(ex * ex + ey * ey);
            double a = half + 0.5 - dist;
            if (a > 0) blend(r, x, y, rgb, a);
        }
}

static void draw_text(Raster *r, const Font *f, int x, int y, const char *s, uint32_t rgb) {
    while (*s) {
        uint32_t cp = utf8_next(&s);
        const unsigned char *g = font_glyph(f, cp);
        for (int row = 0; row < f->height; row++)
            for (int col = 0; col < f->width; col++)
                if ((g[row * f->bytes_per_row + col / 8] >> (7 - col % 8)) & 1) blend(r, x + col, y + row, rgb, 1);
        x += f->width;
    }
}

/* Vertical text (rotated 90 degrees counter-clockwise), for the y-axis label. */
static void draw_text_vertical(Raster *r, const Font *f, int x, int y_bottom, const char *s, uint32_t rgb) {
    int y = y_bottom;
    while (*s) {
        uint32_t cp = utf8_next(&s);
        const unsigned char *g = font_glyph(f, cp);
        for (int row = 0; row < f->height; row++)
            for (int col = 0; col < f->width; col++)
                if ((g[row * f->bytes_per_row + col / 8] >> (7 - col % 8)) & 1) blend(r, x + row, y - col, rgb, 1);
        y -= f->width;
    }
}

int chart_draw_raster(const Chart *c, Raster *r, char *err) {
    Font font, bold;
    if (font_load_asset(&font, "Lat15-Terminus14.psf", err)) return PK_FAIL;
    if (font_load_asset(&bold, "Lat15-TerminusBold16.psf", err)) {
        font_free(&font);
        return PK_FAIL;
    }
    const uint32_t ink = 0x202020, grid = 0xE4E4E4, axis = 0x606060;
    int W = r->w, H = r->h;
    int plot_w_guess = W - 120, plot_h_guess = H - 110;
    ChartGeometry g;
    if (chart_prepare(c, &g, plot_w_guess / 90 + 2, plot_h_guess / 50 + 2)) {
        font_free(&font);
        font_free(&bold);
        return pk_errf(err, "out of memory preparing chart '%s'", c->title);
    }
    int label_w = 0;
    for (int i = 0; i < g.n_yticks; i++) {
        int tw = font_text_width(&font, g.ytick_labels[i]);
        if (tw > label_w) label_w = tw;
    }
    int left = 12 + (c->ylabel[0] ? font.height + 6 : 0) + label_w + 8;
    int right = 20;
    /* the legend lists every series with its last value, wrapped into as many rows as it needs */
    ChartLegendItem items[CHART_MAX_SERIES];
    int legend_cols = (W - 24) / font.width;
    int legend_rows = chart_legend_layout(c, legend_cols > 1 ? legend_cols : 1, items);
    int row_h = font.height + 4;
    /* a picture too small for them all keeps half its height for the plot and says what it left out */
    int max_rows = (H / 2) / row_h > 1 ? (H / 2) / row_h : 1, hidden = 0;
    if (legend_rows > max_rows) {
        legend_rows = max_rows;
        for (int s = 0; s < c->n_series; s++) hidden += items[s].row >= max_rows;
    }
    int legend_h = legend_rows ? legend_rows * row_h + 6 : 0;
    int top = 10 + bold.height + 10;
    int bottom = 8 + font.height + 6 + (g.xlabel[0] ? font.height + 6 : 0) + legend_h;
    int pw = W - left - right, ph = H - top - bottom;
    if (pw < 20 || ph < 20) {
        chart_geometry_free(&g);
        font_free(&font);
        font_free(&bold);
        return pk_errf(err, "image %dx%d is too small for chart '%s'", W, H, c->title);
    }
    /* title, centred, saying how the values are shown: "loss curves (smoothed 0.6, log y)" */
    char view[96], title[256];
    chart_view_text(c, view, sizeof view);
    if (view[0]) snprintf(title, sizeof title, "%s (%s)", c->title, view);
    else snprintf(title, sizeof title, "%s", c->title);
    draw_text(r, &bold, (W - font_text_width(&bold, title)) / 2, 10, title, ink);
    double xs = pw / (g.xmax - g.xmin), ys = ph / (g.ymax - g.ymin);
#define PX(v) (left + ((v) - g.xmin) * xs)
#define PY(v) (top + ph - ((v) - g.ymin) * ys)
    for (int i = 0; i < g.n_yticks; i++) {
        int y = (int)lround(PY(g.yticks[i]));
        raster_fill_rect(r, left, y, pw, 1, grid);
        raster_fill_rect(r, left - 5, y, 5, 1, axis);
        int tw = font_text_width(&font, g.ytick_labels[i]);
        draw_text(r, &font, left - 8 - tw, y - font.height / 2, g.ytick_labels[i], ink);
    }
    int next_free = 0;
    for (int i = 0; i < g.n_xticks; i++) {
        int x = (int)lround(PX(g.xticks[i]));
        raster_fill_rect(r, x, top, 1, ph, grid);
        raster_fill_rect(r, x, top + ph, 1, 5, axis);
        int tw = font_text_width(&font, g.xtick_labels[i]);
        int tx = x - tw / 2;
        if (tx < next_free) continue;
        draw_text(r, &font, tx, top + ph + 8, g.xtick_labels[i], ink);
        next_free = tx + tw + 8;
    }
    raster_fill_rect(r, left, top, 1, ph + 1, axis);
    raster_fill_rect(r, left, top + ph, pw, 1, axis);
    if (g.xlabel[0])
        draw_text(r, &font, left + (pw - font_text_width(&font, g.xlabel)) / 2, top + ph + 8 + font.height + 6,
                  g.xlabel, ink);
    if (c->ylabel[0]) {
        char yl[80];
        snprintf(yl, sizeof yl, "%s%s", c->ylabel, c->log_y ? " (log)" : "");
        draw_text_vertical(r, &font, 12, top + (ph + font_text_width(&font, yl)) / 2, yl, ink);
    }
    /* series, clipped to the plot area by drawing into it only */
    Raster plot = {pw, ph, malloc((size_t)pw * ph * 3)};
    if (!plot.rgb) {
        chart_geometry_free(&g);
        font_free(&font);
        font_free(&bold);
        return pk_errf(err, "out of memory drawing chart '%s'", c->title);
    }
    for (int y = 0; y < ph; y++) memcpy(plot.rgb + (size_t)y * pw * 3, r->rgb + ((size_t)(top + y) * W + left) * 3, (size_t)pw * 3);
    /* smoothing as TensorBoard draws it: every raw line first, faint (a third of the colour on
     * white), then each smoothed line over them in the full colour */
    for (int pass = 0; pass < 2; pass++)
        for (int s = 0; s < g.n_series; s++) {
            const double *vals = pass ? g.y[s] : g.raw[s];
            if (!vals) continue;
            uint32_t col = chart_series_rgb(c, s);
            if (!pass) col = chart_mix_rgb(col, 0xFFFFFF, 0.7);
            int have = 0;
            double px = 0, py = 0;
            for (int i = 0; i < g.n[s]; i++) {
                double y = vals[i];
                if (!isfinite(y) || !isfinite(g.x[s][i])) {
                    have = 0;
                    continue;
                }
                double x = PX(g.x[s][i]) - left, yy = PY(y) - top;
                if (c->kind == CHART_BARS) {
                    double base = PY(g.ymin <= 0 && g.ymax >= 0 ? 0 : g.ymin) - top;
                    double b0, b1;
                    chart_bar_extent(&g, s, g.x[s][i], &b0, &b1);
                    int x0 = (int)lround(PX(b0) - left), x1 = (int)lround(PX(b1) - left);
                    int y0 = (int)lround(fmin(base, yy)), hh = (int)lround(fabs(base - yy));
                    raster_fill_rect(&plot, x0, y0, x1 - x0 > 1 ? x1 - x0 : 1, hh < 1 ? 1 : hh, col);
                } else {
                    double width = pass ? 2.0 : 1.2;
                    if (have) raster_line(&plot, px, py, x, yy, width, col);
                    else raster_line(&plot, x, yy, x, yy, width + 1, col);
                }
                px = x, py = yy, have = 1;
            }
        }
    for (int y = 0; y < ph; y++) memcpy(r->rgb + ((size_t)(top + y) * W + left) * 3, plot.rgb + (size_t)y * pw * 3, (size_t)pw * 3);
    free(plot.rgb);
    /* legend rows under the axes: a colour swatch, then "name last-value" */
    int ly0 = H - legend_h + 2;
    for (int s = 0; s < c->n_series; s++) {
        if (items[s].row >= legend_rows) continue;
        int lx = 12 + items[s].col * font.width, ly = ly0 + items[s].row * row_h;
        raster_fill_rect(r, lx, ly + font.height / 2 - 2, 12, 5, chart_series_rgb(c, s));
        draw_text(r, &font, lx + 2 * font.width, ly, items[s].text, ink);
    }
    if (hidden) {
        char more[48];
        snprintf(more, sizeof more, "(+%d more: a larger --size shows them)", hidden);
        int tw = font_text_width(&font, more);
        raster_fill_rect(r, W - right - tw - 8, ly0 + (legend_rows - 1) * row_h, tw + 8, font.height, 0xFFFFFF);
        draw_text(r, &font, W - right - tw, ly0 + (legend_rows - 1) * row_h, more, axis);
    }
    if (g.empty) {
        const char *msg = "(no data)";
        draw_text(r, &font, left + (pw - font_text_width(&font, msg)) / 2, top + ph / 2, msg, axis);
    }
#undef PX
#undef PY
    chart_geometry_free(&g);
    font_free(&font);
    font_free(&bold);
    return PK_OK;
}

/* The PNG is encoded straight into pk_write_atomic's temporary file descriptor: libpng's writes
 * go through pk_write_all, and its errors come here instead of its default handler (which prints
 * "libpng error: ..." on stderr), so a failure is one sentence of ours with the write's errno. */
typedef struct {
    const Raster *raster;
    int fd;
    int write_errno; /* errno of the write that failed, 0 when libpng itself gave up */
    char msg[160];
} PngFill;

static void png_on_error(png_structp png, png_const_charp msg) {
    PngFill *f = png_get_error_ptr(png);
    if (f) snprintf(f->msg, sizeof f->msg, "%s", msg ? msg : "");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void png_write_to_fd(png_structp png, png_bytep data, png_size_t n) {
    PngFill *f = png_get_io_ptr(png);
    if (pk_write_all(f->fd, data, n) != 0) {
        f->write_errno = errno;
        png_error(png, "write error");
    }
}

static void png_flush_nothing(png_structp png) { (void)png; }

/* PkFileFill: the whole image into fd; -1 with errno set when it fails. */
static int png_fill(void *ctx, int fd) {
    PngFill *f = ctx;
    const Raster *r = f->raster;
    f->fd = fd;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, f, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        errno = ENOMEM;
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        errno = f->write_errno ? f->write_errno : EIO;
        return -1;
    }
    png_set_write_fn(png, f, png_write_to_fd, png_flush_nothing);
    png_set_IHDR(png, info, (png_uint_32)r->w, (png_uint_32)r->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < r->h; y++) png_write_row(png, r->rgb + (size_t)y * r->w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int raster_write_png(const Raster *r, const char *path, char *err) {
    PngFill f = {r, -1, 0, ""};
    int rc = pk_write_atomic(path, png_fill, &f, err);
    /* libpng's own reason (not a failed write) is worth more than errno's EIO */
    if (rc != PK_OK && f.msg[0] && !f.write_errno) pk_errf(err, "%s: the PNG writer failed: %s", path, f.msg);
    return rc;
}

int chart_export_png(const Chart *c, int w, int h, const char *path, char *err) {
    Raster r;
    if (w < 64 || h < 64 || w > 8192 || h > 8192) return pk_errf(err, "%s: image size %dx%d outside 64..8192", path, w, h);
    if (raster_init(&r, w, h, 0xFFFFFF)) return pk_errf(err, "%s: out of memory for a %dx%d image", path, w, h);
    int rc = chart_draw_raster(c, &r, err);
    if (rc == PK_OK) rc = raster_write_png(&r, path, err);
    raster_free(&r);
    return rc;
}

int png_parse_size(const char *s, int *w, int *h, char *err) {
    int a, b;
    char extra;
    if (sscanf(s, "%dx%d%c", &a, &b, &extra) != 2 || a < 64 || b < 64 || a > 8192 || b > 8192)
        return pk_errf(err, "size '%s': expected WxH with each between 64 and 8192, e.g. 960x540", s);
    *w = a, *h = b;
    return PK_OK;
}
