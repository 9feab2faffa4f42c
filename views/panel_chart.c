/* The Charts panel: the chart the person picked (c / C), with its view settings in the title. */
#include <stdio.h>
#include <string.h>

#include "tui_internal.h"

void panel_chart_draw(Tui *t, Rect r) {
    char base[160], title[200];
    int idx = tui_chart_index(t);
    snprintf(base, sizeof base, "%s: %s [%d/%d, c]", tui_panel_titles[P_CHART], t->chart, t->n_charts ? idx + 1 : 0,
             t->n_charts);
    tui_chart_title(t, t->chart, base, title, sizeof title);
    tui_draw_frame(t, r, title, t->focus == P_CHART);
    tui_draw_chart(t, tui_inner(r), t->chart);
}

