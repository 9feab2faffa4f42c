/* Renders a Chart (the same model the terminal draws) into an RGB raster with
 * axes, ticks, tick labels, title, legend and one colour per series, and writes
 * it as PNG with libpng, atomically. */
#ifndef PK_PNG_EXPORT_H
#define PK_PNG_EXPORT_H

#include <stdint.h>

#include "chart.h"

typedef struct {
    int w, h;
    unsigned char *rgb; /* w * h * 3 */
} Raster;

int raster_init(Raster *r, int w, int h, uint32_t background);
void raster_free(Raster *r);
void raster_fill_rect(Raster *r, int x, int y, int w, int h, uint32_t rgb);
/* Anti-aliased line of the given width in pixels. */
void raster_line(Raster *r, double x0, double y0, double x1, double y1, double width, uint32_t rgb);

/* Draws the chart into r. */
int chart_draw_raster(const Chart *c, Raster *r, char *err);
/* Writes a raster as an 8-bit RGB PNG, atomically (temp file, fsync, rename). */
int raster_write_png(const Raster *r, const char *path, char *err);
/* chart_draw_raster + raster_write_png at w x h pixels. */
int chart_export_png(const Chart *c, int w, int h, const char *path, char *err);
/* Parses "WxH" (each 64..8192). */
int png_parse_size(const char *s, int *w, int *h, char *err);

#endif
