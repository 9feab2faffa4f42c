/* Loads analysis plugins (plugins/promptkd_plugin.h), checks their ABI, gives them
 * the host API table over a live engine, and keeps what they publish (tables and
 * chart series) for the TUI, the REPL and PNG/JSON export. */
#ifndef PK_PLUGIN_HOST_H
#define PK_PLUGIN_HOST_H

#include <stddef.h>

#include "chart.h"
#include "common.h"
#include "engine.h"

typedef struct PluginHost PluginHost;

int plugin_host_create(PluginHost **out, Engine *engine, char *err);
void plugin_host_destroy(PluginHost *h); /* unloads every plugin */

/* Loads a plugin file (a path, or a bare name looked up as build/plugins/NAME.so and
 * next to the program). A file that is not a shared object, lacks the entry point,
 * has another ABI version or misses a required callback is refused with a sentence
 * naming the file and the problem; the host stays usable. */
int plugin_host_load(PluginHost *h, const char *path, PkBuf *out, char *err);
int plugin_host_unload(PluginHost *h, const char *name, char *err);
void plugin_host_list(PluginHost *h, PkBuf *out);
/* Pauses the engine, runs the plugin's analyze, and appends its tables to out. */
int plugin_host_run(PluginHost *h, const char *name, int argc, const char *const *argv, PkBuf *out, char *err);

/* Published charts, named "PLUGIN/CHART". */
int plugin_host_chart_names(PluginHost *h, char names[][64], int max);
int plugin_host_build_chart(PluginHost *h, const char *name, Chart *out, char *err);
/* Published tables as aligned text (header first); NULL past the end. Caller frees. */
char *plugin_host_table_text(PluginHost *h, int i, char *title, size_t title_len);
/* Writes every published table and chart series as one JSON object, atomically. */
int plugin_host_export_json(PluginHost *h, const char *path, char *err);

#endif
