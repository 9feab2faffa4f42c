/* The Generations panel: the dev record (instruction, context, reference answer), then
 * T' | T | S side by side, each headed by its ROUGE-L F against the reference, so the
 * answers can be judged where they are read. The answers scroll (j/k). */
#include <stdio.h>
#include <string.h>

#include "tui_internal.h"

enum { N_PARTS = 3 };

/* Rows for each part of the record: one each first, in order, then more by turns to the
 * parts that need them, until budget rows are used. */
static void share_rows(const int *need, int n, int budget, int *rows) {
    for (int i = 0; i < n; i++) rows[i] = 0;
    for (int more = 1; more && budget > 0;) {
        more = 0;
        for (int i = 0; i < n && budget > 0; i++)
            if (rows[i] < need[i]) rows[i]++, budget--, more = 1;
    }
}

/* One answer column's head: the model and, when there is a reference, its ROUGE-L, in the
 * longest form that fits w columns ("T' prompted teacher  ROUGE-L 31.2" ... "T' RL 31.2"). */
static void column_head(char *out, size_t len, const char *model, double rougeL, int w) {
    if (rougeL < 0) {
        snprintf(out, len, "%s", model);
        return;
    }
    int short_len = (int)strcspn(model, " "); /* "T'", "T", "S" */
    snprintf(out, len, "%s  ROUGE-L %.1f", model, rougeL);
    if ((int)strlen(out) > w) snprintf(out, len, "%s RL %.1f", model, rougeL);
    if ((int)strlen(out) > w) snprintf(out, len, "%.*s  ROUGE-L %.1f", short_len, model, rougeL);
    if ((int)strlen(out) > w) snprintf(out, len, "%.*s RL %.1f", short_len, model, rougeL);
}

void panel_generations_draw(Tui *t, Rect r) {
    const EngineSnapshot *s = t->snap;
    char title[260];
    if (s && s->dev_count > 0)
        snprintf(title, sizeof title, "%s: T' | T | S, dev %d/%d (n/p), step %d", tui_panel_titles[P_GEN],
                 s->dev_index + 1, s->dev_count, s->gen_step);
    else if (s && s->read_only && s->gen_step > 0 && s->dev_index >= 0)
        snprintf(title, sizeof title, "%s: T' | T | S, dev record %d, step %d", tui_panel_titles[P_GEN],
                 s->dev_index + 1, s->gen_step);
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

    /* the record: its instruction, context and reference answer when the engine knows them,
     * else the prompt as given (a text of the person's) */
    const char *labels[N_PARTS] = {"instruction: ", "context: ", "reference: "};
    const char *parts[N_PARTS] = {s->dev_instruction, s->dev_context, s->dev_reference};
    int n = 0, need[N_PARTS], rows[N_PARTS], label_w[N_PARTS];
    const char *shown_label[N_PARTS], *shown[N_PARTS];
    for (int i = 0; i < N_PARTS; i++)
        if (parts[i] && *parts[i]) shown_label[n] = labels[i], shown[n++] = parts[i];
    if (!s->dev_instruction || !*s->dev_instruction) { /* no record: the prompt alone */
        n = 1;
        shown_label[0] = "prompt: ";
        shown[0] = s->dev_prompt && *s->dev_prompt ? s->dev_prompt : "(no dev prompt yet)";
        if (s->dev_reference && *s->dev_reference) shown_label[1] = labels[2], shown[1] = s->dev_reference, n = 2;
    }
    for (int i = 0; i < n; i++) {
        label_w[i] = tui_text_width(shown_label[i], t->utf8);
        int st, ln;
        need[i] = in.w - label_w[i] > 0 ? tui_wrap(shown[i], in.w - label_w[i], t->utf8, &st, &ln, 1) : 1;
        if (need[i] < 1) need[i] = 1;
    }
    /* the answers keep a head and two lines, half the panel when it is tall */
    int budget = in.h >= 12 ? in.h - in.h / 2 : in.h - 3;
    if (budget < 1) budget = in.h >= 2 ? 1 : 0;
    share_rows(need, n, budget, rows);
    int y = in.y;
    for (int i = 0; i < n; i++) {
        if (rows[i] == 0) continue;
        int lw = tui_put_text(t, y, in.x, in.w, shown_label[i], A_BOLD, tui_pair(t, PAIR_TITLE));
        tui_draw_wrapped(t, y, in.x + lw, in.w - lw, rows[i], shown[i], 0, A_NORMAL, 0);
        y += rows[i];
    }
    int top = y, h = in.y + in.h - y;
    if (h < 2) return;

    const char *models[3] = {"T' prompted teacher", "T teacher", "S student"};
    const char *texts[3] = {s->gen_prompted_teacher ? s->gen_prompted_teacher : "",
                            s->gen_teacher ? s->gen_teacher : "", s->gen_student ? s->gen_student : ""};
    double rouge[3] = {s->gen_rougeL_prompted_teacher, s->gen_rougeL_teacher, s->gen_rougeL_student};
    int colw = (in.w - 2) / 3;
    int lines_needed = 0;
    for (int k = 0; k < 3; k++) {
        int x = in.x + k * (colw + 1);
        int w = k == 2 ? in.w - 2 * (colw + 1) : colw;
        char head[96];
        column_head(head, sizeof head, models[k], *texts[k] ? rouge[k] : -1, w);
        tui_put_text(t, top, x, w, head, A_BOLD | A_UNDERLINE, tui_pair(t, PAIR_TITLE));
        if (k < 2)
            for (int yy = top; yy < top + h; yy++)
                tui_put_line_char(t, yy, x + colw, L'\u2502', '|', A_NORMAL, tui_pair(t, PAIR_FRAME));
        /* empty: nothing generated yet, or this method has no such model */
        int any = *texts[0] || *texts[1] || *texts[2];
        const char *txt = *texts[k] ? texts[k]
                          : !any    ? "(not generated yet: every gen_interval steps, or n/p)"
                          : k == 0  ? "(no soft prompt in this method)"
                          : k == 1  ? "(no teacher in this method)"
                                    : "(empty)";
        int need_k = tui_draw_wrapped(t, top + 1, x, w, h - 1, txt, t->scroll[P_GEN], *texts[k] ? A_NORMAL : A_DIM, 0);
        if (need_k > lines_needed) lines_needed = need_k;
    }
    tui_clamp_scroll(t, P_GEN, lines_needed, h - 1);
}
