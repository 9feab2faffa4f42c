/* ROUGE-L exactly as Google's rouge_score computes it with use_stemmer=True:
 * lowercase (Python str.lower), every run of characters outside [a-z0-9] becomes a space, split on
 * whitespace, tokens longer than 3 characters go through NLTK's Porter stemmer (NLTK_EXTENSIONS
 * mode), keep tokens matching ^[a-z0-9]+$; precision and recall of the longest common subsequence,
 * F1 = 2PR / (P + R), 0 when either side has no tokens or the LCS is empty. */
#ifndef PK_ROUGE_H
#define PK_ROUGE_H

#include <stddef.h>

/* ROUGE-L F1 in [0, 1] of one prediction against one reference. */
double rouge_l_f1(const char *prediction, const char *reference);
/* Maximum ROUGE-L F1 in [0, 1] over n_refs references (0 when n_refs == 0). */
double rouge_l_f1_max(const char *prediction, const char *const *references, int n_refs);
/* The same maximum x 100: the per-example figure papers report (their mean over a set is ROUGE-L). */
double rouge_l_max_x100(const char *prediction, const char *const *references, int n_refs);

/* rouge_score's tokenisation of text (NUL-terminated UTF-8; invalid bytes count as non-[a-z0-9]).
 * *tokens is one malloc'ed block: an array of n pointers followed by the token strings; free(*tokens)
 * releases all. Returns 0, or -1 when out of memory. */
int rouge_tokenize(const char *text, int stem, char ***tokens, int *n);

/* NLTK's PorterStemmer().stem(word) (NLTK_EXTENSIONS mode, lowercasing) of an ASCII word.
 * Writes the stem (never longer than the word) NUL-terminated into out (size outlen > strlen(word)).
 * Returns 0, or -1 when out is too small. */
int porter_stem(const char *word, char *out, size_t outlen);

#endif
