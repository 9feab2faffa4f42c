/* promptkd synth: writes the built-in synthetic instruction benchmark (core/synth.h) as Dolly JSONL. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "synth.h"

int cmd_synth(int argc, char **argv) {
    const char *out_dir = NULL;
    unsigned long long seed = SYNTH_DEFAULT_SEED;
    int size = SYNTH_DEFAULT_TRAIN, template_copies = 0, pretrain_docs = 0;
    const Opt opts[] = {
        {"out", OPT_STR, &out_dir, "folder for train.jsonl, valid.jsonl, test.jsonl (created)", 1},
        {"seed", OPT_U64, &seed, "seed of the fact tables and of every draw (default 1234)", 0},
        {"size", OPT_INT, &size, "training records, 1..1000000 (default 6000); valid and test get ceil(N/12) each", 0},
        {"template-copies", OPT_INT, &template_copies,
         "also write template.jsonl: K copies of each piece of the prompt template, tokenizer training text", 0},
        {"pretrain-docs", OPT_INT, &pretrain_docs,
         "also write pretrain.jsonl: the training records and N drawn documents of the same world ({\"text\"} lines)",
         0},
    };
    int rc = cli_parse("promptkd synth --out DIR [--seed S] [--size N] [--template-copies K] [--pretrain-docs N]", argc, argv, opts,
                       (int)(sizeof opts / sizeof *opts), NULL, 0, NULL);
    if (rc == 1) return 0;
    if (rc) return rc;
    char err[PK_ERR_LEN], msg[PK_ERR_LEN + 64];
    if (size < 1 || size > SYNTH_MAX_RECORDS) {
        snprintf(msg, sizeof msg, "--size must be between 1 and %d training records, got %d", SYNTH_MAX_RECORDS, size);
        return cli_fail("synth", msg);
    }
    if (template_copies < 0 || template_copies > 100000) {
        snprintf(msg, sizeof msg, "--template-copies must be between 0 and 100000, got %d", template_copies);
        return cli_fail("synth", msg);
    }
    if (pretrain_docs < 0 || pretrain_docs > SYNTH_MAX_RECORDS * 10) {
        snprintf(msg, sizeof msg, "--pretrain-docs must be between 0 and %d, got %d", SYNTH_MAX_RECORDS * 10,
                 pretrain_docs);
        return cli_fail("synth", msg);
    }
    if (!out_dir[0]) return cli_fail("synth", "--out must name a folder, got an empty string");
    SynthOptions opt;
    synth_options_default(&opt, (uint64_t)seed, size);
    SynthSplits splits;
    if (synth_generate(&opt, &splits, err)) return cli_fail("synth", err);
    if (synth_write_dir(&splits, template_copies, out_dir, err)) {
        synth_free(&splits);
        return cli_fail("synth", err);
    }
    if (pretrain_docs > 0) {
        PkBuf corpus = {0};
        char path[4096];
        int bad = synth_pretrain_jsonl(&splits, (uint64_t)seed, pretrain_docs, &corpus, err) ||
                  pk_path_join(path, sizeof path, out_dir, "pretrain.jsonl", err) ||
                  pk_write_file_atomic(path, corpus.data ? corpus.data : "", corpus.len, err);
        pk_buf_free(&corpus);
        if (bad) {
            synth_free(&splits);
            return cli_fail("synth", err);
        }
    }
    printf("wrote %s/{train,valid,test}.jsonl: %d / %d / %d records, %d categories, seed %llu\n", out_dir,
           splits.n_train, splits.n_valid, splits.n_test, synth_n_categories(), seed);
    if (template_copies > 0) printf("wrote %s/template.jsonl: %d copies of the prompt template\n", out_dir, template_copies);
    if (pretrain_docs > 0)
        printf("wrote %s/pretrain.jsonl: the %d training records and %d drawn documents\n", out_dir, splits.n_train,
               pretrain_docs);
    synth_free(&splits);
    return 0;
}
