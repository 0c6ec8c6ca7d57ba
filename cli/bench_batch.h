/* bench_batch.h: `retnet bench --case batch` (bench_batch.c), for bench.c. */
#ifndef RN_CLI_BENCH_BATCH_H
#define RN_CLI_BENCH_BATCH_H

void bench_batch(int quick);

/* Multiply-adds per second of one thread's FMA loop (12 independent
 * accumulators: the ports' throughput, not their latency) at the widest
 * float32 vectors the build targets (AVX-512, else AVX2 + FMA; 0 without
 * FMA), timed by clock (wall or CPU seconds): best of 3 rounds. */
double bench_fma_madds(double (*clock)(void));

#endif
