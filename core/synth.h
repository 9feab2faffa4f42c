/* The built-in synthetic instruction benchmark (DESIGN.md section 5).
 *
 * A seed fixes a small fictional world (towns with their river, founding year and main export;
 * creatures with colour, habitat and diet; countries with capital and currency; people's names)
 * and every draw made from it. From the world, records in Dolly format are drawn over eleven
 * categories: open_qa (the fact tables, memorised from training), closed_qa (answer is in the
 * context), classification, information_extraction, summarization, rewriting, brainstorming,
 * creative_writing, general_qa, arithmetic and string_manipulation. Each record picks one of
 * several instruction phrasings and one of several response phrasings, so the conditional
 * distribution of a response has real entropy.
 *
 * Valid and test records are drawn from a held-out part of each task: for fact questions a
 * question form per fact that training never uses, for computed tasks operands that training
 * never uses (arithmetic by the unordered pair of numbers, string tasks by the word, parity by
 * the number), and no (instruction, context) pair of valid or test occurs in train.
 *
 * Only integer RNG draws are made, so the same seed gives byte-identical files on any machine.
 * The world depends on the seed only (not on the sizes). */
#ifndef PK_SYNTH_H
#define PK_SYNTH_H

#include <stdint.h>

#include "common.h"

#define SYNTH_DEFAULT_SEED 1234
#define SYNTH_DEFAULT_TRAIN 6000
#define SYNTH_MAX_RECORDS 1000000

typedef struct {
    uint64_t seed;
    int n_train, n_valid, n_test; /* each in [0, SYNTH_MAX_RECORDS]; n_train >= 1 */
} SynthOptions;

typedef struct {
    char *instruction, *context, *response; /* malloc'ed; context may be "" */
    const char *category;                   /* static string, one of synth_category_name() */
    /* What must not be shared between train and valid/test, e.g. "arith:12:35", "word:plum",
     * "fact:17:2" (fact 17 asked in question form 2), or the pair itself for free-form records.
     * Not written to the JSONL files. */
    char *key;
} SynthRecord;

typedef struct {
    SynthRecord *train, *valid, *test;
    int n_train, n_valid, n_test;
} SynthSplits;

/* n_train records for training, ceil(n_train / 12) each for valid and test. */
void synth_options_default(SynthOptions *opt, uint64_t seed, int n_train);

/* Draws the three splits. Fails (naming the field) on sizes out of range. Free with synth_free. */
int synth_generate(const SynthOptions *opt, SynthSplits *out, char *err);
void synth_free(SynthSplits *s);

/* Appends records as Dolly JSONL: one object per line with "instruction", "context",
 * "response", "category" in that order, printed by cJSON without spaces. */
int synth_to_jsonl(const SynthRecord *records, int n, PkBuf *out, char *err);

/* Text for training a tokenizer that tokenises the prompt template into few tokens: `copies`
 * times each fixed piece of both Alpaca templates (data_format_prompt, the text between and around
 * the instruction and the input), one JSONL object {"text": piece} per line. A BPE trainer then
 * sees the template as often as it will occur in training. */
int synth_template_jsonl(int copies, PkBuf *out, char *err);

/* Creates dir (mkdir -p) and writes dir/train.jsonl, valid.jsonl, test.jsonl, and when
 * template_copies > 0 also dir/template.jsonl (synth_template_jsonl), each atomically. All texts
 * are built before the first write; if a later write fails, the files this call created are
 * removed again, so a failure leaves no partial output. */
int synth_write_dir(const SynthSplits *s, int template_copies, const char *dir, char *err);

/* The pretraining corpus of the same world, as JSONL lines {"text": document}: every training
 * record of s once (as plain text), and n_docs drawn documents, shuffled together. Drawn kinds:
 * encyclopedia-style articles about towns, creatures, countries and rivers (30%), lists and tables
 * of the fact tables (10%), dialogues of context-free questions and answers (14%), worked
 * arithmetic (8%), and instruction records of every category as plain text (38%: the Alpaca
 * template half the time, else "Question/Answer" or "Instruction/Input/Output" forms). Nothing of
 * valid or test leaks in: records, dialogue questions and worked arithmetic are drawn on the
 * training side of every hold-out, and a draw whose (instruction, context) pair or key occurs in
 * s's valid or test split is drawn again. seed must be the seed s was generated with (the world
 * depends on it); the corpus is deterministic by seed. */
int synth_pretrain_jsonl(const SynthSplits *s, uint64_t seed, int n_docs, PkBuf *out, char *err);

/* The categories, in a fixed order. */
int synth_n_categories(void);
const char *synth_category_name(int i);

#endif
