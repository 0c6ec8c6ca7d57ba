/* forward.h: the forward pass through the layers, for the inference API
 * (forward.c, sample.c) and for training (backward.c). */
#ifndef RN_FORWARD_H
#define RN_FORWARD_H

#include "acts.h"

/* Forward of B x T tokens from state (each row at its own position; NULL:
 * a fresh start at position 0), through the layers; leaves the final
 * hidden states in a->xf and the state's U advanced (not its positions).
 * mode is RN_PARALLEL or RN_CHUNKWISE (a->chunk rows per chunk) or
 * RN_RECURRENT (T == 1). */
rn_status rni_forward_hidden(rn_model *m, rn_acts *a, const int32_t *tokens, rn_state *state,
                            rn_mode mode, unsigned flags);

#endif
