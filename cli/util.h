/* util.h: the CLI's small helpers that need nothing but libc: one-line
 * errors that exit, a monotonic clock, mkdir -p, durations as text, the
 * OpenMP wait policy. */
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

/* libgomp's threads wait for the next parallel region by spinning while
 * OMP_WAIT_POLICY is unset; on a shared machine a spinning thread holds a
 * core that the thread it waits for needs, and a small model's training
 * step is some hundred short regions (nanoGPT's size, d 128, on 2 threads at
 * a load average of 8: 53-61 s for 60 steps spinning, 11 s passive; a quiet
 * region costs about 4 us more passive). libgomp reads its environment when
 * it loads, so `retnet COMMAND` (argc, argv: the arguments after it)
 * re-executes itself once with the passive policy, unless the user chose one
 * or one thread (which never waits). Call it before anything runs in
 * parallel; it returns when there is nothing to do or exec fails. */
void wait_passively(const char *command, int argc, char **argv, int threads);

#endif
