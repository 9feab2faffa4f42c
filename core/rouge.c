/* ROUGE-L as rouge_score computes it (use_stemmer=True), with NLTK's Porter stemmer in its
 * default NLTK_EXTENSIONS mode, rule for rule (nltk/stem/porter.py). */
#include "rouge.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Porter stemmer. The word lives in a char buffer w of length n; every step rewrites it in place
 * (no step makes a word longer than it was before that step) and returns the new length. */

static int is_vowel_letter(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

/* A consonant is a letter other than a, e, i, o, u, and other than y preceded by a consonant.
 * Anything else (digits too) counts as a consonant, as in NLTK. prev_cons is the answer for
 * position i - 1 (ignored at i = 0). */
static int consonant_after(char c, int i, int prev_cons) {
    if (is_vowel_letter(c)) return 0;
    if (c == 'y') return i == 0 ? 1 : !prev_cons;
    return 1;
}

/* The same for one position, without recursion: walk back over the run of y's ending at i. */
static int is_consonant(const char *w, int i) {
    if (w[i] != 'y') return !is_vowel_letter(w[i]);
    int s = i;
    while (s > 0 && w[s - 1] == 'y') s--;
    int cons = s == 0 ? 1 : !consonant_after(w[s - 1], s - 1, 1); /* w[s - 1] is not a y */
    return ((i - s) % 2 == 0) ? cons : !cons;
}

/* Porter's m: the number of "vc" transitions in the consonant/vowel pattern of w[0..n-1]. */
static int measure(const char *w, int n) {
    int m = 0;
    int prev_cons = 1;
    for (int i = 0; i < n; i++) {
        int cons = consonant_after(w[i], i, prev_cons);
        if (cons && i > 0 && !prev_cons) m++;
        prev_cons = cons;
    }
    return m;
}

static int contains_vowel(const char *w, int n) {
    int prev_cons = 1;
    for (int i = 0; i < n; i++) {
        prev_cons = consonant_after(w[i], i, prev_cons);
        if (!prev_cons) return 1;
    }
    return 0;
}

/* *d: ends with a double consonant */
static int ends_double_consonant(const char *w, int n) {
    return n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1);
}

/* *o: ends consonant-vowel-consonant with the last not w, x or y; NLTK also accepts a two-letter
 * vowel-consonant word. */
static int ends_cvc(const char *w, int n) {
    if (n >= 3 && is_consonant(w, n - 3) && !is_consonant(w, n - 2) && is_consonant(w, n - 1) && w[n - 1] != 'w' &&
        w[n - 1] != 'x' && w[n - 1] != 'y')
        return 1;
    return n == 2 && !is_consonant(w, 0) && is_consonant(w, 1);
}

static int ends_with(const char *w, int n, const char *suffix) {
    int k = (int)strlen(suffix);
    return k <= n && memcmp(w + n - k, suffix, (size_t)k) == 0;
}

/* Replaces the last k characters of w[0..n-1] by rep; returns the new length. */
static int replace_tail(char *w, int n, int k, const char *rep) {
    int r = (int)strlen(rep);
    memcpy(w + n - k, rep, (size_t)r);
    return n - k + r;
}

typedef enum { COND_M_GT0, COND_M_GT1, COND_ION, COND_LOGI } RuleCond;

typedef struct {
    const char *suffix, *replacement;
    RuleCond cond;
    int suffix_len;
} Rule;
#define RULE(suffix, replacement, cond) {suffix, replacement, cond, (int)sizeof(suffix) - 1}

/* NLTK's _apply_rule_list for measure conditions: the first rule whose suffix matches decides;
 * when its condition fails the word is returned unchanged (no further rule is tried). */
static int apply_rules(char *w, int n, const Rule *rules, int n_rules) {
    for (int r = 0; r < n_rules; r++) {
        int k = rules[r].suffix_len;
        if (k > n || w[n - 1] != rules[r].suffix[k - 1] || memcmp(w + n - k, rules[r].suffix, (size_t)k)) continue;
        int stem_len = n - k;
        int ok = 0;
        switch (rules[r].cond) {
        case COND_M_GT0: ok = measure(w, stem_len) > 0; break;
        case COND_M_GT1: ok = measure(w, stem_len) > 1; break;
        case COND_ION: ok = measure(w, stem_len) > 1 && (w[stem_len - 1] == 's' || w[stem_len - 1] == 't'); break;
        case COND_LOGI: ok = measure(w, n - 3) > 0; break; /* the 'l' stays with the stem */
        }
        return ok ? replace_tail(w, n, k, rules[r].replacement) : n;
    }
    return n;
}

static int step1a(char *w, int n) {
    if (ends_with(w, n, "ies") && n == 4) return replace_tail(w, n, 3, "ie"); /* dies -> die, flies -> fli */
    if (ends_with(w, n, "sses")) return n - 2;
    if (ends_with(w, n, "ies")) return n - 2;
    if (ends_with(w, n, "ss")) return n;
    if (ends_with(w, n, "s")) return n - 1;
    return n;
}

static int step1b(char *w, int n) {
    if (ends_with(w, n, "ied")) return replace_tail(w, n, 3, n == 4 ? "ie" : "i"); /* died -> die, spied -> spi */
    if (ends_with(w, n, "eed")) return measure(w, n - 3) > 0 ? n - 1 : n;
    int stem = -1;
    if (ends_with(w, n, "ed") && contains_vowel(w, n - 2)) stem = n - 2;
    else if (ends_with(w, n, "ing") && contains_vowel(w, n - 3)) stem = n - 3;
    if (stem < 0) return n;
    /* the follow-up rules on the stem, first match decides */
    if (ends_with(w, stem, "at") || ends_with(w, stem, "bl") || ends_with(w, stem, "iz")) {
        w[stem] = 'e';
        return stem + 1;
    }
    if (ends_double_consonant(w, stem)) {
        char last = w[stem - 1];
        return (last == 'l' || last == 's' || last == 'z') ? stem : stem - 1;
    }
    if (measure(w, stem) == 1 && ends_cvc(w, stem)) {
        w[stem] = 'e';
        return stem + 1;
    }
    return stem;
}

/* y -> i when preceded by a consonant that is not the whole stem: happy -> happi, enjoy stays. */
static int step1c(char *w, int n) {
    if (ends_with(w, n, "y") && n - 1 > 1 && is_consonant(w, n - 2)) w[n - 1] = 'i';
    return n;
}

static const Rule step2_rules[] = {
    RULE("ational", "ate", COND_M_GT0), RULE("tional", "tion", COND_M_GT0), RULE("enci", "ence", COND_M_GT0),
    RULE("anci", "ance", COND_M_GT0),   RULE("izer", "ize", COND_M_GT0),    RULE("bli", "ble", COND_M_GT0),
    RULE("alli", "al", COND_M_GT0),     RULE("entli", "ent", COND_M_GT0),   RULE("eli", "e", COND_M_GT0),
    RULE("ousli", "ous", COND_M_GT0),   RULE("ization", "ize", COND_M_GT0), RULE("ation", "ate", COND_M_GT0),
    RULE("ator", "ate", COND_M_GT0),    RULE("alism", "al", COND_M_GT0),    RULE("iveness", "ive", COND_M_GT0),
    RULE("fulness", "ful", COND_M_GT0), RULE("ousness", "ous", COND_M_GT0), RULE("aliti", "al", COND_M_GT0),
    RULE("iviti", "ive", COND_M_GT0),   RULE("biliti", "ble", COND_M_GT0),  RULE("fulli", "ful", COND_M_GT0),
    RULE("logi", "log", COND_LOGI),
};

static int step2(char *w, int n) {
    /* NLTK applies alli -> al first and, when it fires, runs step 2 again on the result */
    if (ends_with(w, n, "alli") && measure(w, n - 4) > 0) return step2(w, replace_tail(w, n, 4, "al"));
    return apply_rules(w, n, step2_rules, (int)(sizeof step2_rules / sizeof *step2_rules));
}

static const Rule step3_rules[] = {
    RULE("icate", "ic", COND_M_GT0), RULE("ative", "", COND_M_GT0), RULE("alize", "al", COND_M_GT0), RULE("iciti", "ic", COND_M_GT0),
    RULE("ical", "ic", COND_M_GT0),  RULE("ful", "", COND_M_GT0),   RULE("ness", "", COND_M_GT0),
};

static const Rule step4_rules[] = {
    RULE("al", "", COND_M_GT1),  RULE("ance", "", COND_M_GT1), RULE("ence", "", COND_M_GT1),  RULE("er", "", COND_M_GT1),
    RULE("ic", "", COND_M_GT1),  RULE("able", "", COND_M_GT1), RULE("ible", "", COND_M_GT1),  RULE("ant", "", COND_M_GT1),
    RULE("ement", "", COND_M_GT1), RULE("ment", "", COND_M_GT1), RULE("ent", "", COND_M_GT1), RULE("ion", "", COND_ION),
    RULE("ou", "", COND_M_GT1),  RULE("ism", "", COND_M_GT1),  RULE("ate", "", COND_M_GT1),   RULE("iti", "", COND_M_GT1),
    RULE("ous", "", COND_M_GT1), RULE("ive", "", COND_M_GT1),  RULE("ize", "", COND_M_GT1),
};

static int step5a(const char *w, int n) {
    if (!ends_with(w, n, "e")) return n;
    int m = measure(w, n - 1);
    if (m > 1) return n - 1;
    if (m == 1 && !ends_cvc(w, n - 1)) return n - 1;
    return n;
}

static int step5b(const char *w, int n) {
    if (ends_with(w, n, "ll") && measure(w, n - 1) > 1) return n - 1;
    return n;
}

/* NLTK's irregular forms: these words map straight to their paradigm and skip the steps. */
static const char *const irregular_pool[][2] = {
    {"sky", "sky"},         {"skies", "sky"},     {"dying", "die"},       {"lying", "lie"},
    {"tying", "tie"},       {"news", "news"},     {"innings", "inning"},  {"inning", "inning"},
    {"outings", "outing"},  {"outing", "outing"}, {"cannings", "canning"}, {"canning", "canning"},
    {"howe", "howe"},       {"proceed", "proceed"}, {"exceed", "exceed"}, {"succeed", "succeed"},
};

int porter_stem(const char *word, char *out, size_t outlen) {
    size_t len = strlen(word);
    if (outlen <= len) return -1;
    /* NLTK looks the word up in the pool before lowercasing it */
    for (size_t i = 0; i < sizeof irregular_pool / sizeof *irregular_pool; i++)
        if (!strcmp(word, irregular_pool[i][0])) {
            strcpy(out, irregular_pool[i][1]);
            return 0;
        }
    for (size_t i = 0; i < len; i++) {
        char c = word[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[len] = 0;
    if (len <= 2) return 0;
    int n = (int)len;
    n = step1a(out, n);
    n = step1b(out, n);
    n = step1c(out, n);
    n = step2(out, n);
    n = apply_rules(out, n, step3_rules, (int)(sizeof step3_rules / sizeof *step3_rules));
    n = apply_rules(out, n, step4_rules, (int)(sizeof step4_rules / sizeof *step4_rules));
    n = step5a(out, n);
    n = step5b(out, n);
    out[n] = 0;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Tokenisation. Python's str.lower() maps exactly two non-ASCII characters to something that
 * survives the [^a-z0-9]+ substitution: U+0130 (to "i" + U+0307) and U+212A KELVIN SIGN (to "k").
 * Every other non-ASCII character, and every invalid byte, is a separator. */

static int is_token_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

/* Lowercased text with every separator run collapsed to one space; malloc'ed. */
static char *normalise_text(const char *text, size_t *out_len) {
    size_t len = strlen(text);
    char *s = malloc(len + 2);
    if (!s) return NULL;
    size_t o = 0;
    const unsigned char *t = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned c = t[i];
        char emit = 0;
        size_t adv = 1;
        if (c < 0x80) {
            char ch = (char)c;
            if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
            if (is_token_char(ch)) emit = ch;
        } else if (c == 0xC4 && i + 1 < len && t[i + 1] == 0xB0) {
            emit = 'i'; /* U+0130; its U+0307 tail is a separator */
            adv = 2;
        } else if (c == 0xE2 && i + 2 < len && t[i + 1] == 0x84 && t[i + 2] == 0xAA) {
            emit = 'k'; /* U+212A */
            adv = 3;
        }
        if (emit) {
            s[o++] = emit;
            if (adv == 2 && o > 0) s[o++] = ' ';
        } else if (o > 0 && s[o - 1] != ' ') {
            s[o++] = ' ';
        }
        i += adv;
    }
    s[o] = 0;
    *out_len = o;
    return s;
}

int rouge_tokenize(const char *text, int stem, char ***tokens, int *n) {
    *tokens = NULL;
    *n = 0;
    size_t len;
    char *s = normalise_text(text, &len);
    if (!s) return -1;
    int count = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && (i == 0 || s[i - 1] == ' ')) count++;
    /* one block: count pointers, then the (possibly shorter, stemmed) token strings */
    size_t block = (size_t)count * sizeof(char *) + len + 1 + (size_t)count;
    char **toks = malloc(block > 0 ? block : 1);
    if (!toks) {
        free(s);
        return -1;
    }
    char *dst = (char *)(toks + count);
    int k = 0;
    size_t i = 0;
    while (i < len) {
        if (s[i] == ' ') {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && s[j] != ' ') j++;
        size_t tl = j - i;
        s[j] = 0; /* j == len already holds the terminator */
        toks[k++] = dst;
        if (stem && tl > 3) porter_stem(s + i, dst, tl + 1);
        else memcpy(dst, s + i, tl + 1);
        dst += strlen(dst) + 1;
        i = j + 1;
    }
    free(s);
    *tokens = toks;
    *n = k;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * LCS-based F1. Tokens are interned to small ints through a hash table built on the prediction,
 * so the O(n m) dynamic programme compares ints; reference tokens absent from the prediction get
 * -1 and never match. */

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

typedef struct {
    char **pred_toks;
    int n_pred;
    int *pred_ids;   /* [n_pred] */
    int *slots;      /* hash slot -> index of the first prediction token with that text, or -1 */
    int n_slots;     /* power of two */
} InternedPrediction;

static int intern_prediction(InternedPrediction *ip, const char *prediction) {
    memset(ip, 0, sizeof *ip);
    if (rouge_tokenize(prediction, 1, &ip->pred_toks, &ip->n_pred)) return -1;
    ip->n_slots = 16;
    while (ip->n_slots < 2 * ip->n_pred) ip->n_slots *= 2;
    ip->slots = malloc((size_t)ip->n_slots * sizeof(int));
    ip->pred_ids = malloc((size_t)(ip->n_pred > 0 ? ip->n_pred : 1) * sizeof(int));
    if (!ip->slots || !ip->pred_ids) return -1;
    for (int s = 0; s < ip->n_slots; s++) ip->slots[s] = -1;
    for (int i = 0; i < ip->n_pred; i++) {
        size_t s = (size_t)(fnv1a(ip->pred_toks[i]) & (uint64_t)(ip->n_slots - 1));
        while (ip->slots[s] >= 0 && strcmp(ip->pred_toks[ip->slots[s]], ip->pred_toks[i]))
            s = (s + 1) & (size_t)(ip->n_slots - 1);
        if (ip->slots[s] < 0) ip->slots[s] = i;
        ip->pred_ids[i] = ip->slots[s];
    }
    return 0;
}

static int lookup_id(const InternedPrediction *ip, const char *tok) {
    size_t s = (size_t)(fnv1a(tok) & (uint64_t)(ip->n_slots - 1));
    while (ip->slots[s] >= 0) {
        if (!strcmp(ip->pred_toks[ip->slots[s]], tok)) return ip->slots[s];
        s = (s + 1) & (size_t)(ip->n_slots - 1);
    }
    return -1;
}

static void free_interned(InternedPrediction *ip) {
    free(ip->pred_toks);
    free(ip->pred_ids);
    free(ip->slots);
}

/* LCS length of a[0..n-1] and b[0..m-1] (ids; a negative id in a matches nothing); row is scratch
 * of m + 1 ints. */
static int lcs_length(const int *a, int n, const int *b, int m, int *row) {
    for (int j = 0; j <= m; j++) row[j] = 0;
    for (int i = 0; i < n; i++) {
        if (a[i] < 0) continue; /* a token absent from b matches nothing: the row stays as it is */
        int diag = 0; /* row[j] of the previous i, before it was overwritten */
        for (int j = 1; j <= m; j++) {
            int up = row[j];
            if (a[i] == b[j - 1]) row[j] = diag + 1;
            else if (row[j - 1] > up) row[j] = row[j - 1];
            diag = up;
        }
    }
    return row[m];
}

/* F1 against one reference; -1 when out of memory. */
static double score_reference(const InternedPrediction *ip, const char *reference) {
    char **ref_toks;
    int n_ref;
    if (rouge_tokenize(reference, 1, &ref_toks, &n_ref)) return -1;
    if (n_ref == 0 || ip->n_pred == 0) {
        free(ref_toks);
        return 0.0;
    }
    int *ref_ids = malloc((size_t)n_ref * sizeof(int));
    int *row = malloc((size_t)(ip->n_pred + 1) * sizeof(int));
    if (!ref_ids || !row) {
        free(ref_toks);
        free(ref_ids);
        free(row);
        return -1;
    }
    for (int j = 0; j < n_ref; j++) ref_ids[j] = lookup_id(ip, ref_toks[j]);
    int lcs = lcs_length(ref_ids, n_ref, ip->pred_ids, ip->n_pred, row);
    free(ref_toks);
    free(ref_ids);
    free(row);
    /* same operations, same order as rouge_score (scoring.fmeasure) */
    double precision = (double)lcs / ip->n_pred;
    double recall = (double)lcs / n_ref;
    if (precision + recall > 0) return 2 * precision * recall / (precision + recall);
    return 0.0;
}

double rouge_l_f1_max(const char *prediction, const char *const *references, int n_refs) {
    InternedPrediction ip;
    double best = 0.0;
    if (intern_prediction(&ip, prediction) == 0) {
        for (int r = 0; r < n_refs; r++) {
            double f = score_reference(&ip, references[r]);
            if (f > best) best = f;
        }
    }
    free_interned(&ip);
    return best;
}

double rouge_l_f1(const char *prediction, const char *reference) {
    return rouge_l_f1_max(prediction, &reference, 1);
}

double rouge_l_max_x100(const char *prediction, const char *const *references, int n_refs) {
    return rouge_l_f1_max(prediction, references, n_refs) * 100.0;
}
