#include "exposure.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"
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
    const float *oracle_logits, *student_logits; /* [K, V] each: the logits predicting step t */
    int V, L, t;
    double *errors; /* [K, L] */
} KlCtx;

static void kl_rows(void *vctx, long begin, long end) {
    KlCtx *c = vctx;
    for (long r = begin; r < end; r++)
        c->errors[(size_t)r * c->L + c->t] =
            div_row(DIV_FKL, 0.0f, c->oracle_logits + (size_t)r * c->V, c->student_logits + (size_t)r * c->V, c->V);
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
    for (int p = 0; p < n_prompts; p++) {
        int n = prompt_lens[p];
        if (n < 1) return pk_errf(err, "ExAccErr: prompt %d is empty", p);
        int need_g = gen_P + n + L, need_o = oracle_P + n + L - 1, need_s = n + L - 1;
        if (need_g > generator->config.max_seq_len || need_o > oracle->config.max_seq_len ||
            need_s > student->config.max_seq_len) {
            int Pm = gen_P > oracle_P ? gen_P : oracle_P;
            return pk_errf(err,
                           "ExAccErr: prompt %d (%d tokens) + soft prompt (%d) + length %d needs %d positions, but the "
                           "models have %d (oracle) and %d (student)",
                           p, n, Pm, L, Pm + n + L, oracle->config.max_seq_len, student->config.max_seq_len);
        }
    }
    SampleOptions o;
    sample_options_plain(&o, -1, L); /* fixed-length samples: EOS is an ordinary token */

    int rc = PK_FAIL;
    int max_n = 0;
    for (int p = 0; p < n_prompts; p++)
        if (prompt_lens[p] > max_n) max_n = prompt_lens[p];
    int *gen = pk_malloc((size_t)K * L * sizeof(int), err);
    int *gen_lens = pk_malloc((size_t)K * sizeof(int), err);
    long *row_index = pk_malloc((size_t)K * sizeof(long), err);
    const int **rows_prompts = pk_malloc((size_t)K * sizeof(int *), err);
    int *rows_lens = pk_malloc((size_t)K * sizeof(int), err);
    int *slots = pk_calloc((size_t)K * (oracle_P + max_n), sizeof(int), err);
    int *step = pk_malloc((size_t)K * sizeof(int), err);
    GPT2KVCache *oc = NULL, *sc = NULL;
    if (!gen || !gen_lens || !row_index || !rows_prompts || !rows_lens || !slots || !step) goto done;

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
        /* Teacher forcing with the KV cache: both models read the prompt, then the samples one token
         * at a time, so only the L logit rows that predict generated tokens are ever computed. Each
         * cache owns its logits, so one network can take both roles (T' against T). */
        if (gpt2_kv_create(oracle, K, oracle_P + n + L - 1, &oc, err) ||
            gpt2_kv_create(student, K, n + L - 1, &sc, err))
            goto done;
        const float *ol = NULL, *sl = NULL;
        for (int k = 0; k < K; k++) memcpy(slots + (size_t)k * (oracle_P + n) + oracle_P, prompts[p], (size_t)n * sizeof(int));
        if (gpt2_kv_prefill(oc, slots, oracle_prompt, oracle_P, NULL, oracle_P + n, &ol, err)) goto done;
        for (int k = 0; k < K; k++) memcpy(slots + (size_t)k * n, prompts[p], (size_t)n * sizeof(int));
        if (gpt2_kv_prefill(sc, slots, NULL, 0, NULL, n, &sl, err)) goto done;
        double *e = errors + (size_t)p * K * L;
        for (int t = 0; t < L; t++) {
            if (t > 0) {
                for (int k = 0; k < K; k++) step[k] = gen[(size_t)k * L + t - 1];
                if (gpt2_kv_step(oc, step, &ol, err) || gpt2_kv_step(sc, step, &sl, err)) goto done;
            }
            KlCtx c = {ol, sl, V, L, t, e};
            pk_parallel_for(K, kl_rows, &c);
        }
        gpt2_kv_free(oc);
        gpt2_kv_free(sc);
        oc = sc = NULL;
    }
    rc = PK_OK;
done:
    gpt2_kv_free(oc);
    gpt2_kv_free(sc);
    free(gen);
    free(gen_lens);
    free(row_index);
    free(rows_prompts);
    free(rows_lens);
    free(slots);
    free(step);
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
    /* in a data-parallel run each rank measures a contiguous share of the prompts (the same RNG rows
     * as one process), and every rank gets all the errors, so the curve is summed in one order */
    long a = 0, b = n_prompts;
    int ranks = pk_dist_size();
    if (ranks > 1) pk_dist_share(n_prompts, pk_dist_rank(), ranks, &a, &b);
    size_t row0 = (size_t)a * K * L;
    int failed = !es || !eo;
    if (!failed && b > a)
        failed = exposure_errors(student, NULL, 0, oracle, soft_prompt, P, student, prompts + a, prompt_lens + a,
                                 (int)(b - a), K, L, seed, a * K, es + row0, err) ||
                 exposure_errors(oracle, soft_prompt, P, oracle, soft_prompt, P, student, prompts + a,
                                 prompt_lens + a, (int)(b - a), K, L, seed, (long)n + a * K, eo + row0, err);
    if (ranks > 1) {
        int any = failed;
        if (pk_dist_allreduce_max_int(&any, 1, err) != PK_OK) goto done;
        if (any && !failed) pk_errf(err, "ExAccErr: another rank failed measuring its prompts");
        failed = any;
        for (int side = 0; side < 2 && !failed; side++) {
            double *e = side ? eo : es;
            void *all = NULL;
            if (pk_dist_gather_bytes(e + row0, (size_t)(b - a) * K * L * sizeof(double), &all, NULL, err) != PK_OK) {
                failed = 1;
                break;
            }
            if (all) memcpy(e, all, n * L * sizeof(double));
            free(all);
            if (pk_dist_bcast(e, n * L * sizeof(double), 0, err) != PK_OK) failed = 1;
        }
    }
    if (!failed) rc = exposure_curve(es, (int)n, eo, (int)n, L, R, l_eps, exaccerr, err);
done:
    free(es);
    free(eo);
    return rc;
}
