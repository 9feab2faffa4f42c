/* Token-level divergences between two distributions given as logits, over the
 * full vocabulary, in fp32 with double accumulation, with exact gradients with
 * respect to either side's logits.
 *
 * Conventions: p is the "target" side (usually the teacher), q the other (usually
 * the student). With softmax distributions P = softmax(p), Q = softmax(q):
 *   DIV_FKL       KL(P || Q)
 *   DIV_RKL       KL(Q || P)
 *   DIV_JSD       beta KL(P || M) + (1 - beta) KL(Q || M), M = beta P + (1 - beta) Q   (GKD; param = beta)
 *   DIV_SKEW_FKL  KL(P || a P + (1 - a) Q)   (DistiLLM skew KL; param = a)
 *   DIV_SKEW_RKL  KL(Q || a Q + (1 - a) P)   (param = a)
 *   DIV_TVD       1/2 sum |P - Q|
 * Rows: n rows; row i uses p_logits + p_rows[i] * V and q_logits + q_rows[i] * V, so
 * callers can align rows of tensors with different layouts (e.g. T' logits
 * shifted by the prompt length). Gradients accumulate (+=) scale * d(row value)/d(logits)
 * into dp / dq at the same row offsets (either may be NULL). Returns the SUM of the
 * row values; callers divide by their count of masked positions (and pass
 * scale = 1/count for the gradients). Rows run in parallel on the pk pool. */
#ifndef PK_DIVERGENCE_H
#define PK_DIVERGENCE_H

#include <stddef.h>

typedef enum { DIV_FKL, DIV_RKL, DIV_JSD, DIV_SKEW_FKL, DIV_SKEW_RKL, DIV_TVD } DivKind;

const char *div_name(DivKind k);
/* "fkl", "rkl", "jsd", "skew_fkl", "skew_rkl", "tvd" -> kind; PK_FAIL on unknown. */
int div_parse(const char *name, DivKind *out);

double div_rows(DivKind kind, float param, const float *p_logits, const size_t *p_rows, const float *q_logits,
                const size_t *q_rows, int n, int V, float scale, float *dp_logits, float *dq_logits);

/* One row, no gradients; for tests and metrics. */
double div_row(DivKind kind, float param, const float *p_logits, const float *q_logits, int V);

#endif
