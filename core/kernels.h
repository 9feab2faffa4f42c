/* The GPT-2 kernels: plain functions with explicit shapes, in the manner of llm.c.
 * Forward functions overwrite their output; backward functions accumulate (+=)
 * into every gradient they are given, and skip a gradient whose pointer is NULL
 * (that is how a frozen model's input-only backward avoids weight-gradient work).
 * Every kernel runs on the pk pool (core/parallel.h); GEMMs go through pk_sgemm. */
#ifndef PK_KERNELS_H
#define PK_KERNELS_H

/* Row-major C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, op = transpose when
 * trans_a / trans_b is set (lda/ldb are the row strides of A and B as stored).
 * Large products are split over the pool by rows of M or columns of N (over K when
 * K is at least the longer of them), each part a single-threaded cblas_sgemm
 * (or sgemv when M == 1), or handed whole to OpenBLAS in pk_gemm_mode() PK_GEMM_BLAS.
 * Results do not depend on timing. */
void pk_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc);

/* C[M, N] = alpha * A[M, K] . op(B) + beta * C for few rows (M <= PK_SMALL_M), A not
 * transposed: streams each row of B once for all M rows instead of packing B as
 * sgemm does (KV-cache decoding's B x C activations times a weight matrix). Split
 * over the pool by columns of N. */
#define PK_SMALL_M 8
void pk_sgemm_small_m(int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                      float beta, float *C, int ldc);

/* out[N, OC] = inp[N, C] . weight[C, OC] + bias[OC]   (Hugging Face Conv1D layout, bias may be NULL) */
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
/* dinp[N, C] += dout . weight^T; dweight[C, OC] += inp^T . dout; dbias[OC] += sum_n dout.
 * Any of dinp, dweight, dbias may be NULL. */
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC);

/* out[N, C] = (inp - mean) * rstd * weight + bias; mean, rstd [N] kept for backward (may be NULL). */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C, float eps);
/* dinp[N, C], dweight[C], dbias[C] += ...; dweight/dbias may be NULL (frozen). */
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C);

/* gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), n elements. */
void gelu_forward(float *out, const float *inp, long n);
void gelu_backward(float *dinp, const float *inp, const float *dout, long n);
/* d[n] = d * gelu'(inp): the backward overwriting its incoming gradient in place
 * (saves a zeroed buffer and a pass when nothing else accumulates into it). */
void gelu_backward_inplace(float *d, const float *inp, long n);

/* out = a + b; backward: da += dout, db += dout (n elements). */
void residual_forward(float *out, const float *a, const float *b, long n);
void residual_backward(float *da, float *db, const float *dout, long n);

/* Causal multi-head attention over a block of queries.
 * Queries are slots t0 .. t0+Tq-1 of each row, keys/values slots 0 .. t0+Tq-1.
 *   q: element (b, t, c) at q[b*q_bstride + t*q_tstride + c], t in [0, Tq)
 *   k, v: element (b, s, c) at k[b*kv_bstride + s*kv_tstride + c], s in [0, t0+Tq)
 *   out [B, Tq, C]; head h owns channels h*C/NH .. (h+1)*C/NH-1.
 * Query slot t attends to keys s with lo <= s <= t, lo = row_start[b] (NULL: 0); a
 * left-padding query (t < row_start[b]) attends to itself only.
 * att [B, NH, Tq, t0+Tq] keeps the probabilities for backward (may be NULL). With att
 * and t0 = 0 (training) each (batch, head) is two serial sgemms over the full T x T
 * scores; otherwise (KV-cache decoding) a loop over each query's visible keys. */
void attention_forward(float *out, float *att, const float *q, const float *k, const float *v, long q_bstride,
                       long q_tstride, long kv_bstride, long kv_tstride, const int *row_start, int B, int t0, int Tq,
                       int C, int NH);
/* Backward of attention_forward for t0 = 0 with q, k, v packed in qkv [B, T, 3C]
 * (q at 0, k at C, v at 2C): dqkv [B, T, 3C] += ..., from dout [B, T, C] and att [B, NH, T, T];
 * four serial sgemms per (batch, head) with a T x T scratch per pool thread.
 * Returns 0, or -1 when its scratch memory could not be allocated (nothing was added). */
int attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, const int *row_start,
                       int B, int T, int C, int NH);

/* Dropout as Hugging Face's GPT-2 applies it in train mode: an element is zeroed with
 * probability p, kept values are scaled by 1 / (1 - p). The mask is a pure function of
 * (stream, element index): keep(i) = the high 32 bits of splitmix64's output at counter
 * stream + (i + 1) * golden are at least p * 2^32. No RNG state, so a mask is the same
 * for any thread count and any chunking, and a backward recomputes it instead of
 * storing it. stream = dropout_stream(seed, site, layer) separates the sites. */
unsigned long long dropout_stream(unsigned long long seed, int site, int layer);
/* The stream of one sequence (global batch row `row`) within a site's stream: a model's masks
 * follow each sequence, so a row drops the same elements whatever batch or rank holds it. */
unsigned long long dropout_row_stream(unsigned long long stream, long row);
/* out[n] = inp[n] * keep(i) / (1 - p), out == inp allowed, p in [0, 1) (0: a copy).
 * The backward of a mask is the same mask, so dropout_forward on a gradient is the
 * backward that overwrites (as gelu_backward_inplace does). */
void dropout_forward(float *out, const float *inp, long n, float p, unsigned long long stream);
/* dinp[n] += dout[n] * keep(i) / (1 - p) */
void dropout_backward(float *dinp, const float *dout, long n, float p, unsigned long long stream);

/* The training path of attention_forward (t0 = 0, att kept) with dropout p on the
 * probabilities: q, k, v packed in qkv [B, T, 3C] (q at 0, k at C, v at 2C),
 * att [B, NH, T, T] keeps the probabilities before dropout (softmax's backward needs
 * them), out [B, T, C] = dropout(att) . v per head. Element (b, h, t, s) of the mask is
 * index (h << 42) | (t << 21) | s of dropout_row_stream(stream, row_base + b) (T < 2^21).
 * p = 0 gives attention_forward's results. Returns 0, or -1 when its T x T scratch could not
 * be allocated. */
int attention_forward_dropout(float *out, float *att, const float *qkv, const int *row_start, int B, int T, int C,
                              int NH, float p, unsigned long long stream, long row_base);
/* Backward of attention_forward_dropout: dqkv [B, T, 3C] += ..., from dout [B, T, C],
 * the kept probabilities att and the same p and stream (the mask is recomputed).
 * Returns 0, or -1 when its scratch could not be allocated (nothing was added). */
int attention_backward_dropout(float *dqkv, const float *dout, const float *qkv, const float *att,
                               const int *row_start, int B, int T, int C, int NH, float p, unsigned long long stream,
                               long row_base);

/* Row-wise softmax of logits [N, V] into probs [N, V]. */
void softmax_forward(float *probs, const float *logits, int N, int V);
/* Mean cross-entropy over the rows whose target is not -1 (N rows of V logits).
 * losses[N] (may be NULL) gets each row's loss (0 when no target). When dlogits
 * is not NULL it is overwritten with d(mean loss)/d(logits) (rows without target: 0).
 * Returns the mean (0 when no row has a target), or NAN (dlogits zeroed) when a
 * target is neither -1 nor in [0, V). */
float crossentropy_softmax(const float *logits, const int *targets, float *losses, float *dlogits, int N, int V);

#endif
