/*
 * retnet.h: the public API of libretnet, Retentive Networks (Sun et al.,
 * arXiv 2307.08621) in C11.
 *
 * Conventions
 * - Every function that can fail returns rn_status; rn_last_error() gives a
 *   one-line, human-readable description of the most recent failure on the
 *   calling thread. The library never prints and never exits.
 * - Tensors are row-major; shapes are given in comments as (dim0, dim1, ...).
 * - rn_real is float, or double when the library is built with
 *   -DRETNET_DOUBLE (the test suite builds both).
 * - A model may be used by one thread at a time (it owns its scratch space);
 *   internally it uses OpenMP and BLAS threads (see rn_set_threads).
 */
#ifndef RETNET_H
#define RETNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this header's API: MAJOR changes break callers, MINOR adds. */
#define RETNET_VERSION_MAJOR 0
#define RETNET_VERSION_MINOR 2
#define RETNET_VERSION_PATCH 0
#define RETNET_VERSION_STRING "0.2.0"

/* Marks the public API: libretnet.so is built with -fvisibility=hidden and
 * exports only what carries RN_API. */
#ifndef RN_API
#if defined(__GNUC__) || defined(__clang__)
#define RN_API __attribute__((visibility("default")))
#else
#define RN_API
#endif
#endif

#ifdef RETNET_DOUBLE
typedef double rn_real;
#else
typedef float rn_real;
#endif

/* ---------------------------------------------------------------- errors */

typedef enum {
    RN_OK = 0,
    RN_ERR_NOMEM,       /* allocation failed or size too large */
    RN_ERR_IO,          /* open/read/write/fsync/rename failed */
    RN_ERR_FORMAT,      /* malformed or inconsistent file */
    RN_ERR_ARG,         /* invalid argument or configuration */
    RN_ERR_NUMERIC,     /* NaN or Inf where a finite value was required */
    RN_ERR_INTERRUPTED  /* stopped on request (signal) */
} rn_status;

RN_API const char *rn_status_name(rn_status s);
/* Detailed message of the last error on this thread ("" if none). */
RN_API const char *rn_last_error(void);
/* The library's version, RETNET_VERSION_STRING of the build (it may differ
 * from the header a program was compiled with). */
RN_API const char *rn_version(void);

/* Number of threads for OpenMP regions and BLAS (0 = library default). */
RN_API void rn_set_threads(int n);
RN_API int rn_get_threads(void);

/* ------------------------------------------------------------------- rng */

/* xoshiro256** seeded by splitmix64: small, fast, reproducible everywhere. */
typedef struct { uint64_t s[4]; } rn_rng;
RN_API void rn_rng_seed(rn_rng *r, uint64_t seed);
RN_API uint64_t rn_rng_u64(rn_rng *r);
RN_API double rn_rng_uniform(rn_rng *r);            /* [0, 1) */
RN_API double rn_rng_normal(rn_rng *r);             /* N(0, 1) */

/* ---------------------------------------------------------------- config */

/* An architecture is a point in a small space of orthogonal switches; a
 * preset is a named point (rn_config_preset). */
typedef enum { RN_PRESET_TORCHSCALE = 0, RN_PRESET_SEED = 1, RN_PRESET_FLA = 2, RN_PRESET_COUNT } rn_preset;

typedef enum {
    RN_ROT_TORCHSCALE, /* pairs (2i,2i+1); angle_j = 10000^-(j/(K/2-1)) */
    RN_ROT_XPOS,       /* pairs (2i,2i+1); theta_j = 10000^-(j/(K/2)), xPos scale */
    RN_ROT_HALF,       /* NeoX halves; inv_freq_j = 10000^-(2j/K) */
    RN_ROT_COUNT
} rn_rotation;

typedef enum {
    RN_DECAY_POW2,     /* gamma_h = 1 - 2^(-5-h) */
    RN_DECAY_LOGSPACE, /* gamma_h = 1 - exp(linspace(log 1/32, log 1/512, H))[h] */
    RN_DECAY_COUNT
} rn_decay;

typedef enum { RN_QK_NONE, RN_QK_SCALE_K, RN_QK_SCALE_Q, RN_QK_COUNT } rn_qk_scale;

typedef enum {
    RN_HEADNORM_RMS,        /* RMSNorm per head, no affine */
    RN_HEADNORM_RMS_SHARED, /* RMSNorm per head, weight [Dv] shared by heads */
    RN_HEADNORM_GROUP,      /* GroupNorm(H groups), weight+bias [Vd] */
    RN_HEADNORM_COUNT
} rn_headnorm;

typedef enum { RN_NORM_RMS, RN_NORM_LAYER, RN_NORM_COUNT } rn_norm;   /* LAYER has a bias */
typedef enum { RN_FFN_GLU, RN_FFN_MLP, RN_FFN_COUNT } rn_ffn;
typedef enum { RN_ACT_GELU, RN_ACT_SWISH, RN_ACT_COUNT } rn_act;

typedef struct {
    rn_preset preset;
    int dim;          /* d: model width */
    int value_dim;    /* Vd: value width over all heads */
    int heads;        /* H */
    int ffn_dim;      /* F */
    int layers;       /* L */
    int vocab;        /* V */
    double norm_eps;  /* block and final norms */
    double head_eps;  /* per-head norm */
    rn_rotation rotation;
    rn_decay decay;
    int decay_norm;   /* divide retention rows by sqrt(c_n) (torchscale) */
    rn_qk_scale qk_scale;
    rn_headnorm head_norm;
    rn_norm block_norm;
    int final_norm;   /* norm before the LM head */
    rn_ffn ffn;       /* GLU: fc2(act(fc1 x) * gate x); MLP: fc2(act(fc1 x + b1)) + b2 */
    rn_act act;
    int tie_embed;    /* LM head shares embed */
    int scale_embed;  /* embeddings multiplied by sqrt(d) */
    int embed_norm;   /* norm (block_norm kind) right after the embedding */
} rn_config;

/* Fills cfg with the preset's switches and the given sizes. size may be
 * NULL (keep cfg's sizes) or a named size: torchscale base, medium, xl, 3b,
 * 7b, 13b, 65b; and for every preset tiny, small, demo. cfg's vocab is
 * kept (256 when it is <= 0), so start from a zeroed rn_config
 * (rn_config c = {0}) or set vocab first. */
RN_API rn_status rn_config_preset(rn_config *cfg, rn_preset preset, const char *size);
RN_API rn_status rn_preset_from_name(const char *name, rn_preset *out);
RN_API const char *rn_preset_name(rn_preset p);
/* Checks sizes and switches (divisibility, positivity, limits). */
RN_API rn_status rn_config_validate(const rn_config *cfg);
/* Number of parameters (0 if the config is invalid). */
RN_API size_t rn_config_num_params(const rn_config *cfg);

/* ----------------------------------------------------------------- model */

typedef struct rn_model rn_model;

/* Creates a model with zeroed parameters. */
RN_API rn_status rn_model_create(const rn_config *cfg, rn_model **out);
RN_API void rn_model_free(rn_model *m);
/* The preset's initialisation (that of its reference implementation). */
RN_API rn_status rn_model_init_random(rn_model *m, uint64_t seed);
RN_API const rn_config *rn_model_config(const rn_model *m);
RN_API size_t rn_model_num_params(const rn_model *m);
/* All parameters, one contiguous buffer of rn_model_num_params values. A
 * model that rn_model_load reads in place from its memory-mapped file gets
 * such a buffer (a copy) on the first call; NULL if memory is short. The
 * buffer is writable, so the call drops the copy of the f32 projections
 * that a loaded model with up to 64 MB of them keeps packed for decoding:
 * the same bits, but batches of streams decode more slowly. */
RN_API rn_real *rn_model_params(rn_model *m);

/* Recurrent state of a batch of B streams: per stream, layer and head a
 * K x Dv matrix, plus each stream's position of its next token. It does
 * not grow with the sequence length. Streams start at position 0
 * together; streams moved in with rn_state_copy_row (or reset alone) may
 * be at different positions, and rn_forward then advances each from its
 * own (continuous batching: B conversations, one step). */
typedef struct rn_state rn_state;
RN_API rn_status rn_state_create(const rn_model *m, int batch, rn_state **out);
RN_API void rn_state_free(rn_state *s);
/* Every stream back to an empty state at position 0. */
RN_API void rn_state_reset(rn_state *s);
/* The position of stream 0 (of every stream, unless rows were moved). */
RN_API int64_t rn_state_pos(const rn_state *s);
/* The position of stream row, or -1 if there is no such row. */
RN_API int64_t rn_state_row_pos(const rn_state *s, int row);
RN_API int rn_state_batch(const rn_state *s);
/* Copies every stream; the batches must be equal. */
RN_API rn_status rn_state_copy(rn_state *dst, const rn_state *src);
/* Copies stream srow of src (state and position) into stream drow of dst,
 * a state of the same model of any batch size. */
RN_API rn_status rn_state_copy_row(rn_state *dst, int drow, const rn_state *src, int srow);
/* Stream row back to an empty state at position 0. */
RN_API rn_status rn_state_reset_row(rn_state *s, int row);
/* Makes the batch batch streams: rows below both sizes are kept, new rows
 * start empty at position 0. Memory for the largest batch so far is kept,
 * so shrinking and growing again allocate nothing. */
RN_API rn_status rn_state_resize(rn_state *s, int batch);

typedef enum { RN_PARALLEL = 0, RN_CHUNKWISE = 1, RN_RECURRENT = 2, RN_MODE_COUNT } rn_mode;
/* "parallel", "chunkwise", "recurrent". */
RN_API const char *rn_mode_name(rn_mode m);
RN_API rn_status rn_mode_from_name(const char *name, rn_mode *out);

/* Forward flags. */
#define RN_FWD_ABS_NORM   1u  /* torchscale's parallel row clamp (parallel only) */
#define RN_FWD_LAST_ONLY  2u  /* logits of the last position only: (B, V) */

/* Runs tokens (B, T) through the model starting from state (stream b at
 * its position p_b), leaving stream b at position p_b+T. Any paradigm may continue from any
 * other's state. chunk is the chunk length for RN_CHUNKWISE (>= 1).
 * logits: (B, T, V), or (B, V) with RN_FWD_LAST_ONLY; may be NULL. */
RN_API rn_status rn_forward(rn_model *m, rn_state *state, const int32_t *tokens,
                     int B, int T, rn_mode mode, int chunk, unsigned flags,
                     rn_real *logits);

/* Multi-scale retention on its own, for callers with their own model
 * around it (the Python binding's PyTorch function): per stream b and head
 * h, with q, k (B, H, T, K), v and o (B, H, T, Dv), all contiguous,
 *   o[b,h,n] = sum_{m<=n} (q[b,h,n] . k[b,h,m]) gammas[h]^(n-m) v[b,h,m]
 * from a zero state: no rotation, scaling or normalisation. mode is the
 * evaluation order (the sums agree to rounding): RN_PARALLEL one chunk of
 * T, RN_CHUNKWISE chunks of chunk (>= 1), RN_RECURRENT one token at a
 * time. 0 < gammas[h] <= 1. */
RN_API rn_status rn_retention_forward(int B, int H, int T, int K, int Dv, const rn_real *q, const rn_real *k,
                                      const rn_real *v, const double *gammas, rn_mode mode, int chunk, rn_real *o);
/* The gradients dq, dk (B, H, T, K) and dv (B, H, T, Dv) of a loss
 * through rn_retention_forward given dout = d loss / d o (B, H, T, Dv);
 * written, not accumulated. The recurrent mode's gradient is computed in
 * the chunkwise order (chunks of 64): it is the same function. */
RN_API rn_status rn_retention_backward(int B, int H, int T, int K, int Dv, const rn_real *q, const rn_real *k,
                                       const rn_real *v, const double *gammas, rn_mode mode, int chunk,
                                       const rn_real *dout, rn_real *dq, rn_real *dk, rn_real *dv);

/* ---------------------------------------------------- sampling, sessions */

typedef struct {
    double temperature;   /* 0: greedy (argmax) */
    int top_k;            /* keep the k most likely tokens (0: all) */
    double top_p;         /* then the smallest set with this mass (1: all) */
    uint64_t seed;
} rn_sampler_config;

typedef struct rn_sampler rn_sampler;
RN_API void rn_sampler_config_default(rn_sampler_config *sc);
RN_API rn_status rn_sampler_create(int vocab, const rn_sampler_config *sc, rn_sampler **out);
RN_API void rn_sampler_free(rn_sampler *s);
RN_API void rn_sampler_reseed(rn_sampler *s, uint64_t seed);
/* Draws a token from logits (V). No allocation. */
RN_API int32_t rn_sampler_sample(rn_sampler *s, const rn_real *logits);
/* The tokens the sampler can draw from logits (V), most likely first, and
 * (if probs is not NULL) their renormalised probabilities; returns how many.
 * support and probs need room for V entries. */
RN_API int rn_sampler_support(rn_sampler *s, const rn_real *logits, int32_t *support, double *probs);

/* A generation session: one stream's state, a sampler and the logits of
 * the next token. Prompts are prefilled chunkwise; each step is one
 * recurrent update: O(1) time and memory per token, no allocation. */
typedef struct rn_session rn_session;
RN_API rn_status rn_session_create(rn_model *m, const rn_sampler_config *sc, int chunk, rn_session **out);
RN_API void rn_session_free(rn_session *s);
RN_API void rn_session_reset(rn_session *s);
/* Runs n tokens through the model (chunkwise) and keeps the last logits. */
RN_API rn_status rn_session_prefill(rn_session *s, const int32_t *tokens, int n);
/* Feeds one token (recurrent) and keeps its logits. */
RN_API rn_status rn_session_feed(rn_session *s, int32_t token);
/* Samples the next token from the current logits and feeds it. */
RN_API rn_status rn_session_step(rn_session *s, int32_t *token);
RN_API const rn_real *rn_session_logits(const rn_session *s);   /* (V) or NULL */
RN_API int64_t rn_session_pos(const rn_session *s);
RN_API rn_state *rn_session_state(rn_session *s);

/* Sum of -log p(y_t | x_<=t) over t (targets < 0 ignored) for one stream
 * x (T), y (T), continuing from state (which is advanced): evaluation of
 * arbitrarily long files with the context carried across calls. */
RN_API rn_status rn_model_score(rn_model *m, rn_state *state, const int32_t *x, const int32_t *y, int T,
                         int chunk, double *sum_nll, int *count);

/* ------------------------------------------------------------- training */

/* Mean cross-entropy of the next-token predictions for x (B, T) against
 * targets y (B, T) (a target < 0 is ignored), from a fresh state, in the
 * parallel or chunkwise paradigm. With grad (rn_model_num_params values,
 * laid out like the parameters) not NULL, adds grad_scale * d loss / d
 * params to it. count receives the number of scored targets. */
RN_API rn_status rn_model_loss_grad(rn_model *m, const int32_t *x, const int32_t *y, int B, int T,
                             rn_mode mode, int chunk, double grad_scale, rn_real *grad,
                             double *loss, int *count);
/* The floating-point operations of the matrix products of one
 * rn_model_loss_grad with a gradient (2 per multiply-add, forward and
 * backward, retention included), as this library computes them: what
 * benchmarks divide by the step time. 0 for arguments rn_model_loss_grad
 * would refuse (B or T < 1, recurrent, chunkwise with chunk < 1). */
RN_API double rn_train_flops(const rn_config *cfg, int B, int T, rn_mode mode, int chunk);

typedef enum { RN_SCHED_COSINE = 0, RN_SCHED_LINEAR = 1, RN_SCHED_CONSTANT = 2, RN_SCHED_COUNT } rn_schedule;
/* "cosine", "linear", "constant". */
RN_API const char *rn_schedule_name(rn_schedule s);
RN_API rn_status rn_schedule_from_name(const char *name, rn_schedule *out);

typedef struct {
    int batch;            /* sequences per micro-batch */
    int seq;              /* tokens per sequence */
    int accum;            /* micro-batches per optimiser step */
    rn_mode mode;         /* RN_PARALLEL or RN_CHUNKWISE */
    int chunk;            /* chunk length for RN_CHUNKWISE */
    int steps;            /* schedule length (optimiser steps) */
    int warmup;           /* linear warm-up steps */
    double lr;            /* peak learning rate */
    double min_lr_ratio;  /* floor of the decay, as a fraction of lr */
    double beta1, beta2, eps;
    double weight_decay;  /* decoupled (AdamW), on matrices only */
    double grad_clip;     /* global gradient-norm clip (0: off) */
    rn_schedule schedule;
    int decay_embed;      /* also decay the embedding matrix */
} rn_train_config;

RN_API void rn_train_config_default(rn_train_config *tc);
/* Learning rate of optimiser step `step` (0-based): linear warm-up, then
 * cosine or linear decay to lr * min_lr_ratio at `steps`. */
RN_API double rn_lr_at(const rn_train_config *tc, int64_t step);

typedef struct rn_trainer rn_trainer;
typedef struct {
    int64_t step;         /* step index before this update (0-based) */
    double loss;          /* mean loss over the accumulated micro-batches */
    double grad_norm;     /* before clipping */
    double lr;
    int tokens;           /* scored targets */
} rn_step_info;

/* A trainer for model m (which it does not own). */
RN_API rn_status rn_trainer_create(rn_model *m, const rn_train_config *tc, rn_trainer **out);
RN_API void rn_trainer_free(rn_trainer *t);
/* One optimiser step on x, y (accum, batch, seq). Each micro-batch's
 * gradient is computed from zero and they are added in order, so that
 * accum = 2 on one trainer equals two replicas (rn_trainer_set_replicas)
 * bit for bit. On a non-finite loss or gradient returns RN_ERR_NUMERIC and
 * leaves the weights untouched. */
RN_API rn_status rn_trainer_step(rn_trainer *t, const int32_t *x, const int32_t *y, rn_step_info *info);
RN_API const rn_train_config *rn_trainer_config(const rn_trainer *t);
RN_API rn_status rn_trainer_set_config(rn_trainer *t, const rn_train_config *tc);
RN_API int64_t rn_trainer_step_count(const rn_trainer *t);
RN_API rn_model *rn_trainer_model(rn_trainer *t);
/* Checkpoint: model, AdamW moments, step and user_json (e.g. data and RNG
 * state), atomically and checksummed, in native precision (exact resume). */
RN_API rn_status rn_trainer_save(const rn_trainer *t, const char *path, const char *user_json);
/* Loads a checkpoint; the trainer owns its model (free it with
 * rn_model_free(rn_trainer_model(t)) after rn_trainer_free). */
RN_API rn_status rn_trainer_load(const char *path, rn_trainer **out, char **user_json);

/* ------------------------------------------------- data-parallel training */

/* A group of `size` replicas that train one model together, each on its
 * own share of every batch (data parallelism). The library does the
 * arithmetic: each replica's gradient is scaled by 1/size, so the sum over
 * replicas is the mean gradient of the global batch; the optimiser step is
 * the same on every replica; with ZeRO-1 each replica keeps the AdamW
 * moments of its shard only. The caller supplies the communication (the
 * retnet CLI uses MPI, see docs/DISTRIBUTED.md). Every callback except
 * grad_ready is collective: all replicas call it in the same order with
 * the same sizes. A callback that fails (RN_ERR_IO) fails the step. */
typedef struct {
    int rank, size;   /* this replica (0-based) and the number of replicas */
    void *ctx;        /* passed to every callback */
    /* Optional. During the backward pass of a step's last micro-batch:
     * grad[off, off + n) is final on this replica and may start its
     * reduction (the head, each layer from the last, then the embeddings;
     * together they cover the buffer once per step). */
    void (*grad_ready)(void *ctx, rn_real *grad, size_t off, size_t n);
    /* Completes the reductions: on return grad (n values) holds the sum
     * over the replicas, everywhere or (ZeRO-1) at least in this replica's
     * shard [rn_shard_offset(n, size, rank), rn_shard_offset(n, size, rank + 1)). */
    rn_status (*grad_reduce)(void *ctx, rn_real *grad, size_t n);
    /* x (n) := its sum over the replicas, the same on every replica. */
    rn_status (*sum)(void *ctx, double *x, int n);
    /* ZeRO-1 only. Replica r's slice of a buffer, [off[r], off[r + 1]),
     * given on each replica as mine (off[rank + 1] - off[rank] values, may
     * be all + off[rank]), lands at all + off[r] on every replica (root < 0;
     * the updated weights) or on replica root only (all is NULL elsewhere;
     * the moments before a checkpoint). */
    rn_status (*gather)(void *ctx, const rn_real *mine, rn_real *all, const size_t *off, int root);
} rn_replicas;

/* Start of replica r's ZeRO-1 shard of n parameters among size replicas
 * (r = size gives n). Shards are contiguous, balanced and aligned to
 * RN_SHARD_ALIGN values, so the gradient norm is summed in the same blocks
 * and order whatever the number of replicas. */
#define RN_SHARD_ALIGN 4096
RN_API size_t rn_shard_offset(size_t n, int size, int r);

/* Makes t one replica of rp (copied; size 1 means alone) before its first
 * step, or right after rn_trainer_load. x, y of rn_trainer_step are then
 * this replica's micro-batches, and rn_step_info reports the global loss
 * and tokens. zero_stage 1 shards the AdamW moments (ZeRO-1): each replica
 * keeps and updates only its shard, and the updated weights are gathered;
 * results are identical to zero_stage 0. With replicas, rn_trainer_save is
 * collective: every replica calls it and replica 0 alone writes the file
 * (the moments are gathered to it). */
RN_API rn_status rn_trainer_set_replicas(rn_trainer *t, const rn_replicas *rp, int zero_stage);
/* The parameters [*off, *off + *n) whose moments this trainer keeps and
 * which it updates (everything unless sharded). */
RN_API void rn_trainer_shard(const rn_trainer *t, size_t *off, size_t *n);

/* ------------------------------------------------------------ model files */

/* Model file formats. Each holds the tensors of one preset under the names
 * of its PyTorch implementation (docs/ARCHITECTURE.md) in safetensors files; they
 * differ in where the config is and in name variants. */
typedef enum {
    RN_FORMAT_RETNET = 0,    /* ours: one file, any preset, its own names;
                                the config as JSON in __metadata__["retnet"] */
    RN_FORMAT_TORCHSCALE,    /* torchscale RetNetDecoder state dict, with its
                                RetNetConfig keys in a config.json beside it */
    RN_FORMAT_TORCHSCALE_HF, /* its Hugging Face port: the same names under
                                "model.", head "lm_head.weight"; config.json */
    RN_FORMAT_SEED,          /* the seed's RetNetCLM state dict; the config
                                follows from the shapes */
    RN_FORMAT_FLA,           /* flash-linear-attention's Hugging Face layout:
                                config.json + model.safetensors, or shards
                                model-0000N-of-0000M.safetensors listed in
                                model.safetensors.index.json */
    RN_FORMAT_COUNT
} rn_format;

/* Tensor types read and written. */
typedef enum { RN_DTYPE_F32 = 0, RN_DTYPE_BF16, RN_DTYPE_F64, RN_DTYPE_F16, RN_DTYPE_COUNT } rn_dtype;

/* "retnet", "torchscale", "torchscale-hf", "seed", "fla". */
RN_API const char *rn_format_name(rn_format f);
RN_API rn_status rn_format_from_name(const char *name, rn_format *out);
/* "f32", "bf16", "f64", "f16". */
RN_API const char *rn_dtype_name(rn_dtype d);
RN_API rn_status rn_dtype_from_name(const char *name, rn_dtype *out);

/* Weight types of the large 2-D projections (q/k/v/g, out, FFN, and
 * optionally the embedding and head) for low-bit inference. f32, bf16 and
 * f16 are kept as stored and converted inside the product kernels; q8_0
 * and q4_0 are ggml's block types (32 weights per block, one f16 scale):
 *   q8_0: 34 bytes: f16 d, then 32 int8 q; w = q d (8.5 bits per weight).
 *   q4_0: 18 bytes: f16 d, then 16 bytes; byte j holds weight j in its low
 *         nibble and weight j + 16 in its high nibble; w = (nibble - 8) d.
 * Decays, norms, the state and every accumulation stay float32. */
typedef enum { RN_WTYPE_F32 = 0, RN_WTYPE_BF16, RN_WTYPE_F16, RN_WTYPE_Q8_0, RN_WTYPE_Q4_0, RN_WTYPE_COUNT } rn_wtype;
/* Weights per block of q8_0 and q4_0. */
#define RN_QK 32
/* "f32", "bf16", "f16", "q8_0", "q4_0". */
RN_API const char *rn_wtype_name(rn_wtype t);
RN_API rn_status rn_wtype_from_name(const char *name, rn_wtype *out);
/* Bytes of one row of K weights of type t; 0 when t is unknown, K <= 0, or
 * K is not a multiple of RN_QK for a block type (such rows are refused). */
RN_API size_t rn_wtype_row_bytes(rn_wtype t, int K);
/* One row of K floats to type t (ggml's reference rounding: bf16 and f16
 * round to nearest even; q8_0 d = amax / 127, q = roundf(x / d); q4_0
 * d = (the value of largest magnitude) / -8, q = min(15, (int)(x / d + 8.5))),
 * and back (exact). A q8_0 / q4_0 block holding a NaN or an infinity gets
 * a NaN scale (its products are NaN, and loading refuses it). RN_ERR_ARG
 * when rn_wtype_row_bytes(t, K) is 0. */
RN_API rn_status rn_quantize_row(rn_wtype t, const float *x, void *dst, int K);
RN_API rn_status rn_dequantize_row(rn_wtype t, const void *src, float *y, int K);
/* Y (M, N) = X (M, K) W^T (Y += with accumulate): W is N rows of K weights
 * of type t, row n at (char *)W + n * w_row_stride_bytes. X rows are ldx
 * floats apart, Y rows ldy. Float activations: the product of the
 * dequantised weights to float32 rounding. Up to 8 rows: register-blocked
 * kernels (AVX-512 where the CPU has it, chosen at run time; else AVX2 +
 * FMA where built for it), the output rows split across
 * threads when the product is large enough to pay; more rows: sgemm, on
 * panels of dequantised weights for the non-f32 types. Preconditions, not
 * checked: rn_wtype_row_bytes(t, K) > 0, no aliasing of Y with X or W. */
RN_API void rn_matmul_w(int M, int N, int K, const float *X, int ldx, const void *W, rn_wtype t,
                        size_t w_row_stride_bytes, float *Y, int ldy, int accumulate);
/* The same with the activations quantised to q8_0 per block of 32 for q8_0
 * and q4_0 weights and up to 64 rows (int8 dot products, as ggml does): the
 * product of the dequantised weights with the q8_0-rounded X, off the float
 * product by at most sum_k |w_k| |x_k - xq_k| (README "Low-bit inference"
 * gives the measured size). Otherwise exactly rn_matmul_w. */
RN_API void rn_matmul_w_x8(int M, int N, int K, const float *X, int ldx, const void *W, rn_wtype t,
                           size_t w_row_stride_bytes, float *Y, int ldy, int accumulate);

/* rn_model_quantize flags: keep the head, or the embedding, in f32. */
#define RN_QUANT_KEEP_HEAD 1u
#define RN_QUANT_KEEP_EMBED 2u
/* Writes m as one safetensors file (ours, the retnet format) whose large
 * projections are of type t, atomically, with the XXH3 data checksum:
 * bf16 and f16 as BF16 / F16 tensors of the logical shape, q8_0 and q4_0
 * as U8 tensors [rows, row bytes] of ggml blocks, every tensor's type and
 * logical shape in __metadata__ (README "Low-bit inference"); everything
 * else stays F32. A tied embedding is the head: it keeps f32 when either
 * flag asks. A projection whose input width is not a multiple of 32 is
 * refused for q8_0 / q4_0 (RN_ERR_ARG naming it). Values beyond f16's
 * range are refused for f16. rn_model_load reads the file in place (no
 * copy): the model computes with the typed weights; rn_model_params (or
 * training, which refuses such a model) needs them as f32. */
RN_API rn_status rn_model_quantize(const rn_model *m, const char *path, rn_wtype t, unsigned flags);

/* The tensors of a model and the type each is held in. */
typedef struct {
    const char *kind;    /* "wqkvg", "wo", "fc1", "fc2", "embed", "lm_head", "norm1.weight", ... */
    int layer;           /* -1 for global tensors */
    int rows, cols;      /* [out, in] for projections; cols 1 for vectors */
    rn_wtype wtype;
    size_t bytes;        /* of its values as held */
} rn_tensor_desc;
RN_API int rn_model_num_tensors(const rn_model *m);
RN_API rn_status rn_model_tensor(const rn_model *m, int i, rn_tensor_desc *out);
/* Whether any tensor is held in another type than f32 (0 or 1). */
RN_API int rn_model_quantized(const rn_model *m);
/* Bytes of weights one decoding step reads (every tensor as held, but one
 * row of an untied embedding). */
RN_API size_t rn_model_decode_bytes(const rn_model *m);
/* Decoding from q8_0 / q4_0 weights quantises the activations to int8
 * (rn_matmul_w_x8: several times faster, within its bound) unless this is
 * set to 0; then it uses float activations, so that every paradigm equals
 * the dequantised f32 model to float32 rounding. Default 1. */
RN_API void rn_model_set_int8_activations(rn_model *m, int on);

/* Loads a model in any of the formats, detected from the tensor names and
 * the metadata. path: a .safetensors file (a config.json beside it is read
 * when the file has no __metadata__["retnet"]), a model directory
 * (config.json with model.safetensors, or with the shards of
 * model.safetensors.index.json), or such an index file. Accepted variants:
 * fla's older fused mlp.gate_proj [2I, d] and attn.g_norm.weight; a tied
 * head stored beside the embedding when equal to it. F32, F16, BF16, F64
 * tensors, memory-mapped: float32 tensors in our layout (what rn_model_save
 * writes) are read in place, without a copy (the model keeps the mapping).
 * The large projections (q/k/v/g, out, FFN, embedding, head) stored as
 * BF16 or F16 are kept in that type, as `retnet quantize` files are (the
 * kernels convert them in registers: decoding reads half the bytes of
 * f32): read in place when stored in our layout, else (a Hugging Face
 * checkpoint's separate q/k/v/g) copied bit for bit into a block of the
 * model's own; every other tensor is converted to rn_real. Its logits are
 * those of the widened f32 model to float32 rounding (the kernels sum in
 * another order). Training and gradients need f32 weights: load with
 * RN_LOAD_F32 (rn_model_load_flags), or call rn_model_params. Every
 * file's data checksum (XXH3 in parallel blocks, or the FNV-1a of older
 * files) is verified, and every value checked finite, at about memory
 * speed. Everything is validated: a missing, unknown, misshapen or
 * non-finite tensor, or a config of another preset than the tensor names,
 * is an error naming it, never a partial load. format (may be NULL) receives the format detected. */
RN_API rn_status rn_model_load_ex(const char *path, rn_model **out, rn_format *format);
RN_API rn_status rn_model_load(const char *path, rn_model **out);
/* rn_model_load_flags flags: RN_LOAD_F32 holds every bf16 and f16 weight as
 * float32 (widened at load, exact: what rn_model_load did before it kept
 * them); q8_0 / q4_0 tensors keep their type (rn_model_params dequantises
 * them). */
#define RN_LOAD_F32 1u
/* rn_model_load_ex with flags (RN_LOAD_*; RN_ERR_ARG for others). */
RN_API rn_status rn_model_load_flags(const char *path, unsigned flags, rn_model **out, rn_format *format);

/* What a model file holds, read from its headers and config alone (no
 * tensor data is read: instant whatever the size). */
typedef struct {
    rn_config config;
    rn_format format;
    int n_files;                          /* safetensors files (shards) */
    size_t file_bytes;                    /* their sizes together */
    size_t n_tensors;                     /* tensors in the files */
    size_t tensor_bytes[RN_DTYPE_COUNT];  /* bytes of the tensors of each type */
    size_t decode_bytes;                  /* weight bytes one decoding step reads
                                             (all, but one row of an untied
                                             embedding) */
    int in_place;                         /* rn_model_load reads every tensor where
                                             it is mapped (float32 in our layout:
                                             `retnet convert` makes it, or
                                             `retnet quantize`) */
    size_t u8_bytes;                      /* bytes of the U8 tensors (q8_0 / q4_0 blocks) */
    size_t wtype_bytes[RN_WTYPE_COUNT];   /* bytes of the parameter tensors by the
                                             type the model holds them in */
    int wtype_tensors[RN_WTYPE_COUNT];    /* and how many of them (file tensors) */
    size_t copy_bytes;                    /* memory rn_model_load allocates for the
                                             tensors it cannot read in place (0
                                             when in_place) */
} rn_model_info;
RN_API rn_status rn_model_inspect(const char *path, rn_model_info *info);
/* Checks every byte of a model: the files' checksums and every value, as
 * rn_model_load does, without keeping the model. */
RN_API rn_status rn_model_verify(const char *path);
/* Writes the model in format as dtype, atomically (temp file, fsync,
 * rename). RN_FORMAT_RETNET and RN_FORMAT_SEED write the file path; the
 * formats with a config.json write path and config.json beside it when
 * path ends in ".safetensors", else path/model.safetensors and
 * path/config.json (the directory is created). A format of another preset
 * than the model's is refused (RN_ERR_ARG). Converting is exact: F32 (or
 * BF16, F16) tensors read and written again in the same type are
 * bit-identical; BF16 and F16 round to nearest even. A value beyond F16's
 * range (65504) is refused (RN_ERR_ARG, naming the tensor), not written as
 * infinity. */
RN_API rn_status rn_model_save_as(const rn_model *m, const char *path, rn_format format, rn_dtype dtype);
/* rn_model_save_as(m, path, RN_FORMAT_RETNET, RN_DTYPE_F32). */
RN_API rn_status rn_model_save(const rn_model *m, const char *path);
/* Writes values laid out like the parameters (rn_model_num_params of them,
 * e.g. a gradient from rn_model_loss_grad) as one safetensors file, under
 * the tensor names of format for the model's preset, without position
 * buffers or config: the names and shapes of PyTorch's named_parameters(). */
RN_API rn_status rn_model_save_values(const rn_model *m, const rn_real *values, const char *path, rn_format format,
                               rn_dtype dtype);
/* The config as the JSON string stored in model files (caller frees). */
RN_API char *rn_config_to_json(const rn_config *cfg);
RN_API rn_status rn_config_from_json(const char *json, rn_config *cfg);

/* Writes data (float32 on disk) as a NumPy .npy array, atomically. */
RN_API rn_status rn_npy_save(const char *path, const rn_real *data, int ndim, const int64_t *shape);

/* ----------------------------------------------------------- atomic files */

/* Atomic file write: data goes to PATH.tmp.PID, is fsync'ed, then renamed
 * over path, and the directory is fsync'ed. Never leaves a partial file at
 * path; a temporary left by a writer that died is removed by the next
 * successful write of the same path. */
typedef struct rn_atomic_file {
    void *f;      /* FILE * of the temporary */
    char *path;
    char *tmp;
} rn_atomic_file;
RN_API rn_status rn_atomic_open(rn_atomic_file *af, const char *path);
RN_API rn_status rn_atomic_write(rn_atomic_file *af, const void *data, size_t n);
RN_API rn_status rn_atomic_commit(rn_atomic_file *af);
RN_API void rn_atomic_abort(rn_atomic_file *af);

#ifdef __cplusplus
}
#endif
#endif /* RETNET_H */
