/* The Generations panel: the dev prompt, then T' | T | S side by side (scrolls). */
#include <stdio.h>
#include <string.h>

#include "tui_internal.h"

void panel_generations_draw(Tui *t, Rect r) {
    const EngineSnapshot *s = t->snap;
    char title[260];
    if (s && s->dev_count > 0)
        snprintf(title, sizeof title, "%s: T' | T | S, dev %d/%d (n/p), step %d", tui_panel_titles[P_GEN],
                 s->dev_index + 1, s->dev_count, s->gen_step);
    else
        snprintf(title, sizeof title, "%s: T' | T | S", tui_panel_titles[P_GEN]);
    /* the last dev ROUGE-L of S and, beside it, of T' (watched: the prompt may pull T' off its task) */
    double rs, rtp;
    if (tui_last_series_value(s, "dev_rougeL", &rs)) {
        size_t used = strlen(title);
        if (tui_last_series_value(s, "dev_rougeL_tprime", &rtp))
            snprintf(title + used, sizeof title - used, ", dev ROUGE-L S %.2f T' %.2f", rs, rtp);
        else
            snprintf(title + used, sizeof title - used, ", dev ROUGE-L S %.2f", rs);
    }
    tui_draw_frame(t, r, title, t->focus == P_GEN);
    Rect in = tui_inner(r);
    if (in.w < 8 || in.h < 1) return;
    if (!s) return;
    const char *prompt = s->dev_prompt && *s->dev_prompt ? s->dev_prompt : "(no dev prompt yet)";
    /* the prompt: one line in the compact tui_layout, more when there is room */
    int label = tui_put_text(t, in.y, in.x, in.w, "prompt: ", A_BOLD, tui_pair(t, PAIR_TITLE));
    int prompt_rows = in.h >= 12 ? 3 : 1, st0, ln0;
    int prompt_lines = tui_wrap(prompt, in.w - label, t->utf8, &st0, &ln0, 1);
    if (prompt_rows > prompt_lines) prompt_rows = prompt_lines > 0 ? prompt_lines : 1;
    tui_draw_wrapped(t, in.y, in.x + label, in.w - label, prompt_rows, prompt, 0, A_NORMAL, 0);
    int top = in.y + prompt_rows, h = in.h - prompt_rows;
    if (h < 2) return;
    const char *heads[3] = {"T' prompted teacher", "T teacher", "S student"};
    const char *texts[3] = {s->gen_prompted_teacher ? s->gen_prompted_teacher : "",
                            s->gen_teacher ? s->gen_teacher : "", s->gen_student ? s->gen_student : ""};
    int colw = (in.w - 2) / 3;
    int need = 0;
    for (int k = 0; k < 3; k++) {
        int x = in.x + k * (colw + 1);
        int w = k == 2 ? in.w - 2 * (colw + 1) : colw;
        tui_put_text(t, top, x, w, heads[k], A_BOLD | A_UNDERLINE, tui_pair(t, PAIR_TITLE));
        if (k < 2)
            for (int y = top; y < top + h; y++) tui_put_line_char(t, y, x + colw, L'\u2502', '|', A_NORMAL, tui_pair(t, PAIR_FRAME));
        /* empty: nothing generated yet, or this method has no such model */
        int any = *texts[0] || *texts[1] || *texts[2];
        const char *txt = *texts[k]       ? texts[k]
                          : !any          ? "(not generated yet: every gen_interval steps, or n/p)"
                          : k == 0        ? "(no soft prompt in this method)"
                          : k == 1        ? "(no teacher in this method)"
                                          : "(empty)";
        int skip = t->scroll[P_GEN];
        int n = tui_draw_wrapped(t, top + 1, x, w, h - 1, txt, skip, *texts[k] ? A_NORMAL : A_DIM, 0);
        if (n > need) need = n;
    }
    tui_clamp_scroll(t, P_GEN, need, h - 1);
}
