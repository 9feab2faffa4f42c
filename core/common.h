/* Shared plumbing for core/: error sentences, files, atomic writes, RNG, timing.
 * core/ never prints or exits: functions return PK_OK or PK_FAIL and fill `err`. */
#ifndef PK_COMMON_H
#define PK_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define PK_OK 0
#define PK_FAIL (-1)
#define PK_ERR_LEN 512 /* every `char *err` in core/ points at least this many bytes */

/* Writes a formatted sentence into err (PK_ERR_LEN bytes) and returns PK_FAIL. */
int pk_errf(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads a whole file; *out is NUL-terminated (not counted in *len). Caller frees. */
int pk_read_file(const char *path, char **out, size_t *len, char *err);
/* The one atomic file write: fill(ctx, fd) writes the content into a fresh temporary beside path
 * (PATH.tmp.PID.XXXXXX, mode 0644) and returns 0, or -1 with errno set; the temporary is then
 * flushed to disk (fsync), closed and renamed over path. On any failure it is removed, path is left
 * as it was, and err names path and the cause (not the temporary: a long path stays whole). */
typedef int (*PkFileFill)(void *ctx, int fd);
int pk_write_atomic(const char *path, PkFileFill fill, void *ctx, char *err);
/* Writes data to path atomically (pk_write_atomic). */
int pk_write_file_atomic(const char *path, const void *data, size_t len, char *err);
/* Writes all n bytes to fd, again after a short write or EINTR: 0, or -1 with errno set. */
int pk_write_all(int fd, const void *data, size_t n);
/* Writes a cJSON document, pretty-printed and newline-terminated, atomically. */
struct cJSON;
int pk_write_json_atomic(const char *path, const struct cJSON *root, char *err);
/* mkdir -p */
int pk_mkdirs(const char *path, char *err);
/* rm -r: removes path (a file, a link, or a folder with all it holds; links are not followed).
 * A missing path is not an error. Returns 0, or -1 when something could not be removed (the
 * rest is removed all the same). */
int pk_remove_tree(const char *path);
int pk_file_exists(const char *path);
int pk_is_dir(const char *path);
/* Joins a folder and a file name into out (size outlen); fails if it does not fit. */
int pk_path_join(char *out, size_t outlen, const char *dir, const char *name, char *err);
/* The next line of text[*pos..len), the one line splitter of line-based files: its start offset
 * in *start and its length without the '\n' (and a '\r' before it) in *line_len; *pos moves past
 * the '\n'. Returns 0 when no text is left. */
int pk_next_line(const char *text, size_t len, size_t *pos, size_t *start, size_t *line_len);

/* ---- crash-left temporaries and whole folders written atomically ----------------------------
 * Atomic writes make their temporaries beside the target: files PATH.tmp.PID.XXXXXX (pk_write_atomic;
 * an older promptkd also left PATH.tmp.PID), folders DIR.tmp.PID and DIR.old.PID (pk_model_folder_write).
 * A process killed mid-write leaves them behind; a later write to the same target removes the ones
 * whose process is gone, and nothing else. */

/* 1 when a process with this id exists (kill(pid, 0) succeeds or is refused with EPERM). */
int pk_pid_alive(long pid);
/* Removes the regular files PATH.tmp.PID[.XXXXXX] beside `path` whose process is gone. Best effort. */
void pk_clean_stale_temp_files(const char *path);

/* Model folders: what promptkd writes as a whole folder (an HF GPT-2 folder from sft/pretrain
 * --out, a checkpoint from `save`). Such a folder holds only config.json (a GPT-2 config),
 * model.safetensors and, for checkpoints, prompt.safetensors and state.safetensors (and the
 * run_config.json the engine adds to a run's checkpoints/step-N). A write
 * replaces an existing folder only when it is empty or holds exactly such files (config.json and
 * model.safetensors among them); anything else in it (another file, a subfolder, a link) refuses
 * the write with a sentence naming the folder and the foreign entry, and nothing is changed. */
#define PK_MODEL_FOLDER_FILES \
    "config.json, model.safetensors, prompt.safetensors, state.safetensors, run_config.json"
/* PK_OK when `dir` is absent, an empty folder or a promptkd model folder (see above). */
int pk_model_folder_check(const char *dir, char *err);
/* PK_OK unless `dir` is, holds, or lies inside what the engine writes in a run folder: the run
 * folder itself or its config.json, metrics.jsonl, checkpoints/, best/, best.json, plots/, eval/.
 * Run folders are `run_path` (the live run, may be NULL) and any ancestor of `dir` that holds
 * metrics.jsonl and checkpoints/. The engine's own saves (checkpoints/step-N, best/) do not
 * come through here. */
int pk_run_folder_conflict(const char *dir, const char *run_path, char *err);
/* Writes a model folder at `dir` atomically: `fill` writes the files into a fresh DIR.tmp.PID,
 * then the previous folder (checked with pk_model_folder_check) moves to DIR.old.PID, the new one
 * is renamed into place and the old one's files are removed. Stale temporaries of DIR from dead
 * processes are removed first. */
typedef int (*PkFolderFill)(void *ctx, const char *tmp_dir, char *err);
int pk_model_folder_write(const char *dir, PkFolderFill fill, void *ctx, char *err);
/* The absolute path with symbolic links resolved; a part that does not exist yet is appended
 * with "." and ".." applied to the text. */
int pk_canonical_path(const char *path, char *out, size_t outlen, char *err);

/* Checked allocation: on failure fills err and returns NULL. */
void *pk_malloc(size_t n, char *err);
void *pk_calloc(size_t count, size_t size, char *err);

/* A growable byte buffer (for building JSON lines, text, files). */
typedef struct {
    char *data;
    size_t len, cap;
} PkBuf;
int pk_buf_append(PkBuf *b, const void *data, size_t n);
int pk_buf_printf(PkBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pk_buf_free(PkBuf *b);

/* Deterministic RNG (xoshiro256**, seeded through splitmix64). The state is
 * plain data so checkpoints can store it and resume bit-for-bit. */
typedef struct {
    uint64_t s[4];
} PkRng;
void pk_rng_seed(PkRng *r, uint64_t seed);
uint64_t pk_rng_u64(PkRng *r);
/* uniform in [0, 1) with 24 random bits (exactly representable as float) */
float pk_rng_float(PkRng *r);
/* uniform in [0, 1) with 53 random bits */
double pk_rng_double(PkRng *r);
/* uniform integer in [0, n) without modulo bias; n > 0 */
uint64_t pk_rng_below(PkRng *r, uint64_t n);
/* standard normal (Box-Muller) */
double pk_rng_normal(PkRng *r);
/* Fisher-Yates shuffle of n ints */
void pk_rng_shuffle_int(PkRng *r, int *a, int n);

/* Monotonic wall clock in seconds. */
double pk_now(void);
/* CPU seconds of this process so far, every thread (steal and waits not counted). */
double pk_cpu_seconds(void);

/* The one UTF-8 decoder. Reads the character at s[0..n) (n >= 1): when the bytes there are a
 * well-formed sequence, stores its code point in *cp and returns its length, 1 to 4; otherwise
 * stores U+FFFD and returns minus the length of the longest start of a sequence that is there
 * (1 to 3 bytes: what one replacement character stands for, Unicode's "maximal subpart").
 * Not well-formed: a stray continuation byte, C0/C1/F5..FF, an overlong form, a surrogate, a
 * value above U+10FFFF, a sequence cut short. */
int pk_utf8_decode(const char *s, size_t n, uint32_t *cp);
/* One code point as UTF-8 into out[4]; returns the length (cp is a scalar value). */
int pk_utf8_encode(uint32_t cp, char *out);
/* SplitMix64's output function of x + 0x9e37...: a 64-bit hash with every input bit reaching every
 * output bit, the one mixer behind seeds and hashes (pk_rng_seed, per-row RNGs, dropout masks). */
uint64_t pk_mix64(uint64_t x);
/* 1-based line of byte offset pos in text, for messages. */
int pk_line_of(const char *text, size_t pos);
/* Validate UTF-8: returns the byte offset of the first invalid sequence, or -1 when valid. */
long pk_utf8_invalid_at(const char *s, size_t len);
/* Offset of the first \u0000 escape in JSON text, or -1. cJSON ends a string at a
 * decoded NUL, which would silently cut the text, so readers refuse such input. */
long pk_json_escaped_nul_at(const char *s, size_t len);

#endif
