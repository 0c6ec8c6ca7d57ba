/* params.h: the parameter table of a config (which tensors, where in the
 * one parameter buffer) and the weight pointers into a buffer. */
#ifndef RN_PARAMS_H
#define RN_PARAMS_H

#include "model.h"

/* Builds the parameter table for cfg (count only when tab is NULL). */
int rni_param_table(const rn_config *cfg, rn_tensor_info *tab, size_t *n_params);
/* The projections a forward multiplies by: per layer Wqkvg, Wo, Wfc1,
 * Wfc2, then the head; their count, and projection i's shape (N outputs,
 * K inputs). */
int rni_projection_count(const rn_config *c);
void rni_projection_shape(const rn_config *c, int i, int *N, int *K);
/* Whether a model of this config computes its f32 products of up to 64
 * rows in the panel kernel's order (its projections take at most
 * RNI_PANEL_MAX_BYTES, 64 MB: the copy a loaded one keeps packed). */
#define RNI_PANEL_MAX_BYTES ((size_t)64 << 20)
int rni_panel_model(const rn_config *c);
/* Points w's fields into buf laid out as the table says, or (buf NULL) at
 * each tensor's data. */
rn_status rni_weights_bind(const rn_config *cfg, const rn_tensor_info *tab, int n,
                          rn_real *buf, rn_weights *w);
const char *rni_tensor_kind_name(rn_tensor_kind k);

#endif
