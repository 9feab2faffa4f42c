/* libFuzzer target: the frames a plugin child sends back to the session
 * (app/plugin_wire.c, pw_parse), the one place where bytes written by plugin code
 * reach the session. Whatever pw_parse accepts must hold only what the limits in
 * plugins/promptkd_plugin.h allow: valid names, counts in range, every cell and line
 * a NUL-terminated string without control characters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_wire.c"

static void check_text(const char *s, size_t max) {
    if (!s) abort();
    size_t n = strlen(s);
    if (n > max) abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    PwReply r;
    char err[300];
    if (pw_parse(data, size, &r, err, sizeof err) == 0) {
        if (r.phase < 0 || r.phase >= PW_N_PHASES) abort();
        if (r.have_desc) {
            if (!pw_valid_name(r.name, strlen(r.name), PK_PLUGIN_NAME_MAX) || r.state_size > PK_PLUGIN_MAX_STATE) abort();
            check_text(r.description, PK_PLUGIN_DESCRIPTION_MAX);
            if (r.have_state && r.state_len != r.state_size) abort();
        }
        if (r.have_state && r.state_len > PK_PLUGIN_MAX_STATE) abort();
        if (r.have_result) check_text(r.err, PK_PLUGIN_ERR_LEN - 1);
        for (int i = 0; i < r.n_items; i++) {
            const PwItem *it = &r.items[i];
            switch (it->kind) {
            case PW_ITEM_LOG: check_text(it->name, 4 * PK_PLUGIN_LOG_MAX); break;
            case PW_ITEM_TABLE:
                if (!pw_valid_name(it->name, strlen(it->name), PK_PLUGIN_TABLE_NAME_MAX)) abort();
                if (it->n_cols < 1 || it->n_cols > PK_PLUGIN_MAX_COLS || it->n_rows < 0 || it->n_rows > PK_PLUGIN_MAX_ROWS)
                    abort();
                for (size_t c = 0; c < (size_t)(it->n_rows + 1) * (size_t)it->n_cols; c++)
                    check_text(it->cells[c], PK_PLUGIN_MAX_CELL);
                break;
            case PW_ITEM_SERIES:
            case PW_ITEM_POINT:
                if (!pw_valid_name(it->name, strlen(it->name), PK_PLUGIN_NAME_MAX)) abort();
                check_text(it->series, PK_PLUGIN_SERIES_NAME_MAX);
                if (it->kind == PW_ITEM_SERIES) {
                    if (it->n < 0 || it->n > PK_PLUGIN_MAX_POINTS || !it->x || !it->y) abort();
                    volatile double sum = 0;
                    for (int k = 0; k < it->n; k++) sum += it->x[k] + it->y[k];
                }
                break;
            default: abort();
            }
        }
    }
    pw_reply_free(&r);
    return 0;
}
