/* RUN/view.json: how the workbench was left on a run (the chart in the Charts panel, the
 * focused panel, each chart's smoothing, log scale, window and x axis), written when the
 * workbench closes and read back when the run is opened again (--resume, --open). A bad
 * file is reported and ignored: the view is a convenience, never a reason not to open a run.
 *
 *   {"chart": "rouge", "focus": "Exposure bias", "zoom": false,
 *    "charts": {"loss": {"ema": 0.6, "log_y": true, "window": 0, "x_time": false}, ...}} */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui_internal.h"

#define VIEW_FILE "view.json"

static int view_path(const Tui *t, char *out, size_t len, char *err) {
    const char *dir = engine_run_path(t->engine);
    if (!dir || !*dir) return pk_errf(err, "no run folder");
    return pk_path_join(out, len, dir, VIEW_FILE, err);
}

int tui_view_save(Tui *t, char *err) {
    char path[CONFIG_PATH_LEN + 32];
    if (view_path(t, path, sizeof path, err) != PK_OK) return PK_FAIL;
    cJSON *root = cJSON_CreateObject(), *charts = cJSON_CreateObject();
    if (!root || !charts) {
        cJSON_Delete(root);
        cJSON_Delete(charts);
        return pk_errf(err, "%s: out of memory", path);
    }
    cJSON_AddStringToObject(root, "chart", t->chart);
    cJSON_AddStringToObject(root, "focus", tui_panel_titles[t->focus]);
    cJSON_AddBoolToObject(root, "zoom", t->zoom);
    cJSON_AddItemToObject(root, "charts", charts);
    tui_refresh_chart_names(t);
    for (int i = 0; i < t->n_charts && t->host->chart_view; i++) {
        TuiChartView v = {0};
        t->host->chart_view(t->host->ctx, t->chart_names[i], &v);
        cJSON *c = cJSON_AddObjectToObject(charts, t->chart_names[i]);
        if (!c) continue;
        cJSON_AddNumberToObject(c, "ema", v.ema);
        cJSON_AddBoolToObject(c, "log_y", v.log_y);
        cJSON_AddNumberToObject(c, "window", v.window);
        cJSON_AddBoolToObject(c, "x_time", v.x_time);
    }
    int rc = pk_write_json_atomic(path, root, err);
    cJSON_Delete(root);
    return rc;
}

/* One chart's entry: {"ema": number in [0, 1), "log_y": bool, "window": steps >= 0 (0: all),
 * "x_time": bool}, every key optional. */
static int chart_entry_check(const char *path, const cJSON *c, char *err) {
    if (!cJSON_IsObject(c)) return pk_errf(err, "%s: charts.%s: expected an object", path, c->string);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(c, "ema");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(c, "log_y");
    if (e && (!cJSON_IsNumber(e) || !(e->valuedouble >= 0 && e->valuedouble < 1)))
        return pk_errf(err, "%s: charts.%s.ema: expected a number in [0, 1)", path, c->string);
    if (l && !cJSON_IsBool(l)) return pk_errf(err, "%s: charts.%s.log_y: expected true or false", path, c->string);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(c, "window");
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(c, "x_time");
    if (w && (!cJSON_IsNumber(w) || !(w->valuedouble >= 0 && w->valuedouble <= 1e9) || w->valuedouble != (int)w->valuedouble))
        return pk_errf(err, "%s: charts.%s.window: expected a number of steps >= 0 (0: all)", path, c->string);
    if (x && !cJSON_IsBool(x)) return pk_errf(err, "%s: charts.%s.x_time: expected true or false", path, c->string);
    return PK_OK;
}

static void chart_entry_apply(Tui *t, const cJSON *c) {
    TuiChartView v = {0};
    char ignore[PK_ERR_LEN]; /* checked before: nothing left to refuse */
    if (t->host->chart_view) t->host->chart_view(t->host->ctx, c->string, &v);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(c, "ema");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(c, "log_y");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(c, "window");
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(c, "x_time");
    if (e) v.ema = e->valuedouble;
    if (l) v.log_y = cJSON_IsTrue(l);
    if (w) v.window = (int)w->valuedouble;
    if (x) v.x_time = cJSON_IsTrue(x);
    if (t->host->set_chart_view) t->host->set_chart_view(t->host->ctx, c->string, &v, ignore);
}

int tui_view_load(Tui *t, int *found, char *err) {
    *found = 0;
    char path[CONFIG_PATH_LEN + 32];
    if (view_path(t, path, sizeof path, err) != PK_OK) return PK_FAIL;
    if (!pk_file_exists(path)) return PK_OK;
    char *text = NULL;
    size_t len = 0;
    if (pk_read_file(path, &text, &len, err) != PK_OK) return PK_FAIL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return pk_errf(err, "%s: not a JSON object", path);
    }
    /* everything is checked before anything is applied: a bad file changes nothing */
    const cJSON *chart = cJSON_GetObjectItemCaseSensitive(root, "chart");
    const cJSON *focus = cJSON_GetObjectItemCaseSensitive(root, "focus");
    const cJSON *zoom = cJSON_GetObjectItemCaseSensitive(root, "zoom");
    const cJSON *charts = cJSON_GetObjectItemCaseSensitive(root, "charts");
    int rc = PK_OK, panel = -1;
    if (chart && (!cJSON_IsString(chart) || strlen(chart->valuestring) >= sizeof t->chart))
        rc = pk_errf(err, "%s: chart: expected a chart name", path);
    else if (focus && !cJSON_IsString(focus))
        rc = pk_errf(err, "%s: focus: expected a panel title", path);
    else if (zoom && !cJSON_IsBool(zoom))
        rc = pk_errf(err, "%s: zoom: expected true or false", path);
    else if (charts && !cJSON_IsObject(charts))
        rc = pk_errf(err, "%s: charts: expected an object of chart names", path);
    if (rc == PK_OK && focus) {
        for (int p = 0; p < P_COUNT; p++)
            if (!strcmp(focus->valuestring, tui_panel_titles[p])) panel = p;
        if (panel < 0) rc = pk_errf(err, "%s: focus: \"%s\" is not a panel title", path, focus->valuestring);
    }
    for (const cJSON *c = charts ? charts->child : NULL; rc == PK_OK && c; c = c->next)
        rc = chart_entry_check(path, c, err);
    if (rc == PK_OK) {
        /* charts the session does not have (a plugin not loaded now) are set anyway: the
         * session keeps view settings by name, and they apply once the chart exists */
        for (const cJSON *c = charts ? charts->child : NULL; c; c = c->next) chart_entry_apply(t, c);
        if (chart) snprintf(t->chart, sizeof t->chart, "%s", chart->valuestring);
        if (panel >= 0) t->focus = panel;
        if (zoom) t->zoom = cJSON_IsTrue(zoom);
        *found = 1;
    }
    cJSON_Delete(root);
    return rc;
}
