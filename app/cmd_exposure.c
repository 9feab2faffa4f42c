/* promptkd exposure: ExAccErr of a student against the teacher (or the prompted teacher T' with
 * --prompt), DESIGN.md section 4 and core/exposure.h: K fixed-length samples of L tokens per
 * prompt from each model, per-step KL(oracle || student) teacher-forced on them, the curve over
 * l = 1..L written as JSON, the value at --at printed. Prompts are the first --prompts records of
 * the data (Alpaca template), each cut to its first min(256, n_positions - P - L) tokens. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "data.h"
#include "exposure.h"
#include "gpt2.h"
#include "model_io.h"
#include "neighbours.h"
#include "tokenizer.h"

#define EXPOSURE_USAGE                                                                                    \
    "promptkd exposure --teacher DIR [--prompt FILE] --student DIR --tokenizer DIR --data FILE "          \
    "[--samples K] [--prompts N] [--max-len L] [--at l] [--seed S] [--out FILE.json]"

static cJSON *number_array(const double *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, isfinite(v[i]) ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull());
    return a;
}

int cmd_exposure(int argc, char **argv) {
    const char *teacher_dir = NULL, *student_dir = NULL, *tok_dir = NULL, *data_path = NULL, *prompt_path = NULL,
               *out_path = NULL;
    int K = 8, n_prompts = 16, L = 64, at = 0;
    unsigned long long seed = 1;
    Opt opts[] = {
        {"teacher", OPT_STR, &teacher_dir, "the oracle: the teacher's Hugging Face GPT-2 folder", 1},
        {"prompt", OPT_STR, &prompt_path, "soft prompt \"prompt\" [P, C]: the oracle is T'", 0},
        {"student", OPT_STR, &student_dir, "the student's folder", 1},
        {"tokenizer", OPT_STR, &tok_dir, "folder with vocab.json and merges.txt", 1},
        {"data", OPT_STR, &data_path, "instruction data; its first --prompts records are the prompts", 1},
        {"samples", OPT_INT, &K, "samples per prompt from each model (8)", 0},
        {"prompts", OPT_INT, &n_prompts, "prompts used (16)", 0},
        {"max-len", OPT_INT, &L, "generation length L: the curve covers l = 1..L (64)", 0},
        {"at", OPT_INT, &at, "print ExAccErr at this l (default L)", 0},
        {"seed", OPT_U64, &seed, "sampling seed (1)", 0},
        {"out", OPT_STR, &out_path, "write {l, R, l_eps, exaccerr} as JSON (atomically)", 0},
    };
    int rc = cli_parse(EXPOSURE_USAGE, argc, argv, opts, sizeof opts / sizeof *opts, NULL, 0, NULL);
    if (rc == 1) return 0;
    if (rc) return 2;
    if (K < 1 || n_prompts < 1 || L < 1) {
        cli_fail("exposure", "--samples, --prompts and --max-len must be >= 1");
        return 2;
    }
    if (out_path && cli_check_output("exposure", "out", out_path)) return 2;
    if (at == 0) at = L;
    if (at < 1 || at > L) {
        char msg[128];
        snprintf(msg, sizeof msg, "--at must be in 1..%d (--max-len), got %d", L, at);
        cli_fail("exposure", msg);
        return 2;
    }

    char err[PK_ERR_LEN];
    GPT2 teacher, student;
    memset(&teacher, 0, sizeof teacher);
    memset(&student, 0, sizeof student);
    Tokenizer *tok = NULL;
    Dataset d;
    memset(&d, 0, sizeof d);
    float *soft = NULL;
    int **ids = NULL, *lens = NULL, P = 0, status = 1, n = 0;
    double *R = NULL, *le = NULL, *ex = NULL;
    if (model_load_with_tokenizer("exposure", teacher_dir, &teacher, tok_dir, &tok, prompt_path, &soft, &P)) goto done;
    if (gpt2_load(&student, student_dir, err) || data_load(&d, data_path, 0, err)) {
        cli_fail("exposure", err);
        goto done;
    }
    int V = teacher.config.vocab_size;
    if (student.config.vocab_size != V) {
        snprintf(err, sizeof err, "the teacher has a vocabulary of %d tokens and the student %d; they must share one", V,
                 student.config.vocab_size);
        cli_fail("exposure", err);
        goto done;
    }
    int maxT = teacher.config.max_seq_len - P < student.config.max_seq_len ? teacher.config.max_seq_len - P
                                                                            : student.config.max_seq_len;
    int max_prompt = maxT - L < 256 ? maxT - L : 256;
    if (max_prompt < 1) {
        snprintf(err, sizeof err, "--max-len %d leaves no room for a prompt in the models' positions (teacher %d%s, student %d)",
                 L, teacher.config.max_seq_len, P ? " with the soft prompt" : "", student.config.max_seq_len);
        cli_fail("exposure", err);
        goto done;
    }
    n = n_prompts < d.n ? n_prompts : d.n;
    ids = calloc((size_t)n, sizeof *ids);
    lens = calloc((size_t)n, sizeof *lens);
    R = malloc((size_t)L * sizeof(double));
    le = malloc((size_t)L * sizeof(double));
    ex = malloc((size_t)L * sizeof(double));
    if (!ids || !lens || !R || !le || !ex) {
        cli_fail("exposure", "out of memory");
        goto done;
    }
    if (data_encode_prompts(&d, tok, n, max_prompt, data_path, ids, lens, err)) {
        cli_fail("exposure", err);
        goto done;
    }
    double t0 = pk_now();
    if (exposure_measure(&teacher, soft, P, &student, (const int *const *)ids, lens, n, K, L, seed, R, le, ex, err)) {
        cli_fail("exposure", err);
        goto done;
    }
    if (out_path) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "teacher", teacher_dir);
        cJSON_AddStringToObject(root, "student", student_dir);
        if (prompt_path) cJSON_AddStringToObject(root, "prompt", prompt_path);
        else cJSON_AddNullToObject(root, "prompt");
        cJSON_AddStringToObject(root, "data", data_path);
        cJSON_AddNumberToObject(root, "prompts", n);
        cJSON_AddNumberToObject(root, "samples", K);
        cJSON_AddNumberToObject(root, "max_len", L);
        cJSON_AddNumberToObject(root, "seed", (double)seed);
        double *l = malloc((size_t)L * sizeof(double));
        for (int i = 0; l && i < L; i++) l[i] = i + 1;
        cJSON_AddItemToObject(root, "l", number_array(l, l ? L : 0));
        free(l);
        cJSON_AddItemToObject(root, "R", number_array(R, L));
        cJSON_AddItemToObject(root, "l_eps", number_array(le, L));
        cJSON_AddItemToObject(root, "exaccerr", number_array(ex, L));
        int bad = pk_write_json_atomic(out_path, root, err) != PK_OK;
        cJSON_Delete(root);
        if (bad) {
            cli_fail("exposure", err);
            goto done;
        }
    }
    printf("ExAccErr(l=%d) = %.2f%%  (R = %.6g, l*eps = %.6g; %d prompts x %d samples, %s oracle, %.1f s)\n", at,
           ex[at - 1], R[at - 1], le[at - 1], n, K, P ? "prompted-teacher" : "teacher", pk_now() - t0);
    if (out_path) printf("wrote %s\n", out_path);
    status = 0;
done:
    data_free_rows(ids, n);
    free(lens);
    free(R);
    free(le);
    free(ex);
    free(soft);
    data_free(&d);
    tok_free(tok);
    gpt2_free(&teacher);
    gpt2_free(&student);
    return status;
}
