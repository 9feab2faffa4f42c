#include "optim.h"

#include <math.h>
#include <stdlib.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "common.h"
#include "parallel.h"

typedef struct {
    float *params, *m, *v;
    const float *grads;
    float *zeroed_grads; /* grads again, to zero behind the update; NULL: left as they are */
    float lr, beta1, beta2, eps, decay_factor;
    float step_size, bias2_sqrt;
} AdamJob;

static void adamw_range(void *ctx, long b, long e) {
    const AdamJob *a = ctx;
    float *p = a->params, *m = a->m, *v = a->v;
    const float *g = a->grads;
    long i = b;
#if defined(__AVX__)
    /* the same operations in the same order, 8 lanes at a time: sqrtf in a plain
     * loop does not vectorise while errno semantics are on */
    const __m256 b1 = _mm256_set1_ps(a->beta1), b2 = _mm256_set1_ps(a->beta2);
    const __m256 ob1 = _mm256_set1_ps(1.0f - a->beta1), ob2 = _mm256_set1_ps(1.0f - a->beta2);
    const __m256 df = _mm256_set1_ps(a->decay_factor), eps = _mm256_set1_ps(a->eps);
    const __m256 bc2 = _mm256_set1_ps(a->bias2_sqrt), ss = _mm256_set1_ps(a->step_size);
    for (; i + 8 <= e; i += 8) {
        __m256 gi = _mm256_loadu_ps(g + i);
        __m256 pi = _mm256_mul_ps(_mm256_loadu_ps(p + i), df);
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(ob1, gi));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(ob2, gi), gi));
        __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2), eps);
        pi = _mm256_sub_ps(pi, _mm256_div_ps(_mm256_mul_ps(ss, mi), denom));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        _mm256_storeu_ps(p + i, pi);
        if (a->zeroed_grads) _mm256_storeu_ps(a->zeroed_grads + i, _mm256_setzero_ps());
    }
#endif
    for (; i < e; i++) {
        float gi = g[i];
        p[i] *= a->decay_factor; /* decoupled decay on the pre-update value, as torch does */
        m[i] = a->beta1 * m[i] + (1.0f - a->beta1) * gi;
        v[i] = a->beta2 * v[i] + (1.0f - a->beta2) * gi * gi;
        float denom = sqrtf(v[i]) / a->bias2_sqrt + a->eps;
        p[i] -= a->step_size * m[i] / denom;
        if (a->zeroed_grads) a->zeroed_grads[i] = 0.0f;
    }
}

static void adamw_run(float *params, const float *grads, float *zeroed_grads, float *m, float *v, size_t n,
                      const AdamWParams *hp, int t, int decay) {
    if (t < 1) t = 1;
    AdamJob a;
    a.params = params;
    a.grads = grads;
    a.zeroed_grads = zeroed_grads;
    a.m = m;
    a.v = v;
    a.lr = hp->lr;
    a.beta1 = hp->beta1;
    a.beta2 = hp->beta2;
    a.eps = hp->eps;
    a.decay_factor = decay ? 1.0f - hp->lr * hp->weight_decay : 1.0f;
    double bias1 = 1.0 - pow(hp->beta1, t), bias2 = 1.0 - pow(hp->beta2, t);
    a.step_size = (float)(hp->lr / bias1);
    a.bias2_sqrt = (float)sqrt(bias2);
    pk_parallel_for_grain((long)n, 16384, adamw_range, &a);
}

void adamw_step(float *params, const float *grads, float *m, float *v, size_t n, const AdamWParams *hp, int t,
                int decay) {
    adamw_run(params, grads, NULL, m, v, n, hp, t, decay);
}

/* Sum of squares in fixed blocks, so the result does not depend on the thread count. */
#define NORM_BLOCK 65536L
typedef struct {
    const float *x;
    long n;
    double *partial;
} NormJob;

static void norm_range(void *ctx, long b, long e) {
    const NormJob *a = ctx;
    for (long blk = b; blk < e; blk++) {
        long i0 = blk * NORM_BLOCK, i1 = i0 + NORM_BLOCK < a->n ? i0 + NORM_BLOCK : a->n;
        float acc[16] = {0};
        long i = i0;
        for (; i + 16 <= i1; i += 16)
            for (int j = 0; j < 16; j++) acc[j] += a->x[i + j] * a->x[i + j];
        double s = 0.0;
        for (; i < i1; i++) s += (double)a->x[i] * a->x[i];
        for (int j = 0; j < 16; j++) s += acc[j];
        a->partial[blk] = s;
    }
}

typedef struct {
    float *x;
    float scale;
} ScaleJob;

static void scale_range(void *ctx, long b, long e) {
    const ScaleJob *a = ctx;
    for (long i = b; i < e; i++) a->x[i] *= a->scale;
}

float grad_clip_global_norm(float *grads, size_t n, float max_norm) {
    long blocks = ((long)n + NORM_BLOCK - 1) / NORM_BLOCK;
    double stack[64];
    double *partial = blocks <= 64 ? stack : malloc((size_t)blocks * sizeof(double));
    double total = 0.0;
    if (partial) {
        NormJob a = {grads, (long)n, partial};
        pk_parallel_for(blocks, norm_range, &a);
        for (long b = 0; b < blocks; b++) total += partial[b];
        if (partial != stack) free(partial);
    } else {
        for (size_t i = 0; i < n; i++) total += (double)grads[i] * grads[i];
    }
    float norm = (float)sqrt(total);
    if (max_norm > 0.0f && norm > max_norm) {
        ScaleJob s = {grads, (float)(max_norm / (norm + 1e-6))};
        pk_parallel_for_grain((long)n, 65536, scale_range, &s);
    }
    return norm;
}

float gpt2_grad_norm(const GPT2 *m) {
    /* max_norm 0: the norm only, nothing is scaled */
    return m->grads_memory ? grad_clip_global_norm(m->grads_memory, m->num_parameters, 0.0f) : 0.0f;
}

int gpt2_adamw_step(GPT2 *m, const AdamWParams *hp, int t, char *err) {
    if (!m->grads_memory) return pk_errf(err, "gpt2_adamw_step: the model has no gradients (run a full backward first)");
    if (!m->m_memory) {
        m->m_memory = pk_calloc(m->num_parameters, sizeof(float), err);
        if (!m->m_memory) return PK_FAIL;
        m->v_memory = pk_calloc(m->num_parameters, sizeof(float), err);
        if (!m->v_memory) {
            free(m->m_memory);
            m->m_memory = NULL;
            return PK_FAIL;
        }
    }
    size_t off = 0;
    for (int i = 0; i < GPT2_NUM_PARAM_TENSORS; i++) {
        GPT2ParamInfo info;
        gpt2_param_info(&m->config, i, &info);
        /* the gradients are zeroed in the same pass over memory, which costs less than
         * gpt2_zero_grad's own pass before the next backward (GPT-2 small: 100 ms for
         * both instead of 96 + 40) */
        if (m->param_sizes[i])
            adamw_run(m->params_memory + off, m->grads_memory + off, m->grads_memory + off, m->m_memory + off,
                      m->v_memory + off, m->param_sizes[i], hp, t, info.decay);
        off += m->param_sizes[i];
    }
    m->grads_zero = 1;
    return PK_OK;
}

float lr_schedule(int step, int warmup_steps, float base_lr, int total_steps, int cosine) {
    if (step < 1) step = 1;
    /* the fraction in double, then one rounding to float: the rates training has always used */
    if (warmup_steps > 0 && step <= warmup_steps) return (float)(base_lr * ((double)step / warmup_steps));
    if (!cosine || total_steps <= warmup_steps) return base_lr;
    double progress = (double)(step - (warmup_steps > 0 ? warmup_steps : 0)) /
                      (double)(total_steps - (warmup_steps > 0 ? warmup_steps : 0));
    if (progress > 1.0) progress = 1.0;
    return (float)(base_lr * 0.5 * (1.0 + cos(M_PI * progress)));
}
