/* The pipe protocol between a plugin child and the session (plugins/promptkd_plugin.h,
 * "Isolation"). The child writes frames; the session reads every byte (at most
 * PK_PLUGIN_MAX_OUTPUT) and validates all of it with pw_parse before using any.
 *
 * A frame: u32 type, u32 payload length, payload. Numbers are in the machine's byte
 * order (both ends are the same program); a string is u32 length + bytes (no NUL).
 *   PHASE   u32 phase                        the child is entering a phase (PW_IN_*)
 *   DESC    i32 abi, u32 flags, u64 state_size, str name, str description   (load only)
 *   LOG     str message
 *   TABLE   str name, u32 n_cols, u32 n_rows, (n_rows + 1) * n_cols str cells, header row first
 *   SERIES  str chart, str series, u32 n, n f64 x, n f64 y
 *   POINT   str chart, str series, f64 x, f64 y
 *   STATE   the state block's bytes
 *   RESULT  i32 rc, u32 refused, str err     last frame: the callback returned (refused:
 *                                            the host refused the plugin before calling it)
 * Depends on nothing but libc, so the fuzz target links it alone. */
#ifndef PK_PLUGIN_WIRE_H
#define PK_PLUGIN_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "promptkd_plugin.h"

enum { PW_PHASE = 1, PW_DESC, PW_LOG, PW_TABLE, PW_SERIES, PW_POINT, PW_STATE, PW_RESULT };
enum { PW_IN_START = 0, PW_IN_DLOPEN, PW_IN_ENTRY, PW_IN_ON_LOAD, PW_IN_ANALYZE, PW_IN_ON_STEP, PW_IN_ON_UNLOAD,
       PW_IN_SENDING, PW_N_PHASES };
enum { PW_HAS_ON_LOAD = 1, PW_HAS_ON_UNLOAD = 2, PW_HAS_ON_STEP = 4 };
#define PW_HEADER_LEN 8

/* "its constructors (dlopen)", "on_step", ... */
const char *pw_phase_name(int phase);

/* ---- writing (the child) ---- */
typedef struct {
    unsigned char *data;
    size_t len, cap;
    int oom;
} PwBuf;
void pw_put_u32(PwBuf *b, uint32_t v);
void pw_put_i32(PwBuf *b, int32_t v);
void pw_put_u64(PwBuf *b, uint64_t v);
void pw_put_f64(PwBuf *b, double v);
void pw_put_bytes(PwBuf *b, const void *p, size_t n);
void pw_put_str(PwBuf *b, const char *s, size_t n);
void pw_buf_free(PwBuf *b);
/* Writes one whole frame to fd (retrying short writes and EINTR): 0, or -1. */
int pw_write_frame(int fd, uint32_t type, const void *payload, size_t len);

/* ---- reading (the session) ---- */
typedef enum { PW_ITEM_LOG, PW_ITEM_TABLE, PW_ITEM_SERIES, PW_ITEM_POINT } PwItemKind;
typedef struct {
    PwItemKind kind;
    char *name;   /* log: the line; table: its name; series, point: the chart */
    char *series; /* series, point */
    int n_cols, n_rows;
    char **cells; /* table: (n_rows + 1) * n_cols, header row first */
    int n;
    double *x, *y; /* series: n each */
    double px, py; /* point */
} PwItem;

typedef struct {
    int phase; /* the last phase announced (PW_IN_*) */
    int have_desc;
    int abi;
    uint32_t flags;
    size_t state_size;
    char name[PK_PLUGIN_NAME_MAX + 1];
    char description[PK_PLUGIN_DESCRIPTION_MAX + 1];
    int have_state;
    unsigned char *state;
    size_t state_len;
    int have_result, refused, rc;
    char err[PK_PLUGIN_ERR_LEN];
    int n_items, cap_items;
    PwItem *items;
} PwReply;

/* Parses and checks the bytes a child sent: every frame whole and of a known type,
 * lengths and counts within the limits of promptkd_plugin.h, names of the allowed
 * characters, RESULT last and once, DESC and STATE at most once (STATE as long as
 * the DESC's state_size when there is one). Free text (log lines, series names,
 * cells, descriptions, errors) comes back with control characters and bytes that are
 * not UTF-8 replaced by '?'. On failure err (at least 256 bytes) says what was wrong
 * and r keeps what came before it (phase included); pw_reply_free it either way. */
int pw_parse(const unsigned char *buf, size_t len, PwReply *r, char *err, size_t err_len);
void pw_reply_free(PwReply *r);

/* Name rules shared with the child-side checks: 1..max bytes of [A-Za-z0-9_.-], no leading '.'. */
int pw_valid_name(const char *s, size_t len, size_t max);
/* 1 when s (len bytes) has no NUL and no control character (series names). */
int pw_printable(const char *s, size_t len);

#endif
