/* bench_quant.h: `retnet bench --case decode-quant` (bench_quant.c), for bench.c. */
#ifndef RN_CLI_BENCH_QUANT_H
#define RN_CLI_BENCH_QUANT_H

/* Decoding tokens/s at every weight type against the bandwidth bound
 * (probe: the streaming-read bandwidth in GB/s, and per second of CPU
 * time in cpu_gbs, sampled between the rounds), batched decoding, chunkwise prefill, the start of a q8_0 file,
 * and the f32 few-row kernel against sgemm. size: base, medium, xl or
 * fla-1.3b; NULL: medium (quick: base). */
void bench_decode_quant(double (*probe)(double *cpu_gbs), int quick, const char *size);

#endif
