/* The run folder: the series table, metrics.jsonl both ways, the history it holds. */
#include "run_dir.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dist.h"

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
    {"reward", "MiniLLM reward", "policy", 0, 1, NULL},
    {"on_policy", "batch sampled from the student (1) or ground truth (0)", "policy", 0, 1, NULL},
    {"lr", "student learning rate", "lr", 0, 0, NULL},
    {"prompt_lr", "prompt learning rate", "lr", 0, 0, NULL},
    {"grad_norm", "student gradient norm before clipping", "grad_norm", 1, 1, NULL},
    {"prompt_grad_norm", "prompt gradient norm before clipping", "grad_norm", 1, 1, NULL},
    {"tokens_per_s", "tokens per second", "throughput", 0, 1, NULL},
    /* events */
    {"dev_rougeL", "dev ROUGE-L of the student S", "rouge", 0, 0, "eval"},
    {"dev_rougeL_tprime", "dev ROUGE-L of the prompted teacher T'", "rouge", 0, 0, "eval"},
    {"exaccerr", "ExAccErr at the longest l (%)", "exaccerr", 0, 0, "exposure"},
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
        if (!done[j]) add_number(o, s->keys[j], s->values[j]);
    cJSON_AddNumberToObject(o, "response_tokens", s->response_tokens);
    add_number(o, "tokens", s->tokens);
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

/* ---------------------------------------------------------------- making or reopening the folder */

void run_dir_init(RunDir *rd) {
    memset(rd, 0, sizeof *rd);
    rd->metrics_fd = -1;
}

/* The first key config.c fixes on resume whose value differs between the two configs: its
 * name and both values (now = cfg's, then = saved's); NULL when none differs. */
static const char *first_fixed_key_change(const RunConfig *cfg, const RunConfig *saved, char *now, char *then,
                                          size_t len, char *err) {
    for (const char *const *k = config_keys(); *k; k++) {
        if (!config_key_fixed_on_resume(*k)) continue;
        config_get(cfg, *k, now, len, err);
        config_get(saved, *k, then, len, err);
        if (strcmp(now, then)) return *k;
    }
    return NULL;
}

int run_dir_check_fixed_keys(const RunConfig *cfg, const char *run_path, int step, char *err) {
    char path[CONFIG_PATH_LEN + 64], ck[CONFIG_PATH_LEN + 96];
    if (pk_path_join(path, sizeof path, run_path, "config.json", err) != PK_OK) return PK_FAIL;
    if (snprintf(ck, sizeof ck, "%s/checkpoints/step-%d/run_config.json", run_path, step) >= (int)sizeof ck)
        return pk_errf(err, "%s: path too long", run_path);
    RunConfig saved;
    char a[CONFIG_PATH_LEN + 64], b[CONFIG_PATH_LEN + 64];
    const char *key;
    if (pk_file_exists(path)) {
        config_defaults(&saved);
        if (config_load_json(&saved, path, err) != PK_OK) return PK_FAIL;
        if ((key = first_fixed_key_change(cfg, &saved, a, b, sizeof a, err)) != NULL)
            return pk_errf(err,
                           "%s: key '%s' is '%s' in the run but '%s' here; only live keys may change on resume",
                           path, key, b, a);
    }
    if (!pk_file_exists(ck)) return PK_OK; /* a checkpoint written before run_config.json existed */
    config_defaults(&saved);
    if (config_load_json(&saved, ck, err) != PK_OK) return PK_FAIL;
    if ((key = first_fixed_key_change(cfg, &saved, a, b, sizeof a, err)) != NULL)
        return pk_errf(err,
                       "%s: key '%s' is '%s', but checkpoint step-%d was made with '%s' (%s); the key is fixed "
                       "for the run, only live keys may change on resume (put it back, or start a new run)",
                       path, key, a, step, b, ck);
    return PK_OK;
}

/* run_dir/name, or name-2, name-3, ... when that folder already holds a run (its config.json or
 * metrics.jsonl); cfg->name gets the name picked. */
static int pick_run_path(RunConfig *cfg, char *out, size_t len, char *err) {
    char base[64];
    snprintf(base, sizeof base, "%s", cfg->name);
    for (int i = 1; i < 10000; i++) {
        char name[80], probe[CONFIG_PATH_LEN + 64], probe2[CONFIG_PATH_LEN + 64];
        if (i == 1)
            snprintf(name, sizeof name, "%s", base);
        else
            snprintf(name, sizeof name, "%.50s-%d", base, i);
        if (pk_path_join(out, len, cfg->run_dir, name, err) != PK_OK) return PK_FAIL;
        snprintf(probe, sizeof probe, "%s/metrics.jsonl", out);
        snprintf(probe2, sizeof probe2, "%s/config.json", out);
        if (!pk_file_exists(probe) && !pk_file_exists(probe2)) {
            snprintf(cfg->name, sizeof cfg->name, "%.63s", name);
            return PK_OK;
        }
    }
    return pk_errf(err, "%s: too many runs named '%s'", cfg->run_dir, base);
}

/* The folder a resume continues: resume_dir resolved like run_dir, trailing slashes dropped; it
 * must hold a checkpoint to resume from and keep the fixed keys. cfg's run_dir and name follow it. */
static int open_for_resume(RunDir *rd, RunConfig *cfg, const char *resume_dir, int *step, char *err) {
    char resolved[CONFIG_PATH_LEN];
    RunConfig probe = *cfg;
    if (config_set(&probe, "run_dir", resume_dir, err) != PK_OK) return PK_FAIL;
    snprintf(resolved, sizeof resolved, "%s", probe.run_dir);
    size_t n = strlen(resolved);
    while (n > 1 && resolved[n - 1] == '/') resolved[--n] = 0;
    if (!pk_is_dir(resolved)) return pk_errf(err, "%s: not a run folder", resume_dir);
    if (run_dir_read_latest(resolved, step, err) != PK_OK) return PK_FAIL;
    if (run_dir_check_fixed_keys(cfg, resolved, *step, err) != PK_OK) return PK_FAIL;
    char *slash = strrchr(resolved, '/');
    snprintf(cfg->name, sizeof cfg->name, "%.63s", slash ? slash + 1 : resolved);
    if (slash && slash != resolved) {
        *slash = 0;
        snprintf(cfg->run_dir, sizeof cfg->run_dir, "%s", resolved);
        *slash = '/';
    } else if (slash) {
        snprintf(cfg->run_dir, sizeof cfg->run_dir, "/");
    }
    snprintf(rd->path, sizeof rd->path, "%s", resolved);
    return PK_OK;
}

static const char *const RUN_SUBFOLDERS[] = {"checkpoints", "plots", "eval"};
#define N_SUBFOLDERS ((int)(sizeof RUN_SUBFOLDERS / sizeof *RUN_SUBFOLDERS))

int run_dir_prepare(RunDir *rd, RunConfig *cfg, const char *resume_dir, int *resume_step, char *err) {
    run_dir_init(rd);
    *resume_step = -1;
    int resume = resume_dir && *resume_dir;
    if (resume) {
        if (open_for_resume(rd, cfg, resume_dir, resume_step, err) != PK_OK) return PK_FAIL;
    } else {
        if (pick_run_path(cfg, rd->path, sizeof rd->path, err) != PK_OK) return PK_FAIL;
        rd->created = 1;
    }
    if (pk_dist_rank() != 0) { /* data-parallel: rank 0 alone makes and writes the run folder */
        rd->created = 0;
        return PK_OK;
    }
    char path[CONFIG_PATH_LEN + 64];
    for (int i = 0; i < N_SUBFOLDERS; i++)
        if (run_dir_file(rd, RUN_SUBFOLDERS[i], path, sizeof path, err) != PK_OK || pk_mkdirs(path, err) != PK_OK)
            goto fail;
    /* the resolved config: a resume writes it anew (run_dir and name follow the folder, live keys may differ) */
    if (run_dir_file(rd, "config.json", path, sizeof path, err) != PK_OK || config_save_json(cfg, path, err) != PK_OK)
        goto fail;
    if (!resume && (run_dir_file(rd, "metrics.jsonl", path, sizeof path, err) != PK_OK ||
                    pk_write_file_atomic(path, "", 0, err) != PK_OK))
        goto fail;
    if (run_dir_file(rd, "metrics.jsonl", rd->metrics_path, sizeof rd->metrics_path, err) != PK_OK) goto fail;
    return PK_OK;
fail:
    run_dir_remove_created(rd); /* no orphan folder when a new run cannot start */
    return PK_FAIL;
}

static int dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return errno == ENOENT;
    struct dirent *de;
    int empty = 1;
    while (empty && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

int run_dir_holds_records(const RunDir *rd) {
    char path[CONFIG_PATH_LEN + 64], err[PK_ERR_LEN];
    for (int i = 0; i < N_SUBFOLDERS; i++)
        if (run_dir_file(rd, RUN_SUBFOLDERS[i], path, sizeof path, err) != PK_OK || !dir_is_empty(path)) return 1;
    if (run_dir_file(rd, "best", path, sizeof path, err) != PK_OK || pk_file_exists(path) || pk_is_dir(path)) return 1;
    if (run_dir_file(rd, "best.json", path, sizeof path, err) != PK_OK || pk_file_exists(path)) return 1;
    return 0;
}

int run_dir_remove_created(RunDir *rd) {
    if (!rd->created) return 0;
    rd->created = 0; /* once */
    static const char *const files[] = {"config.json", "metrics.jsonl"};
    char path[CONFIG_PATH_LEN + 64], err[PK_ERR_LEN];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (run_dir_file(rd, files[i], path, sizeof path, err) == PK_OK) unlink(path);
    for (int i = 0; i < N_SUBFOLDERS; i++)
        if (run_dir_file(rd, RUN_SUBFOLDERS[i], path, sizeof path, err) == PK_OK) rmdir(path);
    return rmdir(rd->path) == 0;
}

/* ---------------------------------------------------------------- metrics.jsonl on disk */

int run_dir_metrics_open(RunDir *rd, char *err) {
    rd->metrics_fd = open(rd->metrics_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (rd->metrics_fd < 0) return pk_errf(err, "%s: cannot open for appending: %s", rd->metrics_path, strerror(errno));
    struct stat st;
    if (fstat(rd->metrics_fd, &st) != 0) return pk_errf(err, "%s: cannot stat: %s", rd->metrics_path, strerror(errno));
    rd->metrics_good = st.st_size;
    return PK_OK;
}

/* Everything pending is appended with write(2) (O_APPEND); when a write fails or comes up
 * short (disk full, I/O error) the file is cut back to its last complete line with ftruncate
 * and the lines stay pending, to be retried before the next line and before any checkpoint.
 * PK_OK when nothing is pending. */
static int metrics_flush(RunDir *rd, char *err) {
    if (!rd->metrics_pending.len) return PK_OK;
    if (rd->metrics_fd < 0)
        return pk_errf(err, "%s: not open (%zu bytes of log lines not written)", rd->metrics_path,
                       rd->metrics_pending.len);
    if (pk_write_all(rd->metrics_fd, rd->metrics_pending.data, rd->metrics_pending.len) != 0) {
        int saved = errno;
        if (ftruncate(rd->metrics_fd, rd->metrics_good) != 0)
            return pk_errf(err, "%s: cannot append a line: %s; cutting the file back to its last complete line "
                                "(%lld bytes) failed too: %s",
                           rd->metrics_path, strerror(saved), (long long)rd->metrics_good, strerror(errno));
        return pk_errf(err, "%s: cannot append a line: %s (the file ends at its last complete line; the "
                            "lines not written are kept and retried)",
                       rd->metrics_path, strerror(saved));
    }
    rd->metrics_good += (off_t)rd->metrics_pending.len;
    rd->metrics_pending.len = 0;
    return PK_OK;
}

int run_dir_metrics_append(RunDir *rd, cJSON *line, int *repeated, char *err) {
    *repeated = 0;
    if (rd->metrics_fd < 0) { /* no log open (loading, or read-only) */
        cJSON_Delete(line);
        return PK_OK;
    }
    char *text = line ? cJSON_PrintUnformatted(line) : NULL;
    cJSON_Delete(line);
    if (!text) return pk_errf(err, "%s: out of memory building a log line", rd->metrics_path);
    size_t were_pending = rd->metrics_pending.len;
    int rc = pk_buf_append(&rd->metrics_pending, text, strlen(text)) == PK_OK &&
                     pk_buf_append(&rd->metrics_pending, "\n", 1) == PK_OK
                 ? PK_OK
                 : pk_errf(err, "%s: out of memory holding a log line", rd->metrics_path);
    cJSON_free(text);
    if (rc != PK_OK) return PK_FAIL;
    if (metrics_flush(rd, err) != PK_OK) {
        *repeated = were_pending > 0; /* lines were waiting: the failure that left them is still the one */
        return PK_FAIL;
    }
    return PK_OK;
}

int run_dir_metrics_sync(RunDir *rd, char *err) {
    if (rd->metrics_fd < 0) return PK_OK;
    if (metrics_flush(rd, err) != PK_OK) return PK_FAIL;
    if (fsync(rd->metrics_fd) != 0)
        return pk_errf(err, "%s: cannot flush to disk (fsync): %s", rd->metrics_path, strerror(errno));
    return PK_OK;
}

int run_dir_metrics_close(RunDir *rd, char *err) {
    if (rd->metrics_fd < 0) return PK_OK;
    int rc = run_dir_metrics_sync(rd, err);
    if (close(rd->metrics_fd) != 0 && rc == PK_OK)
        rc = pk_errf(err, "%s: cannot close: %s", rd->metrics_path, strerror(errno));
    rd->metrics_fd = -1;
    return rc;
}

void run_dir_free(RunDir *rd) {
    if (rd->metrics_fd >= 0) close(rd->metrics_fd);
    rd->metrics_fd = -1;
    pk_buf_free(&rd->metrics_pending);
}

/* ---------------------------------------------------------------- checkpoints */

int run_dir_checkpoint_dir(const RunDir *rd, int step, char *out, size_t len, char *err) {
    char name[64];
    snprintf(name, sizeof name, "checkpoints/step-%d", step);
    return run_dir_file(rd, name, out, len, err);
}

long run_dir_first_nonfinite(const void *data, size_t n, StDtype dt) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        if (dt == ST_F32) {
            uint32_t u;
            memcpy(&u, p + 4 * i, 4);
            if ((u & 0x7f800000u) == 0x7f800000u) return (long)i;
        } else if (dt == ST_F16 || dt == ST_BF16) {
            uint16_t u;
            memcpy(&u, p + 2 * i, 2);
            if (dt == ST_F16 ? (u & 0x7c00u) == 0x7c00u : (u & 0x7f80u) == 0x7f80u) return (long)i;
        } else if (dt == ST_F64) {
            uint64_t u;
            memcpy(&u, p + 8 * i, 8);
            if ((u & 0x7ff0000000000000ull) == 0x7ff0000000000000ull) return (long)i;
        }
    }
    return -1;
}

int run_dir_verify_finite(const char *dir, char *err) {
    DIR *d = opendir(dir);
    if (!d) return pk_errf(err, "%s: cannot open the checkpoint folder: %s", dir, strerror(errno));
    int rc = PK_OK, files = 0;
    struct dirent *de;
    while (rc == PK_OK && (de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (nl < 12 || strcmp(de->d_name + nl - 12, ".safetensors")) continue;
        char path[CONFIG_PATH_LEN + 256];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) continue;
        StFile f;
        if (st_open(&f, path, err) != PK_OK) {
            rc = PK_FAIL;
            break;
        }
        files++;
        for (int i = 0; i < f.num_tensors && rc == PK_OK; i++) {
            const StTensor *t = &f.tensors[i];
            if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64) continue;
            long at = run_dir_first_nonfinite(f.map + f.data_start + t->begin, t->numel, t->dtype);
            if (at >= 0)
                rc = pk_errf(err, "%s: tensor '%s' holds a non-finite value (NaN or Inf) at index %ld of %zu", path,
                             t->name, at, t->numel);
        }
        st_close(&f);
    }
    closedir(d);
    if (rc == PK_OK && files == 0) rc = pk_errf(err, "%s: no .safetensors files in the checkpoint folder", dir);
    return rc == PK_OK ? PK_OK : strstr(err, "non-finite") ? RUN_DIR_NONFINITE : PK_FAIL;
}

int run_dir_clear_run_config(const char *dir, char *err) {
    char path[CONFIG_PATH_LEN + 128];
    if (pk_path_join(path, sizeof path, dir, "run_config.json", err) != PK_OK) return PK_FAIL;
    if (unlink(path) != 0 && errno != ENOENT)
        return pk_errf(err, "%s: cannot remove it to replace the checkpoint: %s", path, strerror(errno));
    return PK_OK;
}

int run_dir_write_run_config(const char *dir, const RunConfig *cfg, char *err) {
    char path[CONFIG_PATH_LEN + 128];
    if (pk_path_join(path, sizeof path, dir, "run_config.json", err) != PK_OK) return PK_FAIL;
    return config_save_json(cfg, path, err);
}

int run_dir_set_latest(const RunDir *rd, int step, char *err) {
    char latest[CONFIG_PATH_LEN + 64], text[64];
    if (run_dir_file(rd, "checkpoints/latest", latest, sizeof latest, err) != PK_OK) return PK_FAIL;
    int n = snprintf(text, sizeof text, "step-%d\n", step);
    return pk_write_file_atomic(latest, text, (size_t)n, err);
}

int run_dir_sync_checkpoints(const RunDir *rd, char *err) {
    char dir[CONFIG_PATH_LEN + 64];
    if (run_dir_file(rd, "checkpoints", dir, sizeof dir, err) != PK_OK) return PK_FAIL;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return pk_errf(err, "%s: cannot open the folder to flush it: %s", dir, strerror(errno));
    if (fsync(fd) != 0) {
        int saved = errno;
        close(fd);
        return pk_errf(err, "%s: cannot flush the folder to disk (fsync): %s", dir, strerror(saved));
    }
    if (close(fd) != 0) return pk_errf(err, "%s: cannot close the folder: %s", dir, strerror(errno));
    return PK_OK;
}

void run_dir_prune_checkpoints(const RunDir *rd, int keep) {
    char err[PK_ERR_LEN], path[CONFIG_PATH_LEN + 96];
    int steps[4096], n = run_dir_checkpoint_steps(rd->path, steps, 4096);
    for (int i = RUN_KEEP_CHECKPOINTS; i < n; i++)
        if (steps[i] != keep && run_dir_checkpoint_dir(rd, steps[i], path, sizeof path, err) == PK_OK)
            pk_remove_tree(path);
}

/* ---------------------------------------------------------------- best/ */

int run_dir_write_best(const RunDir *rd, int step, double rouge, int records, char *err) {
    char path[CONFIG_PATH_LEN + 64];
    if (run_dir_file(rd, "best.json", path, sizeof path, err) != PK_OK) return PK_FAIL;
    cJSON *o = cJSON_CreateObject();
    if (!o) return pk_errf(err, "%s: out of memory", path);
    cJSON_AddNumberToObject(o, "step", step);
    add_number(o, "dev_rougeL", rouge);
    cJSON_AddNumberToObject(o, "records", records);
    int rc = pk_write_json_atomic(path, o, err);
    cJSON_Delete(o);
    return rc;
}

int run_dir_read_best(const RunDir *rd, int upto_step, double *rouge, int *step) {
    char path[CONFIG_PATH_LEN + 64], err[PK_ERR_LEN];
    char *text = NULL;
    size_t len = 0;
    if (run_dir_file(rd, "best.json", path, sizeof path, err) != PK_OK || !pk_file_exists(path) ||
        pk_read_file(path, &text, &len, err) != PK_OK)
        return 0;
    cJSON *o = cJSON_ParseWithLength(text, len);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "dev_rougeL");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "step");
    int found = cJSON_IsNumber(r) && cJSON_IsNumber(s) && s->valuedouble <= upto_step;
    if (found) *rouge = r->valuedouble, *step = (int)s->valuedouble;
    cJSON_Delete(o);
    free(text);
    return found;
}
