/* AdamW (decoupled weight decay, PyTorch's order of operations), global-norm
 * gradient clipping and the learning-rate schedule, on the pk pool. The optimizer
 * sits above the model: it reads gpt2.h, and gpt2.c never calls back into it. */
#ifndef PK_OPTIM_H
#define PK_OPTIM_H

#include <stddef.h>

#include "gpt2.h"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} AdamWParams;

/* One AdamW update of n parameters; t is the 1-based step (bias correction).
 * With decay: p -= lr * wd * p first, then p -= lr * mhat / (sqrt(vhat) + eps),
 * exactly as torch.optim.AdamW. m and v start at zero. */
void adamw_step(float *params, const float *grads, float *m, float *v, size_t n, const AdamWParams *hp, int t,
                int decay);

/* Returns the L2 norm of grads[n] before clipping, and scales grads in place by
 * max_norm / norm when the norm exceeds max_norm (max_norm <= 0: no clipping). */
float grad_clip_global_norm(float *grads, size_t n, float max_norm);

/* L2 norm of the model's whole gradient (0 without gradients). */
float gpt2_grad_norm(const GPT2 *m);

/* AdamW on every parameter of the model (after a full backward). Allocates m/v
 * (zeroed) on first use; weight decay per gpt2_param_info().decay. Consumes the
 * gradients: they are zero afterwards, ready for the next backward to accumulate
 * into (the following gpt2_zero_grad has nothing left to do). */
int gpt2_adamw_step(GPT2 *m, const AdamWParams *hp, int t, char *err);

/* Learning rate at 1-based step: linear warm-up base_lr * step / warmup_steps over
 * the first warmup_steps steps, then constant, or (cosine) a half cosine from
 * base_lr down to 0 at total_steps. */
float lr_schedule(int step, int warmup_steps, float base_lr, int total_steps, int cosine);

#endif
