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
#include "safetensors.h" /* StDtype */

/* ---- the series table ---------------------------------------------------------------------- */

/* One numeric series of metrics.jsonl. chart: the chart it belongs to ("loss", "rouge", "lr",
 * "grad_norm", "throughput", "exaccerr", "neighbours", "policy"); log_y and smooth: that chart's defaults.
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
/* A step line: {"step":N, the step's series keys/values (in the table's order; keys the table
 * does not know after them), "response_tokens", "tokens", "gflops", "step_s", "elapsed_s"}.
 * Caller frees (cJSON_Delete). */
typedef struct {
    int step;
    int n;
    const char *keys[24];
    double values[24];
    int response_tokens;
    double tokens, gflops, step_s, elapsed_s;
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

#define RUN_KEEP_CHECKPOINTS 3 /* step-N folders kept besides best/; older ones are removed */
#define RUN_DIR_NONFINITE (-2) /* run_dir_verify_finite: a tensor holds NaN or Inf */

/* The open run folder: its path and its metrics.jsonl, appended with whole lines only. */
typedef struct {
    char path[CONFIG_PATH_LEN];
    int created;           /* a new run: the files made for it are ours to remove when nothing is recorded */
    int metrics_fd;        /* -1: not open */
    off_t metrics_good;    /* size of the file up to its last complete line */
    PkBuf metrics_pending; /* lines not yet on disk (a write failed), oldest first */
    char metrics_path[CONFIG_PATH_LEN + 64];
} RunDir;

void run_dir_init(RunDir *rd);
/* Makes the run folder for cfg. A new run (resume_dir NULL or ""): run_dir/name, or name-2,
 * name-3, ... when that folder already holds a run (cfg->name gets the name used), with
 * checkpoints/, plots/, eval/, config.json and an empty metrics.jsonl. A resume: resume_dir
 * (resolved like run_dir), after checking that its checkpoints/latest names a checkpoint
 * (*resume_step) and that the keys fixed on resume keep their values (run_dir_check_fixed_keys);
 * cfg's run_dir and name then follow the folder and config.json is written anew. On failure
 * what was made is removed again, and err says what is wrong. metrics.jsonl is not opened. */
int run_dir_prepare(RunDir *rd, RunConfig *cfg, const char *resume_dir, int *resume_step, char *err);
/* Every key config.c fixes on resume (config_key_fixed_on_resume) must have the same value in
 * cfg as in RUN/config.json (so a --set of one is refused) and in the config checkpoint step-N
 * was written with (RUN/checkpoints/step-N/run_config.json, so is one edited by hand in
 * config.json); the first that differs is named with both values. */
int run_dir_check_fixed_keys(const RunConfig *cfg, const char *run_path, int step, char *err);
/* 1 when the folder holds a record besides config.json and metrics.jsonl: something in
 * checkpoints/, plots/ or eval/, best/ or best.json. */
int run_dir_holds_records(const RunDir *rd);
/* A new run's folder that recorded nothing: removes what run_dir_prepare made (config.json,
 * metrics.jsonl, the empty subfolders) and the folder when that empties it; files of others
 * stay. Once; returns 1 when the folder is gone. */
int run_dir_remove_created(RunDir *rd);
/* Joins a name inside the run folder. */
int run_dir_file(const RunDir *rd, const char *name, char *out, size_t len, char *err);

/* metrics.jsonl holds whole lines only. open: for appending. append: the line (deleted) is
 * written with write(2); when that fails or comes up short (disk full) the file is cut back to
 * its last complete line (ftruncate) and the line stays pending, retried before the next one and
 * by sync; PK_FAIL with the sentence, *repeated = 1 when lines were pending already (the same
 * failure as before). sync: pending lines out, then fsync (before a checkpoint: a checkpoint
 * never gets ahead of its log). close: sync and close. free: close without a sync, drop what is
 * pending. With no log open, append and sync do nothing. */
int run_dir_metrics_open(RunDir *rd, char *err);
int run_dir_metrics_append(RunDir *rd, struct cJSON *line, int *repeated, char *err);
int run_dir_metrics_sync(RunDir *rd, char *err);
int run_dir_metrics_close(RunDir *rd, char *err);
void run_dir_free(RunDir *rd);

/* Checkpoints are RUN/checkpoints/step-N folders (written by distill_save_checkpoint) plus the
 * run_config.json they were made with; RUN/checkpoints/latest names the newest good one. */
int run_dir_checkpoint_dir(const RunDir *rd, int step, char *out, size_t len, char *err);
/* Index of the first NaN/Inf among n raw values of a floating dtype, or -1 (read by bytes: a
 * mapped tensor need not be aligned). */
long run_dir_first_nonfinite(const void *data, size_t n, StDtype dt);
/* Reads every floating tensor of every .safetensors file of the folder back: PK_OK when all are
 * finite, RUN_DIR_NONFINITE naming the file, tensor and index, PK_FAIL when it does not read. */
int run_dir_verify_finite(const char *dir, char *err);
/* Removes DIR/run_config.json (so distill_save_checkpoint may replace the folder), or says why not. */
int run_dir_clear_run_config(const char *dir, char *err);
int run_dir_write_run_config(const char *dir, const RunConfig *cfg, char *err);
/* checkpoints/latest = "step-N", atomically. */
int run_dir_set_latest(const RunDir *rd, int step, char *err);
/* fsync of checkpoints/, so the renames into it are on disk. */
int run_dir_sync_checkpoints(const RunDir *rd, char *err);
/* Keeps the newest RUN_KEEP_CHECKPOINTS step-N folders (and always step `keep`). */
void run_dir_prune_checkpoints(const RunDir *rd, int keep);
/* The step-N folders of RUN/checkpoints, newest first (at most cap); returns how many. */
int run_dir_checkpoint_steps(const char *run_path, int *steps, int cap);
/* Reads RUN/checkpoints/latest ("step-N", naming a folder that exists) into *step, or says what
 * is wrong with it. */
int run_dir_read_latest(const char *run_path, int *step, char *err);

/* best.json: {"step", "dev_rougeL", "records"} of the student kept in best/. read: 1 with the
 * values when it is there, readable and no later than upto_step, else 0. */
int run_dir_write_best(const RunDir *rd, int step, double rouge, int records, char *err);
int run_dir_read_best(const RunDir *rd, int upto_step, double *rouge, int *step);

/* Reads a run folder's config.json (over defaults) and metrics.jsonl, for a read-only look:
 * a folder that is not a run fails naming the file missing or malformed. */
int run_dir_read(const char *run_path, RunConfig *cfg, RunHistory *h, char *err);

#endif
