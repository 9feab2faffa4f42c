/* The Hyper-parameters panel: every config key and value, live keys (* : editable while
 * paused) first; the selection is what e edits. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "tui_internal.h"

/* Display order of the hyper-parameters: live keys (editable while paused) first,
 * each group in config_keys() order. Returns the count. */
int tui_hparam_order(const EngineSnapshot *s, int *order, int max) {
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < s->n_hparams && n < max; i++)
            if (config_key_is_live(s->hparam_keys[i]) == (pass == 0)) order[n++] = i;
    return n;
}

int tui_hparam_selected(Tui *t, const EngineSnapshot *s, const int *order, int n) {
    if (!t->hp_sel_set) { /* start on the student learning rate, the key most often changed */
        for (int i = 0; i < n; i++)
            if (!strcmp(s->hparam_keys[order[i]], "lr")) t->hp_sel = i;
        t->hp_sel_set = 1;
    }
    if (t->hp_sel >= n) t->hp_sel = n - 1;
    if (t->hp_sel < 0) t->hp_sel = 0;
    return t->hp_sel;
}

void panel_hparams_draw(Tui *t, Rect r) {
    const EngineSnapshot *s = t->snap;
    tui_draw_frame(t, r, s && s->read_only ? "Hyper-parameters: as the run left them" : "Hyper-parameters: * live, e edit",
                   t->focus == P_HPARAM);
    Rect in = tui_inner(r);
    if (in.w < 6 || in.h < 1 || !s) return;
    int order[TUI_HPARAM_MAX];
    int n = tui_hparam_order(s, order, TUI_HPARAM_MAX);
    tui_hparam_selected(t, s, order, n);
    /* keep the selection visible */
    if (t->hp_sel < t->scroll[P_HPARAM]) t->scroll[P_HPARAM] = t->hp_sel;
    if (t->hp_sel >= t->scroll[P_HPARAM] + in.h) t->scroll[P_HPARAM] = t->hp_sel - in.h + 1;
    int top = tui_clamp_scroll(t, P_HPARAM, n, in.h);
    int keyw = 0;
    for (int i = 0; i < n; i++) {
        int l = (int)strlen(s->hparam_keys[order[i]]);
        if (l > keyw) keyw = l;
    }
    if (keyw > 17) keyw = 17; /* long keys are cut rather than pushing every value off the panel */
    if (keyw > in.w / 2) keyw = in.w / 2;
    for (int i = top, row = 0; i < n && row < in.h; i++, row++) {
        int k = order[i];
        int y = in.y + row, live = config_key_is_live(s->hparam_keys[k]);
        int sel = i == t->hp_sel;
        attr_t a = sel ? (t->focus == P_HPARAM ? A_REVERSE : A_UNDERLINE) : A_NORMAL;
        if (sel) tui_fill_row(t, y, in.x, in.w, a, 0);
        int x = in.x;
        x += tui_put_text(t, y, x, 2, live ? "* " : "  ", a | A_BOLD, tui_pair(t, PAIR_LIVE));
        char key[80];
        snprintf(key, sizeof key, "%-*.*s", keyw, keyw, s->hparam_keys[k]);
        x += tui_put_text(t, y, x, in.x + in.w - x, key, a | (live ? A_BOLD : A_DIM), 0);
        x += tui_put_text(t, y, x, in.x + in.w - x, " = ", a, 0);
        tui_put_text(t, y, x, in.x + in.w - x, s->hparam_values[k], a, 0);
    }
}
