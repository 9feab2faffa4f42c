/* pngcheck FILE WIDTH HEIGHT [RRGGBB[:MIN]]...: reads a PNG back with libpng and
 * checks its size and that each colour covers at least MIN pixels (default 20).
 * Prints one line per problem; exit 0 only when everything holds. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: pngcheck FILE WIDTH HEIGHT [RRGGBB[:MIN]]...\n");
        return 2;
    }
    FILE *fp = fopen(argv[1], "rb");
    if (!fp) {
        printf("%s: cannot open\n", argv[1]);
        return 1;
    }
    unsigned char sig[8];
    if (fread(sig, 1, 8, fp) != 8 || png_sig_cmp(sig, 0, 8)) {
        printf("%s: not a PNG\n", argv[1]);
        fclose(fp);
        return 1;
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        printf("%s: libpng could not decode it\n", argv[1]);
        fclose(fp);
        return 1;
    }
    png_init_io(png, fp);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    png_set_strip_16(png);
    png_set_palette_to_rgb(png);
    png_set_strip_alpha(png);
    png_set_gray_to_rgb(png);
    png_read_update_info(png, info);
    int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
    int bad = 0;
    if (w != atoi(argv[2]) || h != atoi(argv[3])) {
        printf("%s: size %dx%d, expected %sx%s\n", argv[1], w, h, argv[2], argv[3]);
        bad = 1;
    }
    size_t rowbytes = png_get_rowbytes(png, info);
    unsigned char *img = malloc(rowbytes * h);
    png_bytep *rows = malloc(sizeof(png_bytep) * h);
    for (int y = 0; y < h; y++) rows[y] = img + rowbytes * y;
    png_read_image(png, rows);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    for (int i = 4; i < argc; i++) {
        unsigned int c;
        int min = 20;
        if (sscanf(argv[i], "%6x:%d", &c, &min) < 1) {
            printf("bad colour argument '%s'\n", argv[i]);
            bad = 1;
            continue;
        }
        long count = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const unsigned char *p = rows[y] + 3 * x;
                count += p[0] == (c >> 16 & 255) && p[1] == (c >> 8 & 255) && p[2] == (c & 255);
            }
        if (count < min) {
            printf("%s: colour %06x covers %ld pixels, expected at least %d\n", argv[1], c, count, min);
            bad = 1;
        }
    }
    free(rows);
    free(img);
    return bad;
}
