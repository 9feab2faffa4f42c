/* The run folder (DESIGN.md section 2): config.json, metrics.jsonl, checkpoints/step-N/ +
 * checkpoints/latest, best/ + best.json, plots/, eval/.
 *
 * metrics.jsonl is written and read back through one table of the numeric series it holds
 * (run_series_info): the step lines and the events that carry a series are built from it,
 * and the curves a resume or a read-only open rebuilds come from the same table. */
#ifndef PK_RUN_DIR_H
#define PK_RUN_DIR_H

#include <stddef.h>
#include <sys/types.h>

#include "common.h"
#include "config.h"

/* ---- the series table ---------------------------------------------------------------------- */

/* One numeric series of metrics.jsonl. chart: the chart it belongs to ("loss", "rouge", "lr",
 * "grad_norm", "throughput", "exposure", "neighbours"); log_y and smooth: that chart's defaults.
 * event: the line that carries it: NULL for a step line, else the event's name ("eval",
 * "exposure": ExAccErr at the longest l; "neighbours": the top-1 similarity of prompt vector p). */
typedef struct {
    const char *key;
    const char *label;
    const char *chart;
    int log_y;
    int smooth;
    const char *event;
} RunSeriesInfo;

/* The whole table, in the order the series are written and charted; *n gets its length. */
const RunSeriesInfo *run_series_info(int *n);
/* The entry of a key, or NULL. */
const RunSeriesInfo *run_series_find(const char *key);

/* ---- the history a run folder holds ---------------------------------------------------------- */

#define RUN_MAX_SERIES 32
#define RUN_MAX_EXPOSURE 6  /* the newest ExAccErr curves kept */
#define RUN_NEIGHBOUR_SERIES 8 /* neighbour_sim_p0 .. p7 */

/* One series over steps; t: elapsed seconds of the run at each point. */
typedef struct {
    char key[48];
    int n, cap;
    double *x, *y, *t;
} RunCurve;

typedef struct {
    int step, n;
    double *exaccerr; /* [n], percent, l = 1..n */
} RunExposure;

/* The soft prompt's nearest vocabulary tokens (printable text) at one step. */
typedef struct {
    int step, P, k; /* P == 0: none */
    char **tokens;  /* [P * k] */
    float *sims;    /* [P * k] */
    float *drift;   /* [P] */
} RunNeighbours;

/* T', T and S on one prompt; dev_index -1 for a free text. Strings never NULL once set.
 * rougeL_*: ROUGE-L F x 100 of each answer against the record's references, -1 when none. */
typedef struct {
    int step, dev_index; /* step -1: nothing generated */
    char *prompt_display, *instruction, *context, *reference;
    char *prompted_teacher, *teacher, *student;
    double rougeL_prompted_teacher, rougeL_teacher, rougeL_student;
} RunGeneration;

typedef struct {
    int n_curves;
    RunCurve curves[RUN_MAX_SERIES];
    int n_exposure; /* oldest first */
    RunExposure exposure[RUN_MAX_EXPOSURE];
    RunNeighbours neighbours; /* the latest */
    RunGeneration generation; /* the latest */
    int last_step;            /* the highest step of a step line, 0 when none */
    double elapsed_s;         /* of the last step line */
    double tokens_per_s, gflops; /* of the last step line */
    int last_eval_step;       /* the last dev evaluation, -1 */
    int finished_step;        /* a "finished" event's step, -1 */
} RunHistory;

void run_history_init(RunHistory *h);
void run_history_free(RunHistory *h);
/* Appends a point to the series `key` (made on first use; ignored past RUN_MAX_SERIES). */
void run_history_push(RunHistory *h, const char *key, double x, double y, double t);
const RunCurve *run_history_find(const RunHistory *h, const char *key);
/* Keeps a new ExAccErr curve (copied), dropping the oldest past RUN_MAX_EXPOSURE. */
int run_history_add_exposure(RunHistory *h, int step, const double *curve, int n);
/* Replaces the latest neighbours (copied) and pushes the neighbour_sim_p series at t. */
int run_history_set_neighbours(RunHistory *h, int step, int P, int k, const char *const *tokens,
                               const float *sims, const float *drift, double t);
/* Replaces the latest generation (strings copied; NULL reads as ""). */
int run_history_set_generation(RunHistory *h, const RunGeneration *g);

/* Reads metrics.jsonl into h (run_history_init'ed), keeping the lines whose step is at most
 * upto_step (all when upto_step < 0); when kept is not NULL it receives those lines, text as
 * read. A line that is not a JSON object with a numeric "step" fails with "PATH:LINE: ...",
 * except a last line without its newline (a write cut short), which is dropped. */
int run_history_read(RunHistory *h, const char *metrics_path, int upto_step, PkBuf *kept, char *err);

/* ---- metrics.jsonl lines ------------------------------------------------------------------- */

struct cJSON;
/* A step line: {"step":N, the series of the table carried by step lines that are among
 * keys/values (in table order; keys not in the table after them), "response_tokens",
 * "tokens", "tokens_per_s", "gflops", "step_s", "elapsed_s"}. Caller frees (cJSON_Delete). */
typedef struct {
    int step;
    int n;
    const char *keys[24];
    double values[24];
    int response_tokens;
    double tokens, tokens_per_s, gflops, step_s, elapsed_s;
} RunStepLine;
struct cJSON *run_line_step(const RunStepLine *s);
/* {"event":name,"step":N} */
struct cJSON *run_line_event(const char *name, int step);
/* {"event":"eval","step":N,"split":S,"dev_rougeL"|"rougeL":X,["dev_rougeL_tprime":Y,]"records":n,
 *  "best":b,"seconds":s}; rouge_tprime NaN: absent */
struct cJSON *run_line_eval(int step, const char *split, double rouge, double rouge_tprime, int records, int best,
                            double seconds);
struct cJSON *run_line_exposure(int step, const char *oracle, const double *curve, int n);
struct cJSON *run_line_neighbours(const RunNeighbours *nb);
struct cJSON *run_line_generation(const RunGeneration *g);
/* {"event":"set","step":N,"key":K,"old":V,"new":V}, values that read as numbers as numbers */
struct cJSON *run_line_set(int step, const char *key, const char *old_value, const char *new_value);
/* {"event":"checkpoint","step":N,"path":P} */
struct cJSON *run_line_checkpoint(int step, const char *path);
/* {"event":"nonfinite","step":N,"last_checkpoint":M[,"in":what]} (what NULL: the loss) */
struct cJSON *run_line_nonfinite(int step, int last_checkpoint, const char *what);
/* {"event":"resume_from","step":N,"checkpoint":"step-M"} */
struct cJSON *run_line_resume_from(int step, int checkpoint_step);
/* A line of eval/SPLIT-step-N.jsonl: {"index","instruction","prediction","reference","rougeL"} */
struct cJSON *run_line_eval_record(int index, const char *instruction, const char *prediction,
                                   const char *reference, double rouge);

/* ---- the folder ---------------------------------------------------------------------------- */

/* The open run folder: its path and its metrics.jsonl, appended with whole lines only. */
typedef struct {
    char path[CONFIG_PATH_LEN];
    int created; /* a new run: the files made for it are ours to remove when nothing is recorded */
    int metrics_fd; /* -1: not open */
    off_t metrics_good; /* size of the file up to its last complete line */
    PkBuf metrics_pending; /* lines not yet on disk (a write failed), oldest first */
    char metrics_path[CONFIG_PATH_LEN + 64];
} RunDir;

/* Joins a name inside the run folder. */
int run_dir_file(const RunDir *rd, const char *name, char *out, size_t len, char *err);

/* The step-N folders of RUN/checkpoints, newest first (at most cap); returns how many. */
int run_dir_checkpoint_steps(const char *run_path, int *steps, int cap);
/* Reads RUN/checkpoints/latest ("step-N", naming a folder that exists) into *step, or says what
 * is wrong with it. */
int run_dir_read_latest(const char *run_path, int *step, char *err);

/* Reads a run folder's config.json (over defaults) and metrics.jsonl, for a read-only look:
 * a folder that is not a run fails naming the file missing or malformed. */
int run_dir_read(const char *run_path, RunConfig *cfg, RunHistory *h, char *err);

#endif
