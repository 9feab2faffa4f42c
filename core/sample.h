/* Decoding: token choice from one logits row (temperature, top-k, top-p, no-repeat-n-gram,
 * greedy) and batched generation with the KV cache, with or without a soft prompt.
 *
 * Token choice follows Hugging Face generate(): first the no-repeat-n-gram ban
 * (NoRepeatNGramLogitsProcessor, over the row's prompt + generated tokens; left padding and
 * soft-prompt slots are not tokens and never count), then, when sampling, temperature, top-k
 * (TopKLogitsWarper: keeps every token whose score is >= the k-th largest, so ties at the
 * k-th value are all kept), top-p (TopPLogitsWarper: the smallest set of most probable
 * tokens whose probability sums to >= top_p, always at least one; among tokens with equal
 * scores the lower id counts as the more probable). Greedy takes the argmax of the banned
 * scores (lowest id on ties) and draws no random number.
 *
 * Randomness and reproducibility: every generated row owns one PkRng derived from
 * (seed, the row's global example index) by sample_row_rng; a sampled token costs exactly
 * one draw of that row's RNG and a finished row draws nothing more. So a row's output
 * depends on its prompt, its index and the seed only: not on the batch size, the other rows
 * of the batch, their order or the thread count. */
#ifndef PK_SAMPLE_H
#define PK_SAMPLE_H

#include "common.h"
#include "gpt2.h"
#include "tokenizer.h"

typedef struct {
    float temperature;        /* > 0; scores are divided by it (not used when greedy) */
    int top_k;                /* 0: off */
    float top_p;              /* 1.0: off; values <= 0 keep only the most probable token */
    int no_repeat_ngram_size; /* 0: off */
    int max_new_tokens;       /* >= 0 */
    int eos_id;               /* a row stops after producing it (kept in the output); -1: never stops early */
    int greedy;               /* 1: argmax */
} SampleOptions;

/* Evaluation decoding of DESIGN.md section 4: sampling, temperature 1, top-k off, top-p 1,
 * no_repeat_ngram_size 6, 256 new tokens, stop at eos_id. */
void sample_options_eval(SampleOptions *o, int eos_id);
/* On-policy sampling of DESIGN.md section 3: temperature 1, no filters, no n-gram ban. */
void sample_options_plain(SampleOptions *o, int eos_id, int max_new_tokens);
/* Checks the options against a vocabulary size; the message names the field. */
int sample_options_check(const SampleOptions *o, int vocab_size, char *err);

/* The RNG of one generated row: a function of (seed, example_index) only. */
void sample_row_rng(PkRng *r, unsigned long long seed, long example_index);

/* Scratch space of one row's token choice for a vocabulary of V. */
typedef struct {
    int V;
    float *scores; /* [V] */
    int *ids;      /* [V] */
} SampleScratch;
int sample_scratch_init(SampleScratch *s, int V, char *err);
void sample_scratch_free(SampleScratch *s);

/* Writes into scores [V] the processed scores of one logits row: n-gram bans, and when not
 * greedy, temperature, top-k and top-p; removed tokens are -INFINITY (NaN logits count as
 * removed). history [n_history] = the row's prompt + generated tokens. ids [V] is scratch. */
void sample_process_logits(const SampleOptions *o, const float *logits, int V, const int *history, int n_history,
                           float *scores, int *ids);

/* The next token of one row from its logits [V]: processes the scores (above), then greedy
 * argmax or one draw from the softmax of the surviving scores. If every token was removed
 * (an n-gram ban over a tiny vocabulary), falls back to the argmax of the raw logits.
 * logits are not modified. */
int sample_next_token(const SampleOptions *o, const float *logits, int V, const int *history, int n_history,
                      PkRng *rng, SampleScratch *scratch);

/* Batched generation with the KV cache. B prompts (prompts[b], prompt_lens[b] >= 1 tokens;
 * 0 is allowed only with a soft prompt) are left-padded to a common length; a soft prompt
 * [P, C] (NULL when P = 0) takes the P slots before each row's tokens (the prompted teacher
 * T'). Row b generates up to min(max_new_tokens, n_positions - P - prompt_lens[b]) tokens:
 * generation is clipped to the model's positions, and a row whose prompt does not fit fails.
 * It stops after EOS (kept). row_index [B] gives each row's global example index for its RNG
 * (NULL: 0..B-1). Output: out_tokens [B, max_new_tokens] row-major (row b holds out_lens[b]
 * tokens, the rest is -1), out_lens [B]. */
int sample_generate(GPT2 *m, const int *const *prompts, const int *prompt_lens, int B, const float *soft_prompt,
                    int P, const SampleOptions *o, unsigned long long seed, const long *row_index, int *out_tokens,
                    int *out_lens, char *err);

/* The batching of every KV-cache decode (sample_generate, minillm's teacher-mixed sampling):
 * row b may generate budget[b] = min(max_new_tokens, max_positions - P - prompt_lens[b])
 * tokens (out_lens[b] starts at 0); rows sorted by prompt length (then index) share one cache
 * while left padding to the group's longest prompt, P soft-prompt slots and the group's largest
 * budget fit max_positions. run_group decodes one such group, rows[g] indexing the caller's
 * rows, T_pad its longest prompt and max_budget its largest budget; grouping changes nothing in
 * the outputs, rows never influence each other. */
typedef int (*SampleGroupFn)(void *ctx, const int *rows, int G, int T_pad, int max_budget, const int *budget,
                             char *err);
/* The caller's rows of a batched decode and where their tokens go, as sample_generate takes them:
 * row b's prompt, its RNG row (row_index[b], or b), out_tokens [B, max_new_tokens], out_lens [B]. */
typedef struct {
    const int *const *prompts;
    const int *prompt_lens;
    unsigned long long seed;
    const long *row_index;
    int max_new_tokens;
    int *out_tokens, *out_lens;
} SampleRows;
/* Starts row b of a group in its cache row tokens[P + T_pad]: left padding (pad_id) to T_pad,
 * P soft-prompt slots, then the prompt from *row_start = T_pad - prompt_lens[b]; seeds its RNG
 * and empties its output. Returns 1 when the row may generate (budget > 0). */
int sample_row_begin(const SampleRows *r, int b, int P, int T_pad, int pad_id, int budget, int *tokens,
                     int *row_start, PkRng *rng);
int sample_in_groups(const int *prompt_lens, int B, int P, int max_positions, int max_new_tokens, int *out_lens,
                     SampleGroupFn run_group, void *ctx, char *err);

/* Teacher-forcing layout for scoring sampled responses (on-policy losses, exposure errors).
 * Sequence of row b: s = prompt_b + response_b, n = prompt_lens[b], L = n + resp_lens[b], with
 * response_b = responses + b * resp_stride (EOS included when it was generated).
 * Row b of tokens: P placeholder slots (pad_id; a soft prompt replaces them), then
 * s[0 .. L - 2], then pad_id (right padding). targets[b, P + t] = s[t + 1] when t + 1 >= n
 * (a response token), else -1; placeholders and padding are -1. So the last prompt token's
 * slot predicts the first response token. T = *T_out = max(1, max_b (P + L - 1)); tokens and
 * targets are [B, T] row-major in caller buffers of B * max_T ints each; lengths [B]
 * (may be NULL) = P + L - 1 slots in use. Fails when a row does not fit max_T or a prompt is empty. */
int sample_scoring_batch(const int *const *prompts, const int *prompt_lens, const int *responses, int resp_stride,
                         const int *resp_lens, int B, int P, int max_T, int pad_id, int *tokens, int *targets,
                         int *lengths, int *T_out, char *err);

/* Training responses cut by a length limit end with EOS: row b's last token
 * (responses[b * stride + lens[b] - 1], lens[b] >= 1) becomes eos_id unless it already is, as the
 * official PromptKD code forces it (train_promptkd.py sets the last response slot to the pad
 * token, which is EOS for GPT-2). A row that stopped at EOS by itself is unchanged. */
void sample_end_with_eos(int *responses, int stride, const int *lens, int B, int eos_id);

/* The text of a generated row: ids up to the first eos_id (excluded; -1: none), decoded; bytes
 * that are not valid UTF-8 (a character cut by the end of generation) each become U+FFFD, as
 * Python's decode(errors="replace") does for lone bytes; with strip, leading and trailing
 * whitespace (Python's str.strip() ASCII set: space, \t \n \v \f \r, \x1c-\x1f) is removed.
 * *out is malloc'ed and NUL-terminated. */
int sample_decode_text(const Tokenizer *tok, const int *ids, int n, int eos_id, int strip, char **out, char *err);

#endif
