/* train.c (CLI): `retnet train`, the training loop around the library's
 * trainer: data, progress, validation, metrics, plots, checkpoints,
 * signals and exact resume. */
#define _POSIX_C_SOURCE 200809L
#include "args.h"
#include "cli.h"
#include "common.h"
#include "dist.h"
#include "plot.h"
#include "retnet_data.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal = 0;
static void on_signal(int sig) { stop_signal = sig; }

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
            if (w < nw && rn_dataset_window(ds, RN_SPLIT_VAL, w, T, x + (size_t)i * T, y + (size_t)i * T, &n) != RN_OK)
                die("%s", rn_last_error());
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
        rn_status s = RN_OK;
        if (r == di->rank) s = rn_dataset_sample(ds, RN_SPLIT_TRAIN, rng, B, T, x, y);
        else
            for (int i = 0; i < B && s == RN_OK; i++) s = rn_dataset_sample(ds, RN_SPLIT_TRAIN, rng, 1, T, skip, skip + T);
        if (s != RN_OK) die("%s", rn_last_error());  /* a shard's token beyond the vocabulary */
    }
}

/* Every rank calls it (the optimiser state may be sharded); rank 0 writes. */
static void save_all(rn_trainer *t, const char *dir, const rn_rng *rng, uint64_t seed, const dist_info *di) {
    char path[4096], user[512], ranks[32] = "";
    /* The number of ranks, when several (absent: one process). */
    if (di->size > 1) snprintf(ranks, sizeof ranks, ",\"ranks\":%d", di->size);
    snprintf(user, sizeof user, "{\"rng\":[\"%016llx\",\"%016llx\",\"%016llx\",\"%016llx\"],\"seed\":%llu%s}",
             (unsigned long long)rng->s[0], (unsigned long long)rng->s[1], (unsigned long long)rng->s[2],
             (unsigned long long)rng->s[3], (unsigned long long)seed, ranks);
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

/* ------------------------------------------------------------- flags */

/* `retnet train`'s flags and what follows from them alone. */
typedef struct {
    rn_train_config tc;       /* schedule, batch, mode (a resumed run takes the checkpoint's) */
    rn_config arch;           /* the model of a new run (not resume) */
    const char *data, *out;
    const char *tokenizer;    /* --tokenizer (NULL: byte-level, or a resumed run's own) */
    double time_budget, val_frac, mpi_timeout;
    int64_t seed;
    int threads, resume, stop_at, eval_every, eval_batches, ckpt_every, log_every, quiet, zero;
    int steps_seen, warmup_seen, vocab_seen;  /* --steps, --warmup, --vocab given */
} train_flags;

/* Parses and checks the flags: every usage error (exit 2) comes here,
 * before anything is created. */
static void parse_flags(train_flags *f, int argc, char **argv) {
    arch_flags af = {"torchscale", NULL, 256, 4, 4, 512, 512, 256};
    rn_train_config_default(&f->tc);
    rn_train_config *tc = &f->tc;
    const char *sched = "cosine";
    f->data = "data/brown.txt"; f->out = "runs/latest"; f->tokenizer = NULL;
    f->time_budget = 0; f->val_frac = 0.05; f->mpi_timeout = 600;
    f->seed = 1;
    f->threads = 0; f->resume = 0; f->stop_at = 0; f->eval_every = 100; f->eval_batches = 8; f->ckpt_every = 500;
    f->log_every = 10; f->quiet = 0; f->zero = 0;
    opt opts[] = {ARCH_OPTS(af),
                  {"data", OPT_STR, &f->data, 0, 0, "training text file, or a directory of token shards (retnet data prepare)", 0},
                  {"tokenizer", OPT_STR, &f->tokenizer, 0, 0, "tokenizer.json (or its directory) to tokenize --data with, stored in --out; 'byte' (default) for bytes", 0},
                  {"val-frac", OPT_DOUBLE, &f->val_frac, 0.001, 0.5, "fraction of the file held out for validation", 0},
                  {"seq", OPT_INT, &tc->seq, 1, 1 << 20, "tokens per sequence", 0},
                  {"batch", OPT_INT, &tc->batch, 1, 1 << 16, "sequences per micro-batch", 0},
                  {"accum", OPT_INT, &tc->accum, 1, 1 << 16, "micro-batches per step (gradient accumulation)", 0},
                  {"steps", OPT_INT, &tc->steps, 1, 1e9, "optimiser steps", 0},
                  {"time", OPT_DOUBLE, &f->time_budget, 1, 1e8, "train for this many seconds (sets --steps from the measured speed)", 0},
                  {"lr", OPT_DOUBLE, &tc->lr, 1e-8, 10, "peak learning rate", 0},
                  {"min-lr-ratio", OPT_DOUBLE, &tc->min_lr_ratio, 0, 1, "final learning rate as a fraction of --lr", 0},
                  {"warmup", OPT_INT, &tc->warmup, 0, 1e9, "linear warm-up steps", 0},
                  {"schedule", OPT_STR, &sched, 0, 0, "cosine, linear or constant", 0},
                  {"weight-decay", OPT_DOUBLE, &tc->weight_decay, 0, 10, "AdamW decoupled weight decay (matrices only)", 0},
                  {"beta1", OPT_DOUBLE, &tc->beta1, 0, 0.999999, "AdamW beta1", 0},
                  {"beta2", OPT_DOUBLE, &tc->beta2, 0, 0.999999, "AdamW beta2", 0},
                  {"clip", OPT_DOUBLE, &tc->grad_clip, 0, 1e9, "gradient-norm clip (0: off)", 0},
                  {"decay-embed", OPT_FLAG, &tc->decay_embed, 0, 0, "apply weight decay to embeddings too", 0},
                  {"chunk", OPT_INT, &tc->chunk, 1, 1 << 20, "train chunkwise with this chunk length (default: parallel)", 0},
                  {"out", OPT_STR, &f->out, 0, 0, "run directory (checkpoints, metrics.csv, loss.svg)", 0},
                  {"resume", OPT_FLAG, &f->resume, 0, 0, "continue from OUT/checkpoint.safetensors", 0},
                  {"stop-at", OPT_INT, &f->stop_at, 1, 1e9, "stop after this step with a checkpoint, as Ctrl-C would", 0},
                  {"seed", OPT_I64, &f->seed, 0, 9e15, "random seed (initialisation and data order)", 0},
                  {"threads", OPT_INT, &f->threads, 1, 1024, "threads (default: all cores)", 0},
                  {"eval-every", OPT_INT, &f->eval_every, 1, 1e9, "validate every N steps", 0},
                  {"eval-batches", OPT_INT, &f->eval_batches, 1, 1e6, "validation batches", 0},
                  {"ckpt-every", OPT_INT, &f->ckpt_every, 1, 1e9, "checkpoint every N steps", 0},
                  {"log-every", OPT_INT, &f->log_every, 1, 1e9, "progress line every N steps when not a terminal", 0},
                  {"quiet", OPT_FLAG, &f->quiet, 0, 0, "no progress display", 0},
                  {"zero", OPT_INT, &f->zero, 0, 1, "under mpirun: 1 shards the AdamW moments over the ranks (ZeRO-1)", 0},
                  {"mpi-timeout", OPT_DOUBLE, &f->mpi_timeout, 1, 1e6, "under mpirun: abort when the ranks wait this long for one another (s)", 0},
                  {0}};
    command_spec cmd = {"train", "[--data FILE] [--out DIR] [--size NAME | --dim D ...] [--steps N | --time S]",
                        "Trains a RetNet language model on a text file (byte-level tokens, or --tokenizer's) with AdamW,\n"
                        "warm-up and cosine decay; validates, plots, checkpoints; --resume continues exactly.",
                        opts};
    args_parse(&cmd, argc, argv);
    f->steps_seen = args_seen(&cmd, "steps");
    f->warmup_seen = args_seen(&cmd, "warmup");
    f->vocab_seen = args_seen(&cmd, "vocab");
    if (rn_schedule_from_name(sched, &tc->schedule) != RN_OK) die_usage("train", "%s", rn_last_error());
    tc->mode = args_seen(&cmd, "chunk") ? RN_CHUNKWISE : RN_PARALLEL;
    if (tc->mode == RN_CHUNKWISE && tc->chunk > tc->seq) die_usage("train", "--chunk %d is longer than --seq %d", tc->chunk, tc->seq);
    if (!f->warmup_seen && tc->warmup >= tc->steps) tc->warmup = tc->steps / 10;
    if (!f->resume) f->arch = arch_config(&cmd, &af);
}

/* ------------------------------------------------------------ the run */

/* --time: the schedule's length (tc.steps) follows from the measured
 * speed, so that the decay ends when the time is up. The speed is that of
 * the last stretch (first after 5 steps, then every 40: the first steps
 * are slower, and a shared machine's speed drifts), and the plan is
 * re-made from it after every step. A plan made longer would move the
 * learning rate back up (the decay's progress (step - warmup) / (steps -
 * warmup) would fall), so it may grow only as far as keeps that progress
 * from falling: after warm-up the learning rate never increases, whatever
 * the machine does. When the machine speeds up, the rate stays flat until
 * the plan has caught up; when it slows down, the rate decays faster. */
typedef struct {
    double budget;       /* seconds; 0: no --time, or a resumed run (it keeps the checkpoint's plan) */
    double per;          /* seconds per step over the last stretch (0: not measured yet) */
    double t_est;        /* when the stretch began */
    int64_t d_est;       /* steps done when it began */
    int shown;           /* the plan last reported (0: none) */
} time_plan;

/* Everything one run of `retnet train` holds. */
typedef struct {
    const train_flags *f;
    dist_info di;
    rn_train_config tc;  /* the live schedule */
    rn_tokenizer *tok;
    char tok_src[4200];  /* where tok came from ("": the byte tokenizer) */
    double val_bpt;      /* bytes per token of the validation split (1 for bytes; 0 unknown) */
    rn_dataset *ds;
    rn_trainer *t;
    rn_model *m;
    rn_rng rng;          /* the data order */
    metrics mt;
    int32_t *x, *y, *skip;
    size_t bt, nxy;      /* tokens per micro-batch, per step (this rank) */
    int tty;             /* progress redrawn on a terminal */
    double t0, last_t, ema;
    int64_t start_step;
    time_plan plan;
} train_run;

/* Copies src to dst atomically. */
static void copy_file(const char *src, const char *dst) {
    char *data;
    size_t n;
    rn_atomic_file af;
    if (rn_read_file(src, (size_t)1 << 30, &data, &n) != RN_OK || rn_atomic_open(&af, dst) != RN_OK)
        die("%s", rn_last_error());
    if (rn_atomic_write(&af, data, n) != RN_OK) {
        rn_atomic_abort(&af);
        die("%s", rn_last_error());
    }
    if (rn_atomic_commit(&af) != RN_OK) die("%s", rn_last_error());
    free(data);
}

/* --tokenizer: the Hugging Face layout, tokenizer.json (and
 * tokenizer_config.json) beside the model, where generate, eval and serve
 * look. The source's tokenizer_config.json is kept; without one, one is
 * written naming BOS/EOS, added to nothing (the training text has none).
 * A new byte-level run removes what an earlier run left there. */
static void store_tokenizer(const train_run *r, const char *spec) {
    char src[8192], dst[8192];
    struct stat sb;
    const char *out = r->f->out;
    if (!spec) {
        if (r->f->resume) return;
        snprintf(dst, sizeof dst, "%s/tokenizer.json", out);
        unlink(dst);
        snprintf(dst, sizeof dst, "%s/tokenizer_config.json", out);
        unlink(dst);
        return;
    }
    int dir = stat(spec, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (strlen(spec) > 4096 || strlen(out) > 4096) die("path too long: %s", strlen(spec) > 4096 ? spec : out);
    if (dir) snprintf(src, sizeof src, "%s/tokenizer.json", spec);
    else snprintf(src, sizeof src, "%s", spec);
    if (stat(src, &sb) != 0) die("%s has no tokenizer.json to store beside the model", spec);
    snprintf(dst, sizeof dst, "%s/tokenizer.json", out);
    struct stat db;
    if (stat(dst, &db) == 0 && db.st_dev == sb.st_dev && db.st_ino == sb.st_ino) return;  /* OUT's own (resume) */
    copy_file(src, dst);
    char *slash = strrchr(src, '/');
    if (slash) snprintf(slash + 1, sizeof src - (size_t)(slash + 1 - src), "tokenizer_config.json");
    else snprintf(src, sizeof src, "tokenizer_config.json");
    snprintf(dst, sizeof dst, "%s/tokenizer_config.json", out);
    if (stat(src, &sb) == 0) {
        copy_file(src, dst);
        return;
    }
    cJSON *c = cJSON_CreateObject();
    int32_t bos = rn_tokenizer_bos(r->tok), eos = rn_tokenizer_eos(r->tok);
    if (bos >= 0) cJSON_AddStringToObject(c, "bos_token", rn_tokenizer_id_to_token(r->tok, bos));
    if (eos >= 0) cJSON_AddStringToObject(c, "eos_token", rn_tokenizer_id_to_token(r->tok, eos));
    cJSON_AddBoolToObject(c, "add_bos_token", 0);
    cJSON_AddBoolToObject(c, "add_eos_token", 0);
    char *text = cJSON_Print(c);
    rn_atomic_file af;
    if (!text || rn_atomic_open(&af, dst) != RN_OK) die("cannot write %s: %s", dst, text ? rn_last_error() : "out of memory");
    if (rn_atomic_write(&af, text, strlen(text)) != RN_OK) {
        rn_atomic_abort(&af);
        die("%s", rn_last_error());
    }
    if (rn_atomic_commit(&af) != RN_OK) die("%s", rn_last_error());
    free(text);
    cJSON_Delete(c);
}

/* The bytes the validation tokens stand for (the first 16M of them, enough
 * for a mean), so that its loss reads in bits per byte whatever the
 * tokenizer; 0 (unknown) for shards without one. */
static void set_val_bytes_per_token(train_run *r) {
    r->val_bpt = 0;
    if (!r->tok) return;
    size_t nv = rn_dataset_size(r->ds, RN_SPLIT_VAL), bytes = 0, done = 0;
    if (nv > ((size_t)1 << 24)) nv = (size_t)1 << 24;
    int32_t buf[4096];
    while (done < nv) {
        size_t n = nv - done < 4096 ? nv - done : 4096;
        if (rn_dataset_read(r->ds, RN_SPLIT_VAL, done, n, buf) != RN_OK) die("%s", rn_last_error());
        for (size_t i = 0; i < n; i++) {
            const char *p;
            size_t len;
            if (rn_tokenizer_decode(r->tok, buf[i], &p, &len) == RN_OK) bytes += len;
        }
        done += n;
    }
    r->val_bpt = bytes ? (double)bytes / (double)nv : 1;
}

/* --data DIR: shards (`retnet data prepare`, or llm.c's). Their ids mean
 * what DIR's tokenizer.json says (else --tokenizer's); it bounds them and is
 * stored beside the model (store_tokenizer). Without one (llm.c's shards)
 * the ids are bounded by the model's vocabulary, and r->tok stays NULL. */
static void open_shards(train_run *r) {
    const train_flags *f = r->f;
    char tj[4200];
    struct stat sb;
    int vocab = f->arch.vocab;
    snprintf(tj, sizeof tj, "%s/tokenizer.json", f->data);
    const char *spec = stat(tj, &sb) == 0 ? f->data : f->tokenizer && strcmp(f->tokenizer, "byte") != 0 ? f->tokenizer : NULL;
    r->tok_src[0] = 0;
    if (spec) {
        snprintf(r->tok_src, sizeof r->tok_src, "%s", spec);
        r->tok = load_tokenizer_or_die(spec);
        vocab = r->tok->vocab_size;
    } else if (f->resume) {
        char mp[4200];
        rn_model_info info;
        snprintf(mp, sizeof mp, "%s/model.safetensors", f->out);
        if (rn_model_inspect(mp, &info) != RN_OK) die("cannot resume: %s", rn_last_error());
        vocab = info.config.vocab;
    }
    if (rn_dataset_open_shards(f->data, vocab, &r->ds) != RN_OK) die("%s", rn_last_error());
    if (rn_dataset_size(r->ds, RN_SPLIT_TRAIN) < (size_t)r->tc.seq + 1)
        die("the training shards of %s hold %zu tokens, too few for --seq %d", f->data,
            rn_dataset_size(r->ds, RN_SPLIT_TRAIN), r->tc.seq);
    if (rn_dataset_size(r->ds, RN_SPLIT_VAL) < 2)
        die("%s has no validation shard (*val*.bin) with 2 tokens or more", f->data);
    set_val_bytes_per_token(r);
}

static void open_data(train_run *r) {
    const train_flags *f = r->f;
    struct stat sb;
    if (stat(f->data, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        open_shards(r);
        return;
    }
    const char *spec = f->tokenizer && strcmp(f->tokenizer, "byte") != 0 ? f->tokenizer : NULL;
    char *own = r->tok_src;
    snprintf(own, sizeof r->tok_src, "%s/tokenizer.json", f->out);
    /* A resumed run keeps tokenizing as it began. */
    if (!spec && !f->tokenizer && f->resume && stat(own, &sb) == 0) spec = own;
    if (!spec) r->tok_src[0] = 0;
    else if (spec != own) snprintf(r->tok_src, sizeof r->tok_src, "%s", spec);
    if (spec) r->tok = load_tokenizer_or_die(spec);
    else if (rn_tokenizer_byte_create(&r->tok) != RN_OK) die("%s", rn_last_error());
    if (rn_dataset_open(f->data, r->tok, f->val_frac, &r->ds) != RN_OK) die("%s", rn_last_error());
    if (rn_dataset_size(r->ds, RN_SPLIT_TRAIN) < (size_t)r->tc.seq + 1 || rn_dataset_size(r->ds, RN_SPLIT_VAL) < 2)
        die("%s is too short for --seq %d", f->data, r->tc.seq);
    set_val_bytes_per_token(r);
}

/* Continues OUT/checkpoint.safetensors: model, optimiser, step, data order
 * and the metrics so far. The checkpoint's settings hold, except a longer
 * schedule (--steps). */
static void resume_run(train_run *r) {
    const train_flags *f = r->f;
    char path[4096], *user;
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", f->out);
    if (rn_trainer_load(path, &r->t, &user) != RN_OK) die("cannot resume: %s", rn_last_error());
    r->m = rn_trainer_model(r->t);
    restore_rng(user, &r->rng, &r->di);
    free(user);
    rn_train_config saved = *rn_trainer_config(r->t);
    if (f->steps_seen) saved.steps = r->tc.steps;
    if (rn_trainer_set_config(r->t, &saved) != RN_OK) die("%s", rn_last_error());
    r->tc = saved;
    if (r->tok && rn_model_config(r->m)->vocab < r->tok->vocab_size)
        die("the tokenizer has %d ids, more than the vocabulary of %d of the model in %s", r->tok->vocab_size,
            rn_model_config(r->m)->vocab, path);
    snprintf(path, sizeof path, "%s/metrics.csv", f->out);
    metrics_load(&r->mt, path, (double)rn_trainer_step_count(r->t));
    if (r->di.rank == 0) fprintf(stderr, "resumed %s at step %lld\n", f->out, (long long)rn_trainer_step_count(r->t));
}

/* A new model (the preset's initialisation from --seed) and trainer. */
static void new_run(train_run *r) {
    const train_flags *f = r->f;
    rn_config cfg = f->arch;
    const rn_config *c = &cfg;
    /* A tokenizer's model covers its ids unless --vocab says otherwise. */
    if (r->tok_src[0] && !f->vocab_seen) cfg.vocab = r->tok->vocab_size;
    if (r->tok && c->vocab < r->tok->vocab_size) die_usage("train", "--vocab %d is smaller than the tokenizer's %d", c->vocab, r->tok->vocab_size);
    if (rn_model_create(c, &r->m) != RN_OK) die("%s", rn_last_error());
    rn_model_init_random(r->m, (uint64_t)f->seed);
    if (rn_trainer_create(r->m, &r->tc, &r->t) != RN_OK) die("%s", rn_last_error());
    rn_rng_seed(&r->rng, (uint64_t)f->seed ^ 0x5eedda7aull);
}

/* Rank 0's description of the model, the data and the ranks. */
static void report_setup(const train_run *r) {
    if (r->di.rank != 0) return;
    const rn_config *c = rn_model_config(r->m);
    const rn_train_config *tc = &r->tc;
    fprintf(stderr, "model: %s preset, d=%d, layers=%d, heads=%d, value=%d, ffn=%d: %.2fM parameters\n",
            rn_preset_name(c->preset), c->dim, c->layers, c->heads, c->value_dim, c->ffn_dim, rn_model_num_params(r->m) / 1e6);
    if (r->tok_src[0]) fprintf(stderr, "tokenizer: %s (%d ids)\n", r->tok_src, r->tok->vocab_size);
    fprintf(stderr, "data: %s: %zu train / %zu validation tokens; batch %d x %d x %d, %s\n", r->f->data,
            rn_dataset_size(r->ds, RN_SPLIT_TRAIN), rn_dataset_size(r->ds, RN_SPLIT_VAL), tc->accum, tc->batch, tc->seq,
            tc->mode == RN_PARALLEL ? "parallel" : "chunkwise");
    if (r->di.size > 1) {
        size_t off, n, np = rn_model_num_params(r->m);
        rn_trainer_shard(r->t, &off, &n);
        fprintf(stderr, "data parallel: %d ranks x batch %d = global batch %d x %d; gradients %.1f MB per step; "
                "AdamW moments %.1f MB per rank%s\n", r->di.size, tc->batch, r->di.size * tc->batch, tc->accum,
                np * sizeof(rn_real) / 1e6, 2.0 * n * sizeof(rn_real) / 1e6, r->f->zero ? " (ZeRO-1)" : "");
    }
}

/* --time: this rank's proposal for the schedule's length after `step`
 * steps (0: none yet), from the speed of the last stretch; `step` itself
 * once the budget is spent. */
static int propose_steps(train_run *r, int64_t step, double now) {
    time_plan *p = &r->plan;
    if (p->budget <= 0) return 0;
    int64_t done = step - r->start_step;
    if (done == 5 || done % 40 == 0) {
        p->per = (now - p->t_est) / (double)(done - p->d_est);
        p->t_est = now;
        p->d_est = done;
    }
    if (!(p->per > 0)) return 0;
    double left = p->budget - (now - r->t0), est = (double)step + left / p->per;
    if (left <= 0) return (int)step;  /* time is up: this step is the last */
    if (!(est < 1e9)) est = 1e9;
    return est < (double)step + 1 ? (int)step + 1 : (int)est;
}

/* --time: adopts the agreed proposal est (the largest over the ranks) as
 * the schedule's length, no longer than keeps the learning rate from
 * rising (time_plan). */
static void replan(train_run *r, int64_t step, int est) {
    rn_train_config *tc = &r->tc;
    int first = !r->plan.shown;
    int64_t j = step - 1, w = tc->warmup;  /* the last step done, and the warm-up */
    /* The first plan sets the warm-up, unless given or already over (which
     * would start it again). */
    if (first && !r->f->warmup_seen && j < w) tc->warmup = est / 20 < 40 ? est / 20 : 40;
    if (j > w && est > tc->steps) {
        /* past the warm-up (then unchanged): the longest plan with
         * (step - w) / (steps' - w) >= (j - w) / (steps - w) */
        int64_t most = w + ((int64_t)tc->steps - w) * (step - w) / (j - w);
        if (est > most) est = (int)most;
    }
    if (est != tc->steps) {
        tc->steps = est;
        if (rn_trainer_set_config(r->t, tc) != RN_OK) die("%s", rn_last_error());
    }
    if (first || abs(tc->steps - r->plan.shown) > r->plan.shown / 20) {
        r->plan.shown = tc->steps;
        if (r->di.rank == 0)
            fprintf(stderr, "%s--time %.0fs: %.3fs per step, scheduling %d steps\n", r->tty ? "\r\033[K" : "",
                    r->plan.budget, r->plan.per, tc->steps);
    }
}

/* What every rank must agree on after a step, in one collective: a stop
 * (a signal to any rank, or --stop-at), rank 0's clock past the time
 * budget, and under --time the schedule's length. Returns the time-up flag. */
static int agree(train_run *r, int64_t step, double now) {
    if (r->f->stop_at && step >= r->f->stop_at) stop_signal = SIGUSR1;
    int v[3] = {stop_signal, r->di.rank == 0 && r->f->time_budget > 0 && now - r->t0 > r->f->time_budget * 1.05,
                propose_steps(r, step, now)};
    dist_max(v, 3);
    stop_signal = v[0];
    if (v[2] > 0) replan(r, step, v[2]);
    return v[1];
}

/* The progress line: on a terminal redrawn every step, else every
 * --log-every steps and at the end. */
static void log_progress(const train_run *r, int64_t step, const rn_step_info *info, double tok_s, double now, int last) {
    const train_flags *f = r->f;
    if (f->quiet || !(r->tty || step % f->log_every == 0 || last)) return;
    char el[32], eta[32];
    double elapsed = now - r->t0, per = elapsed / (double)(step - r->start_step);
    format_duration(el, sizeof el, elapsed);
    format_duration(eta, sizeof eta, per * (double)(r->tc.steps - step));
    fprintf(stderr, "%sstep %lld/%d  loss %.4f  lr %.2e  |g| %.3f  %.0f tok/s  %s elapsed, ETA %s%s",
            r->tty ? "\r\033[K" : "", (long long)step, r->tc.steps, info->loss, info->lr, info->grad_norm, tok_s, el, eta,
            r->tty ? "" : "\n");
}

/* Validation every --eval-every steps and at the end; returns the loss,
 * or NAN when it did not run. */
static double validate(const train_run *r, int64_t step, int last) {
    const train_flags *f = r->f;
    if (!(step % f->eval_every == 0 || last)) return NAN;
    double v = validation_loss(r->m, r->ds, r->tc.batch, r->tc.seq, r->tc.mode, r->tc.chunk, f->eval_batches, &r->di, r->x, r->y);
    if (!f->quiet)
    {
        if (r->val_bpt > 0)
            fprintf(stderr, "%sstep %lld: val loss %.4f nats/%s, %.4f bits/byte (train %.4f)\n", r->tty ? "\r\033[K" : "",
                    (long long)step, v, r->tok_src[0] ? "token" : "byte", v / log(2.0) / r->val_bpt, r->ema);
        else  /* shards without a tokenizer: what a token spells is unknown */
            fprintf(stderr, "%sstep %lld: val loss %.4f nats/token (train %.4f)\n", r->tty ? "\r\033[K" : "",
                    (long long)step, v, r->ema);
    }
    return v;
}

/* A checkpoint every --ckpt-every steps and at the end; metrics.csv and
 * loss.svg with it and after each validation. */
static void checkpoint(train_run *r, int64_t step, int last, double val_loss) {
    int ckpt = step % r->f->ckpt_every == 0 || last;
    if (ckpt) save_all(r->t, r->f->out, &r->rng, (uint64_t)r->f->seed, &r->di);
    if ((ckpt || !isnan(val_loss)) && r->di.rank == 0) metrics_write(&r->mt, r->f->out);
}

/* Trains until the schedule's end, a stop or the time budget; returns the
 * exit code (1: a non-finite loss stopped it). */
static int train_loop(train_run *r) {
    const train_flags *f = r->f;
    while (rn_trainer_step_count(r->t) < r->tc.steps) {
        for (int a = 0; a < r->tc.accum; a++)
            sample_shard(r->ds, &r->rng, r->tc.batch, r->tc.seq, &r->di, r->x + a * r->bt, r->y + a * r->bt, r->skip);
        rn_step_info info;
        rn_status st = rn_trainer_step(r->t, r->x, r->y, &info);
        if (st == RN_ERR_NUMERIC) {
            if (r->tty) fputc('\n', stderr);
            if (r->di.rank == 0)
                fprintf(stderr, "retnet: error: %s; stopping (the last checkpoint in %s is intact)\n", rn_last_error(), f->out);
            return 1;
        }
        if (st != RN_OK) die("%s", rn_last_error());
        int64_t step = rn_trainer_step_count(r->t);
        double now = now_seconds(), tok_s = (double)r->nxy * r->di.size / (now - r->last_t);
        r->last_t = now;
        r->ema = isnan(r->ema) ? info.loss : 0.9 * r->ema + 0.1 * info.loss;
        int time_up = agree(r, step, now), last = step >= r->tc.steps || stop_signal || time_up;
        metric_row row = {(double)step, info.loss, validate(r, step, last), info.lr, tok_s};
        metrics_add(&r->mt, row);
        log_progress(r, step, &info, tok_s, now, last);
        checkpoint(r, step, last, row.val_loss);
        if (time_up && step < r->tc.steps) {
            if (r->tty) fputc('\n', stderr);
            if (r->di.rank == 0) fprintf(stderr, "time budget reached at step %lld\n", (long long)step);
            break;
        }
        if (stop_signal) {
            if (r->tty) fputc('\n', stderr);
            if (r->di.rank == 0)
                fprintf(stderr, "%s: checkpoint written to %s at step %lld; resume with --resume\n",
                        stop_signal == SIGINT ? "interrupted" : stop_signal == SIGTERM ? "terminated" : "stopped", f->out,
                        (long long)step);
            break;
        }
    }
    if (r->tty) fputc('\n', stderr);
    return 0;
}

/* Rank 0's closing lines. */
static void report_done(const train_run *r) {
    if (r->di.rank != 0) return;
    double el = now_seconds() - r->t0;
    fprintf(stderr, "done: %lld steps in %.1fs; model in %s/model.safetensors, curve in %s/loss.svg\n",
            (long long)(rn_trainer_step_count(r->t) - r->start_step), el, r->f->out, r->f->out);
    if (r->di.size > 1) {
        size_t values;
        int buckets;
        double waited;
        dist_stats(&values, &buckets, &waited);
        fprintf(stderr, "rank 0 waited %.1fs (%.0f%%) for the other ranks; %.1f MB of gradients reduced per step in %d "
                "buckets\n", waited, 100 * waited / el, values * sizeof(rn_real) / 1e6, buckets);
    }
}

int cmd_train(int argc, char **argv) {
    train_flags f;
    parse_flags(&f, argc, argv);
    wait_passively("train", argc, argv, f.threads);
    train_run r = {.f = &f, .tc = f.tc, .ema = NAN};
    /* Under mpirun: rank 0 alone reports and writes (docs/DISTRIBUTED.md). */
    r.di = dist_init(f.mpi_timeout);
    if (r.di.rank > 0) f.quiet = 1;
    if (!f.threads) f.threads = dist_default_threads();
    if (f.threads) rn_set_threads(f.threads);
    if (r.di.rank == 0 && make_dirs(f.out) != 0) die("cannot create %s: %s", f.out, strerror(errno));
    open_data(&r);
    if (f.resume) resume_run(&r);
    else new_run(&r);
    if (r.di.rank == 0) store_tokenizer(&r, r.tok_src[0] ? r.tok_src : NULL);
    dist_attach(r.t, f.zero);
    r.bt = (size_t)r.tc.batch * r.tc.seq;
    r.nxy = r.bt * r.tc.accum;
    r.x = malloc(sizeof(int32_t) * r.nxy);
    r.y = malloc(sizeof(int32_t) * r.nxy);
    r.skip = malloc(sizeof(int32_t) * 2 * r.tc.seq);
    if (!r.x || !r.y || !r.skip) die("out of memory");
    report_setup(&r);

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    r.tty = isatty(2) && !f.quiet;
    r.t0 = r.last_t = r.plan.t_est = now_seconds();
    r.start_step = rn_trainer_step_count(r.t);
    r.plan.budget = f.resume ? 0 : f.time_budget;
    int code = train_loop(&r);
    if (code == 0) report_done(&r);
    free(r.x); free(r.y); free(r.skip); free(r.mt.r);
    rn_trainer_free(r.t);
    rn_model_free(r.m);
    rn_dataset_free(r.ds);
    rn_tokenizer_free(r.tok);
    dist_finalize();
    return code;
}
