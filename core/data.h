/* Instruction datasets: loading (Dolly, Alpaca, Self-Instruct, plain prompt/response; JSONL or one
 * JSON array), the Alpaca prompt template, tokenised views with the prompt-length filter,
 * deterministic shuffles and splits, and right-padded teacher-forcing batches.
 *
 * Formats, detected per file from the fields of its first record (every record of a file must then
 * have the same format; the required fields must be non-empty strings):
 *   dolly     {"instruction", "context", "response", "category"}  required: instruction, response;
 *             context may be empty or absent (it is the input); category absent -> "dolly"
 *   alpaca    {"instruction", "input", "output"}                 required: instruction, output;
 *             input may be empty or absent; category "alpaca"
 *   selfinst  {"instruction", "instances": [{"input", "output"}, ...]}  required: instruction and at
 *             least one instance; every instance's output is a reference (non-empty); the record's
 *             input is the first instance's input; category "selfinst"
 *   plain     {"prompt", "response"}                              both required; the prompt is used
 *             verbatim (no template); instruction = prompt, input = ""; category "plain"
 * Detection order: "instances" -> selfinst, "prompt" -> plain, "output" -> alpaca,
 * "response" -> dolly.
 * Blank lines in JSONL are ignored. A file whose first non-blank byte is '[' is one JSON array of
 * records; its errors name the line where the bad element starts.
 */
#ifndef PK_DATA_H
#define PK_DATA_H

#include "tokenizer.h"

typedef struct {
    char *category;    /* Dolly's category, or "selfinst" / "alpaca" / "plain" */
    char *instruction; /* the instruction (for plain: the prompt) */
    char *input;       /* context/input, "" when there is none */
    char *prompt;      /* the text given to the model: the Alpaca template, or the plain prompt */
    char **refs;       /* n_refs >= 1 reference responses; refs[0] is the training response */
    int n_refs;
    int line;          /* 1-based line of the record in its file */
} DataRecord;

typedef struct {
    DataRecord *recs;
    int n;
    int n_skipped;     /* bad lines skipped when loaded with skip_bad */
    char format[16];   /* "dolly", "alpaca", "selfinst" or "plain" */
} Dataset;

/* Loads path into d (zeroed first). Errors name the file and line: malformed JSON, a record that is
 * not an object, missing / empty / wrongly typed required fields, a format different from the
 * file's, invalid UTF-8 (with the byte offset in the line). With skip_bad, such lines are skipped
 * and counted in d->n_skipped instead (a malformed JSON array file still fails). An empty dataset
 * (after skipping) is an error. On failure d holds nothing to free. */
int data_load(Dataset *d, const char *path, int skip_bad, char *err);
void data_free(Dataset *d);

/* The Alpaca template (DESIGN.md section 3), malloc'ed; input NULL or "" selects the form without
 * input:
 * "Below is an instruction that describes a task[, paired with an input that provides further
 * context]. Write a response that appropriately completes the request.\n\n### Instruction:\n
 * {instruction}\n\n[### Input:\n{input}\n\n]### Response:\n". Returns NULL when out of memory. */
char *data_format_prompt(const char *instruction, const char *input);

/* One tokenised record: prompt ids, then response ids = encode(refs[0]) + EOS (cut to
 * max_response_len when that is > 0; a cut response has no EOS). */
typedef struct {
    int *prompt;
    int prompt_len;
    int *response;
    int response_len;
    int rec; /* index into Dataset.recs */
} TokExample;

/* A language-modelling corpus: path holds one JSON object per line with a string field "text" (one
 * document; other fields are ignored, blank lines skipped). Every document is encoded (allow_special
 * = 0) and followed by EOS, and the documents are concatenated in file order into one stream
 * *ids [*n_ids] (malloc'ed), as GPT-2's pretraining text was packed. Errors name the file and line
 * (malformed JSON, a missing or non-string "text", invalid UTF-8, NUL); a corpus with no token, or a
 * tokenizer without EOS, is refused. n_docs may be NULL. */
int data_load_corpus(const char *path, const Tokenizer *tok, int **ids, size_t *n_ids, int *n_docs, char *err);

/* Encodes every record (text encoded with allow_special = 0). Records whose prompt is longer than
 * max_prompt_len tokens (when > 0) are dropped and counted in *n_dropped. *out (n_out entries) is
 * malloc'ed; free with data_free_tokenized. Fails when the tokenizer has no EOS, or when every
 * record is dropped. */
int data_tokenize(const Dataset *d, const Tokenizer *tok, int max_prompt_len, int max_response_len,
                  TokExample **out, int *n_out, int *n_dropped, char *err);
void data_free_tokenized(TokExample *ex, int n);

/* The prompts of the first n records as token ids (no special tokens), each cut to its first
 * max_tokens: ids[i] malloc'ed, lens[i], in caller arrays of n (zeroed). A prompt with no tokens
 * fails, named "WHAT record I (line L)". On failure the rows made so far stay for data_free_rows. */
int data_encode_prompts(const Dataset *d, const Tokenizer *tok, int n, int max_tokens, const char *what, int **ids,
                        int *lens, char *err);
/* Frees rows[0..n) and rows (NULL: nothing). */
void data_free_rows(int **rows, int n);

/* Fills idx with a permutation of 0..n-1 that depends only on (n, seed) (PkRng Fisher-Yates). */
void data_shuffle_indices(int *idx, int n, unsigned long long seed);

/* A split of 0..n-1 into three disjoint index sets whose union is everything: the permutation
 * data_shuffle_indices(n, seed) is cut into n_train, n_valid = round(n * valid_frac),
 * n_test = round(n * test_frac) in that order. Fractions must be in [0, 1) and leave at least one
 * training example. Each array is malloc'ed (NULL when its count is 0); free with data_split_free. */
typedef struct {
    int *train, *valid, *test;
    int n_train, n_valid, n_test;
} DataSplit;
int data_split(int n, double valid_frac, double test_frac, unsigned long long seed, DataSplit *out, char *err);
void data_split_free(DataSplit *s);

/* Teacher-forcing batch of B examples ex[which[b]] (which NULL: ex[0..B-1]).
 * Sequence of example b: s = prompt + response, L = prompt_len + response_len.
 * Row b of tokens holds s[0 .. len_b - 1] with len_b = min(L - 1, max_T), then pad_id;
 * targets[b, t] = s[t + 1] when s[t + 1] is a response token (t >= prompt_len - 1), else -1
 * (prompt and padding). So the last prompt position predicts the first response token and the
 * position before EOS predicts EOS.
 * Output layout: tokens and targets are [B, T] row-major with T = *T_out = max_b len_b
 * (the caller provides B * max_T ints for each); lengths[b] = len_b (lengths may be NULL).
 * Fails (naming the example) when a prompt leaves no room for a target (prompt_len > max_T) or an
 * example has no response token. */
int data_batch_teacher_forcing(const TokExample *ex, const int *which, int B, int max_T, int pad_id,
                               int *tokens, int *targets, int *lengths, int *T_out, char *err);

#endif
