/* dist.c: the communication of data-parallel training (dist.h) over MPI.
 * Compiled with MPI when the build finds it (-DRETNET_MPI, mk/mpi.mk);
 * without, one process of rank 0 of 1.
 *
 * Every collective is non-blocking and completed by polling with a
 * deadline, so that a rank that died or hangs stops the job with a message
 * instead of leaving the others waiting forever. MPI moves the data of a
 * non-blocking collective only inside MPI calls, so while gradient
 * reductions are in flight a progress thread polls them: they advance
 * during the backward pass, not only when the step waits for them. All
 * MPI calls hold one mutex (MPI_THREAD_SERIALIZED). */
#define _GNU_SOURCE
#include "dist.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A process started by an MPI launcher (Open MPI's mpirun, PMIx, Hydra,
 * Slurm's PMI) and how many processes it started (0: not launched). */
static int launcher_size(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS", NULL};
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    return getenv("PMIX_RANK") || getenv("PMI_RANK") ? 1 : 0;
}

#ifdef RETNET_MPI
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#define REAL_MPI (sizeof(rn_real) == sizeof(double) ? MPI_DOUBLE : MPI_FLOAT)
/* Largest reduction in one call (values): MPI counts are int. */
#define MAX_BUCKET ((size_t)1 << 26)
/* How often the progress thread polls reductions in flight (ns). */
#define POLL_NS 200000

/* One gradient reduction in flight. With ZeRO-1 it is a reduce-scatter
 * done in place, which leaves this rank's part at the start of the bucket:
 * moved to its place once complete. */
typedef struct {
    MPI_Request req;
    rn_real *dst, *src;   /* move n values from src to dst when done */
    size_t n;
    int *counts;          /* (size) reduce-scatter counts, alive until done */
} pending;

static struct {
    int active;           /* MPI was initialised here */
    int rank, size, local_size;
    double timeout;       /* seconds a collective may take */
    int zero;
    size_t np;            /* parameters */
    size_t *shard;        /* (size + 1) ZeRO-1 shard boundaries */
    pending *p;           /* reductions of this step */
    int np_pending, cap;
    int *gcounts, *gdispls;  /* (size) for the gathers */
    size_t values, last_values;
    int buckets, last_buckets;
    double waited;        /* seconds spent completing collectives */
    pthread_t progress;   /* polls the reductions in flight */
    int has_progress, quit, in_flight;
    pthread_mutex_t mu;   /* held around every MPI call */
    pthread_cond_t wake;  /* reductions were started, or quit */
} D = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static void *progress_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&D.mu);
    while (!D.quit) {
        if (!D.in_flight) {
            pthread_cond_wait(&D.wake, &D.mu);
            continue;
        }
        int left = 0;
        for (int i = 0; i < D.np_pending; i++) {
            int flag;
            MPI_Test(&D.p[i].req, &flag, MPI_STATUS_IGNORE);
            left += !flag;
        }
        D.in_flight = left;
        pthread_mutex_unlock(&D.mu);
        nanosleep(&(struct timespec){0, POLL_NS}, NULL);
        pthread_mutex_lock(&D.mu);
    }
    pthread_mutex_unlock(&D.mu);
    return NULL;
}

dist_info dist_init(double timeout_s) {
    dist_info di = {0, 1, 1};
    D.timeout = timeout_s;
    if (launcher_size() < 1) return di;
    int provided;
    MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
    D.active = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &D.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &D.size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &D.local_size);
    MPI_Comm_free(&local);
    D.has_progress = D.size > 1 && provided >= MPI_THREAD_SERIALIZED &&
                     pthread_create(&D.progress, NULL, progress_main, NULL) == 0;
    di.rank = D.rank;
    di.size = D.size;
    di.local_size = D.local_size;
    return di;
}

void dist_finalize(void) {
    if (!D.active) return;
    if (D.has_progress) {
        pthread_mutex_lock(&D.mu);
        D.quit = 1;
        pthread_cond_signal(&D.wake);
        pthread_mutex_unlock(&D.mu);
        pthread_join(D.progress, NULL);
    }
    MPI_Finalize();
    for (int i = 0; i < D.cap; i++) free(D.p[i].counts);
    free(D.p);
    free(D.shard);
    free(D.gcounts);
    free(D.gdispls);
    D.active = 0;
}

int dist_default_threads(void) {
    if (D.size < 2) return 0;
    /* The CPUs this process may run on (mpirun binds to cores or sockets),
     * at most the host's CPUs shared among its ranks. */
    cpu_set_t set;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = online > 0 ? (int)(online / D.local_size) : 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < n) n = CPU_COUNT(&set);
    return n > 0 ? n : 1;
}

/* Completes reqs (n) or aborts the job after the timeout. */
static void wait_all(MPI_Request *reqs, int n, const char *what) {
    double t0 = now_seconds(), deadline = t0 + D.timeout;
    int done = 0;
    for (long spins = 0;; spins++) {
        pthread_mutex_lock(&D.mu);
        MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
        pthread_mutex_unlock(&D.mu);
        if (done) {
            D.waited += now_seconds() - t0;
            return;
        }
        if (now_seconds() > deadline) {
            fprintf(stderr,
                    "retnet: error: rank %d of %d: %s waited %.0f s for the other ranks: one has died or hangs; "
                    "aborting the job\n", D.rank, D.size, what, D.timeout);
            pthread_mutex_lock(&D.mu);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        /* Spin briefly (fast shared-memory replies), then back off. */
        if (spins > 2000) nanosleep(&(struct timespec){0, 20000}, NULL);
    }
}

static pending *new_pending(void) {
    if (D.np_pending == D.cap) {
        int cap = D.cap ? 2 * D.cap : 64;
        pending *p = realloc(D.p, sizeof *p * (size_t)cap);
        if (!p) die("out of memory");
        for (int i = D.cap; i < cap; i++) {
            p[i].counts = malloc(sizeof(int) * (size_t)D.size);
            if (!p[i].counts) die("out of memory");
        }
        D.p = p;
        D.cap = cap;
    }
    pending *q = &D.p[D.np_pending++];
    q->req = MPI_REQUEST_NULL;
    q->n = 0;
    return q;
}

/* Starts the reduction of grad[off, off + n), in buckets of at most
 * MAX_BUCKET values, and lets the ones in flight progress. */
static void grad_ready(void *ctx, rn_real *grad, size_t off, size_t n) {
    (void)ctx;
    pthread_mutex_lock(&D.mu);
    for (size_t b = off; b < off + n; b += MAX_BUCKET) {
        size_t len = off + n - b < MAX_BUCKET ? off + n - b : MAX_BUCKET;
        pending *q = new_pending();
        if (!D.zero) {
            MPI_Iallreduce(MPI_IN_PLACE, grad + b, (int)len, REAL_MPI, MPI_SUM, MPI_COMM_WORLD, &q->req);
        } else {
            /* Each rank receives the sum of its shard's part of the bucket. */
            for (int r = 0; r < D.size; r++) {
                size_t lo = D.shard[r] > b ? D.shard[r] : b, hi = D.shard[r + 1] < b + len ? D.shard[r + 1] : b + len;
                q->counts[r] = hi > lo ? (int)(hi - lo) : 0;
                if (r == D.rank && hi > lo) { q->dst = grad + lo; q->src = grad + b; q->n = hi - lo; }
            }
            MPI_Ireduce_scatter(MPI_IN_PLACE, grad + b, q->counts, REAL_MPI, MPI_SUM, MPI_COMM_WORLD, &q->req);
        }
        D.values += len;
        D.buckets++;
        D.in_flight++;
    }
    /* Progress here too (all there is without a progress thread). */
    for (int i = 0; i < D.np_pending; i++) {
        int flag;
        MPI_Test(&D.p[i].req, &flag, MPI_STATUS_IGNORE);
    }
    pthread_cond_signal(&D.wake);
    pthread_mutex_unlock(&D.mu);
}

static rn_status grad_reduce(void *ctx, rn_real *grad, size_t n) {
    (void)ctx; (void)grad; (void)n;
    for (int i = 0; i < D.np_pending; i++) {
        wait_all(&D.p[i].req, 1, "the gradient all-reduce");
        if (D.p[i].n) memmove(D.p[i].dst, D.p[i].src, D.p[i].n * sizeof(rn_real));
    }
    pthread_mutex_lock(&D.mu);
    D.np_pending = 0;
    D.in_flight = 0;
    pthread_mutex_unlock(&D.mu);
    D.last_values = D.values;
    D.last_buckets = D.buckets;
    D.values = 0;
    D.buckets = 0;
    return RN_OK;
}

/* x (n values of type) := op over the ranks, in place. */
static void allreduce(void *x, int n, MPI_Datatype type, MPI_Op op, const char *what) {
    if (D.size < 2) return;
    MPI_Request req;
    pthread_mutex_lock(&D.mu);
    MPI_Iallreduce(MPI_IN_PLACE, x, n, type, op, MPI_COMM_WORLD, &req);
    pthread_mutex_unlock(&D.mu);
    wait_all(&req, 1, what);
}

void dist_sum(double *x, int n) { allreduce(x, n, MPI_DOUBLE, MPI_SUM, "a sum over the ranks"); }
void dist_max(int *v, int n) { allreduce(v, n, MPI_INT, MPI_MAX, "a maximum over the ranks"); }

static rn_status sum_cb(void *ctx, double *x, int n) {
    (void)ctx;
    dist_sum(x, n);
    return RN_OK;
}

static rn_status gather_cb(void *ctx, const rn_real *mine, rn_real *all, const size_t *off, int root) {
    (void)ctx;
    for (int r = 0; r < D.size; r++) {
        D.gcounts[r] = (int)(off[r + 1] - off[r]);
        D.gdispls[r] = (int)off[r];
    }
    MPI_Request req;
    int cnt = D.gcounts[D.rank];
    pthread_mutex_lock(&D.mu);
    if (root < 0)
        MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all, D.gcounts, D.gdispls, REAL_MPI, MPI_COMM_WORLD, &req);
    else
        MPI_Igatherv(D.rank == root && mine == all + off[D.rank] ? MPI_IN_PLACE : mine, cnt, REAL_MPI, all, D.gcounts,
                     D.gdispls, REAL_MPI, root, MPI_COMM_WORLD, &req);
    pthread_mutex_unlock(&D.mu);
    wait_all(&req, 1, root < 0 ? "the all-gather of the weights" : "the gather of the optimiser state");
    return RN_OK;
}

void dist_attach(rn_trainer *t, int zero) {
    if (D.size < 2) return;
    D.np = rn_model_num_params(rn_trainer_model(t));
    D.zero = zero;
    D.shard = malloc(sizeof *D.shard * ((size_t)D.size + 1));
    D.gcounts = malloc(sizeof(int) * (size_t)D.size);
    D.gdispls = malloc(sizeof(int) * (size_t)D.size);
    if (!D.shard || !D.gcounts || !D.gdispls) die("out of memory");
    for (int r = 0; r <= D.size; r++) D.shard[r] = rn_shard_offset(D.np, D.size, r);
    if (zero && D.np > (size_t)0x7fffffff) die("ZeRO-1 offsets beyond 2^31 values are not supported");
    rn_replicas rp = {D.rank, D.size, NULL, grad_ready, grad_reduce, sum_cb, gather_cb};
    if (rn_trainer_set_replicas(t, &rp, zero) != RN_OK) die("%s", rn_last_error());
}

void dist_stats(size_t *values, int *buckets, double *waited) {
    *values = D.last_values;
    *buckets = D.last_buckets;
    *waited = D.waited;
}

#else /* !RETNET_MPI */

dist_info dist_init(double timeout_s) {
    (void)timeout_s;
    if (launcher_size() > 1)
        die("this retnet was built without MPI, so it cannot train under mpirun: install libopenmpi-dev "
            "(scripts/setup.sh build) and rebuild");
    return (dist_info){0, 1, 1};
}
void dist_finalize(void) {}
int dist_default_threads(void) { return 0; }
void dist_attach(rn_trainer *t, int zero) { (void)t; (void)zero; }
void dist_stats(size_t *values, int *buckets, double *waited) { *values = 0; *buckets = 0; *waited = 0; }
void dist_sum(double *x, int n) { (void)x; (void)n; }
void dist_max(int *v, int n) { (void)v; (void)n; }

#endif
