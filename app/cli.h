/* Option parsing shared by every subcommand: --name VALUE, --name=VALUE, flags,
 * positional arguments; unknown options and bad numbers are refused by name. */
#ifndef PK_CLI_H
#define PK_CLI_H

typedef enum { OPT_STR, OPT_INT, OPT_FLOAT, OPT_FLAG, OPT_U64 } OptKind;

typedef struct {
    const char *name; /* without the dashes: "max-new-tokens" */
    OptKind kind;
    void *dest;       /* const char **, int *, float *, int * (flag: set to 1), unsigned long long * */
    const char *help;
    int required;
} Opt;

/* Parses argv[1..]; positional arguments are collected into pos (at most max_pos).
 * Returns 0 on success, 1 when --help was printed (exit 0), 2 after printing an
 * error to stderr (exit 2). usage is a one-line synopsis for messages. */
int cli_parse(const char *usage, int argc, char **argv, const Opt *opts, int nopts, char **pos, int max_pos,
              int *npos);

/* Prints "promptkd NAME: message" to stderr and returns 1 (the exit status for a failed command). */
int cli_fail(const char *cmd, const char *msg);

/* Refuses an output file before any work is done: path names a folder, or its folder is
 * missing or not writable. Prints "promptkd CMD: --OPT PATH: ..." and returns 1; 0 when fine. */
int cli_check_output(const char *cmd, const char *opt, const char *path);

/* Refuses a model whose vocabulary is not the tokenizer's (generated ids could not be
 * decoded, and the text would be encoded into other tokens than it was trained on).
 * Prints one message and returns 1; 0 when the sizes match. */
int cli_check_vocab(const char *cmd, const char *model_dir, int model_vocab, const char *tok_dir, int tok_vocab);

#endif
