/* dist.h: data-parallel training over MPI processes ("ranks"), for
 * `retnet train` under mpirun (docs/DISTRIBUTED.md). MPI stays here: the
 * library sees only its rn_replicas callbacks. In a build without MPI, or a
 * process not started by an MPI launcher, this is rank 0 of 1 and every
 * function is a no-op. */
#ifndef RN_CLI_DIST_H
#define RN_CLI_DIST_H

#include "retnet.h"

typedef struct {
    int rank, size;   /* this process and the number of processes */
    int local_size;   /* processes on this host */
} dist_info;

/* Starts MPI when the process was launched by mpirun (or another MPI
 * launcher) and the build has MPI; otherwise rank 0 of 1. timeout_s: how
 * long any collective may wait before the job is aborted with a message
 * (a rank that died or hangs). */
dist_info dist_init(double timeout_s);
void dist_finalize(void);

/* Threads per process when several share a host: its CPUs over the ranks
 * on the host (0: keep the library default). */
int dist_default_threads(void);

/* Makes t this rank's replica: gradients averaged with non-blocking
 * all-reductions started during the backward pass, one per range the
 * backward pass finishes; zero = 1 shards the AdamW moments (ZeRO-1:
 * reduce-scatter, then all-gather of the updated weights). */
void dist_attach(rn_trainer *t, int zero);
/* The last step's reduced gradient values and reductions (buckets), and
 * the seconds spent so far waiting for collectives to complete. */
void dist_stats(size_t *values, int *buckets, double *waited);

/* x (n) := its sum over the ranks (every rank calls it). */
void dist_sum(double *x, int n);
/* v (n) := its maximum over the ranks (every rank calls it). */
void dist_max(int *v, int n);

#endif
