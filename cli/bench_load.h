/* bench_load.h: `retnet bench --case load` (bench_load.c), for bench.c. */
#ifndef RN_CLI_BENCH_LOAD_H
#define RN_CLI_BENCH_LOAD_H

#include "retnet.h"

/* The model of a --size: torchscale's named sizes, or fla-1.3b (the shape
 * of fla-hub/retnet-1.3B-100B); vocabulary 32000. */
void bench_config(const char *size, rn_config *c);

/* Writes a fla-shaped model (1.22 B parameters; quick: 0.2 B), times its
 * start in a fresh process against reading the file once, prints it. */
void bench_load(int quick);
/* A BF16 Hugging Face checkpoint (--size, default fla-1.3b; quick: base)
 * in our tensor order and sorted by name, started kept as stored and
 * widened (RN_LOAD_F32) in fresh processes: `retnet bench --case load-bf16`. */
void bench_load_bf16(int quick, const char *size);
/* The fresh process: `retnet bench --load-child PATH [--load-f32]` (prints
 * its times). */
int bench_load_child(const char *path, int f32);
/* Seconds of a start in a fresh process: load, first token, one more
 * decoding step (wall clock, and CPU time of the process), retnet info;
 * the weight bytes a step reads; and its peak resident memory (kB). f32:
 * loaded with RN_LOAD_F32. */
typedef struct { double load, first, step, inspect, bytes, step_cpu; } load_times;
load_times bench_timed_start(const char *path, int f32, long *rss_kb);

#endif
