/* acts.c: the activation arena. One allocation holds every activation of a
 * pass (laid out once by a counting pass over the same code), so a step
 * allocates nothing and a model's arenas are reused while they fit. */
#include "acts.h"
#include "retention.h"

#include <stdlib.h>
#include <string.h>

/* Bump allocation over the arena: a first pass with base NULL counts. */
typedef struct { rn_real *base; size_t off; int overflow; } bump;

static rn_real *take(bump *b, size_t n1, size_t n2) {
    size_t n;
    if (!rni_mul_ok(n1, n2, &n)) { b->overflow = 1; return NULL; }
    n = (n + 15) & ~(size_t)15;  /* keep every tensor 64-byte aligned */
    rn_real *p = b->base ? b->base + b->off : NULL;
    if (!rni_add_ok(b->off, n, &b->off)) b->overflow = 1;
    return p;
}

static void layout(const rn_model *m, rn_acts *a, bump *b) {
    const rn_config *c = &m->cfg;
    size_t N = a->N, d = c->dim, Vd = c->value_dim, F = c->ffn_dim, H = c->heads;
    size_t Pw = 2 * d + 2 * Vd, Fw = c->ffn == RN_FFN_GLU ? 2 * F : F;
    int nl = a->train ? c->layers : 1;
    a->emb = take(b, N, d);
    a->emb_raw = a->train && c->embed_norm ? take(b, N, d) : a->emb;  /* the norm's input, for its backward */
    a->emean = take(b, N, 1);
    a->erstd = take(b, N, 1);
    for (int l = 0; l < nl; l++) {
        rn_layer_acts *la = &a->layer[l];
        la->x_in = l == 0 || !a->train ? a->emb : a->layer[l - 1].x_out_next;
        la->xn1 = take(b, N, d);
        la->mean1 = take(b, N, 1);
        la->rstd1 = take(b, N, 1);
        la->P = take(b, N, Pw);
        la->o = take(b, N, Vd);
        la->hmean = take(b, N, H);
        la->hrstd = take(b, N, H);
        la->y = a->train ? take(b, N, Vd) : la->o;
        la->sg = a->train ? take(b, N, Vd) : NULL;
        la->gated = a->train ? take(b, N, Vd) : NULL;  /* inference: a->gated, below */
        la->x_mid = a->train ? take(b, N, d) : la->x_in;
        la->xn2 = a->train ? take(b, N, d) : la->xn1;
        la->mean2 = take(b, N, 1);
        la->rstd2 = take(b, N, 1);
        la->hf = take(b, N, Fw);
        la->a = take(b, N, F);
        la->ag = a->train ? take(b, N, F) : NULL;
        la->U0 = a->train ? take(b, (size_t)a->B * H * a->nchunk, (size_t)m->K * m->Dv) : NULL;
        la->x_out_next = a->train ? take(b, N, d) : la->x_in;
    }
    a->x_out = a->layer[nl - 1].x_out_next;
    a->xf = c->final_norm ? take(b, N, d) : a->x_out;
    a->meanf = take(b, N, 1);
    a->rstdf = take(b, N, 1);
    if (!a->train) a->gated = a->layer[0].gated = take(b, N, Vd);
    if (a->train) {
        size_t Fv = F > Vd ? F : Vd;
        a->logits = take(b, N, c->vocab);
        a->dres = take(b, N, d);
        a->dxn = take(b, N, d);
        a->dtmp = take(b, N, Fv);
        a->dbuf = take(b, N, Pw > Fw ? Pw : Fw);
    }
    /* Training starts every stream at position 0: one table for the arena. */
    a->rot = a->train ? take(b, (size_t)a->T * 4, (size_t)m->K / 2) : NULL;
    a->rot_rows = a->train ? NULL : take(b, N * 4, (size_t)m->K / 2);
    a->ws = take(b, a->nthreads, a->ws_per_thread);
}

rn_status rni_acts_create(const rn_model *m, int B, int T, int chunk, int train, rn_acts **out) {
    *out = NULL;
    rn_acts *a = calloc(1, sizeof *a);
    if (!a) return rni_fail(RN_ERR_NOMEM, "out of memory");
    int nl = train ? m->cfg.layers : 1;
    a->B = a->cap_B = B; a->T = a->cap_T = T; a->N = B * T; a->train = train;
    a->chunk = a->cap_chunk = chunk < T ? chunk : T;
    a->nchunk = (T + a->chunk - 1) / a->chunk;
    a->nthreads = rn_get_threads();
    size_t kd = (size_t)m->K * m->Dv;
    a->ws_per_thread = rni_retention_ws(m, a->chunk) + a->chunk + kd;
    if (train) {
        size_t bw = rni_retention_bwd_ws(m, a->chunk) + 2 * kd;
        if (bw > a->ws_per_thread) a->ws_per_thread = bw;
    }
    a->layer = calloc((size_t)nl, sizeof *a->layer);
    if (!a->layer) { free(a); return rni_fail(RN_ERR_NOMEM, "out of memory"); }
    bump b = {NULL, 0, 0};
    layout(m, a, &b);
    a->arena = b.overflow ? NULL : rni_alloc(b.off, sizeof(rn_real));
    if (!a->arena) {
        rni_acts_free(a);
        return rni_fail(RN_ERR_NOMEM, "out of memory for activations of %d x %d tokens", B, T);
    }
    a->arena_size = b.off;
    b = (bump){a->arena, 0, 0};
    layout(m, a, &b);
    if (a->rot) rni_rotation_table(m, a->rot, T);
    *out = a;
    return RN_OK;
}

void rni_acts_free(rn_acts *a) {
    if (!a) return;
    rni_free(a->arena);
    free(a->layer);
    free(a);
}

