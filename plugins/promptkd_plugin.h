/* promptkd analysis plugins: the whole contract between the program and a plugin.
 *
 * A plugin is a shared object exporting
 *     const PkPluginDescriptor *promptkd_plugin_entry(void);
 * It never includes another promptkd header: everything it may use comes through the
 * PkHostApi table below, which is read-only on the run except for what a plugin
 * publishes (tables, chart series, log lines) and its own state block.
 *
 * ---- Isolation: plugin code never runs inside the session ----
 * Every call into a plugin runs in a child process forked for that one call:
 *   plugin load FILE    dlopen (so the plugin's constructors), promptkd_plugin_entry,
 *                       then on_load;
 *   plugin run NAME     analyze;
 *   after each step     on_step (the training worker waits for it);
 *   plugin unload NAME  on_unload.
 * The child sees a copy-on-write snapshot of the session as it was when the call
 * began: model weights, the soft prompt, the tokenizer, the datasets. Nothing it
 * writes, allocates or breaks there reaches the session. It runs single-threaded
 * (forward passes and sampling run inline on the calling thread, OpenBLAS on one
 * thread), with stdin on /dev/null and stdout sent to stderr. The session process
 * itself never dlopen()s a plugin: the file is opened once at load and each child
 * loads that same file, so constructors run in every child and never in the session.
 *
 * What comes back is only what the host functions send over a pipe, in length-
 * prefixed frames the session validates before use: the tables, series and points
 * published, log lines, the state block and the callback's return value and error
 * sentence. Tables, series, points and the state are applied when the callback
 * returns (whatever its return value; a plugin whose on_load fails keeps nothing);
 * log lines are shown in every case, also before a fault.
 *
 * A fault ends the child, never the session: a crash (any signal), an abort, a call
 * to exit(), a hang past the time limit (the child and its process group are then
 * killed with SIGKILL) or malformed output becomes one message naming the plugin, the
 * callback and the signal ("killed by signal SIGSEGV (Segmentation fault) in analyze")
 * or the time ("timed out after 60 s in on_step (killed) at step 12"); the plugin is
 * unloaded (what it published before stays) and the session, and its training, go on.
 * A fault while loading means it is not loaded. A fault in on_step is written to the
 * run's log (the TUI's log panel) and to the REPL's next output.
 *
 * Time limit: PK_PLUGIN_DEFAULT_TIMEOUT seconds per call unless changed with
 *   plugin timeout S                  (the session default, for later calls)
 *   plugin load FILE --timeout S      (this plugin's load and every on_step/on_unload)
 *   plugin run NAME --timeout S ...   (this one analysis)
 * An on_step that takes the whole limit stalls training for that long once (and a
 * `pause` waits for it); so does an analyze or a load, which run between two steps of a
 * running run (it goes on afterwards). Each call costs a fork and a dlopen (about 2 ms for a small
 * session; the fork's share grows with the session's memory).
 *
 * The child is single-threaded when it starts (fork copies only the calling thread);
 * threads a plugin starts there end with it. Host functions take no lock of the
 * session, so the child never waits on a thread the fork left behind. The child dies
 * with the session; when a call ends or times out, its process group is killed (what
 * the plugin started goes with it). Isolation guards the session from a plugin's
 * faults, not from deliberately hostile code: a child may still write files or use
 * the descriptors it inherited.
 *
 * ---- State ----
 * Because each call is a fresh process, a plugin keeps its state in a block of
 * descriptor->state_size bytes (0 .. PK_PLUGIN_MAX_STATE) owned by the host: zeroed
 * before on_load, passed to every callback, and copied back after each callback that
 * returns. Keep plain data in it (numbers, fixed arrays): memory the plugin allocates,
 * and pointers to it, do not survive the call. Static variables do not either.
 *
 * ---- Host functions ----
 * Every host function checks its arguments before use (the host pointer, NULLs,
 * negative or huge counts, buffer lengths, token ids, size overflow, the limits below)
 * and fails without touching anything: int functions return -1, pointer functions
 * NULL, and a sentence saying what was wrong is written to err (when the function has
 * an err parameter and it is not NULL; PK_PLUGIN_ERR_LEN bytes) and is returned by
 * api->last_error(api->host) until the next host call. Host functions are valid only
 * during a callback, from the thread that called it.
 *
 * ---- Versioning ----
 * PROMPTKD_PLUGIN_ABI changes whenever a struct here changes layout or meaning; the
 * host refuses any other version with a message. Within one version new host
 * functions are appended at the end of PkHostApi and announced by num_functions.
 *   ABI 1: first version (plugins ran inside the session process).
 *   ABI 2: plugins run in a child per call (above); state is a host-owned block
 *          (descriptor->state_size; on_load gets `void *state`, on_unload gets api);
 *          forward and prompt_attention take the length of their output buffer;
 *          has_model/num_layers/vocab_size/eos_id/dataset_size/prompt return -1 on bad
 *          arguments; last_error is new; the limits below are enforced. */
#ifndef PROMPTKD_PLUGIN_H
#define PROMPTKD_PLUGIN_H

#include <stddef.h>

#define PROMPTKD_PLUGIN_ABI 2
#define PROMPTKD_PLUGIN_ENTRY "promptkd_plugin_entry"

/* err buffers passed to plugins, and to host functions, hold at least this many bytes */
#define PK_PLUGIN_ERR_LEN 512

/* Limits (a call beyond them fails with a sentence). Names of plugins, charts and
 * tables use only letters, digits, '_', '-' and '.', and do not start with '.'. */
#define PK_PLUGIN_NAME_MAX 31          /* plugin name (descriptor->name), chart names */
#define PK_PLUGIN_TABLE_NAME_MAX 63    /* table names */
#define PK_PLUGIN_SERIES_NAME_MAX 47   /* series names: printable text */
#define PK_PLUGIN_DESCRIPTION_MAX 200  /* descriptor->description (longer is cut) */
#define PK_PLUGIN_MAX_COLS 64          /* columns of a table */
#define PK_PLUGIN_MAX_ROWS 100000      /* rows of a table (header not counted) */
#define PK_PLUGIN_MAX_CELL 1024        /* bytes of one table cell or header */
#define PK_PLUGIN_MAX_POINTS 1000000   /* points of one series */
#define PK_PLUGIN_MAX_TABLES 32        /* tables kept by the session, all plugins together */
#define PK_PLUGIN_MAX_SERIES 64        /* series kept by the session, all plugins together */
#define PK_PLUGIN_LOG_MAX 1000         /* bytes of one log line (longer is cut) */
#define PK_PLUGIN_MAX_STATE (1 << 20)  /* descriptor->state_size */
#define PK_PLUGIN_MAX_OUTPUT (64 << 20) /* bytes one call may send back, all frames together */
#define PK_PLUGIN_DEFAULT_TIMEOUT 60.0 /* seconds per call */

/* which model a host call runs */
enum { PK_MODEL_PROMPTED_TEACHER = 0, PK_MODEL_TEACHER = 1, PK_MODEL_STUDENT = 2 };

/* A light view of the run after a step. */
typedef struct {
    int step, total_steps;
    int n_losses;
    const char *const *loss_names;
    const double *losses;
} PkPluginStepInfo;

typedef struct PkHostApi {
    int abi_version;   /* PROMPTKD_PLUGIN_ABI */
    int num_functions; /* how many function pointers follow (for appended ones) */
    void *host;        /* pass back as the first argument of every call */

    /* models: 1 when present (T' needs a soft prompt, T a teacher), 0 when not, -1 for
     * a `which` that is none of PK_MODEL_*. */
    int (*has_model)(void *host, int which);
    int (*vocab_size)(void *host);             /* V, the width of a logits row, or -1 */
    int (*num_layers)(void *host, int which);  /* layers of that model, or -1 when absent */
    /* Runs model `which` on one token sequence (n tokens, 1 <= n, ids in [0, V), at most
     * the model's positions minus the prompt's) and writes the logits of every token
     * position [n, V] into logits, which holds logits_len floats (>= n * V; for T' the
     * prompt slots are excluded: row i predicts the token after tokens[i]). 0 or -1. */
    int (*forward)(void *host, int which, const int *tokens, int n, float *logits, size_t logits_len, char *err);
    /* Attention mass that each layer of T' puts on the prompt slots, averaged over heads
     * and over the query positions of the n tokens, into mass[0 .. num_layers - 1];
     * mass holds mass_len doubles (>= num_layers(PK_MODEL_PROMPTED_TEACHER)). 0 or -1. */
    int (*prompt_attention)(void *host, const int *tokens, int n, double *mass, int mass_len, char *err);
    /* The soft prompt [P, C] and its initial value: 1, or 0 when there is none, -1 on
     * NULL arguments. */
    int (*prompt)(void *host, const float **prompt, const float **prompt_init, int *P, int *C);

    /* tokenizer */
    int (*encode)(void *host, const char *text, int **ids, int *n, char *err); /* ids: free with free_ids */
    char *(*decode)(void *host, const int *ids, int n); /* 0 <= n <= 1<<20; free with free_text; NULL on error */
    void (*free_ids)(int *ids);
    void (*free_text)(char *text);
    int (*eos_id)(void *host); /* or -1 */

    /* data: split "train", "valid" or "test"; -1 for anything else */
    int (*dataset_size)(void *host, const char *split);
    /* The templated prompt text and the first reference of record i (owned by the host);
     * NULL for a bad split or index. */
    const char *(*dataset_prompt)(void *host, const char *split, int i);
    const char *(*dataset_response)(void *host, const char *split, int i);
    /* Samples a response from model `which` for a prompt text (evaluation decoding,
     * 1 <= max_new_tokens <= the model's positions), returning the response token ids
     * (EOS included when produced). */
    int (*sample)(void *host, int which, const char *prompt_text, int max_new_tokens, unsigned long long seed,
                  int **ids, int *n, char *err);

    /* publishing: shown in the TUI's plugin panel and the REPL, exported like any chart
     * (as "PLUGIN/CHART"). A table replaces the plugin's previous table of the same name;
     * a series replaces the previous series of the same (chart, series) names. 0 or -1. */
    int (*publish_table)(void *host, const char *name, int n_cols, const char *const *headers, int n_rows,
                         const char *const *cells /* n_rows * n_cols, row-major */);
    int (*publish_series)(void *host, const char *chart, const char *series, const double *x, const double *y,
                          int n);
    /* appends x, y to a series (for curves over training) */
    int (*append_point)(void *host, const char *chart, const char *series, double x, double y);
    /* a line for the run's log (and the REPL's output of `plugin run`) */
    void (*log)(void *host, const char *message);

    /* ---- appended in ABI 2 ---- */
    /* The sentence of the previous host call when it failed, "" when it succeeded. */
    const char *(*last_error)(void *host);
} PkHostApi;

typedef struct {
    int abi_version;         /* PROMPTKD_PLUGIN_ABI */
    const char *name;        /* short, unique: used in `plugin run NAME` (PK_PLUGIN_NAME_MAX) */
    const char *description; /* one line */
    size_t state_size;       /* bytes of the host-owned state block (0 .. PK_PLUGIN_MAX_STATE) */
    /* Optional. Called once when loading, with the zeroed state block. 0, or -1 with err. */
    int (*on_load)(const PkHostApi *api, void *state, char *err);
    /* Optional. Called once when the plugin is unloaded (not after a fault). */
    void (*on_unload)(const PkHostApi *api, void *state);
    /* Optional. Called after every training step. 0, or -1 with err (logged; it stays loaded). */
    int (*on_step)(const PkHostApi *api, void *state, const PkPluginStepInfo *info, char *err);
    /* Required. `plugin run NAME ARGS...`: analyse now and publish results. */
    int (*analyze)(const PkHostApi *api, void *state, int argc, const char *const *argv, char *err);
} PkPluginDescriptor;

typedef const PkPluginDescriptor *(*PkPluginEntryFn)(void);

#endif
