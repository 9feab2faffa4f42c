/* Every subcommand of the promptkd program: int cmd_NAME(int argc, char **argv),
 * argv[0] being the subcommand's name. Each returns the process exit status. */
#ifndef PK_COMMANDS_H
#define PK_COMMANDS_H

#define PK_COMMAND_LIST(X)                                                              \
    X(parity, "check the model against a Hugging Face reference file")                  \
    X(tokenize, "encode (or --decode) JSONL lines with a GPT-2 tokenizer")              \
    X(generate, "generate text from a model")                                           \
    X(bench, "benchmark training (bench train) or KV-cache decoding (bench decode)")    \
    X(data, "dataset tools (data stats FILE --tokenizer DIR)")                          \
    X(bpe_train, "train a byte-level BPE tokenizer (bpe-train)")                        \
    X(synth, "write the built-in synthetic instruction benchmark")                      \
    X(rouge, "score JSONL predictions with ROUGE-L")                                    \
    X(eval, "sample from a model on a dataset and score ROUGE-L per seed")              \
    X(exposure, "exposure bias (ExAccErr) of a student against a teacher")              \
    X(neighbours, "nearest vocabulary tokens of each soft-prompt vector")               \
    X(pretrain, "train a model as a language model on packed text")                      \
    X(sft, "supervised fine-tuning of a model on a dataset")                            \
    X(train, "run a distillation config (PromptKD or a baseline)")                      \
    X(compare, "train several methods from one student and tabulate them")              \
    X(tui, "the live workbench on a config")                                            \
    X(repl, "the scripting prompt")

#define PK_DECLARE_COMMAND(name, help) int cmd_##name(int argc, char **argv);
PK_COMMAND_LIST(PK_DECLARE_COMMAND)
#undef PK_DECLARE_COMMAND

#endif
