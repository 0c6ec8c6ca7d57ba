/* layer.h: one layer's forward and backward (layer.c), for forward.c and
 * backward.c. */
#ifndef RN_LAYER_H
#define RN_LAYER_H

#include "acts.h"

/* Layer l on the a->N rows of a: la->x_in -> la->x_out_next, from layer
 * l's part of state (per (batch, head) K x Dv, each row at its own
 * position; NULL: a fresh start at 0), which is advanced. Training arenas
 * keep every activation the backward reads. */
void rni_layer_forward(rn_model *m, rn_acts *a, int l, rn_state *state, rn_mode mode, unsigned flags);

/* Backward of layer l (a fresh state at position 0): a->dres holds d loss /
 * d x_out on entry and d loss / d x_in on exit; parameter gradients are
 * added to g. */
void rni_layer_backward(rn_model *m, rn_acts *a, int l, rn_layer_w *g);

#endif
