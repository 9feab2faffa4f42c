/* GPT-2 byte-level BPE: vocab.json + merges.txt, GPT-2's pre-tokenisation regex
 * with Unicode letter/number classes, <|endoftext|> as one special token.
 * Encoding and decoding equal tiktoken's "gpt2". */
#ifndef PK_TOKENIZER_H
#define PK_TOKENIZER_H

#include <stddef.h>

typedef struct Tokenizer Tokenizer;

/* Loads dir/vocab.json and dir/merges.txt; a vocabulary without <|endoftext|> is refused. */
int tok_load(Tokenizer **out, const char *dir, char *err);
void tok_free(Tokenizer *t);
int tok_vocab_size(const Tokenizer *t);
/* id of <|endoftext|> (every loaded vocabulary has one) */
int tok_eos_id(const Tokenizer *t);

/* Encodes len bytes of text (any bytes; invalid UTF-8 is encoded byte-wise).
 * With allow_special, "<|endoftext|>" in the text becomes the special token.
 * *ids is malloc'ed (caller frees), *n its length. */
int tok_encode(const Tokenizer *t, const char *text, size_t len, int allow_special, int **ids, int *n, char *err);
/* Decodes ids to bytes (malloc'ed, NUL-terminated, *len without the NUL).
 * Fails on an id out of range, naming it. */
int tok_decode(const Tokenizer *t, const int *ids, int n, char **text, size_t *len, char *err);
/* The bytes of one token (not NUL-terminated); NULL for an id out of range. */
const char *tok_token_bytes(const Tokenizer *t, int id, size_t *len);
/* The one printable form of a token, for every place that shows one: its bytes as UTF-8 text in
 * out (outlen bytes, NUL-terminated, cut at a character boundary when too long), JSON-style
 * escapes for backslash, the double quote and \n \r \t, \xNN for other control bytes and for
 * bytes that are not well-formed UTF-8. Returns the length written, or -1 for an id out of
 * range (out = ""). */
int tok_token_printable(const Tokenizer *t, int id, char *out, size_t outlen);

/* Trains a byte-level BPE on the given texts: 256 byte tokens, merges until
 * vocab_size - 1 tokens, then <|endoftext|>. Deterministic. Writes vocab.json
 * and merges.txt in GPT-2's format into out_dir (created), atomically. */
int tok_train_bpe(const char *const *texts, const size_t *lens, int n_texts, int vocab_size, const char *out_dir,
                  char *err);

#endif
