/* The Log panel: engine log lines and command output, newest at the bottom (scrolls up). */
#include <stdio.h>
#include <string.h>

#include "tui_internal.h"

void panel_log_draw(Tui *t, Rect r) {
    tui_draw_frame(t, r, t->scroll[P_LOG] ? "Log (scrolled: End follows)" : "Log", t->focus == P_LOG);
    Rect in = tui_inner(r);
    if (in.w < 2 || in.h < 1) return;
    /* newest at the bottom; each entry wraps */
    int max_up = t->n_log > 0 ? t->n_log - 1 : 0;
    if (t->scroll[P_LOG] > max_up) t->scroll[P_LOG] = max_up;
    if (t->scroll[P_LOG] < 0) t->scroll[P_LOG] = 0;
    int row = in.h;
    enum { MAXL = 64 };
    int starts[MAXL], lens[MAXL];
    for (int i = t->n_log - 1 - t->scroll[P_LOG]; i >= 0 && row > 0; i--) {
        const char *line = t->log[i];
        int n = tui_wrap(line, in.w, t->utf8, starts, lens, MAXL);
        if (n > MAXL) n = MAXL;
        if (n == 0) n = 1, starts[0] = 0, lens[0] = 0;
        int is_err = !strncmp(line, "error", 5) || strstr(line, "failed") || strstr(line, "non-finite");
        int is_cmd = line[0] == '>';
        for (int k = n - 1; k >= 0 && row > 0; k--) {
            row--;
            tui_put_text_n(t, in.y + row, in.x, in.w, line + starts[k], (size_t)lens[k],
                       is_cmd ? A_BOLD : A_NORMAL, tui_pair(t, is_err ? PAIR_ERR : is_cmd ? PAIR_TITLE : 0));
        }
    }
}
