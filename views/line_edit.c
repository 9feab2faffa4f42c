/* The workbench's one-line editor (hyper-parameter values, the : command line, with a
 * history) and its one-key question (quit: save first?). Both are modes of the bottom
 * line: the screen stays live while the person types. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui_internal.h"

void tui_hist_add(Tui *t, const char *line) {
    if (!*line) return;
    if (t->n_hist && !strcmp(t->hist[t->n_hist - 1], line)) return;
    tui_lines_push(t->hist, &t->n_hist, TUI_HIST_MAX, line);
}

static void edit_set(Tui *t, const char *utf8) {
    t->edit_len = 0;
    size_t n = strlen(utf8);
    for (size_t i = 0; i < n && t->edit_len < TUI_EDIT_MAX - 1;) {
        uint32_t cp;
        i += (size_t)tui_utf8_next(utf8 + i, n - i, &cp);
        t->edit[t->edit_len++] = (wchar_t)cp;
    }
    t->edit_cur = t->edit_len;
}

static void edit_get(const Tui *t, char *out, size_t len) {
    size_t o = 0;
    for (int i = 0; i < t->edit_len; i++) {
        uint32_t cp = (uint32_t)t->edit[i];
        char b[4];
        int n = pk_utf8_encode(cp, b);
        if (o + (size_t)n + 1 > len) break;
        memcpy(out + o, b, (size_t)n);
        o += (size_t)n;
    }
    out[o] = 0;
}

/* The one-line editor at the bottom. Returns 1 with the text in out when Enter was
 * pressed, 0 when cancelled (Esc, Ctrl-C, Ctrl-G). use_hist: Up/Down walk the
 * command history. */
int tui_line_edit(Tui *t, const char *label, const char *help, const char *init, char *out, size_t len,
                     int use_hist) {
    snprintf(t->edit_label, sizeof t->edit_label, "%s", label);
    snprintf(t->edit_help, sizeof t->edit_help, "%s", help ? help : "");
    edit_set(t, init);
    t->mode = MODE_EDIT;
    int hist_pos = t->n_hist, accepted = 0;
    char saved[TUI_EDIT_MAX * 4] = "";
    tui_draw_all(t);
    for (;;) {
        int k;
        if (!tui_wait_key(t, &k)) break;
        if (k == '\n' || k == '\r' || k == -KEY_ENTER) {
            accepted = 1;
            break;
        }
        if (k == 27 || k == 7) break; /* Esc, Ctrl-G */
        if (k == -KEY_LEFT || k == 2) {
            if (t->edit_cur > 0) t->edit_cur--;
        } else if (k == -KEY_RIGHT || k == 6) {
            if (t->edit_cur < t->edit_len) t->edit_cur++;
        } else if (k == -KEY_HOME || k == 1) {
            t->edit_cur = 0;
        } else if (k == -KEY_END || k == 5) {
            t->edit_cur = t->edit_len;
        } else if (k == -KEY_BACKSPACE || k == 127 || k == 8) {
            if (t->edit_cur > 0) {
                memmove(t->edit + t->edit_cur - 1, t->edit + t->edit_cur,
                        (size_t)(t->edit_len - t->edit_cur) * sizeof *t->edit);
                t->edit_cur--, t->edit_len--;
            }
        } else if (k == -KEY_DC || k == 4) {
            if (t->edit_cur < t->edit_len) {
                memmove(t->edit + t->edit_cur, t->edit + t->edit_cur + 1,
                        (size_t)(t->edit_len - t->edit_cur - 1) * sizeof *t->edit);
                t->edit_len--;
            }
        } else if (k == 21) { /* Ctrl-U */
            memmove(t->edit, t->edit + t->edit_cur, (size_t)(t->edit_len - t->edit_cur) * sizeof *t->edit);
            t->edit_len -= t->edit_cur;
            t->edit_cur = 0;
        } else if (k == 11) { /* Ctrl-K */
            t->edit_len = t->edit_cur;
        } else if (use_hist && (k == -KEY_UP || k == -KEY_DOWN)) {
            if (hist_pos == t->n_hist) edit_get(t, saved, sizeof saved);
            if (k == -KEY_UP && hist_pos > 0) hist_pos--;
            else if (k == -KEY_DOWN && hist_pos < t->n_hist) hist_pos++;
            edit_set(t, hist_pos < t->n_hist ? t->hist[hist_pos] : saved);
        } else if (k >= 0x20 && k != 0x7f && t->edit_len < TUI_EDIT_MAX - 1) {
            memmove(t->edit + t->edit_cur + 1, t->edit + t->edit_cur,
                    (size_t)(t->edit_len - t->edit_cur) * sizeof *t->edit);
            t->edit[t->edit_cur++] = (wchar_t)k;
            t->edit_len++;
        }
        tui_draw_all(t);
    }
    if (accepted) edit_get(t, out, len);
    t->mode = MODE_NORMAL;
    return accepted;
}

/* Asks a one-key question; returns the key (lower case), 0 on Ctrl-C. */
int tui_ask_key(Tui *t, const char *question, const char *allowed) {
    snprintf(t->ask, sizeof t->ask, "%s", question);
    t->mode = MODE_ASK;
    tui_draw_all(t);
    int answer = 0;
    for (;;) {
        int k;
        if (!tui_wait_key(t, &k)) break;
        if (k == 27) k = 'c';
        if (k >= 'A' && k <= 'Z') k += 'a' - 'A';
        if (k > 0 && k < 128 && strchr(allowed, k)) {
            answer = k;
            break;
        }
    }
    t->mode = MODE_NORMAL;
    return answer;
}
