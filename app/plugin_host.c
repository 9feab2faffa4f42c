#include "plugin_host.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "distill.h"
#include "gpt2.h"
#include "promptkd_plugin.h"
#include "tokenizer.h"

#define HOST_MAX_PLUGINS 16
#define HOST_MAX_TABLES 32
#define HOST_MAX_SERIES 64

typedef struct {
    char plugin[48];
    char name[64];
    int n_cols, n_rows;
    char **cells; /* (n_rows + 1) * n_cols: the header row first */
} HostTable;

typedef struct {
    char chart[64];  /* "PLUGIN/CHART" */
    char series[48];
    int n, cap;
    double *x, *y;
} HostSeries;

typedef struct {
    void *handle;
    const PkPluginDescriptor *desc;
    void *state;
    char path[1024];
} LoadedPlugin;

struct PluginHost {
    Engine *engine;
    pthread_mutex_t mu; /* guards published tables and series: on_step publishes from the worker thread */
    PkHostApi api;
    int n_plugins;
    LoadedPlugin plugins[HOST_MAX_PLUGINS];
    const char *current;  /* plugin being called: owner of what it publishes */
    int n_tables;
    HostTable tables[HOST_MAX_TABLES];
    int n_series;
    HostSeries series[HOST_MAX_SERIES];
};

/* ---- the host API table: read-only access to the paused (or between-steps) run ---- */

static DistillState *host_state(void *host) { return engine_distill_state(((PluginHost *)host)->engine); }

static GPT2 *host_model(void *host, int which) {
    DistillState *ds = host_state(host);
    if (!ds) return NULL;
    if (which == PK_MODEL_STUDENT) return distill_student(ds);
    if (which == PK_MODEL_TEACHER) return distill_has_teacher(ds) ? distill_teacher(ds) : NULL;
    if (which == PK_MODEL_PROMPTED_TEACHER) return distill_has_prompt(ds) ? distill_teacher(ds) : NULL;
    return NULL;
}

static int api_has_model(void *host, int which) { return host_model(host, which) != NULL; }

static int api_vocab_size(void *host) {
    DistillState *ds = host_state(host);
    return ds ? tok_vocab_size(distill_tokenizer(ds)) : 0;
}

static int api_num_layers(void *host, int which) {
    GPT2 *m = host_model(host, which);
    return m ? m->config.num_layers : 0;
}

static int api_forward(void *host, int which, const int *tokens, int n, float *logits, char *err) {
    GPT2 *m = host_model(host, which);
    if (!m) return pk_errf(err, "forward: this run has no %s", which == PK_MODEL_STUDENT ? "student" : which == PK_MODEL_TEACHER ? "teacher" : "soft prompt");
    int P = 0, C = 0;
    const float *prompt = which == PK_MODEL_PROMPTED_TEACHER ? distill_prompt(host_state(host), &P, &C) : NULL;
    int T = P + n;
    int *slots = pk_malloc(sizeof(int) * (T ? T : 1), err);
    if (!slots) return PK_FAIL;
    for (int i = 0; i < P; i++) slots[i] = 0;
    memcpy(slots + P, tokens, sizeof(int) * n);
    int rc = gpt2_forward(m, slots, prompt, P, NULL, 1, T, err);
    if (rc == PK_OK) {
        size_t V = m->config.vocab_size;
        memcpy(logits, m->logits + (size_t)P * V, sizeof(float) * V * n);
    }
    free(slots);
    return rc;
}

static int api_prompt_attention(void *host, const int *tokens, int n, double *mass, char *err) {
    GPT2 *m = host_model(host, PK_MODEL_PROMPTED_TEACHER);
    if (!m) return pk_errf(err, "prompt_attention: this run has no soft prompt");
    int P = 0, C = 0;
    const float *prompt = distill_prompt(host_state(host), &P, &C);
    int T = P + n;
    int *slots = pk_malloc(sizeof(int) * T, err);
    if (!slots) return PK_FAIL;
    for (int i = 0; i < P; i++) slots[i] = 0;
    memcpy(slots + P, tokens, sizeof(int) * n);
    int rc = gpt2_forward(m, slots, prompt, P, NULL, 1, T, err);
    free(slots);
    if (rc) return rc;
    int NH = m->config.num_heads;
    for (int l = 0; l < m->config.num_layers; l++) {
        const float *att = gpt2_attention_probs(m, l); /* [B=1, NH, T, T] */
        double total = 0;
        for (int h = 0; h < NH; h++)
            for (int q = P; q < T; q++) {
                const float *row = att + ((size_t)h * T + q) * T;
                for (int k = 0; k < P; k++) total += row[k];
            }
        mass[l] = n > 0 ? total / ((double)NH * n) : 0;
    }
    return PK_OK;
}

static int api_prompt(void *host, const float **prompt, const float **prompt_init, int *P, int *C) {
    DistillState *ds = host_state(host);
    const float *p = ds ? distill_prompt(ds, P, C) : NULL;
    if (!p) return 0;
    *prompt = p;
    *prompt_init = distill_prompt_init(ds);
    return 1;
}

static int api_encode(void *host, const char *text, int **ids, int *n, char *err) {
    DistillState *ds = host_state(host);
    if (!ds) return pk_errf(err, "encode: the run is not loaded");
    return tok_encode(distill_tokenizer(ds), text, strlen(text), 0, ids, n, err);
}

static char *api_decode(void *host, const int *ids, int n) {
    DistillState *ds = host_state(host);
    char *text = NULL, err[PK_ERR_LEN];
    size_t len;
    if (!ds || tok_decode(distill_tokenizer(ds), ids, n, &text, &len, err)) return NULL;
    return text;
}

static void api_free_ids(int *ids) { free(ids); }
static void api_free_text(char *t) { free(t); }

static int api_eos_id(void *host) {
    DistillState *ds = host_state(host);
    return ds ? tok_eos_id(distill_tokenizer(ds)) : -1;
}

static int api_dataset_size(void *host, const char *split) {
    DistillState *ds = host_state(host);
    const Dataset *d = ds ? distill_dataset(ds, split) : NULL;
    return d ? d->n : 0;
}

static const char *api_dataset_prompt(void *host, const char *split, int i) {
    DistillState *ds = host_state(host);
    const Dataset *d = ds ? distill_dataset(ds, split) : NULL;
    if (!d || i < 0 || i >= d->n) return NULL;
    return d->recs[i].prompt;
}

static const char *api_dataset_response(void *host, const char *split, int i) {
    DistillState *ds = host_state(host);
    const Dataset *d = ds ? distill_dataset(ds, split) : NULL;
    if (!d || i < 0 || i >= d->n || d->recs[i].n_refs < 1) return NULL;
    return d->recs[i].refs[0];
}

static int api_sample(void *host, int which, const char *prompt_text, int max_new_tokens, unsigned long long seed,
                      int **ids, int *n, char *err) {
    DistillState *ds = host_state(host);
    if (!ds || !host_model(host, which)) return pk_errf(err, "sample: model %d is not part of this run", which);
    static const int to_distill[] = {DISTILL_PROMPTED_TEACHER, DISTILL_TEACHER, DISTILL_STUDENT};
    char *text = NULL;
    if (distill_generate(ds, to_distill[which], prompt_text, max_new_tokens, seed, &text, err)) return PK_FAIL;
    int rc = tok_encode(distill_tokenizer(ds), text, strlen(text), 0, ids, n, err);
    free(text);
    return rc;
}

static HostSeries *find_series(PluginHost *h, const char *chart, const char *series, int create) {
    char full[64];
    snprintf(full, sizeof full, "%s/%s", h->current ? h->current : "plugin", chart);
    for (int i = 0; i < h->n_series; i++)
        if (!strcmp(h->series[i].chart, full) && !strcmp(h->series[i].series, series)) return &h->series[i];
    if (!create || h->n_series >= HOST_MAX_SERIES) return NULL;
    HostSeries *s = &h->series[h->n_series++];
    memset(s, 0, sizeof *s);
    snprintf(s->chart, sizeof s->chart, "%s", full);
    snprintf(s->series, sizeof s->series, "%s", series);
    return s;
}

static int series_reserve(HostSeries *s, int n) {
    if (n <= s->cap) return 0;
    int cap = s->cap ? s->cap : 16;
    while (cap < n) cap *= 2;
    double *x = realloc(s->x, sizeof(double) * cap);
    if (!x) return -1;
    s->x = x;
    double *y = realloc(s->y, sizeof(double) * cap);
    if (!y) return -1;
    s->y = y;
    s->cap = cap;
    return 0;
}

static int api_publish_series(void *host, const char *chart, const char *series, const double *x, const double *y,
                              int n) {
    PluginHost *h = host;
    if (!chart || !series || n < 0) return -1;
    pthread_mutex_lock(&h->mu);
    HostSeries *s = find_series(h, chart, series, 1);
    int rc = -1;
    if (s && series_reserve(s, n) == 0) {
        memcpy(s->x, x, sizeof(double) * n);
        memcpy(s->y, y, sizeof(double) * n);
        s->n = n;
        rc = 0;
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static int api_append_point(void *host, const char *chart, const char *series, double x, double y) {
    PluginHost *h = host;
    if (!chart || !series) return -1;
    pthread_mutex_lock(&h->mu);
    HostSeries *s = find_series(h, chart, series, 1);
    int rc = -1;
    if (s && series_reserve(s, s->n + 1) == 0) {
        s->x[s->n] = x;
        s->y[s->n] = y;
        s->n++;
        rc = 0;
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static void free_table(HostTable *t) {
    for (int i = 0; i < (t->n_rows + 1) * t->n_cols; i++) free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
}

static int api_publish_table(void *host, const char *name, int n_cols, const char *const *headers, int n_rows,
                             const char *const *cells) {
    PluginHost *h = host;
    if (!name || n_cols < 1 || n_rows < 0 || n_cols > 64 || n_rows > 100000) return -1;
    HostTable t = {0};
    snprintf(t.plugin, sizeof t.plugin, "%s", h->current ? h->current : "plugin");
    snprintf(t.name, sizeof t.name, "%s", name);
    t.n_cols = n_cols;
    t.n_rows = n_rows;
    t.cells = calloc((size_t)(n_rows + 1) * n_cols, sizeof(char *));
    if (!t.cells) return -1;
    for (int i = 0; i < (n_rows + 1) * n_cols; i++) {
        const char *src = i < n_cols ? headers[i] : cells[i - n_cols];
        t.cells[i] = strdup(src ? src : "");
        if (!t.cells[i]) {
            free_table(&t);
            return -1;
        }
    }
    pthread_mutex_lock(&h->mu);
    int slot = -1;
    for (int i = 0; i < h->n_tables; i++)
        if (!strcmp(h->tables[i].plugin, t.plugin) && !strcmp(h->tables[i].name, t.name)) slot = i;
    if (slot < 0 && h->n_tables < HOST_MAX_TABLES) slot = h->n_tables++;
    int rc = -1;
    if (slot >= 0) {
        if (h->tables[slot].cells) free_table(&h->tables[slot]);
        h->tables[slot] = t;
        rc = 0;
    } else {
        free_table(&t);
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static void api_log(void *host, const char *message) {
    PluginHost *h = host;
    char line[600];
    snprintf(line, sizeof line, "[%s] %s", h->current ? h->current : "plugin", message ? message : "");
    engine_log_line(h->engine, line);
}

int plugin_host_create(PluginHost **out, Engine *engine, char *err) {
    PluginHost *h = pk_calloc(1, sizeof *h, err);
    if (!h) return PK_FAIL;
    h->engine = engine;
    pthread_mutex_init(&h->mu, NULL);
    PkHostApi *a = &h->api;
    a->abi_version = PROMPTKD_PLUGIN_ABI;
    a->host = h;
    a->has_model = api_has_model;
    a->vocab_size = api_vocab_size;
    a->num_layers = api_num_layers;
    a->forward = api_forward;
    a->prompt_attention = api_prompt_attention;
    a->prompt = api_prompt;
    a->encode = api_encode;
    a->decode = api_decode;
    a->free_ids = api_free_ids;
    a->free_text = api_free_text;
    a->eos_id = api_eos_id;
    a->dataset_size = api_dataset_size;
    a->dataset_prompt = api_dataset_prompt;
    a->dataset_response = api_dataset_response;
    a->sample = api_sample;
    a->publish_table = api_publish_table;
    a->publish_series = api_publish_series;
    a->append_point = api_append_point;
    a->log = api_log;
    a->num_functions = 19;
    *out = h;
    return PK_OK;
}

/* Runs on the worker thread after every step (engine step hook). */
static void host_on_step(void *ctx, int step, int total_steps, int n_losses, const char *const *names,
                         const double *losses) {
    PluginHost *h = ctx;
    PkPluginStepInfo info = {step, total_steps, n_losses, names, losses};
    for (int i = 0; i < h->n_plugins; i++) {
        LoadedPlugin *p = &h->plugins[i];
        if (!p->desc->on_step) continue;
        char err[PK_PLUGIN_ERR_LEN] = "";
        h->current = p->desc->name;
        if (p->desc->on_step(&h->api, p->state, &info, err) != 0) {
            char line[700];
            snprintf(line, sizeof line, "plugin %s: on_step failed: %s", p->desc->name, err[0] ? err : "(no reason given)");
            engine_log_line(h->engine, line);
        }
        h->current = NULL;
    }
}

static void unload_at(PluginHost *h, int i) {
    LoadedPlugin *p = &h->plugins[i];
    if (p->desc->on_unload) p->desc->on_unload(p->state);
    dlclose(p->handle);
    memmove(&h->plugins[i], &h->plugins[i + 1], sizeof(LoadedPlugin) * (h->n_plugins - i - 1));
    h->n_plugins--;
}

void plugin_host_destroy(PluginHost *h) {
    if (!h) return;
    engine_set_step_hook(h->engine, NULL, NULL);
    engine_pause(h->engine, (char[PK_ERR_LEN]){0});
    while (h->n_plugins > 0) unload_at(h, h->n_plugins - 1);
    for (int i = 0; i < h->n_tables; i++) free_table(&h->tables[i]);
    for (int i = 0; i < h->n_series; i++) {
        free(h->series[i].x);
        free(h->series[i].y);
    }
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* A bare name is looked up as build/plugins/NAME.so, then next to the program. */
static void resolve_plugin_path(const char *name, char *out, size_t len) {
    if (strchr(name, '/') || access(name, F_OK) == 0) {
        snprintf(out, len, "%s", name);
        return;
    }
    snprintf(out, len, "build/plugins/%s.so", name);
    if (access(out, F_OK) == 0) return;
    char exe[900];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        snprintf(out, len, "%s/plugins/%s.so", exe, name);
        if (access(out, F_OK) == 0) return;
    }
    snprintf(out, len, "%s", name);
}

int plugin_host_load(PluginHost *h, const char *name, PkBuf *out, char *err) {
    char path[1024];
    resolve_plugin_path(name, path, sizeof path);
    if (access(path, R_OK) != 0) {
        if (strchr(name, '/')) return pk_errf(err, "plugin %s: no such file", name);
        return pk_errf(err, "plugin %s: no such file (also looked for build/plugins/%s.so)", name, name);
    }
    if (h->n_plugins >= HOST_MAX_PLUGINS) return pk_errf(err, "plugin %s: at most %d plugins at once", path, HOST_MAX_PLUGINS);
    dlerror();
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        return pk_errf(err, "plugin %s: not a loadable shared object (%s)", path, why ? why : "unknown reason");
    }
    PkPluginEntryFn entry;
    *(void **)&entry = dlsym(handle, PROMPTKD_PLUGIN_ENTRY);
    if (!entry) {
        dlclose(handle);
        return pk_errf(err, "plugin %s: no %s entry point: not a promptkd plugin", path, PROMPTKD_PLUGIN_ENTRY);
    }
    const PkPluginDescriptor *d = entry();
    const char *problem = NULL;
    char abi_msg[128];
    if (!d) problem = "its entry point returned no descriptor";
    else if (d->abi_version != PROMPTKD_PLUGIN_ABI) {
        snprintf(abi_msg, sizeof abi_msg, "it was built for plugin ABI %d, this promptkd speaks ABI %d", d->abi_version,
                 PROMPTKD_PLUGIN_ABI);
        problem = abi_msg;
    } else if (!d->name || !d->name[0]) problem = "its descriptor has no name";
    else if (!d->analyze) problem = "its descriptor lacks the required analyze callback";
    if (problem) {
        dlclose(handle);
        return pk_errf(err, "plugin %s: %s", path, problem);
    }
    for (int i = 0; i < h->n_plugins; i++)
        if (!strcmp(h->plugins[i].desc->name, d->name)) {
            dlclose(handle);
            return pk_errf(err, "plugin %s: a plugin named '%s' is already loaded (unload it first)", path, d->name);
        }
    /* plugins run against the state: pause while wiring one in */
    if (engine_pause(h->engine, err)) {
        dlclose(handle);
        return PK_FAIL;
    }
    LoadedPlugin p = {handle, d, NULL, ""};
    snprintf(p.path, sizeof p.path, "%s", path);
    if (d->on_load) {
        char perr[PK_PLUGIN_ERR_LEN] = "";
        h->current = d->name;
        int rc = d->on_load(&h->api, &p.state, perr);
        h->current = NULL;
        if (rc != 0) {
            dlclose(handle);
            return pk_errf(err, "plugin %s: on_load failed: %s", d->name, perr[0] ? perr : "(no reason given)");
        }
    }
    h->plugins[h->n_plugins++] = p;
    engine_set_step_hook(h->engine, host_on_step, h);
    pk_buf_printf(out, "loaded plugin %s: %s\n", d->name, d->description ? d->description : "");
    return PK_OK;
}

static int find_plugin(PluginHost *h, const char *name) {
    for (int i = 0; i < h->n_plugins; i++)
        if (!strcmp(h->plugins[i].desc->name, name)) return i;
    return -1;
}

int plugin_host_unload(PluginHost *h, const char *name, char *err) {
    int i = find_plugin(h, name);
    if (i < 0) return pk_errf(err, "plugin unload: no plugin named '%s' is loaded", name);
    if (engine_pause(h->engine, err)) return PK_FAIL;
    engine_set_step_hook(h->engine, NULL, NULL); /* no on_step can run while the list changes */
    unload_at(h, i);
    if (h->n_plugins > 0) engine_set_step_hook(h->engine, host_on_step, h);
    return PK_OK;
}

void plugin_host_list(PluginHost *h, PkBuf *out) {
    if (h->n_plugins == 0) pk_buf_printf(out, "no plugins loaded\n");
    for (int i = 0; i < h->n_plugins; i++)
        pk_buf_printf(out, "%-20s %s (%s)\n", h->plugins[i].desc->name,
                      h->plugins[i].desc->description ? h->plugins[i].desc->description : "", h->plugins[i].path);
}

int plugin_host_run(PluginHost *h, const char *name, int argc, const char *const *argv, PkBuf *out, char *err) {
    int i = find_plugin(h, name);
    if (i < 0) return pk_errf(err, "plugin run: no plugin named '%s' is loaded (plugin list)", name);
    if (engine_pause(h->engine, err)) return PK_FAIL;
    if (!engine_distill_state(h->engine)) return pk_errf(err, "plugin run: the run has not finished loading");
    LoadedPlugin *p = &h->plugins[i];
    char perr[PK_PLUGIN_ERR_LEN] = "";
    h->current = p->desc->name;
    int rc = p->desc->analyze(&h->api, p->state, argc, argv, perr);
    h->current = NULL;
    if (rc != 0) return pk_errf(err, "plugin %s: %s", name, perr[0] ? perr : "analysis failed");
    for (int t = 0;; t++) {
        char title[160];
        char *text = plugin_host_table_text(h, t, title, sizeof title);
        if (!text) break;
        if (!strncmp(title, name, strlen(name)) && title[strlen(name)] == '/') pk_buf_printf(out, "%s\n%s", title, text);
        free(text);
    }
    char names[64][64];
    int n = plugin_host_chart_names(h, names, 64);
    for (int c = 0; c < n; c++)
        if (!strncmp(names[c], name, strlen(name)) && names[c][strlen(name)] == '/') pk_buf_printf(out, "chart %s\n", names[c]);
    return PK_OK;
}

int plugin_host_chart_names(PluginHost *h, char names[][64], int max) {
    int n = 0;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->n_series; i++) {
        int seen = 0;
        for (int j = 0; j < n; j++)
            if (!strcmp(names[j], h->series[i].chart)) seen = 1;
        if (!seen && n < max) snprintf(names[n++], 64, "%s", h->series[i].chart);
    }
    pthread_mutex_unlock(&h->mu);
    return n;
}

int plugin_host_build_chart(PluginHost *h, const char *name, Chart *c, char *err) {
    pthread_mutex_lock(&h->mu);
    int found = 0;
    chart_init(c, name, "x", "value");
    for (int i = 0; i < h->n_series; i++)
        if (!strcmp(h->series[i].chart, name)) {
            found = 1;
            chart_add_series(c, h->series[i].series, h->series[i].x, h->series[i].y, h->series[i].n);
        }
    pthread_mutex_unlock(&h->mu);
    if (!found) {
        chart_free(c);
        return pk_errf(err, "no plugin chart named '%s'", name);
    }
    /* a plugin chart named ".../per_position" or similar reads better as bars when x are small integers */
    if (strstr(name, "position") || strstr(name, "layer")) c->kind = CHART_BARS;
    if (strstr(name, "layer")) snprintf(c->xlabel, sizeof c->xlabel, "layer");
    else if (strstr(name, "position")) snprintf(c->xlabel, sizeof c->xlabel, "position");
    else snprintf(c->xlabel, sizeof c->xlabel, "step");
    return PK_OK;
}

char *plugin_host_table_text(PluginHost *h, int i, char *title, size_t title_len) {
    pthread_mutex_lock(&h->mu);
    if (i < 0 || i >= h->n_tables) {
        pthread_mutex_unlock(&h->mu);
        return NULL;
    }
    HostTable *t = &h->tables[i];
    snprintf(title, title_len, "%s/%s", t->plugin, t->name);
    int widths[64] = {0};
    for (int r = 0; r <= t->n_rows; r++)
        for (int c = 0; c < t->n_cols; c++) {
            int w = (int)strlen(t->cells[r * t->n_cols + c]);
            if (w > 40) w = 40;
            if (w > widths[c]) widths[c] = w;
        }
    PkBuf b = {0};
    for (int r = 0; r <= t->n_rows; r++) {
        for (int c = 0; c < t->n_cols; c++)
            pk_buf_printf(&b, "%s%-*.*s", c ? "  " : "", widths[c], 40, t->cells[r * t->n_cols + c]);
        pk_buf_printf(&b, "\n");
    }
    pthread_mutex_unlock(&h->mu);
    if (!b.data) pk_buf_append(&b, "", 0);
    return b.data;
}

int plugin_host_export_json(PluginHost *h, const char *path, char *err) {
    cJSON *root = cJSON_CreateObject(), *tables = cJSON_AddArrayToObject(root, "tables"),
          *series = cJSON_AddArrayToObject(root, "series");
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->n_tables; i++) {
        HostTable *t = &h->tables[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "plugin", t->plugin);
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON *hdr = cJSON_AddArrayToObject(o, "columns"), *rows = cJSON_AddArrayToObject(o, "rows");
        for (int c = 0; c < t->n_cols; c++) cJSON_AddItemToArray(hdr, cJSON_CreateString(t->cells[c]));
        for (int r = 1; r <= t->n_rows; r++) {
            cJSON *row = cJSON_CreateArray();
            for (int c = 0; c < t->n_cols; c++) cJSON_AddItemToArray(row, cJSON_CreateString(t->cells[r * t->n_cols + c]));
            cJSON_AddItemToArray(rows, row);
        }
        cJSON_AddItemToArray(tables, o);
    }
    for (int i = 0; i < h->n_series; i++) {
        HostSeries *s = &h->series[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "chart", s->chart);
        cJSON_AddStringToObject(o, "series", s->series);
        cJSON_AddItemToObject(o, "x", cJSON_CreateDoubleArray(s->x ? s->x : (double[1]){0}, s->n));
        cJSON_AddItemToObject(o, "y", cJSON_CreateDoubleArray(s->y ? s->y : (double[1]){0}, s->n));
        cJSON_AddItemToArray(series, o);
    }
    pthread_mutex_unlock(&h->mu);
    int rc = pk_write_json_atomic(path, root, err);
    cJSON_Delete(root);
    return rc;
}
