/* Datasets: formats, the template, errors, tokenised view, shuffles, splits, batches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "data.h"
#include "test.h"
#include "tokenizer.h"

static char tmp_dir[64];

/* Writes content to tmp_dir/name; returns the path (static buffer rotated over 4 calls). */
static const char *write_tmp(const char *name, const char *content) {
    static char paths[4][128];
    static int k;
    char *p = paths[k++ % 4];
    snprintf(p, 128, "%s/%s", tmp_dir, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(content, 1, strlen(content), f);
        fclose(f);
    }
    return p;
}

/* Loads content and expects failure whose message contains every given fragment. */
static void expect_load_error(const char *name, const char *content, int skip_bad, const char *frag1,
                              const char *frag2) {
    char err[PK_ERR_LEN] = "";
    Dataset d;
    const char *path = write_tmp(name, content);
    int rc = data_load(&d, path, skip_bad, err);
    CHECK_MSG(rc == PK_FAIL, "%s loaded", name);
    CHECK_MSG(strstr(err, frag1) != NULL, "'%s' lacks '%s'", err, frag1);
    if (frag2) CHECK_MSG(strstr(err, frag2) != NULL, "'%s' lacks '%s'", err, frag2);
    CHECK(d.n == 0 && d.recs == NULL);
}

static void test_template_byte_exact(void) {
    char *with = data_format_prompt("Sum the numbers.", "1, 2, 3");
    CHECK(with && !strcmp(with,
                          "Below is an instruction that describes a task, paired with an input that provides further "
                          "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
                          "Sum the numbers.\n\n### Input:\n1, 2, 3\n\n### Response:\n"));
    char *without = data_format_prompt("Name a colour.", "");
    CHECK(without && !strcmp(without,
                             "Below is an instruction that describes a task. Write a response that appropriately "
                             "completes the request.\n\n### Instruction:\nName a colour.\n\n### Response:\n"));
    char *null_input = data_format_prompt("Name a colour.", NULL);
    CHECK(null_input && without && !strcmp(null_input, without));
    free(with);
    free(without);
    free(null_input);
}

static void test_dolly(void) {
    char err[PK_ERR_LEN];
    Dataset d;
    const char *path = write_tmp("dolly.jsonl",
                                 "{\"instruction\": \"When was X founded?\", \"context\": \"X was founded in 1901.\", "
                                 "\"response\": \"In 1901.\", \"category\": \"closed_qa\"}\n"
                                 "\n"
                                 "{\"instruction\": \"List three fruits.\", \"context\": \"\", \"response\": \"Apple, "
                                 "pear, plum.\", \"category\": \"brainstorming\"}\r\n");
    CHECK_MSG(data_load(&d, path, 0, err) == PK_OK, "%s", err);
    CHECK(d.n == 2 && d.n_skipped == 0 && !strcmp(d.format, "dolly"));
    if (d.n == 2) {
        CHECK(!strcmp(d.recs[0].category, "closed_qa") && !strcmp(d.recs[1].category, "brainstorming"));
        CHECK(!strcmp(d.recs[0].input, "X was founded in 1901."));
        CHECK(d.recs[0].n_refs == 1 && !strcmp(d.recs[0].refs[0], "In 1901."));
        char *p0 = data_format_prompt("When was X founded?", "X was founded in 1901.");
        CHECK(!strcmp(d.recs[0].prompt, p0));
        free(p0);
        char *p1 = data_format_prompt("List three fruits.", "");
        CHECK(!strcmp(d.recs[1].prompt, p1) && !strstr(d.recs[1].prompt, "### Input"));
        free(p1);
        CHECK(d.recs[0].line == 1 && d.recs[1].line == 3);
    }
    data_free(&d);
}

static void test_alpaca_and_plain(void) {
    char err[PK_ERR_LEN];
    Dataset d;
    const char *path = write_tmp("alpaca.jsonl", "{\"instruction\": \"Add.\", \"input\": \"2 and 3\", \"output\": \"5\"}\n"
                                                 "{\"instruction\": \"Say hi.\", \"input\": \"\", \"output\": \"Hi!\"}\n"
                                                 "{\"instruction\": \"Say bye.\", \"output\": \"Bye!\"}\n");
    CHECK_MSG(data_load(&d, path, 0, err) == PK_OK, "%s", err);
    CHECK(d.n == 3 && !strcmp(d.format, "alpaca"));
    if (d.n == 3) {
        CHECK(!strcmp(d.recs[0].category, "alpaca") && !strcmp(d.recs[0].refs[0], "5"));
        CHECK(strstr(d.recs[0].prompt, "### Input:\n2 and 3\n\n### Response:\n") != NULL);
        CHECK(!strstr(d.recs[1].prompt, "### Input") && !strcmp(d.recs[2].input, ""));
    }
    data_free(&d);

    path = write_tmp("plain.jsonl", "{\"prompt\": \"Q: 2+2?\\nA:\", \"response\": \" 4\"}\n");
    CHECK_MSG(data_load(&d, path, 0, err) == PK_OK, "%s", err);
    CHECK(d.n == 1 && !strcmp(d.format, "plain"));
    if (d.n == 1) {
        CHECK(!strcmp(d.recs[0].prompt, "Q: 2+2?\nA:")); /* verbatim, no template */
        CHECK(!strcmp(d.recs[0].category, "plain") && !strcmp(d.recs[0].refs[0], " 4"));
    }
    data_free(&d);
}

static void test_selfinst_fixture(void) {
    char err[PK_ERR_LEN];
    Dataset d;
    CHECK_MSG(data_load(&d, "tests/fixtures/eval/selfinst-user-oriented.jsonl", 0, err) == PK_OK, "%s", err);
    CHECK(d.n == 252 && !strcmp(d.format, "selfinst"));
    int empty_inputs = 0;
    for (int i = 0; i < d.n; i++) {
        CHECK(d.recs[i].n_refs >= 1 && d.recs[i].refs[0][0]);
        if (!d.recs[i].input[0]) empty_inputs++;
    }
    CHECK(empty_inputs == 44);
    if (d.n > 0) {
        CHECK(!strcmp(d.recs[0].category, "selfinst"));
        CHECK(!strcmp(d.recs[0].refs[0], "If you have any questions about my rate or find it necessary to increase or "
                                         "decrease this project's scope, please let me know."));
        CHECK(!strncmp(d.recs[0].input, "If you have any questions about my rate or if you find", 54));
        CHECK(strstr(d.recs[0].prompt, "### Instruction:\nThe sentence you are given might be too wordy") != NULL);
    }
    data_free(&d);

    /* several instances: every output is a reference, the first instance's input is the input */
    const char *path = write_tmp(
        "selfinst.jsonl",
        "{\"id\": \"t0\", \"instruction\": \"Translate.\", \"instances\": [{\"input\": \"chat\", \"output\": \"cat\"}, "
        "{\"input\": \"chien\", \"output\": \"dog\"}, {\"input\": \"\", \"output\": \"bird\"}]}\n");
    CHECK_MSG(data_load(&d, path, 0, err) == PK_OK, "%s", err);
    CHECK(d.n == 1 && d.recs[0].n_refs == 3);
    if (d.n == 1 && d.recs[0].n_refs == 3) {
        CHECK(!strcmp(d.recs[0].refs[0], "cat") && !strcmp(d.recs[0].refs[1], "dog") &&
              !strcmp(d.recs[0].refs[2], "bird"));
        CHECK(!strcmp(d.recs[0].input, "chat"));
    }
    data_free(&d);
}

static void test_json_array_file(void) {
    char err[PK_ERR_LEN];
    Dataset d;
    const char *path = write_tmp("array.json", "[\n  {\"instruction\": \"A\", \"input\": \"\", \"output\": \"a\"},\n"
                                               "  {\"instruction\": \"B\", \"input\": \"b\", \"output\": \"bb\"}\n]\n");
    CHECK_MSG(data_load(&d, path, 0, err) == PK_OK, "%s", err);
    CHECK(d.n == 2 && !strcmp(d.format, "alpaca"));
    if (d.n == 2) CHECK(d.recs[1].line == 3 && !strcmp(d.recs[1].refs[0], "bb"));
    data_free(&d);
    expect_load_error("array-bad.json",
                      "[\n {\"instruction\": \"A\", \"output\": \"a\"},\n {\"instruction\": \"B\", \"output\": \"\"}\n]",
                      0, "array-bad.json:3:", "\"output\" is empty");
    expect_load_error("array-malformed.json", "[\n {\"instruction\": \"A\", \"output\": \"a\"},\n {\"instruction\": \n]", 0,
                      "array-malformed.json:3:", "malformed");
    expect_load_error("array-empty.json", "[ ]\n", 0, "empty", NULL);
    /* skip_bad also works element-wise */
    path = write_tmp("array-skip.json",
                     "[{\"instruction\": \"A\", \"output\": \"a\"}, {\"instruction\": \"B\"}, 7]");
    CHECK_MSG(data_load(&d, path, 1, err) == PK_OK, "%s", err);
    CHECK(d.n == 1 && d.n_skipped == 2);
    data_free(&d);
}

static void test_bad_inputs(void) {
    const char *good = "{\"instruction\": \"A\", \"context\": \"\", \"response\": \"a\", \"category\": \"open_qa\"}\n";
    char buf[1024];
    snprintf(buf, sizeof buf, "%s%s{\"instruction\": \"B\", \"response\": \n%s", good, good, good);
    expect_load_error("malformed.jsonl", buf, 0, "malformed.jsonl:3:", "malformed JSON");
    snprintf(buf, sizeof buf, "%s{\"instruction\": \"B\", \"context\": \"\", \"category\": \"x\"}\n", good);
    expect_load_error("missing.jsonl", buf, 0, "missing.jsonl:2:", "missing field \"response\"");
    snprintf(buf, sizeof buf, "%s%s{\"instruction\": \"  \", \"response\": \"b\"}\n", good, good);
    expect_load_error("empty-field.jsonl", buf, 0, "empty-field.jsonl:3:", "\"instruction\" is empty");
    snprintf(buf, sizeof buf, "%s{\"instruction\": 5, \"response\": \"b\"}\n", good);
    expect_load_error("wrong-type.jsonl", buf, 0, "wrong-type.jsonl:2:", "must be a string");
    snprintf(buf, sizeof buf, "%s{\"instruction\": \"caf\xC3\", \"response\": \"b\"}\n", good);
    expect_load_error("utf8.jsonl", buf, 0, "utf8.jsonl:2:", "invalid UTF-8 at byte 20");
    expect_load_error("empty.jsonl", "", 0, "empty.jsonl", "empty");
    expect_load_error("blank.jsonl", "\n  \n\n", 0, "blank.jsonl", "empty");
    expect_load_error("unknown.jsonl", "{\"question\": \"q\", \"answer\": \"a\"}\n", 0, "unknown.jsonl:1:",
                      "unknown record format");
    expect_load_error("not-object.jsonl", "[1, 2]\n", 0, "not-object.jsonl:1:", "JSON object");
    expect_load_error("trailing.jsonl", "{\"prompt\": \"p\", \"response\": \"r\"} x\n", 0, "trailing.jsonl:1:",
                      "after the JSON object");
    expect_load_error("instances.jsonl", "{\"instruction\": \"i\", \"instances\": []}\n", 0, "instances.jsonl:1:",
                      "\"instances\" is empty");
    expect_load_error("instances2.jsonl", "{\"instruction\": \"i\", \"instances\": [{\"input\": \"x\"}]}\n", 0,
                      "instances2.jsonl:1:", "\"instances[0].output\"");
    char err[PK_ERR_LEN];
    Dataset d;
    CHECK(data_load(&d, "/nonexistent/dir/data.jsonl", 0, err) == PK_FAIL && strstr(err, "/nonexistent/dir/data.jsonl"));

    /* skip_bad: the bad lines are counted, the good ones kept */
    snprintf(buf, sizeof buf, "%snot json\n%s{\"instruction\": \"x\"}\n{\"instruction\": \"caf\xC3\"}\n%s", good, good,
             good);
    const char *path = write_tmp("skip.jsonl", buf);
    CHECK_MSG(data_load(&d, path, 1, err) == PK_OK, "%s", err);
    CHECK(d.n == 3 && d.n_skipped == 3);
    if (d.n == 3) CHECK(d.recs[2].line == 6);
    data_free(&d);
    /* without skip_bad the first bad line is reported */
    expect_load_error("skip.jsonl", buf, 0, "skip.jsonl:2:", NULL);
    /* everything skipped -> still an error */
    expect_load_error("allbad.jsonl", "nope\n{\"a\": 1}\n", 1, "no records left after skipping 2 bad lines", NULL);
    /* a leading bad line does not fix the format: it is detected from the first good record */
    snprintf(buf, sizeof buf, "{\"x\": 1}\n%s", good);
    path = write_tmp("late-format.jsonl", buf);
    CHECK_MSG(data_load(&d, path, 1, err) == PK_OK, "%s", err);
    CHECK(d.n == 1 && d.n_skipped == 1 && !strcmp(d.format, "dolly"));
    data_free(&d);
}

static void test_tokenize_and_drop(void) {
    char err[PK_ERR_LEN];
    Tokenizer *tok = NULL;
    CHECK_MSG(tok_load(&tok, "tests/fixtures/gpt2-tokenizer", err) == PK_OK, "%s", err);
    if (!tok) return;
    PkBuf long_instr = {0};
    for (int i = 0; i < 300; i++) pk_buf_printf(&long_instr, " word");
    PkBuf file = {0};
    pk_buf_printf(&file, "{\"prompt\": \"Hello\", \"response\": \" world\"}\n");
    pk_buf_printf(&file, "{\"prompt\": \"%s\", \"response\": \" long\"}\n", long_instr.data);
    pk_buf_printf(&file, "{\"prompt\": \"Hi there\", \"response\": \" a b c d e f g\"}\n");
    const char *path = write_tmp("tok.jsonl", file.data);
    Dataset d;
    CHECK_MSG(data_load(&d, path, 0, err) == PK_OK, "%s", err);
    TokExample *ex = NULL;
    int n = 0, dropped = -1;
    CHECK_MSG(data_tokenize(&d, tok, 256, 0, &ex, &n, &dropped, err) == PK_OK, "%s", err);
    CHECK(n == 2 && dropped == 1);
    if (n == 2) {
        /* "Hello" = 15496, " world" = 995, then EOS 50256 */
        CHECK(ex[0].prompt_len == 1 && ex[0].prompt[0] == 15496);
        CHECK(ex[0].response_len == 2 && ex[0].response[0] == 995 && ex[0].response[1] == 50256);
        CHECK(ex[0].rec == 0 && ex[1].rec == 2);
        CHECK(ex[1].response[ex[1].response_len - 1] == 50256);
    }
    data_free_tokenized(ex, n);
    /* no limit keeps the long prompt; max_response_len cuts */
    CHECK(data_tokenize(&d, tok, 0, 3, &ex, &n, &dropped, err) == PK_OK);
    CHECK(n == 3 && dropped == 0);
    if (n == 3) CHECK(ex[1].prompt_len == 300 && ex[2].response_len == 3 && ex[0].response_len == 2);
    data_free_tokenized(ex, n);
    /* a dataset whose every prompt is too long is an error */
    Dataset only_long = d;
    only_long.recs = &d.recs[1];
    only_long.n = 1;
    CHECK(data_tokenize(&only_long, tok, 256, 0, &ex, &n, &dropped, err) == PK_FAIL && strstr(err, "longer than 256"));
    data_free(&d);
    pk_buf_free(&long_instr);
    pk_buf_free(&file);
    tok_free(tok);
}

/* The prompts of the first records as ids, cut to a length; an empty prompt is named by its line. */
static void test_encode_prompts(void) {
    char err[PK_ERR_LEN];
    Tokenizer *tok = NULL;
    CHECK_MSG(tok_load(&tok, "tests/fixtures/gpt2-tokenizer", err) == PK_OK, "%s", err);
    if (!tok) return;
    Dataset d;
    const char *path = write_tmp("prompts.jsonl", "{\"prompt\": \"one two three four\", \"response\": \"x\"}\n"
                                                  "{\"prompt\": \"five\", \"response\": \"y\"}\n"
                                                  "{\"prompt\": \"six seven\", \"response\": \"z\"}\n");
    CHECK_MSG(data_load(&d, path, 0, err) == PK_OK, "%s", err);
    int *ids[3] = {0}, lens[3] = {0};
    CHECK_MSG(data_encode_prompts(&d, tok, 2, 3, "test", ids, lens, err) == PK_OK, "%s", err);
    CHECK(lens[0] == 3 && lens[1] == 1 && ids[2] == NULL);
    int *want = NULL, nw = 0;
    CHECK(tok_encode(tok, "one two three four", 18, 0, &want, &nw, err) == PK_OK && nw == 4);
    CHECK(want && ids[0] && !memcmp(ids[0], want, 3 * sizeof(int)));
    free(want);
    for (int i = 0; i < 3; i++) free(ids[i]), ids[i] = NULL;
    char *kept = d.recs[2].prompt;
    d.recs[2].prompt = "";
    CHECK(data_encode_prompts(&d, tok, 3, 8, "valid", ids, lens, err) == PK_FAIL);
    CHECK_MSG(strstr(err, "valid record 2 (line 3): the prompt has no tokens"), "%s", err);
    d.recs[2].prompt = kept;
    int **rows = calloc(3, sizeof *rows);
    for (int i = 0; i < 3; i++) rows[i] = ids[i];
    data_free_rows(rows, 3); /* frees the rows made before the failure */
    data_free(&d);
    tok_free(tok);
}

static void test_shuffle_and_split(void) {
    int a[100], b[100], c[100];
    data_shuffle_indices(a, 100, 42);
    data_shuffle_indices(b, 100, 42);
    data_shuffle_indices(c, 100, 43);
    CHECK(!memcmp(a, b, sizeof a));
    CHECK(memcmp(a, c, sizeof a) != 0);
    int seen[100] = {0}, moved = 0;
    for (int i = 0; i < 100; i++) {
        if (a[i] >= 0 && a[i] < 100) seen[a[i]]++;
        if (a[i] != i) moved++;
    }
    for (int i = 0; i < 100; i++) CHECK(seen[i] == 1);
    CHECK(moved > 50);

    char err[PK_ERR_LEN];
    DataSplit s1, s2;
    CHECK(data_split(100, 0.1, 0.2, 7, &s1, err) == PK_OK);
    CHECK(data_split(100, 0.1, 0.2, 7, &s2, err) == PK_OK);
    CHECK(s1.n_train == 70 && s1.n_valid == 10 && s1.n_test == 20);
    CHECK(!memcmp(s1.train, s2.train, 70 * sizeof(int)) && !memcmp(s1.test, s2.test, 20 * sizeof(int)));
    int owner[100] = {0};
    for (int i = 0; i < s1.n_train; i++) owner[s1.train[i]] += 1;
    for (int i = 0; i < s1.n_valid; i++) owner[s1.valid[i]] += 10;
    for (int i = 0; i < s1.n_test; i++) owner[s1.test[i]] += 100;
    int bad = 0;
    for (int i = 0; i < 100; i++)
        if (owner[i] != 1 && owner[i] != 10 && owner[i] != 100) bad++;
    CHECK(bad == 0); /* disjoint and covering */
    data_split_free(&s1);
    data_split_free(&s2);
    CHECK(data_split(10, 0.0, 0.0, 1, &s1, err) == PK_OK && s1.n_train == 10 && s1.valid == NULL);
    data_split_free(&s1);
    CHECK(data_split(10, 0.5, 0.5, 1, &s1, err) == PK_FAIL && strstr(err, "no training"));
    CHECK(data_split(10, -0.1, 0.0, 1, &s1, err) == PK_FAIL && strstr(err, "[0, 1)"));
}

static void test_batch_teacher_forcing(void) {
    int p0[] = {10, 11, 12}, r0[] = {20, 21, 99};
    int p1[] = {30}, r1[] = {40, 99};
    TokExample ex[2] = {{p0, 3, r0, 3, 0}, {p1, 1, r1, 2, 1}};
    int tokens[2 * 8], targets[2 * 8], lengths[2], T = 0;
    char err[PK_ERR_LEN];
    CHECK_MSG(data_batch_teacher_forcing(ex, NULL, 2, 8, 99, tokens, targets, lengths, &T, err) == PK_OK, "%s", err);
    /* row 0: s = 10 11 12 20 21 99 -> inputs 10 11 12 20 21, targets -1 -1 20 21 99 */
    int want_tok[] = {10, 11, 12, 20, 21, 30, 40, 99, 99, 99};
    int want_tgt[] = {-1, -1, 20, 21, 99, 40, 99, -1, -1, -1};
    CHECK(T == 5 && lengths[0] == 5 && lengths[1] == 2);
    CHECK(!memcmp(tokens, want_tok, sizeof want_tok));
    CHECK(!memcmp(targets, want_tgt, sizeof want_tgt));
    /* selection and truncation to max_T */
    int which[] = {1, 0};
    CHECK(data_batch_teacher_forcing(ex, which, 2, 4, 0, tokens, targets, lengths, &T, err) == PK_OK);
    int want_tok2[] = {30, 40, 0, 0, 10, 11, 12, 20};
    int want_tgt2[] = {40, 99, -1, -1, -1, -1, 20, 21};
    CHECK(T == 4 && lengths[0] == 2 && lengths[1] == 4);
    CHECK(!memcmp(tokens, want_tok2, sizeof want_tok2));
    CHECK(!memcmp(targets, want_tgt2, sizeof want_tgt2));
    /* a prompt longer than max_T leaves no target */
    CHECK(data_batch_teacher_forcing(ex, NULL, 1, 2, 0, tokens, targets, lengths, &T, err) == PK_FAIL &&
          strstr(err, "max_T = 2"));
    TokExample empty = {p0, 3, r0, 0, 5};
    CHECK(data_batch_teacher_forcing(&empty, NULL, 1, 8, 0, tokens, targets, NULL, &T, err) == PK_FAIL &&
          strstr(err, "no response"));
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/pk-test-data-XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_template_byte_exact);
    RUN(test_dolly);
    RUN(test_alpaca_and_plain);
    RUN(test_selfinst_fixture);
    RUN(test_json_array_file);
    RUN(test_bad_inputs);
    RUN(test_tokenize_and_drop);
    RUN(test_encode_prompts);
    RUN(test_shuffle_and_split);
    RUN(test_batch_teacher_forcing);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) printf("    could not remove %s\n", tmp_dir);
    TEST_EXIT();
}
