/* Shared between the workbench's own files (views/tui*.c); not a public interface. */
#ifndef PK_TUI_INTERNAL_H
#define PK_TUI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* The 8 basic terminal colours, numbered as curses' COLOR_* constants. */
enum {
    TUI_BASIC_BLACK = 0,
    TUI_BASIC_RED = 1,
    TUI_BASIC_GREEN = 2,
    TUI_BASIC_YELLOW = 3,
    TUI_BASIC_BLUE = 4,
    TUI_BASIC_MAGENTA = 5,
    TUI_BASIC_CYAN = 6,
    TUI_BASIC_WHITE = 7
};

/* Decodes one UTF-8 code point from s (n bytes); invalid or truncated input
 * gives U+FFFD for one byte. Returns the bytes used (0 only when n is 0). */
int tui_utf8_next(const char *s, size_t n, uint32_t *cp);
/* Columns a code point takes (control characters and unprintables: 1, combining: 0);
 * every code point is 1 column when utf8 is 0. */
int tui_cp_width(uint32_t cp, int utf8);

#endif
