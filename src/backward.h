/* backward.h: the loss and its gradient with a hook for each range of the
 * gradient that becomes final (data-parallel training overlaps its
 * reduction with the rest of the backward pass). */
#ifndef RN_BACKWARD_H
#define RN_BACKWARD_H

#include "model.h"

/* Called during the backward pass each time a contiguous range of the
 * gradient buffer is final (the head, then each layer from the last, then
 * the embeddings): lets data-parallel training reduce it while the
 * backward pass goes on. */
typedef struct {
    void (*fn)(void *ctx, size_t offset, size_t count);
    void *ctx;
} rn_grad_hook;

rn_status rni_model_loss_grad_hook(rn_model *m, const int32_t *x, const int32_t *y, int B, int T,
                                  rn_mode mode, int chunk, double grad_scale, rn_real *grad,
                                  double *loss, int *count, const rn_grad_hook *hook);

#endif
