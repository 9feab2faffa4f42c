/* Model folders for the commands that make or write whole models (sft, pretrain). */
#ifndef PK_MODEL_IO_H
#define PK_MODEL_IO_H

#include "gpt2.h"
#include "tokenizer.h"

/* Parses "layers=L,embd=C,heads=H[,positions=N][,inner=F]" into an architecture with the given
 * vocabulary and EOS (256 positions, n_inner 4 C, tied LM head and GPT-2's dropout 0.1 unless said). */
int model_parse_init(const char *spec, int vocab, int eos, GPT2Config *g, char *err);

/* A model and its tokenizer, checked to share one vocabulary, and when prompt_path is set a soft
 * prompt for the model ([*P, the model's width], malloc'ed into *prompt), as the commands that read
 * a model (eval, generate, exposure, neighbours) take them. 0, or 1 after one "promptkd CMD: ..."
 * message; the caller frees whatever was loaded, on failure too. */
int model_load_with_tokenizer(const char *cmd, const char *model_dir, GPT2 *m, const char *tok_dir, Tokenizer **tok,
                              const char *prompt_path, float **prompt, int *P);

/* Refuses an output model folder before any work is done: one that holds files promptkd did not
 * write (see pk_model_folder_check), or that is, holds or lies inside a run folder's own parts
 * (pk_run_folder_conflict). PK_OK when `out` may be written. */
int model_folder_check_target(const char *out, char *err);

/* Writes the model as an HF folder at out (config.json + model.safetensors): built in
 * out.tmp.PID, then swapped in whole; the same refusals as model_folder_check_target. */
int model_save_folder_atomic(const GPT2 *m, const char *out, char *err);

#endif
