/* A live distillation session: training on one worker thread, a command queue
 * applied at step boundaries, and an immutable snapshot published after every
 * step. The TUI, the REPL and the headless CLI are all clients of this API;
 * views only read snapshots, never model memory. */
#ifndef PK_ENGINE_H
#define PK_ENGINE_H

#include <stddef.h>

#include "common.h" /* PK_ERR_LEN */
#include "config.h" /* RunConfig: every hyper-parameter, config_set/config_get by key name */

typedef enum {
    ENGINE_LOADING,  /* models and data being loaded */
    ENGINE_PAUSED,   /* worker idle, waiting for commands */
    ENGINE_RUNNING,  /* stepping until total steps, stop_after, or a pause */
    ENGINE_FINISHED, /* reached total steps; commands like eval/generate still work */
    ENGINE_FAILED    /* loading failed or a non-finite loss paused the run: see message */
} EngineState;

const char *engine_state_name(EngineState s);

#define ENGINE_MAX_SERIES 32
#define ENGINE_MAX_CURVES 6
#define ENGINE_LOG_LINES 64
/* room for a sentence of PK_ERR_LEN (which names full paths) and what the engine says around it */
#define ENGINE_MESSAGE_LEN (2 * PK_ERR_LEN)

/* One named curve over steps (loss terms, dev ROUGE-L, ...). */
typedef struct {
    char name[48];
    int n;
    const double *x; /* step */
    const double *y;
    const double *t; /* elapsed wall-clock seconds of the run at each point (metrics.jsonl's elapsed_s) */
} EngineSeries;

/* ExAccErr over generation length l = 1..n, measured at some step. */
typedef struct {
    int step;
    int n;
    const double *exaccerr; /* [n], percent */
} EngineExposureCurve;

typedef struct {
    unsigned long version; /* bumps with every publish */
    EngineState state;
    char message[ENGINE_MESSAGE_LEN]; /* last status or error sentence, never cut */
    int loaded;            /* models and data loaded (0 while LOADING, and when loading failed) */
    int read_only;         /* engine_open: a run folder read back; every command is refused */
    char method[32];
    char run_dir[512];

    int step, total_steps;
    double elapsed_s, eta_s, tokens_per_s, gflops;

    /* loss curves and other scalars over steps: student_loss, prompt_loss,
     * prompt_reg_loss, prompt_guide_loss, kl_tprime_t, dev_rougeL, dev_rougeL_tprime (T'), ... */
    int n_series;
    EngineSeries series[ENGINE_MAX_SERIES];

    /* hyper-parameters as key/value strings, in config_keys() order */
    int n_hparams;
    const char *const *hparam_keys;
    const char *const *hparam_values;
    /* the run's RunConfig as the worker holds it (the only copy: read keys here, change them with set) */
    RunConfig config;

    /* soft-prompt nearest neighbours (empty when the method has no prompt) */
    int prompt_len, neighbours_k;
    const char *const *neighbour_tokens; /* [prompt_len * k], printable token text */
    const float *neighbour_sims;         /* [prompt_len * k] cosine similarity */
    const float *prompt_drift;           /* [prompt_len] L2 distance of each vector from its init */

    /* latest generations on a dev prompt: prompted teacher T', teacher T, student S;
     * never NULL: "" when the method has no such model or nothing was generated yet.
     * dev_prompt: the prompt as shown; dev_instruction, dev_context, dev_reference: the dev
     * record's parts ("" when unknown; for a free text the instruction is the text).
     * gen_rougeL_*: ROUGE-L F x 100 of each answer against the record's references, as the
     * evaluation scores it (-1 when there is no answer or no reference). dev_count is 0 when
     * unknown (a run opened read-only does not load its data). */
    int dev_index, dev_count;
    const char *dev_prompt;
    const char *dev_instruction, *dev_context, *dev_reference;
    const char *gen_prompted_teacher, *gen_teacher, *gen_student;
    double gen_rougeL_prompted_teacher, gen_rougeL_teacher, gen_rougeL_student;
    int gen_step;

    /* ExAccErr curves, oldest first, the last is the latest */
    int n_exposure;
    EngineExposureCurve exposure[ENGINE_MAX_CURVES];

    /* the last log lines (events, commands, errors), oldest first */
    int n_log;
    const char *const *log;

    /* checkpoints: the newest good one in the run (written, read back and found finite; or the
     * one resumed from), -1 for none; unsaved_steps: steps since then that a `save` into the
     * run would keep (0 while a non-finite step blocks saving) */
    int last_checkpoint_step;
    int unsaved_steps;
    /* writes into the run folder that failed (checkpoints, metrics.jsonl, eval/, best/,
     * config.json): how many so far, and the last one's sentence with its full path.
     * Front-ends show each new one (message line, stderr) and exit non-zero. */
    int write_errors;
    char write_error[ENGINE_MESSAGE_LEN];
} EngineSnapshot;

typedef struct Engine Engine;

/* Creates a session for a resolved config and starts its worker thread, which
 * loads models and data (state LOADING), then waits PAUSED, or starts RUNNING
 * when autostart is set. resume_dir: a run folder to continue from, or NULL.
 *
 * New run: the folder is run_dir/name, or name-2, name-3, ... when that folder
 * already holds a run (snapshot run_dir and engine_run_path() tell which); it gets
 * config.json (resolved), an empty metrics.jsonl, checkpoints/, plots/, eval/.
 * When loading fails, or the session ends with nothing recorded (no step, no
 * checkpoint, nothing in checkpoints/ plots/ eval/ best/), the files the engine
 * made there are removed again (and the folder, when that empties it): no orphan
 * run folders, and the next session gets the name back.
 * Resume: resume_dir's checkpoints/latest ("step-N") names the checkpoint; a
 * missing, unreadable or malformed `latest`, or one naming a missing folder, is
 * refused saying which; the checkpoint must hold finite values only. metrics.jsonl
 * is cut back to that step and the curves are rebuilt from it. Keys fixed for the
 * run (every key `set` refuses, except name, run_dir, threads and the data and
 * model paths, which may move) must match resume_dir/config.json and the config
 * the checkpoint was written with (checkpoints/step-N/run_config.json), so a
 * fixed key edited by hand in config.json is refused like a --set, naming the
 * key. The next step equals the uninterrupted run's bit for bit (same thread count).
 *
 * Fails at once (config_validate, run folder, resume folder, fixed keys); a load
 * failure shows later as state FAILED with the message.
 *
 * stop_after counts the steps since the run was started or last resumed
 * (engine_resume): the run then saves a checkpoint and pauses. At total steps it
 * evaluates, saves a checkpoint and becomes FINISHED. Dev ROUGE-L runs every
 * eval_interval steps (0: at each epoch end), keeps the best student in best/ and
 * writes a checkpoint (the newest 3 step-N folders are kept). A non-finite loss
 * pauses the run with "non-finite loss at step N; paused, last good checkpoint
 * step-M kept"; until a good step follows, no checkpoint is written into the run.
 *
 * A checkpoint is good only when it is finite: before `latest` points at it, the
 * folder is read back and every tensor (student weights, soft prompt, both
 * optimizers' moments) checked; one holding NaN/Inf is removed, and the run pauses
 * as for a non-finite loss ("non-finite values in the model after step N (...);
 * paused, last good checkpoint step-M kept"). metrics.jsonl is written and fsync'ed
 * before the checkpoint that follows it, then the checkpoint folder, its
 * run_config.json, `latest`, and the checkpoints/ folder itself (fsync).
 *
 * Failed writes: every write into the run folder is checked (write, fsync,
 * rename, close). metrics.jsonl only ever holds whole lines: a line that cannot be
 * appended (disk full) is cut off again (ftruncate to the last complete line) and
 * kept in memory, retried before the next line and before any checkpoint; the run
 * pauses ("metrics.jsonl could not be written ...; paused at step N"). A failed
 * checkpoint at an evaluation is reported and the run goes on; a failed final or
 * stop_after checkpoint is in the state message. Each failure counts in the
 * snapshot's write_errors/write_error.
 *
 * metrics.jsonl, one JSON object per line, written and read back through the one table of
 * series in core/run_dir.h (run_series_info):
 *   a step:  {"step":N, "student_loss":.., the method's other losses ["prompt_loss", "prompt_reg_loss",
 *            "prompt_guide_loss", "kl_tprime_t", "pg_loss", "reg_loss", "pt_loss", "reward", "on_policy"], "lr",
 *            ["prompt_lr"], "grad_norm", ["prompt_grad_norm"] (with a soft prompt), "tokens_per_s",
 *            "response_tokens", "tokens", "gflops", "step_s", "elapsed_s"}
 *   events:  {"event":"set","step":N,"key":K,"old":V,"new":V}  (numbers as numbers)
 *            {"event":"eval","step":N,"split":S,"dev_rougeL"|"rougeL":X,["dev_rougeL_tprime":Y,]"records":n,
 *             "best":b,"seconds":s}   (dev_rougeL_tprime: T' on the same records, runs with a soft prompt)
 *            {"event":"exposure","step":N,"oracle":"prompted_teacher"|"teacher","len":L,"exaccerr":[..]}
 *            {"event":"checkpoint","step":N,"path":P}, {"event":"nonfinite","step":N,"last_checkpoint":M},
 *            {"event":"resume_from","step":N,"checkpoint":"step-N"}, and "pause", "resume", "stop",
 *            "stop_after", "finished" with their step.
 *            {"event":"neighbours","step":N,"k":K,"tokens":[P*K],"sims":[P*K],"drift":[P]}  the soft
 *             prompt's nearest tokens, once per step they are refreshed at (gen_interval, pauses)
 *            {"event":"generation","step":N,"dev_index":i (-1: a text of the user's),"prompt_display":..,
 *             "instruction":..,"context":..,"reference":..,"prompted_teacher":..,"teacher":..,"student":..,
 *             "rougeL":{"prompted_teacher":x,"teacher":y,"student":z}}  (-1: none)
 *   Events carry no time of their own: their curves' elapsed times are the last step line's.
 *   A resume and engine_open rebuild the curves, ExAccErr curves, neighbours and the last
 *   generations from these lines. */
int engine_create(Engine **out, const RunConfig *cfg, const char *resume_dir, int autostart, char *err);
/* A read-only engine over a run folder (finished, or stopped early): config.json and
 * metrics.jsonl read back, no model or data loaded, no worker. Its one snapshot holds what
 * the views show: every series (with elapsed times), the newest ExAccErr curves, the
 * neighbour history and the last neighbours table, the last generations, the hparams, the
 * step; state FINISHED, or PAUSED for a run that stopped before its last step. Every command
 * fails with "RUN is open read-only". A folder that is not a run fails naming the missing or
 * malformed file (PATH:LINE for a bad metrics.jsonl line). engine_destroy frees it. */
int engine_open(Engine **out, const char *run_dir, char *err);
/* Stops the worker (after the current step) and frees everything. Does not save.
 * Every acquired snapshot must have been released before. Front-ends that report
 * write errors call engine_stop first: stopping flushes, fsyncs and closes
 * metrics.jsonl, and a failure there shows in the snapshot's write_errors. */
void engine_destroy(Engine *e);
/* The run folder (run_dir/name as created, or the resumed folder). */
const char *engine_run_path(const Engine *e);

/* Snapshots are reference counted and immutable; always release what you acquire. */
const EngineSnapshot *engine_snapshot_acquire(Engine *e);
void engine_snapshot_release(Engine *e, const EngineSnapshot *s);

/* ---------------------------------------------------------------- one door
 * Every client action (TUI keys and ':' line, REPL, plugins) is a command in ONE queue
 * that the worker drains at step boundaries: the worker alone touches the model memory
 * and the RunConfig. engine_post queues a command without waiting and returns its id;
 * the reply comes back as an ENGINE_EVENT_REPLY with that id, in order with the events
 * the worker reports by itself (evaluations, checkpoints, exposure, the end of the run,
 * pauses, errors, write failures). The blocking functions further down are
 * engine_post + engine_wait_reply. */

typedef enum {
    ENGINE_CMD_PAUSE,      /* pause after the current step */
    ENGINE_CMD_RESUME,     /* run until total steps / stop_after */
    ENGINE_CMD_RUN_STEPS,  /* n more steps, then pause; replies once running */
    ENGINE_CMD_STEP,       /* n steps, then pause; replies when they are done (or the run stopped) */
    ENGINE_CMD_SET,        /* key = value; config_check_set says when a key may change */
    ENGINE_CMD_EVAL,       /* text: the split (NULL or "": valid) */
    ENGINE_CMD_GENERATE,   /* text: the prompt */
    ENGINE_CMD_EXPOSURE,   /* measure a new ExAccErr curve */
    ENGINE_CMD_SAVE,       /* text: a folder, NULL or "": the run's checkpoints/ */
    ENGINE_CMD_SELECT_DEV, /* n: +1 next / -1 previous dev prompt for the generations panel */
    ENGINE_CMD_STOP,       /* finish the current step and stop the worker */
    ENGINE_CMD_WORK        /* run `work` on the worker between two steps (plugins, analyses) */
} EngineCommandKind;

struct DistillState;
/* Work run on the worker thread between two steps (the run keeps its state: a running
 * run goes on afterwards), with the model memory its own for the call. What it says
 * goes into out; PK_FAIL with a sentence in err. It must not call the blocking engine
 * functions (they would wait for the very thread running it). */
typedef int (*EngineWorkFn)(void *ctx, struct DistillState *ds, PkBuf *out, char *err);

typedef struct {
    EngineCommandKind kind;
    int n;                   /* RUN_STEPS, STEP: steps; SELECT_DEV: delta */
    const char *key, *value; /* SET */
    const char *text;        /* EVAL: split; GENERATE: prompt; SAVE: folder */
    EngineWorkFn work;       /* WORK */
    void *ctx;               /* WORK: passed to work */
    void (*ctx_free)(void *ctx); /* WORK: called once the command is done or dropped (may be NULL) */
} EngineCommand;

typedef enum {
    ENGINE_EVENT_REPLY,       /* a posted command was applied or refused: id, status, text (+ output) */
    ENGINE_EVENT_LOADED,      /* loading ended: state PAUSED, RUNNING or FINISHED, or FAILED with the sentence */
    ENGINE_EVENT_EVAL,        /* an evaluation the run made by itself: step, value = ROUGE-L */
    ENGINE_EVENT_CHECKPOINT,  /* a checkpoint the run wrote by itself: step */
    ENGINE_EVENT_EXPOSURE,    /* an ExAccErr measurement the run made by itself: step, value = ExAccErr at l */
    ENGINE_EVENT_STATE,       /* the run paused, stopped, finished or failed by itself: state, text */
    ENGINE_EVENT_ERROR,       /* something failed and the run went on (an evaluation, a checkpoint, ...) */
    ENGINE_EVENT_WRITE_ERROR  /* a write into the run folder failed (also counted in the snapshot) */
} EngineEventKind;

typedef struct {
    EngineEventKind kind;
    unsigned long id;  /* REPLY: the id engine_post returned; 0 for the others */
    int status;        /* REPLY: PK_OK or PK_FAIL */
    int step;          /* the run's step when it happened */
    EngineState state; /* the state right after it */
    double value;      /* EVAL, EXPOSURE */
    int logged;        /* REPLY: the run's log holds a line saying what the reply says (a view showing
                        * that log need not show the reply again) */
    char *text;   /* what a person should see: the reply, or the sentence (NULL only when out of memory) */
    char *output; /* REPLY of a WORK that failed: what it said before failing (NULL: nothing) */
} EngineEvent;

/* Queues a command and returns its id (> 0) at once; 0 with err when refused before
 * queueing (the engine has stopped, a bad split, an empty prompt). Strings are copied;
 * a WORK's ctx belongs to the queue from then on (ctx_free), and stays the caller's
 * when engine_post fails. */
unsigned long engine_post(Engine *e, const EngineCommand *cmd, char *err);
/* Takes the oldest event: 1 with *ev filled (release it with engine_event_clear), 0 when
 * there is none. Events nobody takes are kept up to a bound (the oldest reports are
 * dropped then; replies never are). */
int engine_poll_event(Engine *e, EngineEvent *ev);
/* Waits up to timeout_s for an event (as engine_poll_event); 0 when none came. */
int engine_wait_event(Engine *e, EngineEvent *ev, double timeout_s);
/* Waits for the reply to command id and takes it out of the queue; the other events
 * stay for engine_poll_event. Returns the reply's status. */
int engine_wait_reply(Engine *e, unsigned long id, EngineEvent *ev);
void engine_event_clear(EngineEvent *ev);

/* Blocking commands: engine_post + engine_wait_reply. Each returns PK_OK once the worker
 * has applied it (waiting at most until the current step ends), filling reply (may be
 * NULL) with what a person should see, or PK_FAIL with a sentence in err. */
int engine_pause(Engine *e, char *err);
int engine_resume(Engine *e, char *err);          /* run until total steps / stop_after */
int engine_run_steps(Engine *e, int n, char *err); /* run n more steps, then pause; returns at once */
int engine_step(Engine *e, int n, char *err);      /* run n steps, then pause; waits until done */
int engine_set(Engine *e, const char *key, const char *value, char *err); /* applied at the next step boundary */
/* Reads the RunConfig the latest snapshot publishes (never the worker's memory). */
int engine_get(Engine *e, const char *key, char *value, size_t len, char *err);
int engine_eval(Engine *e, const char *split, char *reply, size_t len, char *err); /* dev ROUGE-L etc. */
int engine_generate(Engine *e, const char *text, char *reply, size_t len, char *err); /* T', T, S on text */
int engine_exposure(Engine *e, char *reply, size_t len, char *err); /* measures a new ExAccErr curve */
int engine_save(Engine *e, const char *dir, char *reply, size_t len, char *err); /* NULL dir: the run's checkpoints/ */
int engine_select_dev(Engine *e, int delta, char *err); /* next/previous dev prompt for the generations panel */
int engine_stop(Engine *e, char *err);                   /* finish the current step and stop the worker */
/* Runs fn on the worker between two steps and waits for it; what it says is appended to
 * out. Once the worker has stopped (engine_stop), fn runs on the calling thread, which
 * is then the only one left with the model memory. */
int engine_work(Engine *e, EngineWorkFn fn, void *ctx, PkBuf *out, char *err);

/* Async-signal-safe (it only sets a flag): the run pauses after the current step
 * ("interrupted at step N"), and an engine_step waiting for its steps returns
 * PK_FAIL with that sentence. The front-ends call it from their SIGINT, SIGTERM and
 * SIGHUP handlers, then pause, save and leave (app/run_setup.h). */
void engine_interrupt(Engine *e);

/* Wait until the state is not RUNNING/LOADING, or timeout_s passes; returns the state. */
EngineState engine_wait_idle(Engine *e, double timeout_s);

/* Test hook: the step that reaches `step` is treated as non-finite (after it was
 * applied), exercising the pause-and-keep-the-checkpoint path. 0 turns it off. */
void engine_debug_inject_nonfinite(Engine *e, int step);

/* Called on the worker thread after every applied step, with the model memory (between
 * steps). NULL removes it. */
typedef void (*EngineStepHook)(void *ctx, struct DistillState *ds, int step, int total_steps, int n_losses,
                               const char *const *loss_names, const double *losses);
void engine_set_step_hook(Engine *e, EngineStepHook fn, void *ctx);
/* Appends a line to the run's log (shown by the views). Worker thread only: a step hook
 * or an ENGINE_CMD_WORK. */
void engine_log_line(Engine *e, const char *line);

#endif
