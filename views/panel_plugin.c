/* The Plugins panel: every table the loaded plugins published, one after another (scrolls). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui_internal.h"

void panel_plugin_draw(Tui *t, Rect r) {
    tui_draw_frame(t, r, tui_panel_titles[P_PLUGIN], t->focus == P_PLUGIN);
    Rect in = tui_inner(r);
    if (in.w < 2 || in.h < 1) return;
    /* all tables one after another, each under its title */
    PkBuf all = {0};
    for (int i = 0; t->host->plugin_table; i++) {
        char ttl[128] = "";
        char *text = t->host->plugin_table(t->host->ctx, i, ttl, sizeof ttl);
        if (!text) break;
        pk_buf_printf(&all, "%s[%s]\n%s%s", i ? "\n" : "", ttl, text, text[0] && text[strlen(text) - 1] != '\n' ? "\n" : "");
        free(text);
    }
    if (!all.data) {
        tui_put_text(t, in.y, in.x, in.w, "no plugin table published", A_DIM, 0);
        return;
    }
    int n_lines = 0;
    for (const char *p = all.data; *p; p++) n_lines += *p == '\n';
    int top = tui_clamp_scroll(t, P_PLUGIN, n_lines, in.h);
    const char *p = all.data;
    for (int i = 0, row = 0; *p && row < in.h; i++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (i >= top) {
            tui_put_text_n(t, in.y + row, in.x, in.w, p, n, p[0] == '[' ? A_BOLD : A_NORMAL,
                       p[0] == '[' ? tui_pair(t, PAIR_TITLE) : 0);
            row++;
        }
        p += n;
        if (*p == '\n') p++;
    }
    pk_buf_free(&all);
}
