/* util.h: the CLI's small helpers that need nothing but libc: one-line
 * errors that exit, a monotonic clock, mkdir -p, durations as text. */
#ifndef RN_CLI_UTIL_H
#define RN_CLI_UTIL_H

#include <stddef.h>

/* One-line errors: usage problems exit 2 (with a pointer to --help), runtime
 * failures exit 1. Only the CLI exits; the library returns a status. */
_Noreturn void die_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Seconds on the monotonic clock (for intervals only). */
double now_seconds(void);
/* Seconds of CPU time of the process, all its threads (benchmarks on a
 * machine shared with other work). */
double cpu_seconds(void);

/* mkdir -p: path and its missing parents; 0, or -1 with errno set
 * (ENOTDIR when path, or a parent, is a file). */
int make_dirs(const char *path);

/* s seconds as "mm:ss" or "h:mm:ss" into buf (n bytes); "--:--" when s is
 * negative, not a number or absurdly large (an ETA before any estimate). */
void format_duration(char *buf, size_t n, double s);

/* The length of the longest prefix of b (n bytes) that does not end inside
 * a UTF-8 character: streams hold back at most 3 bytes of a character
 * split over tokens until it is whole. */
size_t utf8_complete(const unsigned char *b, size_t n);

#endif
