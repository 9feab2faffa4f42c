/* MiniLLM (Gu et al., ICLR 2024): reverse-KL distillation by policy gradient, computed as the
 * official code (microsoft/LMOps, minillm/) computes it. The pieces, each a plain function over
 * logits or per-token log-probabilities with explicit shapes:
 *
 *   sampling   responses come from p_mix = alpha p_T + (1 - alpha) q_S, token by token
 *              (teacher-mixed sampling, alpha = 0.2), with both models' KV caches;
 *   weights    w_t = q_S(y_t) / p_mix(y_t) corrects for sampling from p_mix instead of q_S;
 *   rewards    r_t = clip((log p_T(y_t) - log q_S(y_t)) / reward_scaling, +-reward_clip);
 *   returns    R_t = sum_{k >= t} gamma^(k - t) r_k, divided by the number of response tokens
 *              left from t on (length normalisation), then whitened over the batch's
 *              [B, response window] grid (zeros past each response's end included);
 *   pg loss    mean over response tokens of max(-A rho, -A clip(rho, 1 - c, 1 + c)),
 *              rho = exp(log q_S - log q_S_old) w (the clipped, importance-weighted policy
 *              gradient: the long-term part);
 *   reg loss   the exact per-token reverse KL(q_S || p_T) over the vocabulary (the single-step
 *              part), through div_rows (core/divergence.h);
 *   pt loss    on packed pretraining text: (1 - kd_ratio) CE + kd_ratio CE(p_T, q_S), added with
 *              weight lm_coef.
 *
 * Shapes: V = vocabulary size; n = response tokens of a batch in row-major order (row b's tokens
 * y_0 .. y_{len_b - 1} follow row b-1's); [B, R] grids hold row b's token j at b*R + j.
 * Nothing here prints or exits; functions that can fail return PK_OK / PK_FAIL and fill err. */
#ifndef PK_MINILLM_H
#define PK_MINILLM_H

#include <stddef.h>

#include "common.h"
#include "gpt2.h"
#include "tokenizer.h"

/* ---- one vocabulary row */

/* log softmax(logits)[y] of one row logits [V], in double. */
double minillm_token_logprob(const float *logits, int V, int y);

/* mix [V] = alpha softmax(t_logits) + (1 - alpha) softmax(s_logits); t_logits, s_logits [V]. */
void minillm_mix_probs(const float *t_logits, const float *s_logits, int V, float alpha, float *mix);

/* The token whose cumulative probability first exceeds u * sum(probs), u in [0, 1); probs [V]
 * (zeros are never chosen). */
int minillm_draw(const float *probs, int V, double u);

/* Adds g * d(log softmax(logits)[y]) / d(logits) = g (onehot(y) - softmax(logits)) into
 * dlogits [V]; logits [V]. */
void minillm_logprob_backward(const float *logits, int V, int y, float g, float *dlogits);

/* ---- per response token */

/* For n response tokens, from the teacher's and the (sampling-time) student's log-probs of
 * the sampled tokens t_logp [n], s_logp [n]:
 *   w [n]       = exp(s_logp - log((1 - alpha) exp(s_logp) + alpha exp(t_logp)))  (1 when alpha = 0)
 *   rewards [n] = (t_logp - s_logp) / reward_scaling, clipped to [-reward_clip, reward_clip]
 *                 (reward_clip = 0: no clipping, as the official `if cliprange_reward`). */
void minillm_weights_rewards(int n, const float *t_logp, const float *s_logp, float alpha, float reward_scaling,
                             float reward_clip, float *w, float *rewards);

/* Advantages on a [B, R] grid from rewards [B, R] (row b's first lens[b] entries are its
 * tokens, the rest must be 0) and lens [B] (0 <= lens[b] <= R):
 *   returns[b, t] = rewards[b, t] + gamma returns[b, t + 1]   (over the whole row)
 *   adv[b, t]     = returns[b, t] / max(1, lens[b] - t)       (tokens left from t on)
 * then, with whiten != 0, adv = (adv - mean) / sqrt(var + 1e-8) over all B * R entries (var
 * with Bessel's correction, as torch.var_mean). Fails when B * R < 2 and whitening. */
int minillm_advantages(const float *rewards, const int *lens, int B, int R, float gamma, int whiten, float *adv,
                       char *err);

/* The whitening above in its two passes, for a grid whose rows are spread over the ranks of a
 * data-parallel run: each rank sums its part of each pass, the caller sums the parts over the
 * ranks (mean = sum / total), then every rank whitens its part with the same two numbers:
 *   x = (x - mean) / sqrt(squared_deviations / (total - 1) + 1e-8)   (total >= 2 entries in all) */
double minillm_sum(const float *x, size_t n);
double minillm_squared_deviations(const float *x, size_t n, double mean);
void minillm_whiten(float *x, size_t n, double mean, double squared_deviations, size_t total);

/* The clipped importance-weighted policy-gradient loss over n response tokens, as a mean over
 * `count` tokens (n in one process; the whole batch's tokens when these n are one rank's share):
 *   rho_i = exp(logp_i - old_logp_i) w_i
 *   loss  = (1/count) sum_i max(-adv_i rho_i, -adv_i clamp(rho_i, 1 - clip, 1 + clip))
 * logp, old_logp, w, adv [n]. Writes dlogp [n] = d loss / d logp_i (0 where the clamped branch is
 * strictly larger; where both branches are equal, as inside the clip range, -adv_i rho_i / count,
 * as autograd's max splits a tie and clamp passes its gradient inside its range). dlogp may be NULL. */
double minillm_pg_loss(int n, const float *logp, const float *old_logp, const float *w, const float *adv, float clip,
                       long count, float *dlogp);

/* Soft cross-entropy of student rows against teacher rows, -sum_v p_T(v) log q_S(v), summed over n
 * rows: t_logits [n, V], s_logits [n, V]; with dlogits [n, V] != NULL also adds
 * scale * (q_S - p_T) (its gradient with respect to s_logits). Returns the sum over rows. */
double minillm_soft_cross_entropy(const float *t_logits, const float *s_logits, int n, int V, float scale,
                                  float *dlogits);

/* ---- teacher-mixed sampling */

/* B responses sampled token by token from alpha p_T + (1 - alpha) q_S (temperature 1, no
 * filters), both models decoding with their KV caches. prompts[b] has prompt_lens[b] >= 1 tokens;
 * row b generates up to min(max_new_tokens, n_positions - prompt_lens[b]) tokens (n_positions
 * of the smaller model) and stops after eos_id (kept). Row b's draws come from the PkRng of
 * sample_row_rng(seed, row_index ? row_index[b] : b), one draw per token, so a row's output
 * depends on its prompt, index and seed only. Output: out_tokens [B, max_new_tokens] (-1 past
 * out_lens[b]), out_lens [B]. The models need the same vocabulary. */
int minillm_sample_mixed(GPT2 *student, GPT2 *teacher, const int *const *prompts, const int *prompt_lens, int B,
                         float alpha, int max_new_tokens, int eos_id, unsigned long long seed, const long *row_index,
                         int *out_tokens, int *out_lens, char *err);

/* ---- pretraining text for the language-modelling term */

/* Documents of a JSONL file ({"text": ...} per line), each tokenised and followed by EOS, packed
 * back to back and cut into chunks of chunk_len tokens (the remainder is dropped), as the
 * official preprocessing packs OpenWebText. A chunk gives chunk_len - 1 inputs and their next
 * tokens as targets. The order of chunks is a shuffle per pass over them, a function of (seed,
 * pass) only, so a run needs no state beyond its update count to resume. */
typedef struct {
    int *tokens;   /* [n_chunks, chunk_len] */
    int n_chunks, chunk_len;
    unsigned long long seed;
    int *order;    /* [n_chunks] the shuffle of pass order_pass */
    long order_pass;
} MinillmPretrain;

int minillm_pretrain_load(MinillmPretrain **out, const char *path, const Tokenizer *tok, int eos_id, int chunk_len,
                          unsigned long long seed, char *err);
void minillm_pretrain_free(MinillmPretrain *p);
/* The B chunks of update `update` (0-based): chunk number update * B + b of the endless sequence of
 * passes. tokens, targets [B, chunk_len - 1]: inputs chunk[0 .. L-2], targets chunk[1 .. L-1]. */
int minillm_pretrain_batch(MinillmPretrain *p, long update, int B, int *tokens, int *targets, char *err);

#endif
