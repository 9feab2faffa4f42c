/* Bitmap fonts for the PNG renderer: PSF1/PSF2 console fonts with their Unicode tables. */
#ifndef PK_FONT_H
#define PK_FONT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int width, height;      /* pixels per glyph */
    int num_glyphs;
    int bytes_per_row;
    unsigned char *glyphs;  /* num_glyphs * height * bytes_per_row */
    uint32_t map[65536];    /* code point (BMP) -> glyph index + 1; 0 = none */
} Font;

/* Loads a PSF font file. */
int font_load(Font *f, const char *path, char *err);
/* Loads assets/font/NAME from the assets folder (see views_asset_path). */
int font_load_asset(Font *f, const char *name, char *err);
void font_free(Font *f);
/* Glyph bitmap of a code point ('?' when the font lacks it); row r, column c is set when
 * (g[r * bytes_per_row + c / 8] >> (7 - c % 8)) & 1. */
const unsigned char *font_glyph(const Font *f, uint32_t cp);
/* Width in pixels of a UTF-8 string. */
int font_text_width(const Font *f, const char *utf8);
/* Decodes one UTF-8 code point at *s, advancing it (invalid bytes give U+FFFD). */
uint32_t utf8_next(const char **s);

/* Finds an asset: $PROMPTKD_ASSETS/NAME, ./assets/NAME, or assets/NAME next to the program's
 * folder's parent. Fills out and returns 0, or fails naming the places tried. */
int views_asset_path(const char *name, char *out, size_t len, char *err);

#endif
