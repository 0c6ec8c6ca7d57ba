/* checkpoint.h: training checkpoints (checkpoint.c), for train.c. */
#ifndef RN_CHECKPOINT_H
#define RN_CHECKPOINT_H

#include "model.h"

/* Training checkpoint: the parameters and nbuf more buffers of the same
 * size (optimiser moments) in native precision, the config and a JSON
 * string of training state; atomic, checksummed. */
rn_status rni_ckpt_save(const char *path, const rn_model *m, const rn_real *const *bufs,
                        const char *const *names, int nbuf, const char *train_json);
rn_status rni_ckpt_load(const char *path, rn_model **m, rn_real **bufs, const char *const *names,
                        int nbuf, char **train_json);

#endif
