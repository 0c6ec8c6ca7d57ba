/* same_config.h: equality of two configs, field by field (struct padding is
 * not part of the value), for the tests and the fuzzers. */
#ifndef RN_SAME_CONFIG_H
#define RN_SAME_CONFIG_H

#include "retnet.h"

static inline int same_config(const rn_config *a, const rn_config *b) {
    return a->preset == b->preset && a->dim == b->dim && a->value_dim == b->value_dim && a->heads == b->heads &&
           a->ffn_dim == b->ffn_dim && a->layers == b->layers && a->vocab == b->vocab && a->norm_eps == b->norm_eps &&
           a->head_eps == b->head_eps && a->rotation == b->rotation && a->decay == b->decay &&
           a->decay_norm == b->decay_norm && a->qk_scale == b->qk_scale && a->head_norm == b->head_norm &&
           a->block_norm == b->block_norm && a->final_norm == b->final_norm && a->ffn == b->ffn && a->act == b->act &&
           a->tie_embed == b->tie_embed && a->scale_embed == b->scale_embed && a->embed_norm == b->embed_norm;
}

#endif
