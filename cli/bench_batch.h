/* bench_batch.h: `retnet bench --case batch` (bench_batch.c), for bench.c. */
#ifndef RN_CLI_BENCH_BATCH_H
#define RN_CLI_BENCH_BATCH_H

void bench_batch(int quick);

#endif
