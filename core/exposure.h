/* Exposure bias as ExAccErr (Arora et al. 2022, as MiniLLM and PromptKD compute it;
 * DESIGN.md section 4). The oracle is the teacher, or the prompted teacher T' when a soft
 * prompt is given. For a sequence y continuing a prompt x, the per-step error at generated
 * position t is
 *     e_t(y) = KL(p_oracle(. | x, y<t) || q_student(. | x, y<t)),
 * both models teacher-forced on the same tokens, over the full vocabulary. Then
 *     R(l)       = sum_{t<=l} E_{y ~ student}[e_t(y)]
 *     l * eps(l) = sum_{t<=l} E_{y ~ oracle}[e_t(y)]
 *     ExAccErr(l) = (R(l) - l eps(l)) / (l eps(l)) * 100.
 * Expectations are means over n_prompts prompts x K samples each. As Arora et al. and MiniLLM
 * do, every sample is a fixed-length continuation of exactly L tokens drawn at temperature 1
 * with no filters, EOS being an ordinary token (no sequence ends early, so every e_t averages
 * over all samples). Student samples use row indices p*K + k of seed's RNG streams, oracle
 * samples indices n_prompts*K + p*K + k, so the two sets are independent and reproducible. */
#ifndef PK_EXPOSURE_H
#define PK_EXPOSURE_H

#include "gpt2.h"

/* The arithmetic. err_student [n_student, L] and err_oracle [n_oracle, L] hold e_t at index t-1
 * of sequences sampled from the student and from the oracle. Fills, for l = 1..L at index l-1:
 * R [L], l_eps [L] and exaccerr [L] (percent). Where l_eps is 0, exaccerr is 0 if R is 0 too,
 * else NaN (undefined). Fails on empty inputs or a non-finite error. */
int exposure_curve(const double *err_student, int n_student, const double *err_oracle, int n_oracle, int L,
                   double *R, double *l_eps, double *exaccerr, char *err);

/* Per-step errors of n_prompts * K sequences sampled from `generator` (with its soft prompt
 * gen_prompt [gen_P, C], or NULL / 0): for each prompt p and sample k, L tokens are drawn with
 * the RNG of row index index_offset + p*K + k, then e_t is scored with the oracle (with
 * oracle_prompt [oracle_P, C], or NULL / 0) against the student. errors [n_prompts * K, L],
 * row p*K + k. The three models must share the vocabulary; every prompt plus soft prompt plus
 * L tokens must fit each model's positions (the message says by how much it does not). */
int exposure_errors(GPT2 *generator, const float *gen_prompt, int gen_P, GPT2 *oracle, const float *oracle_prompt,
                    int oracle_P, GPT2 *student, const int *const *prompts, const int *prompt_lens, int n_prompts,
                    int K, int L, unsigned long long seed, long index_offset, double *errors, char *err);

/* The whole measurement: student samples, oracle samples, their errors and the curve.
 * soft_prompt [P, C] makes the oracle T' (NULL / 0: the plain teacher). Outputs [L] each. */
int exposure_measure(GPT2 *oracle, const float *soft_prompt, int P, GPT2 *student, const int *const *prompts,
                     const int *prompt_lens, int n_prompts, int K, int L, unsigned long long seed, double *R,
                     double *l_eps, double *exaccerr, char *err);

#endif
