/* train.c (CLI): `retnet train`, the training loop around the library's
 * trainer: data, progress, validation, metrics, plots, checkpoints,
 * signals and exact resume. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "dist.h"
#include "plot.h"
#include "retnet_data.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal = 0;
static void on_signal(int sig) { stop_signal = sig; }

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* mkdir -p: path and its missing parents (runs/latest in a fresh checkout);
 * 0, or -1 with errno set (ENOTDIR when path is a file). */
static int make_dirs(const char *path) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) { errno = ENAMETOOLONG; return -1; }
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
            *s = '/';
        }
    struct stat sb;
    if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
    if (stat(p, &sb) != 0) return -1;
    if (!S_ISDIR(sb.st_mode)) { errno = ENOTDIR; return -1; }
    return 0;
}

static void fmt_duration(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) { snprintf(buf, n, "--:--"); return; }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%02d:%02d", t / 60, t % 60);
}

/* One row of metrics.csv; val_loss is NAN where no validation ran. */
typedef struct { double step, train_loss, val_loss, lr, tok_s; } metric_row;
typedef struct { metric_row *r; int n, cap; } metrics;

static void metrics_add(metrics *mt, metric_row row) {
    if (mt->n == mt->cap) {
        int cap = mt->cap ? 2 * mt->cap : 256;
        metric_row *r = realloc(mt->r, sizeof *r * (size_t)cap);
        if (!r) die("out of memory");
        mt->r = r; mt->cap = cap;
    }
    mt->r[mt->n++] = row;
}

/* Re-reads metrics.csv of an interrupted run, up to the resumed step. */
static void metrics_load(metrics *mt, const char *path, double max_step) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        /* step,train_loss,val_loss(may be empty),lr,tokens_per_s */
        double v[5];
        char *p = line, *end;
        int n = 0;
        for (; n < 5; n++) {
            v[n] = strtod(p, &end);
            if (end == p) v[n] = NAN;
            p = strchr(end, ',');
            if (!p) { n++; break; }
            p++;
        }
        if (n != 5 || isnan(v[0]) || isnan(v[1])) continue;  /* the header */
        metric_row r = {v[0], v[1], v[2], v[3], v[4]};
        if (r.step <= max_step) metrics_add(mt, r);
    }
    fclose(f);
}

static void metrics_write(const metrics *mt, const char *dir) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) die("cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "step,train_loss,val_loss,lr,tokens_per_s\n");
    for (int i = 0; i < mt->n; i++) {
        const metric_row *r = &mt->r[i];
        fprintf(f, "%.0f,%.6f,", r->step, r->train_loss);
        if (isfinite(r->val_loss)) fprintf(f, "%.6f", r->val_loss);
        fprintf(f, ",%.6g,%.1f\n", r->lr, r->tok_s);
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0 || rename(tmp, path) != 0)
        die("cannot write %s: %s", path, strerror(errno));
    /* The loss curve */
    double *s = malloc(sizeof(double) * (size_t)(mt->n + 1) * 4), *tl = s + mt->n + 1, *vs = tl + mt->n + 1, *vl = vs + mt->n + 1;
    if (!s) die("out of memory");
    int nv = 0;
    for (int i = 0; i < mt->n; i++) {
        s[i] = mt->r[i].step; tl[i] = mt->r[i].train_loss;
        if (isfinite(mt->r[i].val_loss)) { vs[nv] = mt->r[i].step; vl[nv++] = mt->r[i].val_loss; }
    }
    snprintf(path, sizeof path, "%s/loss.svg", dir);
    if (plot_loss_svg(path, s, tl, mt->n, vs, vl, nv, "retnet training loss") != 0)
        die("cannot write %s: %s", path, rn_last_error());
    free(s);
}

/* Mean validation loss (nats per token) over the first n_batches global
 * batches of B windows per rank, each rank scoring its share. */
static double validation_loss(rn_model *m, const rn_dataset *ds, int B, int T, rn_mode mode, int chunk,
                              int n_batches, const dist_info *di, int32_t *x, int32_t *y) {
    size_t nw = rn_dataset_num_windows(ds, RN_SPLIT_VAL, T), G = (size_t)B * di->size;
    double total = 0, count = 0;
    for (int b = 0; b < n_batches && (size_t)b * G < nw; b++) {
        for (int i = 0; i < B; i++) {
            size_t w = (size_t)b * G + (size_t)di->rank * B + i;
            int n = 0;
            if (w < nw) rn_dataset_window(ds, RN_SPLIT_VAL, w, T, x + (size_t)i * T, y + (size_t)i * T, &n);
            for (int t = n; t < T; t++) { x[(size_t)i * T + t] = 0; y[(size_t)i * T + t] = -1; }
        }
        double l;
        int cnt;
        if (rn_model_loss_grad(m, x, y, B, T, mode, chunk, 1, NULL, &l, &cnt) != RN_OK) die("%s", rn_last_error());
        total += l * cnt;
        count += cnt;
    }
    double sum[2] = {total, count};
    dist_sum(sum, 2);
    return sum[1] > 0 ? sum[0] / sum[1] : NAN;
}

/* This rank's share of a micro-batch, B windows into x, y (B, T): every
 * rank draws the global micro-batch (size x B windows) from the same
 * generator and keeps its own, so the data order is one generator state
 * and N ranks see what one process with batch N x B sees. */
static void sample_shard(const rn_dataset *ds, rn_rng *rng, int B, int T, const dist_info *di, int32_t *x,
                         int32_t *y, int32_t *skip) {
    for (int r = 0; r < di->size; r++) {
        if (r == di->rank) rn_dataset_sample(ds, RN_SPLIT_TRAIN, rng, B, T, x, y);
        else
            for (int i = 0; i < B; i++) rn_dataset_sample(ds, RN_SPLIT_TRAIN, rng, 1, T, skip, skip + T);
    }
}

/* Every rank calls it (the optimiser state may be sharded); rank 0 writes. */
static void save_all(rn_trainer *t, const char *dir, const rn_rng *rng, const char *data, uint64_t seed,
                     const dist_info *di) {
    char path[4096], user[512], ranks[32] = "";
    /* The number of ranks, when several (absent: one process). */
    if (di->size > 1) snprintf(ranks, sizeof ranks, ",\"ranks\":%d", di->size);
    snprintf(user, sizeof user,
             "{\"rng\":[\"%016llx\",\"%016llx\",\"%016llx\",\"%016llx\"],\"seed\":%llu,\"data_tokens\":0%s}",
             (unsigned long long)rng->s[0], (unsigned long long)rng->s[1], (unsigned long long)rng->s[2],
             (unsigned long long)rng->s[3], (unsigned long long)seed, ranks);
    (void)data;
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    if (rn_trainer_save(t, path, user) != RN_OK) die("%s", rn_last_error());
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (di->rank == 0 && rn_model_save(rn_trainer_model(t), path) != RN_OK) die("%s", rn_last_error());
}

static void restore_rng(const char *user, rn_rng *rng, const dist_info *di) {
    cJSON *o = cJSON_Parse(user ? user : "");
    const cJSON *a = o ? cJSON_GetObjectItemCaseSensitive(o, "rng") : NULL;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 4) die("checkpoint has no data-sampler state");
    /* Each rank's share of the data follows from the number of ranks. */
    const cJSON *nr = cJSON_GetObjectItemCaseSensitive(o, "ranks");
    int ranks = cJSON_IsNumber(nr) ? nr->valueint : 1;
    if (ranks != di->size) {
        char how[64];
        snprintf(how, sizeof how, ranks > 1 ? "under mpirun -np %d" : "as one process (no mpirun)", ranks);
        die("the checkpoint was written by %d process%s and this run has %d: resume it %s", ranks,
            ranks == 1 ? "" : "es", di->size, how);
    }
    for (int i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsString(v)) die("checkpoint has a malformed data-sampler state");
        rng->s[i] = strtoull(v->valuestring, NULL, 16);
    }
    cJSON_Delete(o);
}

int cmd_train(int argc, char **argv) {
    arch_flags af = {"torchscale", NULL, 256, 4, 4, 512, 512, 256};
    rn_train_config tc;
    rn_train_config_default(&tc);
    const char *data = "data/brown.txt", *out = "runs/latest", *sched = "cosine";
    double time_budget = 0, val_frac = 0.05;
    int64_t seed = 1;
    int threads = 0, resume = 0, stop_at = 0, eval_every = 100, eval_batches = 8, ckpt_every = 500, log_every = 10, quiet = 0;
    int zero = 0;
    double mpi_timeout = 600;
    opt opts[] = {ARCH_OPTS(af),
                  {"data", OPT_STR, &data, 0, 0, "training text file (byte-level tokens)", 0},
                  {"val-frac", OPT_DOUBLE, &val_frac, 0.001, 0.5, "fraction of the file held out for validation", 0},
                  {"seq", OPT_INT, &tc.seq, 1, 1 << 20, "tokens per sequence", 0},
                  {"batch", OPT_INT, &tc.batch, 1, 1 << 16, "sequences per micro-batch", 0},
                  {"accum", OPT_INT, &tc.accum, 1, 1 << 16, "micro-batches per step (gradient accumulation)", 0},
                  {"steps", OPT_INT, &tc.steps, 1, 1e9, "optimiser steps", 0},
                  {"time", OPT_DOUBLE, &time_budget, 1, 1e8, "train for this many seconds (sets --steps from the measured speed)", 0},
                  {"lr", OPT_DOUBLE, &tc.lr, 1e-8, 10, "peak learning rate", 0},
                  {"min-lr-ratio", OPT_DOUBLE, &tc.min_lr_ratio, 0, 1, "final learning rate as a fraction of --lr", 0},
                  {"warmup", OPT_INT, &tc.warmup, 0, 1e9, "linear warm-up steps", 0},
                  {"schedule", OPT_STR, &sched, 0, 0, "cosine, linear or constant", 0},
                  {"weight-decay", OPT_DOUBLE, &tc.weight_decay, 0, 10, "AdamW decoupled weight decay (matrices only)", 0},
                  {"beta1", OPT_DOUBLE, &tc.beta1, 0, 0.999999, "AdamW beta1", 0},
                  {"beta2", OPT_DOUBLE, &tc.beta2, 0, 0.999999, "AdamW beta2", 0},
                  {"clip", OPT_DOUBLE, &tc.grad_clip, 0, 1e9, "gradient-norm clip (0: off)", 0},
                  {"decay-embed", OPT_FLAG, &tc.decay_embed, 0, 0, "apply weight decay to embeddings too", 0},
                  {"chunk", OPT_INT, &tc.chunk, 1, 1 << 20, "train chunkwise with this chunk length (default: parallel)", 0},
                  {"out", OPT_STR, &out, 0, 0, "run directory (checkpoints, metrics.csv, loss.svg)", 0},
                  {"resume", OPT_FLAG, &resume, 0, 0, "continue from OUT/checkpoint.safetensors", 0},
                  {"stop-at", OPT_INT, &stop_at, 1, 1e9, "stop after this step with a checkpoint, as Ctrl-C would", 0},
                  {"seed", OPT_I64, &seed, 0, 9e15, "random seed (initialisation and data order)", 0},
                  {"threads", OPT_INT, &threads, 1, 1024, "threads (default: all cores)", 0},
                  {"eval-every", OPT_INT, &eval_every, 1, 1e9, "validate every N steps", 0},
                  {"eval-batches", OPT_INT, &eval_batches, 1, 1e6, "validation batches", 0},
                  {"ckpt-every", OPT_INT, &ckpt_every, 1, 1e9, "checkpoint every N steps", 0},
                  {"log-every", OPT_INT, &log_every, 1, 1e9, "progress line every N steps when not a terminal", 0},
                  {"quiet", OPT_FLAG, &quiet, 0, 0, "no progress display", 0},
                  {"zero", OPT_INT, &zero, 0, 1, "under mpirun: 1 shards the AdamW moments over the ranks (ZeRO-1)", 0},
                  {"mpi-timeout", OPT_DOUBLE, &mpi_timeout, 1, 1e6, "under mpirun: abort when the ranks wait this long for one another (s)", 0},
                  {0}};
    command_spec cmd = {"train", "[--data FILE] [--out DIR] [--size NAME | --dim D ...] [--steps N | --time S]",
                        "Trains a RetNet language model on a text file (byte-level tokens) with AdamW,\n"
                        "warm-up and cosine decay; validates, plots, checkpoints; --resume continues exactly.",
                        opts};
    af.size = NULL;
    args_parse(&cmd, argc, argv);
    /* Under mpirun: rank 0 alone reports and writes (docs/DISTRIBUTED.md). */
    dist_info di = dist_init(mpi_timeout);
    if (di.rank > 0) quiet = 1;
    if (!threads) threads = dist_default_threads();
    if (threads) rn_set_threads(threads);
    if (rn_schedule_from_name(sched, &tc.schedule) != RN_OK) die_usage("train", "%s", rn_last_error());
    tc.mode = args_seen(&cmd, "chunk") ? RN_CHUNKWISE : RN_PARALLEL;
    if (tc.mode == RN_CHUNKWISE && tc.chunk > tc.seq) die_usage("train", "--chunk %d is longer than --seq %d", tc.chunk, tc.seq);
    if (!args_seen(&cmd, "warmup") && tc.warmup >= tc.steps) tc.warmup = tc.steps / 10;
    if (!resume) (void)arch_config(&cmd, &af);  /* usage errors (exit 2) before anything is created */
    if (di.rank == 0 && make_dirs(out) != 0) die("cannot create %s: %s", out, strerror(errno));

    rn_tokenizer *tok;
    rn_dataset *ds;
    if (rn_tokenizer_byte_create(&tok) != RN_OK) die("%s", rn_last_error());
    if (rn_dataset_open(data, tok, val_frac, &ds) != RN_OK) die("%s", rn_last_error());
    if (rn_dataset_size(ds, RN_SPLIT_TRAIN) < (size_t)tc.seq + 1 || rn_dataset_size(ds, RN_SPLIT_VAL) < 2)
        die("%s is too short for --seq %d", data, tc.seq);

    rn_trainer *t = NULL;
    rn_model *m = NULL;
    rn_rng rng;
    metrics mt = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", out);
    if (resume) {
        char *user;
        if (rn_trainer_load(path, &t, &user) != RN_OK) die("cannot resume: %s", rn_last_error());
        m = rn_trainer_model(t);
        restore_rng(user, &rng, &di);
        free(user);
        /* The checkpoint's settings hold, except a longer schedule. */
        rn_train_config saved = *rn_trainer_config(t);
        if (args_seen(&cmd, "steps")) saved.steps = tc.steps;
        if (rn_trainer_set_config(t, &saved) != RN_OK) die("%s", rn_last_error());
        tc = saved;
        snprintf(path, sizeof path, "%s/metrics.csv", out);
        metrics_load(&mt, path, (double)rn_trainer_step_count(t));
        if (di.rank == 0) fprintf(stderr, "resumed %s at step %lld\n", out, (long long)rn_trainer_step_count(t));
    } else {
        rn_config c = arch_config(&cmd, &af);
        if (c.vocab < tok->vocab_size) die_usage("train", "--vocab %d is smaller than the tokenizer's %d", c.vocab, tok->vocab_size);
        if (rn_model_create(&c, &m) != RN_OK) die("%s", rn_last_error());
        rn_model_init_random(m, (uint64_t)seed);
        if (rn_trainer_create(m, &tc, &t) != RN_OK) die("%s", rn_last_error());
        rn_rng_seed(&rng, (uint64_t)seed ^ 0x5eedda7aull);
    }
    dist_attach(t, zero);
    const rn_config *c = rn_model_config(m);
    size_t bt = (size_t)tc.batch * tc.seq, nxy = bt * tc.accum;
    int32_t *x = malloc(sizeof(int32_t) * nxy), *y = malloc(sizeof(int32_t) * nxy), *skip = malloc(sizeof(int32_t) * 2 * tc.seq);
    if (!x || !y || !skip) die("out of memory");
    if (di.rank == 0) {
        fprintf(stderr, "model: %s preset, d=%d, layers=%d, heads=%d, value=%d, ffn=%d: %.2fM parameters\n",
                rn_preset_name(c->preset), c->dim, c->layers, c->heads, c->value_dim, c->ffn_dim, rn_model_num_params(m) / 1e6);
        fprintf(stderr, "data: %s: %zu train / %zu validation tokens; batch %d x %d x %d, %s%s\n", data,
                rn_dataset_size(ds, RN_SPLIT_TRAIN), rn_dataset_size(ds, RN_SPLIT_VAL), tc.accum, tc.batch, tc.seq,
                tc.mode == RN_PARALLEL ? "parallel" : "chunkwise", tc.mode == RN_PARALLEL ? "" : "");
    }
    if (di.rank == 0 && di.size > 1) {
        size_t off, n, np = rn_model_num_params(m);
        rn_trainer_shard(t, &off, &n);
        fprintf(stderr, "data parallel: %d ranks x batch %d = global batch %d x %d; gradients %.1f MB per step; "
                "AdamW moments %.1f MB per rank%s\n", di.size, tc.batch, di.size * tc.batch, tc.accum,
                np * sizeof(rn_real) / 1e6, 2.0 * n * sizeof(rn_real) / 1e6, zero ? " (ZeRO-1)" : "");
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int tty = isatty(2) && !quiet;
    double t0 = now_seconds(), last_t = t0, tok_s = 0;
    int64_t start_step = rn_trainer_step_count(t);
    double ema = NAN, t_est = t0;
    int64_t d_est = 0;
    int code = 0;
    while (rn_trainer_step_count(t) < tc.steps) {
        for (int a = 0; a < tc.accum; a++) sample_shard(ds, &rng, tc.batch, tc.seq, &di, x + a * bt, y + a * bt, skip);
        rn_step_info info;
        rn_status st = rn_trainer_step(t, x, y, &info);
        if (st == RN_ERR_NUMERIC) {
            if (tty) fputc('\n', stderr);
            if (di.rank == 0)
                fprintf(stderr, "retnet: error: %s; stopping (the last checkpoint in %s is intact)\n", rn_last_error(), out);
            code = 1;
            break;
        }
        if (st != RN_OK) die("%s", rn_last_error());
        int64_t step = rn_trainer_step_count(t);
        double now = now_seconds();
        tok_s = (double)nxy * di.size / (now - last_t);
        last_t = now;
        ema = isnan(ema) ? info.loss : 0.9 * ema + 0.1 * info.loss;
        /* --time: the schedule length follows from the measured speed, first
         * after 5 steps, then refined every 40 (the first steps are slower,
         * and a shared machine's speed drifts) so the decay ends in time. */
        int64_t done = step - start_step;
        if (time_budget > 0 && !resume && (done == 5 || done % 40 == 0)) {
            /* the speed of the last stretch: the machine's load changes */
            double per = (now - t_est) / (double)(done - d_est), left = time_budget - (now - t0);
            t_est = now;
            d_est = done;
            int est = (int)step + (int)(left / per);
            if (est < (int)step + 1) est = (int)step + 1;
            dist_max(&est, 1);  /* one schedule on every rank */
            if (done == 5 || abs(est - tc.steps) > tc.steps / 20) {
                tc.steps = est;
                if (done == 5 && !args_seen(&cmd, "warmup")) tc.warmup = tc.steps / 20 < 40 ? tc.steps / 20 : 40;
                rn_trainer_set_config(t, &tc);
                fprintf(stderr, "%s--time %.0fs: %.3fs per step, scheduling %d steps\n", tty ? "\r\033[K" : "",
                        time_budget, per, tc.steps);
            }
        }
        metric_row row = {(double)step, info.loss, NAN, info.lr, tok_s};
        if (stop_at && step >= stop_at) stop_signal = SIGUSR1;
        /* Every rank stops at the same step: a signal to any, or rank 0's clock. */
        int halt[2] = {stop_signal, di.rank == 0 && time_budget > 0 && now - t0 > time_budget * 1.05};
        dist_max(halt, 2);
        stop_signal = halt[0];
        int last = step >= tc.steps || stop_signal || halt[1];
        if (step % eval_every == 0 || last) {
            row.val_loss = validation_loss(m, ds, tc.batch, tc.seq, tc.mode, tc.chunk, eval_batches, &di, x, y);
            if (!quiet)
                fprintf(stderr, "%sstep %lld: val loss %.4f nats/byte, %.4f bits/byte (train %.4f)\n", tty ? "\r\033[K" : "",
                        (long long)step, row.val_loss, row.val_loss / log(2.0), ema);
        }
        metrics_add(&mt, row);
        if (!quiet && (tty || step % log_every == 0 || last)) {
            char el[32], eta[32];
            double elapsed = now - t0, per = elapsed / (double)(step - start_step);
            fmt_duration(el, sizeof el, elapsed);
            fmt_duration(eta, sizeof eta, per * (double)(tc.steps - step));
            fprintf(stderr, "%sstep %lld/%d  loss %.4f  lr %.2e  |g| %.3f  %.0f tok/s  %s elapsed, ETA %s%s",
                    tty ? "\r\033[K" : "", (long long)step, tc.steps, info.loss, info.lr, info.grad_norm, tok_s, el, eta,
                    tty ? "" : "\n");
        }
        if (step % ckpt_every == 0 || last || (row.val_loss == row.val_loss)) {
            if (step % ckpt_every == 0 || last) save_all(t, out, &rng, data, (uint64_t)seed, &di);
            if (di.rank == 0) metrics_write(&mt, out);
        }
        if (halt[1] && step < tc.steps) {
            if (tty) fputc('\n', stderr);
            if (di.rank == 0) fprintf(stderr, "time budget reached at step %lld\n", (long long)step);
            break;
        }
        if (stop_signal) {
            if (tty) fputc('\n', stderr);
            if (di.rank == 0)
                fprintf(stderr, "%s: checkpoint written to %s at step %lld; resume with --resume\n",
                        stop_signal == SIGINT ? "interrupted" : stop_signal == SIGTERM ? "terminated" : "stopped", out,
                        (long long)step);
            break;
        }
    }
    if (tty) fputc('\n', stderr);
    if (code == 0 && di.rank == 0) {
        double el = now_seconds() - t0;
        fprintf(stderr, "done: %lld steps in %.1fs; model in %s/model.safetensors, curve in %s/loss.svg\n",
                (long long)(rn_trainer_step_count(t) - start_step), el, out, out);
        if (di.size > 1) {
            size_t values;
            int buckets;
            double waited;
            dist_stats(&values, &buckets, &waited);
            fprintf(stderr, "rank 0 waited %.1fs (%.0f%%) for the other ranks; %.1f MB of gradients reduced per step in %d "
                    "buckets\n", waited, 100 * waited / el, values * sizeof(rn_real) / 1e6, buckets);
        }
    }
    free(x); free(y); free(skip); free(mt.r);
    rn_trainer_free(t);
    rn_model_free(m);
    rn_dataset_free(ds);
    rn_tokenizer_free(tok);
    dist_finalize();
    return code;
}
