/* bench_load.h: `retnet bench --case load` (bench_load.c), for bench.c. */
#ifndef RN_CLI_BENCH_LOAD_H
#define RN_CLI_BENCH_LOAD_H

/* Writes a fla-shaped model (1.22 B parameters; quick: 0.2 B), times its
 * start in a fresh process against reading the file once, prints it. */
void bench_load(int quick);
/* The fresh process: `retnet bench --load-child PATH` (prints its times). */
int bench_load_child(const char *path);
/* Seconds of a start in a fresh process: load, first token, one more
 * decoding step, retnet info; and its peak resident memory (kB). */
typedef struct { double load, first, step, inspect; } load_times;
load_times bench_timed_start(const char *path, long *rss_kb);

#endif
