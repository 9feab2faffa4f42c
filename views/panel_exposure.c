/* The Exposure bias panel: the ExAccErr curves over the generated length, the newest in the title. */
#include <stdio.h>
#include <string.h>

#include "tui_internal.h"

void panel_exposure_draw(Tui *t, Rect r) {
    char base[160], title[200];
    const EngineSnapshot *s = t->snap;
    if (s && s->n_exposure > 0) {
        const EngineExposureCurve *c = &s->exposure[s->n_exposure - 1];
        snprintf(base, sizeof base, "%s: step %d, l=%d %.1f%%", tui_panel_titles[P_EXPOSURE], c->step, c->n,
                 c->n ? c->exaccerr[c->n - 1] : 0.0);
    } else {
        snprintf(base, sizeof base, "%s: ExAccErr%%", tui_panel_titles[P_EXPOSURE]);
    }
    tui_chart_title(t, "exposure", base, title, sizeof title);
    tui_draw_frame(t, r, title, t->focus == P_EXPOSURE);
    Rect in = tui_inner(r);
    if (!s || s->n_exposure == 0) {
        tui_put_text(t, in.y + in.h / 2, in.x + 1, in.w - 2, "no ExAccErr curve yet (exposure_interval, or :exposure)",
                 A_NORMAL, tui_pair(t, PAIR_DIM));
        return;
    }
    tui_draw_chart(t, in, "exposure");
}

