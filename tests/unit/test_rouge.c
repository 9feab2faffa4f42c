/* ROUGE-L and the Porter stemmer against rouge_score / NLTK reference values. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "rouge.h"
#include "test.h"

#define REFERENCE_FILE "tests/fixtures/rouge/rougeL-reference.jsonl"

/* Every line of the reference file (rouge_score, use_stemmer=True) to 1e-6. */
static void test_reference_file_all_lines(void) {
    char err[PK_ERR_LEN];
    char *text = NULL;
    size_t len = 0;
    CHECK_MSG(pk_read_file(REFERENCE_FILE, &text, &len, err) == PK_OK, "%s", err);
    if (!text) return;
    int lines = 0, mismatches = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *obj = cJSON_Parse(line);
        CHECK(obj != NULL);
        if (!obj) continue;
        lines++;
        const cJSON *pred = cJSON_GetObjectItemCaseSensitive(obj, "prediction");
        const cJSON *refs = cJSON_GetObjectItemCaseSensitive(obj, "references");
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(obj, "rougeL");
        int n_refs = cJSON_GetArraySize(refs);
        const char *ref_texts[64];
        int k = 0;
        const cJSON *r;
        cJSON_ArrayForEach(r, refs) if (k < 64) ref_texts[k++] = r->valuestring;
        double got = rouge_l_max_x100(pred->valuestring, ref_texts, n_refs);
        if (fabs(got - want->valuedouble) > 1e-6) {
            mismatches++;
            printf("    line %d: got %.12g want %.12g\n", lines, got, want->valuedouble);
        }
        cJSON_Delete(obj);
    }
    free(text);
    CHECK(lines == 259);
    CHECK_MSG(mismatches == 0, "%d of %d lines differ", mismatches, lines);
}

static const char *const stem_cases[][2] = {
    /* Porter's paper examples as NLTK_EXTENSIONS computes them */
    {"caresses", "caress"}, {"ponies", "poni"}, {"ties", "tie"}, {"caress", "caress"}, {"cats", "cat"},
    {"feed", "feed"}, {"agreed", "agre"}, {"plastered", "plaster"}, {"bled", "bled"}, {"motoring", "motor"},
    {"sing", "sing"}, {"conflated", "conflat"}, {"troubled", "troubl"}, {"sized", "size"}, {"hopping", "hop"},
    {"tanned", "tan"}, {"falling", "fall"}, {"hissing", "hiss"}, {"fizzed", "fizz"}, {"failing", "fail"},
    {"filing", "file"}, {"happy", "happi"}, {"sky", "sky"}, {"relational", "relat"}, {"conditional", "condit"},
    {"rational", "ration"}, {"valenci", "valenc"}, {"digitizer", "digit"}, {"conformabli", "conform"},
    {"radicalli", "radic"}, {"differentli", "differ"}, {"vileli", "vile"}, {"analogousli", "analog"},
    {"vietnamization", "vietnam"}, {"predication", "predic"}, {"operator", "oper"}, {"feudalism", "feudal"},
    {"decisiveness", "decis"}, {"hopefulness", "hope"}, {"callousness", "callous"}, {"formaliti", "formal"},
    {"sensitiviti", "sensit"}, {"sensibiliti", "sensibl"}, {"triplicate", "triplic"}, {"formative", "form"},
    {"formalize", "formal"}, {"electriciti", "electr"}, {"electrical", "electr"}, {"hopeful", "hope"},
    {"goodness", "good"}, {"revival", "reviv"}, {"allowance", "allow"}, {"inference", "infer"},
    {"airliner", "airlin"}, {"gyroscopic", "gyroscop"}, {"adjustable", "adjust"}, {"defensible", "defens"},
    {"irritant", "irrit"}, {"replacement", "replac"}, {"adjustment", "adjust"}, {"dependent", "depend"},
    {"adoption", "adopt"}, {"homologou", "homolog"}, {"communism", "commun"}, {"activate", "activ"},
    {"angulariti", "angular"}, {"homologous", "homolog"}, {"effective", "effect"}, {"bowdlerize", "bowdler"},
    {"probate", "probat"}, {"rate", "rate"}, {"cease", "ceas"}, {"controll", "control"}, {"roll", "roll"},
    /* NLTK's extensions and irregular forms */
    {"running", "run"}, {"generously", "gener"}, {"generous", "gener"}, {"generalization", "gener"},
    {"dying", "die"}, {"lying", "lie"}, {"tying", "tie"}, {"skies", "sky"}, {"news", "news"},
    {"innings", "inning"}, {"outings", "outing"}, {"cannings", "canning"}, {"howe", "howe"},
    {"proceed", "proceed"}, {"exceed", "exceed"}, {"succeed", "succeed"}, {"happily", "happili"},
    {"flies", "fli"}, {"dies", "die"}, {"spied", "spi"}, {"died", "die"}, {"enjoy", "enjoy"}, {"spy", "spi"},
    {"geology", "geolog"}, {"fully", "fulli"}, {"hopefully", "hope"}, {"conditionally", "condit"},
    {"university", "univers"}, {"meetings", "meet"}, {"matting", "mat"}, {"mating", "mate"},
    {"milling", "mill"}, {"messing", "mess"}, {"2017", "2017"}, {"a1b2", "a1b2"}, {"by", "by"}, {"is", "is"},
    {"syzygy", "syzygi"}, {"toy", "toy"}, {"toys", "toy"}, {"saying", "say"}, {"yyyyyy", "yyyyyi"},
    {"Running", "run"}, {"Sky", "ski"}, {"eed", "eed"}, {"oed", "o"},
};

static void test_porter_stems(void) {
    char out[64];
    for (size_t i = 0; i < sizeof stem_cases / sizeof *stem_cases; i++) {
        int rc = porter_stem(stem_cases[i][0], out, sizeof out);
        CHECK(rc == 0);
        CHECK_MSG(!strcmp(out, stem_cases[i][1]), "stem(%s) = %s, expected %s", stem_cases[i][0], out,
                  stem_cases[i][1]);
    }
    CHECK(porter_stem("running", out, 7) == -1); /* no room for the terminator */
    /* a very long run of y's (each y's class depends on the one before) neither recurses nor crashes */
    size_t big = 300000;
    char *ys = malloc(big + 1), *stem = malloc(big + 1);
    memset(ys, 'y', big);
    ys[big] = 0;
    CHECK(porter_stem(ys, stem, big + 1) == 0 && strlen(stem) == big && stem[big - 1] == 'i');
    free(ys);
    free(stem);
}

static void test_tokenize(void) {
    char **t;
    int n;
    /* punctuation runs are separators; tokens of <= 3 chars are not stemmed; digits are kept */
    CHECK(rouge_tokenize("The cats' running -- fast, 2x! doi:10.4855", 1, &t, &n) == 0);
    const char *want[] = {"the", "cat", "run", "fast", "2x", "doi", "10", "4855"};
    CHECK(n == 8);
    for (int i = 0; i < n && i < 8; i++) CHECK_MSG(!strcmp(t[i], want[i]), "token %d = %s", i, t[i]);
    free(t);
    /* non-ASCII letters become spaces; U+0130 lowercases to "i" + a combining dot; KELVIN SIGN to "k" */
    CHECK(rouge_tokenize("\xC3\x9cn\xC3\xAF" "c\xC3\xB6" "d\xC3\xA9 \xC4\xB0stanbul 5\xE2\x84\xAA", 0, &t, &n) == 0);
    const char *want2[] = {"n", "c", "d", "i", "stanbul", "5k"};
    CHECK(n == 6);
    for (int i = 0; i < n && i < 6; i++) CHECK_MSG(!strcmp(t[i], want2[i]), "token %d = %s", i, t[i]);
    free(t);
    /* without stemming the word stays whole; empty text has no tokens */
    CHECK(rouge_tokenize("Running", 0, &t, &n) == 0 && n == 1 && !strcmp(t[0], "running"));
    free(t);
    CHECK(rouge_tokenize(" ,.; ", 1, &t, &n) == 0 && n == 0);
    free(t);
    /* invalid UTF-8 bytes are separators */
    CHECK(rouge_tokenize("ab\xFF\xFE" "cd", 1, &t, &n) == 0 && n == 2);
    free(t);
}

static void test_lcs_f1(void) {
    /* LCS of a b c d e / e d c b a is 1: P = R = 0.2 */
    CHECK_NEAR(rouge_l_f1("a b c d e", "e d c b a"), 0.2, 1e-12);
    /* LCS = 3 (a c e), P = 3/5, R = 3/4 */
    CHECK_NEAR(rouge_l_f1("a b c d e", "a c x e"), 2 * 0.6 * 0.75 / 1.35, 1e-12);
    CHECK(rouge_l_f1("", "a") == 0.0);
    CHECK(rouge_l_f1("a", "") == 0.0);
    CHECK(rouge_l_f1("a", "b") == 0.0);
    CHECK(rouge_l_f1("Same words.", "same WORDS") == 1.0);
    /* the maximum over references, and x100 */
    const char *refs[] = {"nothing in common", "cats running", "the cat runs"};
    CHECK_NEAR(rouge_l_f1_max("the cats ran", refs, 3), 2.0 / 3.0, 1e-12);
    CHECK_NEAR(rouge_l_max_x100("the cats ran", refs, 3), 200.0 / 3.0, 1e-9);
    CHECK(rouge_l_f1_max("x", refs, 0) == 0.0);
    /* repeated tokens: LCS of "a a b" and "a b a b" is 3 */
    CHECK_NEAR(rouge_l_f1("a a b", "a b a b"), 2 * 1.0 * 0.75 / 1.75, 1e-12);
}

/* 256-token strings times a thousand pairs must take well under a second. */
static void test_lcs_speed(void) {
    PkBuf a = {0}, b = {0};
    PkRng rng;
    pk_rng_seed(&rng, 7);
    for (int i = 0; i < 256; i++) {
        pk_buf_printf(&a, "word%d ", (int)pk_rng_below(&rng, 50));
        pk_buf_printf(&b, "word%d ", (int)pk_rng_below(&rng, 50));
    }
    /* CPU time, so other processes on a shared machine do not count */
    clock_t c0 = clock();
    double sum = 0;
    for (int i = 0; i < 1000; i++) sum += rouge_l_f1(a.data, b.data);
    double dt = (double)(clock() - c0) / CLOCKS_PER_SEC;
    printf("    1000 pairs of 256 tokens: %.3f s CPU\n", dt);
    CHECK(sum > 0);
    /* sanitizer builds are several times slower; they still check the sum */
    if (!getenv("PROMPTKD_SANITIZED")) CHECK(dt < 2.0);
    pk_buf_free(&a);
    pk_buf_free(&b);
}

int main(void) {
    RUN(test_reference_file_all_lines);
    RUN(test_porter_stems);
    RUN(test_tokenize);
    RUN(test_lcs_f1);
    RUN(test_lcs_speed);
    TEST_EXIT();
}
