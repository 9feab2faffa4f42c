/* The Prompt neighbours panel: per soft-prompt vector its drift and its top-k vocabulary
 * neighbours by cosine similarity (scrolls). */
#include <stdio.h>
#include <string.h>

#include "tui_internal.h"

void panel_neighbours_draw(Tui *t, Rect r) {
    const EngineSnapshot *s = t->snap;
    tui_draw_frame(t, r, "Prompt neighbours: top-k by cosine, drift", t->focus == P_NEIGH);
    Rect in = tui_inner(r);
    if (in.w < 8 || in.h < 1 || !s) return;
    if (s->prompt_len == 0 || !s->neighbour_tokens) {
        char line[128];
        snprintf(line, sizeof line, "no soft prompt (method %s)", s->method);
        tui_put_text(t, in.y, in.x + 1, in.w - 1, line, A_DIM, 0);
        return;
    }
    int top = tui_clamp_scroll(t, P_NEIGH, s->prompt_len, in.h);
    for (int i = top, row = 0; i < s->prompt_len && row < in.h; i++, row++) {
        int y = in.y + row, x = in.x;
        char head[64];
        snprintf(head, sizeof head, "%d %s%.3f ", i, t->utf8 ? "\u0394" : "d", s->prompt_drift ? s->prompt_drift[i] : 0.0f);
        x += tui_put_text(t, y, x, in.w, head, A_BOLD, tui_pair(t, PAIR_TITLE));
        for (int k = 0; k < s->neighbours_k && x < in.x + in.w; k++) {
            const char *tok = s->neighbour_tokens[i * s->neighbours_k + k];
            char shown[200];
            size_t o = 0;
            for (const char *c = tok; *c && o + 4 < sizeof shown; c++) {
                if (*c == ' ') { /* leading spaces matter in BPE tokens: make them visible */
                    if (t->utf8)
                        memcpy(shown + o, "\u00b7", 2), o += 2;
                    else
                        shown[o++] = '_';
                } else {
                    shown[o++] = *c;
                }
            }
            shown[o] = 0;
            char sim[32];
            snprintf(sim, sizeof sim, " %.2f  ", s->neighbour_sims[i * s->neighbours_k + k]);
            int need = tui_text_width(shown, t->utf8) + (int)strlen(sim);
            if (k > 0 && x + need > in.x + in.w) break;
            x += tui_put_text(t, y, x, in.x + in.w - x, shown, A_NORMAL, 0);
            x += tui_put_text(t, y, x, in.x + in.w - x, sim, A_DIM, tui_pair(t, PAIR_DIM));
        }
    }
}
