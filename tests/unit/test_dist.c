/* core/dist.c without mpirun (the one-rank communicator every non-MPI run uses): identity
 * sums, copies for broadcast and gather, the step gate, the row shares of a batch; and the
 * property data-parallel equivalence rests on: a sequence's dropout masks depend on its global
 * row index only, not on the batch around it or the batch's padded length. */
#include <string.h>

#include "common.h"
#include "dist.h"
#include "gpt2.h"
#include "parallel.h"
#include "test.h"

static void test_singleton(void) {
    char err[PK_ERR_LEN];
    CHECK(pk_dist_init(0, 0, 0, err) == PK_OK);
    CHECK(pk_dist_init(0, 0, 0, err) == PK_OK); /* again: nothing */
    CHECK(pk_dist_rank() == 0 && pk_dist_size() == 1);
    CHECK(pk_dist_local_rank() == 0 && pk_dist_local_size() == 1);
    CHECK(!pk_dist_is_mpi());
    float f[3] = {1.5f, -2, 3};
    double d[2] = {0.25, 1e300};
    int m[2] = {-4, 7};
    CHECK(pk_dist_allreduce_f32(f, 3, err) == PK_OK && f[0] == 1.5f && f[1] == -2 && f[2] == 3);
    CHECK(pk_dist_allreduce_f64(d, 2, err) == PK_OK && d[0] == 0.25 && d[1] == 1e300);
    CHECK(pk_dist_allreduce_max_int(m, 2, err) == PK_OK && m[0] == -4 && m[1] == 7);
    char buf[6] = "hello";
    CHECK(pk_dist_bcast(buf, sizeof buf, 0, err) == PK_OK && !strcmp(buf, "hello"));
    CHECK(pk_dist_barrier(err) == PK_OK);
    void *out = NULL;
    size_t counts[1] = {99};
    CHECK(pk_dist_gather_bytes("abc", 4, &out, counts, err) == PK_OK);
    CHECK(out && !strcmp(out, "abc") && counts[0] == 4);
    free(out);
    CHECK(pk_dist_gather_bytes("", 0, &out, counts, err) == PK_OK && out == NULL && counts[0] == 0);
    static int op[PK_DIST_OP_BYTES / sizeof(int)];
    op[0] = 3;
    CHECK(pk_dist_gate(op, err) == 3);
    op[0] = 0;
    CHECK(pk_dist_gate(op, err) == 0);
    op[0] = 1;
    CHECK(pk_dist_gate(op, err) == 1); /* one rank: nothing to close */
    pk_dist_gate_close();
    CHECK(pk_dist_comm_seconds() == 0 && pk_dist_reduced_bytes() == 0);
    pk_dist_finalize(0);
}

#if !PK_MPI
static void test_mpirun_refused_without_mpi(void) {
    char err[PK_ERR_LEN] = "";
    /* the first call of the process: mpirun with 3 ranks cannot be served without MPI */
    CHECK(pk_dist_init(1, 3, 0, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "built without MPI") != NULL, "%s", err);
    CHECK(pk_dist_size() == 1);
}
#endif

static void test_shares(void) {
    /* every n and size: contiguous, covering, sizes differing by at most one, larger ones first */
    for (int size = 1; size <= 5; size++)
        for (long n = 0; n <= 11; n++) {
            long next = 0, prev_len = n + 1;
            for (int r = 0; r < size; r++) {
                long b, e;
                pk_dist_share(n, r, size, &b, &e);
                CHECK(b == next && e >= b);
                CHECK(e - b <= prev_len && (e - b) >= n / size && (e - b) <= n / size + 1);
                prev_len = e - b;
                next = e;
            }
            CHECK(next == n);
        }
    long b, e;
    pk_dist_share(4, 1, 3, &b, &e);
    CHECK(b == 2 && e == 3);
}

/* Rows 2 and 3 of a batch of 4 (padded to T = 6) give, alone in a batch padded to T = 8 and
 * told their first row is 2, the same train-mode logits: dropout follows the sequence. */
static void test_dropout_masks_follow_rows(void) {
    char err[PK_ERR_LEN];
    GPT2Config c = {.max_seq_len = 16, .vocab_size = 37, .num_layers = 2, .num_heads = 2, .channels = 8,
                    .n_inner = 12, .layer_norm_eps = 1e-5f, .tied_lm_head = 1, .eos_token_id = 36,
                    .embd_pdrop = 0.3f, .attn_pdrop = 0.3f, .resid_pdrop = 0.3f};
    GPT2 m;
    memset(&m, 0, sizeof m);
    if (gpt2_build(&m, &c, err) != PK_OK) {
        printf("    build failed: %s\n", err);
        CHECK(0);
        return;
    }
    gpt2_init_random(&m, 5);
    enum { B = 4, T = 6, T2 = 8, V = 37 };
    int tokens[B * T], tail[2 * T2];
    for (int i = 0; i < B * T; i++) tokens[i] = (i * 7 + 3) % 36;
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < T2; t++) tail[b * T2 + t] = t < T ? tokens[(b + 2) * T + t] : 36;
    static float full[B * T * V];
    gpt2_train_mode(&m, 1, 1234);
    CHECK(gpt2_forward(&m, tokens, NULL, 0, NULL, B, T, err) == PK_OK);
    memcpy(full, m.logits, sizeof full);
    gpt2_train_mode(&m, 1, 1234);
    gpt2_dropout_rows(&m, 2);
    CHECK(gpt2_forward(&m, tail, NULL, 0, NULL, 2, T2, err) == PK_OK);
    double worst = 0;
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < T; t++)
            for (int v = 0; v < V; v++) {
                double x = full[((size_t)(b + 2) * T + t) * V + v], y = m.logits[((size_t)b * T2 + t) * V + v];
                if (fabs(x - y) > worst) worst = fabs(x - y);
            }
    CHECK_MSG(worst < 1e-5, "logits differ by %g", worst);
    /* and another first row draws other masks */
    gpt2_train_mode(&m, 1, 1234);
    gpt2_dropout_rows(&m, 0);
    CHECK(gpt2_forward(&m, tail, NULL, 0, NULL, 2, T2, err) == PK_OK);
    CHECK(fabs(m.logits[0] - full[(size_t)2 * T * V]) > 1e-6 || fabs(m.logits[V] - full[((size_t)2 * T + 1) * V]) > 1e-6);
    gpt2_train_mode(&m, 0, 0);
    gpt2_free(&m);
}

int main(void) {
    pk_threads_init(1);
#if !PK_MPI
    RUN(test_mpirun_refused_without_mpi);
#endif
    RUN(test_singleton);
    RUN(test_shares);
    RUN(test_dropout_masks_follow_rows);
    return pk_test_total_failed ? 1 : 0;
}
