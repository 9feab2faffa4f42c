/* promptkd analysis plugins: the whole contract between the program and a plugin.
 *
 * A plugin is a shared object exporting
 *     const PkPluginDescriptor *promptkd_plugin_entry(void);
 * The host dlopen()s it, calls the entry point, refuses it unless
 * descriptor->abi_version == PROMPTKD_PLUGIN_ABI and every required field is set
 * (name, analyze), then calls on_load. It never includes another promptkd header:
 * everything it may use comes through the PkHostApi table below, which is read-only
 * on the run except for what a plugin publishes (tables and chart series).
 *
 * Threads: on_step runs on the training worker between two steps; analyze runs
 * when a person asks (the REPL's or TUI's `plugin run NAME ARGS`) with the run
 * paused. Host functions are only valid during those calls.
 *
 * Versioning: PROMPTKD_PLUGIN_ABI changes whenever a struct here changes layout or
 * meaning; new host functions are appended at the end of PkHostApi and announced
 * by api->num_functions, so an older plugin keeps working with a newer host. */
#ifndef PROMPTKD_PLUGIN_H
#define PROMPTKD_PLUGIN_H

#include <stddef.h>

#define PROMPTKD_PLUGIN_ABI 1
#define PROMPTKD_PLUGIN_ENTRY "promptkd_plugin_entry"

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

    /* models: 1 when present (T' needs a soft prompt, T a teacher) */
    int (*has_model)(void *host, int which);
    int (*vocab_size)(void *host);
    int (*num_layers)(void *host, int which);
    /* Runs model `which` on one token sequence (n tokens, no padding) and writes the
     * logits of every token position [n, V] into logits (for T' the prompt slots are
     * excluded: row i predicts the token after tokens[i]). Returns 0 or -1 with err. */
    int (*forward)(void *host, int which, const int *tokens, int n, float *logits, char *err);
    /* Attention mass that each layer of T' puts on the prompt slots, averaged over heads
     * and over the query positions of the n tokens: mass [num_layers]. */
    int (*prompt_attention)(void *host, const int *tokens, int n, double *mass, char *err);
    /* The soft prompt [P, C] and its initial value; 0 when there is none. */
    int (*prompt)(void *host, const float **prompt, const float **prompt_init, int *P, int *C);

    /* tokenizer */
    int (*encode)(void *host, const char *text, int **ids, int *n, char *err); /* ids: free with free_ids */
    char *(*decode)(void *host, const int *ids, int n);                        /* free with free_text */
    void (*free_ids)(int *ids);
    void (*free_text)(char *text);
    int (*eos_id)(void *host);

    /* data: split "train", "valid" or "test" */
    int (*dataset_size)(void *host, const char *split);
    /* The templated prompt text and the first reference of record i (owned by the host). */
    const char *(*dataset_prompt)(void *host, const char *split, int i);
    const char *(*dataset_response)(void *host, const char *split, int i);
    /* Samples a response from model `which` for a prompt text (evaluation decoding),
     * returning the response token ids (EOS included when produced). */
    int (*sample)(void *host, int which, const char *prompt_text, int max_new_tokens, unsigned long long seed,
                  int **ids, int *n, char *err);

    /* publishing: shown in the TUI's plugin panel and the REPL, exported like any chart.
     * A table replaces the plugin's previous table of the same name; a series replaces
     * the previous series of the same (chart, series) names. */
    int (*publish_table)(void *host, const char *name, int n_cols, const char *const *headers, int n_rows,
                         const char *const *cells /* n_rows * n_cols, row-major */);
    int (*publish_series)(void *host, const char *chart, const char *series, const double *x, const double *y,
                          int n);
    /* appends x, y to a series (for curves over training) */
    int (*append_point)(void *host, const char *chart, const char *series, double x, double y);
    void (*log)(void *host, const char *message);
} PkHostApi;

typedef struct {
    int abi_version;         /* PROMPTKD_PLUGIN_ABI */
    const char *name;        /* short, unique: used in `plugin run NAME` */
    const char *description; /* one line */
    /* Optional. Called once after loading; *state is the plugin's own. Return 0 or -1 with err. */
    int (*on_load)(const PkHostApi *api, void **state, char *err);
    /* Optional. Called once before dlclose. */
    void (*on_unload)(void *state);
    /* Optional. Called after every training step on the worker thread. */
    int (*on_step)(const PkHostApi *api, void *state, const PkPluginStepInfo *info, char *err);
    /* Required. `plugin run NAME ARGS...`: analyse now and publish results. */
    int (*analyze)(const PkHostApi *api, void *state, int argc, const char *const *argv, char *err);
} PkPluginDescriptor;

/* err buffers passed to plugins hold at least this many bytes */
#define PK_PLUGIN_ERR_LEN 512

typedef const PkPluginDescriptor *(*PkPluginEntryFn)(void);

#endif
