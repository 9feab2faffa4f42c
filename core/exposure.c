#include "exposure.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "divergence.h"
#include "parallel.h"
#include "sample.h"

int exposure_curve(const double *err_student, int n_student, const double *err_oracle, int n_oracle, int L,
                   double *R, double *l_eps, double *exaccerr, char *err) {
    if (L < 1) return pk_errf(err, "ExAccErr: the length L must be >= 1, got %d", L);
    if (n_student < 1 || n_oracle < 1)
        return pk_errf(err, "ExAccErr: needs at least one student and one oracle sequence (got %d and %d)", n_student,
                       n_oracle);
    for (size_t i = 0; i < (size_t)n_student * L; i++)
        if (!isfinite(err_student[i]))
            return pk_errf(err, "ExAccErr: student sequence %zu has a non-finite error at step %zu", i / L + 1,
                           i % L + 1);
    for (size_t i = 0; i < (size_t)n_oracle * L; i++)
        if (!isfinite(err_oracle[i]))
            return pk_errf(err, "ExAccErr: oracle sequence %zu has a non-finite error at step %zu", i / L + 1,
                           i % L + 1);
    double r = 0.0, le = 0.0;
    for (int t = 0; t < L; t++) {
        double ms = 0.0, mo = 0.0;
        for (int i = 0; i < n_student; i++) ms += err_student[(size_t)i * L + t];
        for (int i = 0; i < n_oracle; i++) mo += err_oracle[(size_t)i * L + t];
        r += ms / n_student;
        le += mo / n_oracle;
        R[t] = r;
        l_eps[t] = le;
        if (le != 0.0) exaccerr[t] = (r - le) / le * 100.0;
        else exaccerr[t] = r == 0.0 ? 0.0 : NAN;
    }
    return PK_OK;
}

typedef struct {
    const float *oracle_logits, *student_logits; /* [rows, To, V], [rows, Ts, V] */
    int To, Ts, V, L;
    int oracle_first, student_first; /* slot predicting the first generated token */
    double *errors;                  /* [rows, L] */
} KlCtx;

static void kl_range(void *vctx, long begin, long end) {
    KlCtx *c = vctx;
    for (long i = begin; i < end; i++) {
        long r = i / c->L, t = i % c->L;
        const float *p = c->oracle_logits + ((size_t)r * c->To + c->oracle_first + t) * c->V;
        const float *q = c->student_logits + ((size_t)r * c->Ts + c->student_first + t) * c->V;
        c->errors[i] = div_row(DIV_FKL, 0.0f, p, q, c->V);
    }
}

/* Rows per teacher-forced forward, so that one model's logits stay near 128 MB. */
static int rows_per_forward(int K, int T, int V) {
    long budget = 32L << 20; /* floats */
    long rows = budget / ((long)T * V);
    if (rows < 1) rows = 1;
    return rows < K ? (int)rows : K;
}

int exposure_errors(GPT2 *generator, const float *gen_prompt, int gen_P, GPT2 *oracle, const float *oracle_prompt,
                    int oracle_P, GPT2 *student, const int *const *prompts, const int *prompt_lens, int n_prompts,
                    int K, int L, unsigned long long seed, long index_offset, double *errors, char *err) {
    int V = oracle->config.vocab_size;
    if (generator->config.vocab_size != V || student->config.vocab_size != V)
        return pk_errf(err, "ExAccErr: the models' vocabularies differ (oracle %d, student %d, sampler %d)", V,
                       student->config.vocab_size, generator->config.vocab_size);
    if (n_prompts < 1 || K < 1 || L < 1)
        return pk_errf(err, "ExAccErr: needs >= 1 prompt, >= 1 sample and length >= 1 (got %d, %d, %d)", n_prompts, K, L);
    if (gen_P && oracle_P && oracle->config.channels != generator->config.channels)
        return pk_errf(err, "ExAccErr: soft prompt width mismatch between sampler and oracle");
    for (int p = 0; p < n_prompts; p++) {
        int n = prompt_lens[p];
        if (n < 1) return pk_errf(err, "ExAccErr: prompt %d is empty", p);
        int need_g = gen_P + n + L, need_o = oracle_P + n + L - 1, need_s = n + L - 1;
        if (need_g > generator->config.max_seq_len || need_o > oracle->config.max_seq_len ||
            need_s > student->config.max_seq_len)
            return pk_errf(err,
                           "ExAccErr: prompt %d (%d tokens) + soft prompt (%d) + length %d needs %d positions, but the "
                           "models have %d (oracle) and %d (student)",
                           p, n, gen_P > oracle_P ? gen_P : oracle_P, L, (gen_P > oracle_P ? gen_P : oracle_P) + n + L,
                           oracle->config.max_seq_len, student->config.max_seq_len);
    }
    SampleOptions o;
    sample_options_plain(&o, -1, L); /* fixed-length samples: EOS is an ordinary token */

    int rc = PK_FAIL;
    float *kept = NULL; /* [chunk, L, V] when oracle == student */
    int *gen = pk_malloc((size_t)K * L * sizeof(int), err);
    int *gen_lens = pk_malloc((size_t)K * sizeof(int), err);
    long *row_index = pk_malloc((size_t)K * sizeof(long), err);
    const int **rows_prompts = pk_malloc((size_t)K * sizeof(int *), err);
    int *rows_lens = pk_malloc((size_t)K * sizeof(int), err);
    int max_n = 0;
    for (int p = 0; p < n_prompts; p++)
        if (prompt_lens[p] > max_n) max_n = prompt_lens[p];
    int To_max = oracle_P + max_n + L - 1, Ts_max = max_n + L - 1;
    int *otok = pk_malloc((size_t)K * To_max * sizeof(int), err);
    int *otgt = pk_malloc((size_t)K * To_max * sizeof(int), err);
    int *stok = pk_malloc((size_t)K * Ts_max * sizeof(int), err);
    int *stgt = pk_malloc((size_t)K * Ts_max * sizeof(int), err);
    if (!gen || !gen_lens || !row_index || !rows_prompts || !rows_lens || !otok || !otgt || !stok || !stgt) goto done;

    for (int p = 0; p < n_prompts; p++) {
        int n = prompt_lens[p];
        for (int k = 0; k < K; k++) {
            rows_prompts[k] = prompts[p];
            rows_lens[k] = n;
            row_index[k] = index_offset + (long)p * K + k;
        }
        if (sample_generate(generator, rows_prompts, rows_lens, K, gen_prompt, gen_P, &o, seed, row_index, gen,
                            gen_lens, err))
            goto done;
        for (int k = 0; k < K; k++)
            if (gen_lens[k] != L) {
                pk_errf(err, "ExAccErr: sample %d of prompt %d has %d tokens, expected %d", k, p, gen_lens[k], L);
                goto done;
            }
        int To, Ts;
        if (sample_scoring_batch(rows_prompts, rows_lens, gen, L, gen_lens, K, oracle_P, To_max, 0, otok, otgt, NULL,
                                 &To, err) ||
            sample_scoring_batch(rows_prompts, rows_lens, gen, L, gen_lens, K, 0, Ts_max, 0, stok, stgt, NULL, &Ts,
                                 err))
            goto done;
        int chunk = rows_per_forward(K, To > Ts ? To : Ts, V);
        for (int r0 = 0; r0 < K; r0 += chunk) {
            int nb = K - r0 < chunk ? K - r0 : chunk;
            if (gpt2_forward(oracle, otok + (size_t)r0 * To, oracle_prompt, oracle_P, NULL, nb, To, err)) goto done;
            KlCtx c = {oracle->logits, NULL, To, Ts, V, L, oracle_P + n - 1, n - 1, errors + ((size_t)p * K + r0) * L};
            if (oracle == student) {
                /* one network in both roles (e.g. T' against T): keep the oracle's rows before the
                 * second forward overwrites its logits */
                if (!kept) kept = pk_malloc((size_t)chunk * L * V * sizeof(float), err);
                if (!kept) goto done;
                for (int r = 0; r < nb; r++)
                    memcpy(kept + (size_t)r * L * V, oracle->logits + ((size_t)r * To + c.oracle_first) * V,
                           (size_t)L * V * sizeof(float));
                c.oracle_logits = kept;
                c.To = L;
                c.oracle_first = 0;
            }
            if (gpt2_forward(student, stok + (size_t)r0 * Ts, NULL, 0, NULL, nb, Ts, err)) goto done;
            c.student_logits = student->logits;
            pk_parallel_for((long)nb * L, kl_range, &c);
        }
    }
    rc = PK_OK;
done:
    free(kept);
    free(gen);
    free(gen_lens);
    free(row_index);
    free(rows_prompts);
    free(rows_lens);
    free(otok);
    free(otgt);
    free(stok);
    free(stgt);
    return rc;
}

int exposure_measure(GPT2 *oracle, const float *soft_prompt, int P, GPT2 *student, const int *const *prompts,
                     const int *prompt_lens, int n_prompts, int K, int L, unsigned long long seed, double *R,
                     double *l_eps, double *exaccerr, char *err) {
    if (n_prompts < 1 || K < 1 || L < 1)
        return pk_errf(err, "ExAccErr: needs >= 1 prompt, >= 1 sample and length >= 1 (got %d, %d, %d)", n_prompts, K, L);
    size_t n = (size_t)n_prompts * K;
    double *es = pk_malloc(n * L * sizeof(double), err);
    double *eo = pk_malloc(n * L * sizeof(double), err);
    int rc = PK_FAIL;
    if (es && eo &&
        !exposure_errors(student, NULL, 0, oracle, soft_prompt, P, student, prompts, prompt_lens, n_prompts, K, L,
                         seed, 0, es, err) &&
        !exposure_errors(oracle, soft_prompt, P, oracle, soft_prompt, P, student, prompts, prompt_lens, n_prompts, K,
                         L, seed, (long)n, eo, err))
        rc = exposure_curve(es, (int)n, eo, (int)n, L, R, l_eps, exaccerr, err);
    free(es);
    free(eo);
    return rc;
}
