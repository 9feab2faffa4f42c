/* The run folder: the series table, metrics.jsonl both ways, the history it holds. */
#include "run_dir.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- the series table */

static const RunSeriesInfo SERIES[] = {
    /* step lines: the losses of every method (distill.c), the optimizer, the throughput */
    {"student_loss", "student loss", "loss", 1, 1, NULL},
    {"prompt_loss", "prompt loss (reg + guide)", "loss", 1, 1, NULL},
    {"prompt_reg_loss", "prompt regulariser (1 - t/N) KL(T'||T)", "loss", 1, 1, NULL},
    {"prompt_guide_loss", "prompt guidance loss", "loss", 1, 1, NULL},
    {"kl_tprime_t", "KL(T'||T) per token", "loss", 1, 1, NULL},
    {"pg_loss", "policy-gradient loss", "loss", 1, 1, NULL},
    {"reg_loss", "MiniLLM regulariser", "loss", 1, 1, NULL},
    {"pt_loss", "pretraining loss", "loss", 1, 1, NULL},
    {"reward", "MiniLLM reward", "loss", 1, 1, NULL},
    {"on_policy", "batch sampled from the student (1) or ground truth (0)", "loss", 1, 1, NULL},
    {"lr", "student learning rate", "lr", 0, 0, NULL},
    {"prompt_lr", "prompt learning rate", "lr", 0, 0, NULL},
    {"grad_norm", "student gradient norm before clipping", "grad_norm", 1, 1, NULL},
    {"prompt_grad_norm", "prompt gradient norm before clipping", "grad_norm", 1, 1, NULL},
    {"tokens_per_s", "tokens per second", "throughput", 0, 1, NULL},
    /* events */
    {"dev_rougeL", "dev ROUGE-L of the student S", "rouge", 0, 0, "eval"},
    {"dev_rougeL_tprime", "dev ROUGE-L of the prompted teacher T'", "rouge", 0, 0, "eval"},
    {"exaccerr", "ExAccErr at the longest l (%)", "exposure", 0, 0, "exposure"},
    {"neighbour_sim_p0", "prompt vector 0: similarity to its nearest token", "neighbours", 0, 0, "neighbours"},
    {"neighbour_sim_p1", "prompt vector 1: similarity to its nearest token", "neighbours", 0, 0, "neighbours"},
    {"neighbour_sim_p2", "prompt vector 2: similarity to its nearest token", "neighbours", 0, 0, "neighbours"},
    {"neighbour_sim_p3", "prompt vector 3: similarity to its nearest token", "neighbours", 0, 0, "neighbours"},
    {"neighbour_sim_p4", "prompt vector 4: similarity to its nearest token", "neighbours", 0, 0, "neighbours"},
    {"neighbour_sim_p5", "prompt vector 5: similarity to its nearest token", "neighbours", 0, 0, "neighbours"},
    {"neighbour_sim_p6", "prompt vector 6: similarity to its nearest token", "neighbours", 0, 0, "neighbours"},
    {"neighbour_sim_p7", "prompt vector 7: similarity to its nearest token", "neighbours", 0, 0, "neighbours"},
};
#define N_SERIES ((int)(sizeof SERIES / sizeof *SERIES))

const RunSeriesInfo *run_series_info(int *n) {
    if (n) *n = N_SERIES;
    return SERIES;
}

const RunSeriesInfo *run_series_find(const char *key) {
    for (int i = 0; key && i < N_SERIES; i++)
        if (!strcmp(SERIES[i].key, key)) return &SERIES[i];
    return NULL;
}

/* ---------------------------------------------------------------- the history */

void run_history_init(RunHistory *h) {
    memset(h, 0, sizeof *h);
    h->last_eval_step = -1;
    h->finished_step = -1;
    h->generation.step = -1;
    h->generation.dev_index = -1;
    h->generation.rougeL_prompted_teacher = h->generation.rougeL_teacher = h->generation.rougeL_student = -1;
}

static void neighbours_free(RunNeighbours *nb) {
    for (int i = 0; nb->tokens && i < nb->P * nb->k; i++) free(nb->tokens[i]);
    free(nb->tokens), free(nb->sims), free(nb->drift);
    memset(nb, 0, sizeof *nb);
}

static void generation_free_strings(RunGeneration *g) {
    free(g->prompt_display), free(g->instruction), free(g->context), free(g->reference);
    free(g->prompted_teacher), free(g->teacher), free(g->student);
}

void run_history_free(RunHistory *h) {
    if (!h) return;
    for (int i = 0; i < h->n_curves; i++) free(h->curves[i].x), free(h->curves[i].y), free(h->curves[i].t);
    for (int i = 0; i < h->n_exposure; i++) free(h->exposure[i].exaccerr);
    neighbours_free(&h->neighbours);
    generation_free_strings(&h->generation);
    run_history_init(h);
}

const RunCurve *run_history_find(const RunHistory *h, const char *key) {
    for (int i = 0; i < h->n_curves; i++)
        if (!strcmp(h->curves[i].key, key)) return &h->curves[i];
    return NULL;
}

void run_history_push(RunHistory *h, const char *key, double x, double y, double t) {
    RunCurve *c = (RunCurve *)run_history_find(h, key);
    if (!c) {
        if (h->n_curves == RUN_MAX_SERIES) return;
        c = &h->curves[h->n_curves++];
        memset(c, 0, sizeof *c);
        snprintf(c->key, sizeof c->key, "%s", key);
    }
    if (c->n == c->cap) {
        int nc = c->cap ? 2 * c->cap : 256;
        double *nx = realloc(c->x, (size_t)nc * sizeof *nx);
        if (!nx) return;
        c->x = nx;
        double *ny = realloc(c->y, (size_t)nc * sizeof *ny);
        if (!ny) return;
        c->y = ny;
        double *nt = realloc(c->t, (size_t)nc * sizeof *nt);
        if (!nt) return;
        c->t = nt;
        c->cap = nc;
    }
    c->x[c->n] = x;
    c->y[c->n] = y;
    c->t[c->n] = t;
    c->n++;
}

int run_history_add_exposure(RunHistory *h, int step, const double *curve, int n) {
    if (n <= 0) return PK_OK;
    double *copy = malloc((size_t)n * sizeof *copy);
    if (!copy) return PK_FAIL;
    memcpy(copy, curve, (size_t)n * sizeof *copy);
    if (h->n_exposure == RUN_MAX_EXPOSURE) {
        free(h->exposure[0].exaccerr);
        memmove(h->exposure, h->exposure + 1, (RUN_MAX_EXPOSURE - 1) * sizeof *h->exposure);
        h->n_exposure--;
    }
    h->exposure[h->n_exposure].step = step;
    h->exposure[h->n_exposure].n = n;
    h->exposure[h->n_exposure].exaccerr = copy;
    h->n_exposure++;
    return PK_OK;
}

/* Returns 1 when this is a new record (another step, or another k), 0 when the same step's
 * neighbours were only refreshed, PK_FAIL when out of memory. The neighbour_sim_p series get
 * one point per step. */
int run_history_set_neighbours(RunHistory *h, int step, int P, int k, const char *const *tokens,
                               const float *sims, const float *drift, double t) {
    if (P <= 0 || k <= 0) return 0;
    RunNeighbours nb = {step, P, k, calloc((size_t)P * k, sizeof(char *)), malloc((size_t)P * k * sizeof(float)),
                        malloc((size_t)P * sizeof(float))};
    int ok = nb.tokens && nb.sims && nb.drift;
    for (int i = 0; ok && i < P * k; i++)
        if (!(nb.tokens[i] = strdup(tokens[i] ? tokens[i] : ""))) ok = 0;
    if (!ok) {
        neighbours_free(&nb);
        return PK_FAIL;
    }
    memcpy(nb.sims, sims, (size_t)P * k * sizeof(float));
    memcpy(nb.drift, drift, (size_t)P * sizeof(float));
    int new_step = h->neighbours.P == 0 || h->neighbours.step != step;
    int new_record = new_step || h->neighbours.k != k || h->neighbours.P != P;
    neighbours_free(&h->neighbours);
    h->neighbours = nb;
    if (new_step)
        for (int p = 0; p < P && p < RUN_NEIGHBOUR_SERIES; p++) {
            char key[32];
            snprintf(key, sizeof key, "neighbour_sim_p%d", p);
            run_history_push(h, key, step, sims[(size_t)p * k], t);
        }
    return new_record;
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

int run_history_set_generation(RunHistory *h, const RunGeneration *g) {
    RunGeneration n = *g;
    n.prompt_display = dup_or_empty(g->prompt_display);
    n.instruction = dup_or_empty(g->instruction);
    n.context = dup_or_empty(g->context);
    n.reference = dup_or_empty(g->reference);
    n.prompted_teacher = dup_or_empty(g->prompted_teacher);
    n.teacher = dup_or_empty(g->teacher);
    n.student = dup_or_empty(g->student);
    if (!n.prompt_display || !n.instruction || !n.context || !n.reference || !n.prompted_teacher || !n.teacher ||
        !n.student) {
        generation_free_strings(&n);
        return PK_FAIL;
    }
    generation_free_strings(&h->generation);
    h->generation = n;
    return PK_OK;
}

/* ---------------------------------------------------------------- reading metrics.jsonl */

static double num_or_nan(const cJSON *o) { return cJSON_IsNumber(o) ? o->valuedouble : NAN; }

static const char *str_or_empty(const cJSON *o, const char *key) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(s) && s->valuestring ? s->valuestring : "";
}

/* One event line that carries more than series points: ExAccErr curves, neighbours, generations. */
static int read_event(RunHistory *h, const cJSON *o, const char *event, int step, const char *where, char *err) {
    if (!strcmp(event, "exposure")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "exaccerr");
        int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
        if (n <= 0) return pk_errf(err, "%s: an exposure event without its \"exaccerr\" array", where);
        double *c = malloc((size_t)n * sizeof *c);
        if (!c) return pk_errf(err, "%s: out of memory", where);
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) c[i++] = num_or_nan(it);
        int rc = run_history_add_exposure(h, step, c, n);
        if (rc == PK_OK) run_history_push(h, "exaccerr", step, c[n - 1], h->elapsed_s);
        free(c);
        return rc == PK_OK ? PK_OK : pk_errf(err, "%s: out of memory", where);
    }
    if (!strcmp(event, "neighbours")) {
        const cJSON *jk = cJSON_GetObjectItemCaseSensitive(o, "k");
        const cJSON *jt = cJSON_GetObjectItemCaseSensitive(o, "tokens");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(o, "sims");
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(o, "drift");
        int k = cJSON_IsNumber(jk) ? (int)jk->valuedouble : 0;
        int nt = cJSON_IsArray(jt) ? cJSON_GetArraySize(jt) : -1, ns = cJSON_IsArray(js) ? cJSON_GetArraySize(js) : -1;
        int P = cJSON_IsArray(jd) ? cJSON_GetArraySize(jd) : -1;
        if (k <= 0 || P <= 0 || nt != P * k || ns != P * k)
            return pk_errf(err, "%s: a neighbours event needs \"k\" >= 1, \"drift\" [P] and \"tokens\", \"sims\" "
                                "[P * k]", where);
        const char **toks = calloc((size_t)P * k, sizeof *toks);
        float *sims = malloc((size_t)P * k * sizeof *sims), *drift = malloc((size_t)P * sizeof *drift);
        int rc = toks && sims && drift ? PK_OK : pk_errf(err, "%s: out of memory", where);
        int i = 0;
        const cJSON *it;
        if (rc == PK_OK) {
            cJSON_ArrayForEach(it, jt) toks[i++] = cJSON_IsString(it) && it->valuestring ? it->valuestring : "";
            i = 0;
            cJSON_ArrayForEach(it, js) sims[i++] = (float)num_or_nan(it);
            i = 0;
            cJSON_ArrayForEach(it, jd) drift[i++] = (float)num_or_nan(it);
            if (run_history_set_neighbours(h, step, P, k, toks, sims, drift, h->elapsed_s) < 0)
                rc = pk_errf(err, "%s: out of memory", where);
        }
        free(toks), free(sims), free(drift);
        return rc;
    }
    if (!strcmp(event, "generation")) {
        const cJSON *di = cJSON_GetObjectItemCaseSensitive(o, "dev_index");
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "rougeL");
        RunGeneration g = {
            .step = step,
            .dev_index = cJSON_IsNumber(di) ? (int)di->valuedouble : -1,
            .prompt_display = (char *)str_or_empty(o, "prompt_display"),
            .instruction = (char *)str_or_empty(o, "instruction"),
            .context = (char *)str_or_empty(o, "context"),
            .reference = (char *)str_or_empty(o, "reference"),
            .prompted_teacher = (char *)str_or_empty(o, "prompted_teacher"),
            .teacher = (char *)str_or_empty(o, "teacher"),
            .student = (char *)str_or_empty(o, "student"),
            .rougeL_prompted_teacher = -1,
            .rougeL_teacher = -1,
            .rougeL_student = -1,
        };
        const cJSON *v;
        if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(r, "prompted_teacher")))
            g.rougeL_prompted_teacher = v->valuedouble;
        if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(r, "teacher"))) g.rougeL_teacher = v->valuedouble;
        if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(r, "student"))) g.rougeL_student = v->valuedouble;
        return run_history_set_generation(h, &g) == PK_OK ? PK_OK : pk_errf(err, "%s: out of memory", where);
    }
    if (!strcmp(event, "finished")) h->finished_step = step;
    return PK_OK;
}

/* One line, parsed: the series points the table says it carries, and the event's records. */
static int read_line(RunHistory *h, const cJSON *o, int step, const char *where, char *err) {
    const cJSON *jevent = cJSON_GetObjectItemCaseSensitive(o, "event");
    const char *event = cJSON_IsString(jevent) ? jevent->valuestring : NULL;
    if (jevent && !event) return pk_errf(err, "%s: \"event\" must be a string", where);
    if (!event) {
        const cJSON *el = cJSON_GetObjectItemCaseSensitive(o, "elapsed_s");
        if (cJSON_IsNumber(el)) h->elapsed_s = el->valuedouble;
        const cJSON *v;
        if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "tokens_per_s"))) h->tokens_per_s = v->valuedouble;
        if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "gflops"))) h->gflops = v->valuedouble;
        if (step > h->last_step) h->last_step = step;
    }
    /* the points of the table's series this line carries (events: at the last step line's time) */
    for (int i = 0; i < N_SERIES; i++) {
        const RunSeriesInfo *si = &SERIES[i];
        if (event ? !si->event || strcmp(si->event, event) || !strcmp(event, "exposure") ||
                        !strcmp(event, "neighbours")
                  : si->event != NULL)
            continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, si->key);
        if (cJSON_IsNumber(v)) run_history_push(h, si->key, step, v->valuedouble, h->elapsed_s);
        else if (cJSON_IsNull(v)) run_history_push(h, si->key, step, NAN, h->elapsed_s); /* non-finite */
    }
    if (event && !strcmp(event, "eval") && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "dev_rougeL")))
        h->last_eval_step = step;
    return event ? read_event(h, o, event, step, where, err) : PK_OK;
}

int run_history_read(RunHistory *h, const char *path, int upto_step, PkBuf *kept, char *err) {
    char *text = NULL;
    size_t len = 0;
    if (pk_read_file(path, &text, &len, err) != PK_OK) return PK_FAIL;
    int rc = PK_OK, line_no = 0;
    char *p = text;
    while (rc == PK_OK && p < text + len) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        line_no++;
        char *line = p;
        p += n + 1;
        size_t blank = 0;
        while (blank < n && (line[blank] == ' ' || line[blank] == '\t' || line[blank] == '\r')) blank++;
        if (blank == n) continue;
        char where[CONFIG_PATH_LEN + 96];
        snprintf(where, sizeof where, "%s:%d", path, line_no);
        cJSON *o = cJSON_ParseWithLength(line, n);
        const cJSON *jstep = o ? cJSON_GetObjectItemCaseSensitive(o, "step") : NULL;
        if (!o || !cJSON_IsObject(o) || !cJSON_IsNumber(jstep) || jstep->valuedouble < 0) {
            if (!nl) { /* the last line, cut short by a crash mid-write: not part of the log */
                cJSON_Delete(o);
                break;
            }
            rc = pk_errf(err, "%s: %s", where,
                         !o || !cJSON_IsObject(o) ? "malformed line (expected one JSON object per line)"
                                                  : "expected a number >= 0 for \"step\"");
            cJSON_Delete(o);
            break;
        }
        int step = (int)jstep->valuedouble;
        if (upto_step < 0 || step <= upto_step) {
            rc = read_line(h, o, step, where, err);
            if (rc == PK_OK && kept && (pk_buf_append(kept, line, n) != PK_OK || pk_buf_append(kept, "\n", 1) != PK_OK))
                rc = pk_errf(err, "%s: out of memory", path);
        }
        cJSON_Delete(o);
    }
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- writing lines */

/* Text for a JSON string: invalid UTF-8 becomes U+FFFD, so every line reads back as UTF-8.
 * Returns a malloc'ed copy, or NULL when out of memory. */
static char *utf8_clean(const char *s) {
    PkBuf b = {0};
    size_t len = strlen(s);
    for (;;) {
        long bad = pk_utf8_invalid_at(s, len);
        if (bad < 0) {
            pk_buf_append(&b, s, len);
            break;
        }
        pk_buf_append(&b, s, (size_t)bad);
        pk_buf_append(&b, "\xef\xbf\xbd", 3);
        s += bad + 1;
        len -= (size_t)bad + 1;
    }
    if (pk_buf_append(&b, "", 1) != PK_OK) {
        pk_buf_free(&b);
        return NULL;
    }
    return b.data;
}

static void add_string(cJSON *o, const char *key, const char *s) {
    char *clean = utf8_clean(s ? s : "");
    cJSON_AddStringToObject(o, key, clean ? clean : "");
    free(clean);
}

/* A JSON number that reads back as exactly v: the shortest of %.15g, %.16g, %.17g that does
 * (cJSON's own printing only rounds to within an epsilon). Non-finite values become null (JSON
 * has no NaN). */
static cJSON *number(double v) {
    if (!isfinite(v)) return cJSON_CreateNull();
    char text[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, v);
        if (strtod(text, NULL) == v) break;
    }
    return cJSON_CreateRaw(text);
}

static void add_number(cJSON *o, const char *key, double v) { cJSON_AddItemToObject(o, key, number(v)); }

static cJSON *event_object(const char *name, int step) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "event", name);
    cJSON_AddNumberToObject(o, "step", step);
    return o;
}

cJSON *run_line_step(const RunStepLine *s) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "step", s->step);
    int done[24] = {0};
    for (int i = 0; i < N_SERIES; i++) {
        if (SERIES[i].event) continue;
        for (int j = 0; j < s->n && j < 24; j++)
            if (!done[j] && !strcmp(s->keys[j], SERIES[i].key)) {
                add_number(o, s->keys[j], s->values[j]);
                done[j] = 1;
            }
    }
    for (int j = 0; j < s->n && j < 24; j++) /* a series the table does not know yet: still logged */
        if (!done[j] && strcmp(s->keys[j], "tokens_per_s")) add_number(o, s->keys[j], s->values[j]);
    cJSON_AddNumberToObject(o, "response_tokens", s->response_tokens);
    add_number(o, "tokens", s->tokens);
    if (!cJSON_GetObjectItemCaseSensitive(o, "tokens_per_s")) add_number(o, "tokens_per_s", s->tokens_per_s);
    add_number(o, "gflops", s->gflops);
    add_number(o, "step_s", s->step_s);
    add_number(o, "elapsed_s", s->elapsed_s);
    return o;
}

cJSON *run_line_event(const char *name, int step) { return event_object(name, step); }

cJSON *run_line_eval(int step, const char *split, double rouge, double rouge_tprime, int records, int best,
                     double seconds) {
    cJSON *o = event_object("eval", step);
    if (!o) return NULL;
    int dev = !strcmp(split, "valid");
    add_string(o, "split", split);
    add_number(o, dev ? "dev_rougeL" : "rougeL", rouge);
    if (dev && !isnan(rouge_tprime)) add_number(o, "dev_rougeL_tprime", rouge_tprime);
    cJSON_AddNumberToObject(o, "records", records);
    cJSON_AddBoolToObject(o, "best", best);
    add_number(o, "seconds", seconds);
    return o;
}

cJSON *run_line_exposure(int step, const char *oracle, const double *curve, int n) {
    cJSON *o = event_object("exposure", step);
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "oracle", oracle);
    cJSON_AddNumberToObject(o, "len", n);
    cJSON *arr = cJSON_AddArrayToObject(o, "exaccerr");
    for (int i = 0; arr && i < n; i++)
        cJSON_AddItemToArray(arr, number(curve[i]));
    return o;
}

/* A float as a JSON number with the 9 significant digits that read back the same float (not
 * the 17 of its double); null when not finite. */
static cJSON *float_number(float v) {
    if (!isfinite(v)) return cJSON_CreateNull();
    char text[32];
    snprintf(text, sizeof text, "%.9g", v);
    return cJSON_CreateRaw(text);
}

cJSON *run_line_neighbours(const RunNeighbours *nb) {
    cJSON *o = event_object("neighbours", nb->step);
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "k", nb->k);
    cJSON *toks = cJSON_AddArrayToObject(o, "tokens"), *sims = cJSON_AddArrayToObject(o, "sims");
    cJSON *drift = cJSON_AddArrayToObject(o, "drift");
    for (int i = 0; toks && sims && i < nb->P * nb->k; i++) {
        char *clean = utf8_clean(nb->tokens[i]);
        cJSON_AddItemToArray(toks, cJSON_CreateString(clean ? clean : ""));
        free(clean);
        cJSON_AddItemToArray(sims, float_number(nb->sims[i]));
    }
    for (int p = 0; drift && p < nb->P; p++) cJSON_AddItemToArray(drift, float_number(nb->drift[p]));
    return o;
}

cJSON *run_line_generation(const RunGeneration *g) {
    cJSON *o = event_object("generation", g->step);
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "dev_index", g->dev_index);
    add_string(o, "prompt_display", g->prompt_display);
    add_string(o, "instruction", g->instruction);
    add_string(o, "context", g->context);
    add_string(o, "reference", g->reference);
    add_string(o, "prompted_teacher", g->prompted_teacher);
    add_string(o, "teacher", g->teacher);
    add_string(o, "student", g->student);
    cJSON *r = cJSON_AddObjectToObject(o, "rougeL");
    if (r) {
        add_number(r, "prompted_teacher", g->rougeL_prompted_teacher);
        add_number(r, "teacher", g->rougeL_teacher);
        add_number(r, "student", g->rougeL_student);
    }
    return o;
}

cJSON *run_line_checkpoint(int step, const char *path) {
    cJSON *o = event_object("checkpoint", step);
    if (o) add_string(o, "path", path);
    return o;
}

cJSON *run_line_nonfinite(int step, int last_checkpoint, const char *what) {
    cJSON *o = event_object("nonfinite", step);
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "last_checkpoint", last_checkpoint);
    if (what) add_string(o, "in", what);
    return o;
}

cJSON *run_line_resume_from(int step, int checkpoint_step) {
    cJSON *o = event_object("resume_from", step);
    if (!o) return NULL;
    char name[32];
    snprintf(name, sizeof name, "step-%d", checkpoint_step);
    cJSON_AddStringToObject(o, "checkpoint", name);
    return o;
}

cJSON *run_line_eval_record(int index, const char *instruction, const char *prediction, const char *reference,
                            double rouge) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "index", index);
    add_string(o, "instruction", instruction);
    add_string(o, "prediction", prediction);
    add_string(o, "reference", reference);
    add_number(o, "rougeL", rouge);
    return o;
}

/* A value given as text: a JSON number when it reads as one, else a string. */
static void add_value_text(cJSON *o, const char *key, const char *s) {
    char *end = NULL;
    double v = strtod(s, &end);
    if (*s && end && !*end && isfinite(v) && s[0] != ' ') add_number(o, key, v);
    else add_string(o, key, s);
}

cJSON *run_line_set(int step, const char *key, const char *old_value, const char *new_value) {
    cJSON *o = event_object("set", step);
    if (!o) return NULL;
    add_string(o, "key", key);
    add_value_text(o, "old", old_value);
    add_value_text(o, "new", new_value);
    return o;
}

/* ---------------------------------------------------------------- the folder */

int run_dir_file(const RunDir *rd, const char *name, char *out, size_t len, char *err) {
    return pk_path_join(out, len, rd->path, name, err);
}

int run_dir_read(const char *run_path, RunConfig *cfg, RunHistory *h, char *err) {
    char path[CONFIG_PATH_LEN + 64];
    if (!pk_is_dir(run_path)) return pk_errf(err, "%s: not a run folder (no such folder)", run_path);
    if (pk_path_join(path, sizeof path, run_path, "config.json", err) != PK_OK) return PK_FAIL;
    if (!pk_file_exists(path)) return pk_errf(err, "%s: not a run folder (config.json is missing)", run_path);
    config_defaults(cfg);
    if (config_load_json(cfg, path, err) != PK_OK) return PK_FAIL;
    if (pk_path_join(path, sizeof path, run_path, "metrics.jsonl", err) != PK_OK) return PK_FAIL;
    if (!pk_file_exists(path)) return pk_errf(err, "%s: not a run folder (metrics.jsonl is missing)", run_path);
    return run_history_read(h, path, -1, NULL, err);
}

/* The step-N folders of RUN/checkpoints, newest first (at most cap); returns how many. */
int run_dir_checkpoint_steps(const char *run_path, int *steps, int cap) {
    char dir[CONFIG_PATH_LEN + 64];
    if (snprintf(dir, sizeof dir, "%s/checkpoints", run_path) >= (int)sizeof dir) return 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < cap) {
        int st;
        char tail;
        if (sscanf(de->d_name, "step-%d%c", &st, &tail) == 1 && st >= 0) steps[n++] = st;
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && steps[j] > steps[j - 1]; j--) {
            int t = steps[j];
            steps[j] = steps[j - 1];
            steps[j - 1] = t;
        }
    return n;
}

/* Reads RUN/checkpoints/latest, one line "step-N" naming the checkpoint folder a resume
 * loads. Fills *step, or says exactly what is wrong: missing, unreadable, empty, not
 * "step-N" (the text is quoted, escaped), or naming a folder that is not there. */
int run_dir_read_latest(const char *run_path, int *step, char *err) {
    char path[CONFIG_PATH_LEN + 64];
    *step = -1;
    if (pk_path_join(path, sizeof path, run_path, "checkpoints/latest", err) != PK_OK) return PK_FAIL;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            return pk_errf(err, "%s: no checkpoint to resume from (checkpoints/latest is missing)", run_path);
        return pk_errf(err, "%s: cannot read it: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) return pk_errf(err, "%s: not a regular file (expected one line 'step-N')", path);
    char *text = NULL;
    size_t len = 0;
    if (pk_read_file(path, &text, &len, err) != PK_OK) return PK_FAIL;
    /* "step-N", optionally followed by a newline (and trailing blanks) */
    int n = -1, used = 0;
    int ok = len > 0 && sscanf(text, "step-%d%n", &n, &used) == 1 && n >= 0 && (size_t)used <= len &&
             !(text[5] == '+' || text[5] == '-' || text[5] == ' ');
    for (size_t i = ok ? (size_t)used : len; ok && i < len; i++)
        if (text[i] != '\n' && text[i] != ' ' && text[i] != '\t' && text[i] != '\r') ok = 0;
    if (!ok) {
        char shown[64];
        size_t o = 0;
        for (size_t i = 0; i < len && o + 6 < sizeof shown; i++) {
            unsigned char c = (unsigned char)text[i];
            if (c == '\n') o += (size_t)snprintf(shown + o, sizeof shown - o, "\\n");
            else if (c < 0x20 || c >= 0x7f) o += (size_t)snprintf(shown + o, sizeof shown - o, "\\x%02x", c);
            else shown[o++] = (char)c;
        }
        shown[o] = 0;
        free(text);
        if (len == 0) return pk_errf(err, "%s is empty; expected one line 'step-N' naming a checkpoint folder", path);
        return pk_errf(err, "%s holds '%s%s' (%zu bytes); expected one line 'step-N' naming a checkpoint folder", path,
                       shown, o + 6 >= sizeof shown ? "..." : "", len);
    }
    free(text);
    char dir[CONFIG_PATH_LEN + 96], have[400];
    snprintf(dir, sizeof dir, "%s/checkpoints/step-%d", run_path, n);
    if (!pk_is_dir(dir)) {
        int steps[64], ns = run_dir_checkpoint_steps(run_path, steps, 64);
        size_t hl = 0;
        have[0] = 0;
        for (int i = 0; i < ns && hl + 24 < sizeof have; i++)
            hl += (size_t)snprintf(have + hl, sizeof have - hl, "%sstep-%d", i ? ", " : "", steps[i]);
        return pk_errf(err, "%s names step-%d, but %s does not exist (%s%s)", path, n, dir,
                       have[0] ? "checkpoints there: " : "no step-N checkpoint folders there", have);
    }
    *step = n;
    return PK_OK;
}
