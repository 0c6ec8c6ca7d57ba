/* test_replicas.c: data-parallel training through the library's replica
 * interface (rn_trainer_set_replicas), without MPI: R threads are R
 * replicas, and a small in-memory group that sums in rank order stands in
 * for the communication. R replicas of one micro-batch equal one trainer
 * with R accumulated micro-batches bit for bit (weights, loss, gradient
 * norm); ZeRO-1 equals plain replicas, checkpoints included; the backward
 * pass reports every gradient value once per step; shards tile the
 * parameters in aligned, balanced pieces. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

#include <pthread.h>
#include <unistd.h>

#define MAXR 4
#define STEPS 3
#define B 2
#define T 12
#define V 300

/* The in-memory group: each collective publishes its buffers, waits for
 * all, combines in rank order, and waits again before anyone goes on. */
typedef struct {
    int size;
    pthread_barrier_t bar;
    rn_real *buf[MAXR];
    const rn_real *mine[MAXR];
    double *x[MAXR];
    rn_real *tmp;          /* (np) */
    double dtmp[4096];
} group;

typedef struct {
    group *g;
    int rank, zero;
    size_t reported;       /* values grad_ready announced this step */
    const int32_t *x, *y;  /* the global batch (size x B, T) */
    rn_real *params;       /* (np) after STEPS steps */
    rn_step_info info;
    const char *ckpt;
    rn_status st;
} member;

static void g_ready(void *ctx, rn_real *grad, size_t off, size_t n) {
    (void)grad; (void)off;
    ((member *)ctx)->reported += n;
}

static rn_status g_reduce(void *ctx, rn_real *grad, size_t n) {
    member *me = ctx;
    group *g = me->g;
    g->buf[me->rank] = grad;
    pthread_barrier_wait(&g->bar);
    /* Each member sums its share of the values, in rank order. */
    size_t lo = n * me->rank / g->size, hi = n * (me->rank + 1) / g->size;
    for (size_t i = lo; i < hi; i++) {
        rn_real s = g->buf[0][i];
        for (int r = 1; r < g->size; r++) s += g->buf[r][i];
        g->tmp[i] = s;
    }
    pthread_barrier_wait(&g->bar);
    memcpy(grad, g->tmp, n * sizeof *grad);
    pthread_barrier_wait(&g->bar);
    return RN_OK;
}

static rn_status g_sum(void *ctx, double *x, int n) {
    member *me = ctx;
    group *g = me->g;
    g->x[me->rank] = x;
    pthread_barrier_wait(&g->bar);
    if (me->rank == 0)
        for (int i = 0; i < n; i++) {
            double s = g->x[0][i];
            for (int r = 1; r < g->size; r++) s += g->x[r][i];
            g->dtmp[i] = s;
        }
    pthread_barrier_wait(&g->bar);
    memcpy(x, g->dtmp, (size_t)n * sizeof *x);
    pthread_barrier_wait(&g->bar);
    return RN_OK;
}

static rn_status g_gather(void *ctx, const rn_real *mine, rn_real *all, const size_t *off, int root) {
    member *me = ctx;
    group *g = me->g;
    g->mine[me->rank] = mine;
    pthread_barrier_wait(&g->bar);
    if (root < 0 || root == me->rank)
        for (int r = 0; r < g->size; r++)
            if (g->mine[r] != all + off[r]) memcpy(all + off[r], g->mine[r], (off[r + 1] - off[r]) * sizeof *all);
    pthread_barrier_wait(&g->bar);
    return RN_OK;
}

static rn_model *model(void) { return make_model(RN_PRESET_TORCHSCALE, 32, 2, 64, 2, V, 7); }

static rn_train_config config(int accum) {
    rn_train_config tc;
    rn_train_config_default(&tc);
    tc.batch = B; tc.seq = T; tc.accum = accum; tc.warmup = 1; tc.steps = 10; tc.lr = 3e-3;
    return tc;
}

static void *replica(void *arg) {
    member *me = arg;
    rn_set_threads(1);  /* OpenMP's thread count is per calling thread */
    rn_model *m = model();
    rn_train_config tc = config(1);
    rn_trainer *t;
    me->st = rn_trainer_create(m, &tc, &t);
    if (me->st != RN_OK) return NULL;
    rn_replicas rp = {me->rank, me->g->size, me, g_ready, g_reduce, g_sum, g_gather};
    me->st = rn_trainer_set_replicas(t, &rp, me->zero);
    size_t np = rn_model_num_params(m), bt = (size_t)B * T, stride = bt * me->g->size;
    for (int s = 0; me->st == RN_OK && s < STEPS; s++) {
        me->reported = 0;
        /* Replica r's micro-batch is micro-batch r of the global batch. */
        me->st = rn_trainer_step(t, me->x + s * stride + me->rank * bt, me->y + s * stride + me->rank * bt, &me->info);
        if (me->reported != np) me->st = RN_ERR_ARG;
    }
    if (me->st == RN_OK && me->ckpt) me->st = rn_trainer_save(t, me->ckpt, "{}");
    me->params = malloc(np * sizeof(rn_real));
    memcpy(me->params, rn_model_params(m), np * sizeof(rn_real));
    rn_trainer_free(t);
    rn_model_free(m);
    return NULL;
}

/* Runs R replicas (zero: ZeRO-1) on the global batches x, y; member 0's
 * checkpoint goes to ckpt if not NULL. */
static void run_group(int R, int zero, const int32_t *x, const int32_t *y, size_t np, const char *ckpt, member *mb) {
    group g = {.size = R};
    g.tmp = malloc(np * sizeof(rn_real));
    pthread_barrier_init(&g.bar, NULL, (unsigned)R);
    pthread_t th[MAXR];
    for (int r = 0; r < R; r++) {
        mb[r] = (member){.g = &g, .rank = r, .zero = zero, .x = x, .y = y, .ckpt = ckpt};
        pthread_create(&th[r], NULL, replica, &mb[r]);
    }
    for (int r = 0; r < R; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&g.bar);
    free(g.tmp);
}

static int same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    for (int ca = 0, cb = 0; same && ca != EOF;) {
        ca = fgetc(fa);
        cb = fgetc(fb);
        same = ca == cb;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void equivalence(int R, const char *dir) {
    rn_model *m = model();
    size_t np = rn_model_num_params(m), n = (size_t)STEPS * R * B * T;
    int32_t *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    random_tokens(x, n, V, 11);
    random_tokens(y, n, V, 12);
    /* The reference: one trainer, R accumulated micro-batches. */
    rn_train_config tc = config(R);
    rn_trainer *t;
    CHECK_OK(rn_trainer_create(m, &tc, &t));
    rn_step_info ref;
    for (int s = 0; s < STEPS; s++) CHECK_OK(rn_trainer_step(t, x + (size_t)s * R * B * T, y + (size_t)s * R * B * T, &ref));
    char ck[2][512];
    member mb[2][MAXR];
    for (int zero = 0; zero < 2; zero++) {
        snprintf(ck[zero], sizeof ck[zero], "%s/replicas_%d_zero%d.safetensors", dir, R, zero);
        run_group(R, zero, x, y, np, ck[zero], mb[zero]);
        for (int r = 0; r < R; r++) {
            member *me = &mb[zero][r];
            CHECK(me->st == RN_OK, "R=%d zero=%d replica %d: %s (%s)", R, zero, r, rn_status_name(me->st), rn_last_error());
            CHECK(memcmp(me->params, rn_model_params(m), np * sizeof(rn_real)) == 0,
                  "R=%d zero=%d replica %d: weights differ from accum %d: rel %.3g", R, zero, r, R,
                  rel_err(me->params, rn_model_params(m), np));
            CHECK(me->info.loss == ref.loss && me->info.grad_norm == ref.grad_norm && me->info.tokens == ref.tokens,
                  "R=%d zero=%d replica %d: loss %.17g / %.17g, norm %.17g / %.17g", R, zero, r, me->info.loss, ref.loss,
                  me->info.grad_norm, ref.grad_norm);
        }
    }
    CHECK(same_file(ck[0], ck[1]), "R=%d: the ZeRO-1 checkpoint differs from the plain one", R);
    /* The gathered moments load and shard again. */
    rn_trainer *l;
    CHECK_OK(rn_trainer_load(ck[1], &l, NULL));
    if (l) {
        rn_replicas rp = {R - 1, R, NULL, g_ready, g_reduce, g_sum, g_gather};
        size_t off, cnt;
        CHECK_OK(rn_trainer_set_replicas(l, &rp, 1));
        rn_trainer_shard(l, &off, &cnt);
        CHECK(off == rn_shard_offset(np, R, R - 1) && off + cnt == np, "R=%d: last shard [%zu, +%zu) of %zu", R, off, cnt, np);
        CHECK(rn_trainer_set_replicas(l, &rp, 1) == RN_ERR_ARG, "sharding twice is refused");
        rn_model_free(rn_trainer_model(l));
        rn_trainer_free(l);
    }
    printf("  %d replicas = 1 trainer with accum %d, bit for bit (plain and ZeRO-1, %zu parameters)\n", R, R, np);
    for (int zero = 0; zero < 2; zero++)
        for (int r = 0; r < R; r++) free(mb[zero][r].params);
    rn_trainer_free(t);
    rn_model_free(m);
    free(x);
    free(y);
}

static void shards(void) {
    size_t ns[] = {1, 4095, 4096, 4097, 100000, 12345678};
    int bad = 0;
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
        for (int size = 1; size <= 7; size++) {
            size_t n = ns[i], blocks = (n + RN_SHARD_ALIGN - 1) / RN_SHARD_ALIGN;
            bad += rn_shard_offset(n, size, 0) != 0 || rn_shard_offset(n, size, size) != n;
            for (int r = 0; r < size; r++) {
                size_t a = rn_shard_offset(n, size, r), b = rn_shard_offset(n, size, r + 1);
                bad += b < a || a % RN_SHARD_ALIGN != 0;
                /* Balanced: whole blocks, at most one more than another's. */
                size_t nb = (b - a + RN_SHARD_ALIGN - 1) / RN_SHARD_ALIGN;
                bad += nb > blocks / size + 1 || nb + 1 < blocks / size;
            }
        }
    CHECK(bad == 0, "rn_shard_offset: %d violations", bad);
}

int main(void) {
    rn_set_threads(1);
    char dir[] = "/tmp/rn_replicas_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    shards();
    equivalence(2, dir);
    equivalence(3, dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    CHECK_DONE();
}
