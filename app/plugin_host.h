/* Loads analysis plugins (plugins/promptkd_plugin.h), checks their ABI, runs each of
 * their calls in a child process over a copy-on-write snapshot of the live engine,
 * and keeps what they publish (tables and chart series) for the TUI, the REPL and
 * PNG/JSON export. A plugin that crashes, aborts, exits, hangs past its time limit
 * or sends malformed output is unloaded with one message; the session goes on. */
#ifndef PK_PLUGIN_HOST_H
#define PK_PLUGIN_HOST_H

#include <stddef.h>

#include "chart.h"
#include "common.h"
#include "engine.h"

typedef struct PluginHost PluginHost;

int plugin_host_create(PluginHost **out, Engine *engine, char *err);
void plugin_host_destroy(PluginHost *h); /* unloads every plugin */

#define PLUGIN_HOST_MAX_TIMEOUT 86400 /* seconds */

/* The time limit of a plugin call when none is given (PK_PLUGIN_DEFAULT_TIMEOUT at
 * first); set_timeout refuses anything outside (0, PLUGIN_HOST_MAX_TIMEOUT]. */
double plugin_host_timeout(PluginHost *h);
int plugin_host_set_timeout(PluginHost *h, double seconds, char *err);

/* Loads a plugin file (a path, or a bare name looked up next to the program as
 * plugins/NAME.so, then as build/plugins/NAME.so): a child dlopen()s it, checks the descriptor and runs on_load.
 * A file that is not a shared object, lacks the entry point, has another ABI version
 * or misses a required callback is refused with a sentence naming the file and the
 * problem; a crash or hang while loading is reported the same way. timeout_s > 0 is
 * this plugin's time limit for loading, on_step and on_unload (0: the default). */
int plugin_host_load(PluginHost *h, const char *path, double timeout_s, PkBuf *out, char *err);
/* Runs on_unload (in a child; a fault is reported in out and it is unloaded anyway). */
int plugin_host_unload(PluginHost *h, const char *name, PkBuf *out, char *err);
void plugin_host_list(PluginHost *h, PkBuf *out);
/* Runs the plugin's analyze (timeout_s > 0: this call's limit) on the engine's worker
 * between two steps (a running run goes on afterwards), and appends its log lines and
 * tables to out. A fault unloads the plugin and fails with the sentence. */
int plugin_host_run(PluginHost *h, const char *name, int argc, const char *const *argv, double timeout_s, PkBuf *out,
                    char *err);
/* The same three commands as work for the engine's queue (ENGINE_CMD_WORK): the job is
 * made on the client thread (arguments checked and copied, a plugin file opened; NULL
 * with err when refused), run by plugin_job_work on the worker, and freed by
 * plugin_job_free (the engine's ctx_free). load, unload and run above are a job posted
 * and waited for (engine_work). */
typedef struct PluginJob PluginJob;
PluginJob *plugin_job_load(PluginHost *h, const char *path, double timeout_s, char *err);
PluginJob *plugin_job_unload(PluginHost *h, const char *name, char *err);
PluginJob *plugin_job_run(PluginHost *h, const char *name, int argc, const char *const *argv, double timeout_s,
                          char *err);
struct DistillState;
int plugin_job_work(void *job, struct DistillState *ds, PkBuf *out, char *err);
void plugin_job_free(void *job);

/* Moves the messages of faults seen outside a command (an on_step that crashed or
 * timed out during training: the plugin was unloaded) into out; they are also in the
 * run's log. Whatever is left at plugin_host_destroy goes to stderr. */
void plugin_host_take_notices(PluginHost *h, PkBuf *out);

/* Published charts, named "PLUGIN/CHART". */
int plugin_host_chart_names(PluginHost *h, char names[][64], int max);
int plugin_host_build_chart(PluginHost *h, const char *name, Chart *out, char *err);
/* Published tables as aligned text (header first); NULL past the end. Caller frees. */
char *plugin_host_table_text(PluginHost *h, int i, char *title, size_t title_len);
/* Writes every published table and chart series as one JSON object, atomically. */
int plugin_host_export_json(PluginHost *h, const char *path, char *err);

#endif
