#include "font.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

uint32_t utf8_next(const char **sp) {
    uint32_t cp;
    size_t left = strnlen(*sp, 4); /* the string's NUL ends a sequence cut short */
    int n = pk_utf8_decode(*sp, left ? left : 1, &cp);
    *sp += n > 0 ? n : -n;
    return cp;
}

static uint32_t rd32(const unsigned char *p) { return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24); }

int font_load(Font *f, const char *path, char *err) {
    memset(f, 0, sizeof *f);
    char *data;
    size_t len;
    if (pk_read_file(path, &data, &len, err)) return PK_FAIL;
    const unsigned char *d = (const unsigned char *)data;
    size_t table_at = 0, glyph_at;
    int has_table;
    if (len >= 4 && d[0] == 0x36 && d[1] == 0x04) { /* PSF1 */
        f->num_glyphs = (d[2] & 1) ? 512 : 256;
        has_table = (d[2] & 6) != 0;
        f->width = 8;
        f->height = d[3];
        f->bytes_per_row = 1;
        glyph_at = 4;
    } else if (len >= 32 && rd32(d) == 0x864ab572u) { /* PSF2 */
        glyph_at = rd32(d + 8);
        has_table = rd32(d + 12) & 1;
        f->num_glyphs = (int)rd32(d + 16);
        f->height = (int)rd32(d + 24);
        f->width = (int)rd32(d + 28);
        f->bytes_per_row = (f->width + 7) / 8;
        if (rd32(d + 20) != (uint32_t)(f->height * f->bytes_per_row)) {
            free(data);
            return pk_errf(err, "%s: PSF2 glyph size disagrees with its width and height", path);
        }
    } else {
        free(data);
        return pk_errf(err, "%s: not a PSF font (bad magic number)", path);
    }
    size_t gsize = (size_t)f->height * f->bytes_per_row;
    if (f->width < 1 || f->height < 1 || f->width > 64 || f->height > 64 || f->num_glyphs < 1 ||
        f->num_glyphs > 65536 || glyph_at + gsize * f->num_glyphs > len) {
        free(data);
        return pk_errf(err, "%s: PSF font header does not fit the file", path);
    }
    f->glyphs = malloc(gsize * f->num_glyphs);
    if (!f->glyphs) {
        free(data);
        return pk_errf(err, "%s: out of memory", path);
    }
    memcpy(f->glyphs, d + glyph_at, gsize * f->num_glyphs);
    table_at = glyph_at + gsize * f->num_glyphs;
    if (has_table) {
        int is_psf1 = d[0] == 0x36;
        size_t p = table_at;
        for (int g = 0; g < f->num_glyphs && p < len; g++) {
            int in_sequence = 0;
            while (p < len) {
                uint32_t cp;
                if (is_psf1) {
                    if (p + 1 >= len) { p = len; break; }
                    cp = d[p] | (d[p + 1] << 8);
                    p += 2;
                    if (cp == 0xFFFF) break;
                    if (cp == 0xFFFE) { in_sequence = 1; continue; }
                } else {
                    if (d[p] == 0xFF) { p++; break; }
                    if (d[p] == 0xFE) { p++; in_sequence = 1; continue; }
                    const char *s = (const char *)d + p;
                    cp = utf8_next(&s);
                    p = (size_t)((const unsigned char *)s - d);
                }
                if (!in_sequence && cp < 65536 && !f->map[cp]) f->map[cp] = (uint32_t)g + 1;
            }
        }
    } else {
        for (int g = 0; g < f->num_glyphs && g < 65536; g++) f->map[g] = (uint32_t)g + 1;
    }
    free(data);
    return PK_OK;
}

void font_free(Font *f) {
    free(f->glyphs);
    f->glyphs = NULL;
}

const unsigned char *font_glyph(const Font *f, uint32_t cp) {
    uint32_t g = cp < 65536 ? f->map[cp] : 0;
    if (!g) g = f->map['?'];
    if (!g) g = 1;
    return f->glyphs + (size_t)(g - 1) * f->height * f->bytes_per_row;
}

int font_text_width(const Font *f, const char *s) {
    int n = 0;
    while (*s) {
        utf8_next(&s);
        n++;
    }
    return n * f->width;
}

int views_asset_path(const char *name, char *out, size_t len, char *err) {
    const char *env = getenv("PROMPTKD_ASSETS");
    if (env && *env) {
        snprintf(out, len, "%s/%s", env, name);
        if (access(out, R_OK) == 0) return PK_OK;
    }
    snprintf(out, len, "assets/%s", name);
    if (access(out, R_OK) == 0) return PK_OK;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        for (int up = 0; up < 2; up++) {
            char *slash = strrchr(exe, '/');
            if (slash) *slash = 0;
        }
        snprintf(out, len, "%s/assets/%s", exe, name);
        if (access(out, R_OK) == 0) return PK_OK;
    }
    return pk_errf(err, "asset '%s' not found in $PROMPTKD_ASSETS, ./assets or next to the program", name);
}

int font_load_asset(Font *f, const char *name, char *err) {
    char path[4096];
    char sub[256];
    snprintf(sub, sizeof sub, "font/%s", name);
    if (views_asset_path(sub, path, sizeof path, err)) return PK_FAIL;
    return font_load(f, path, err);
}
