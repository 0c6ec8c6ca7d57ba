/* objects.h: the model object's internal constructors (objects.c). */
#ifndef RN_OBJECTS_H
#define RN_OBJECTS_H

#include "model.h"

/* rn_model_create, and without the parameter buffer when with_params is 0
 * (the loader then points every tensor's data into mapped files). */
rn_status rni_model_new(const rn_config *cfg, int with_params, rn_model **out);
/* Gives a model read in place its own parameter buffer (a copy of the
 * mapped values, typed ones dequantised, then unmapped): what training and
 * rn_model_params need. */
rn_status rni_model_materialize(rn_model *m);
/* Gives a skeleton model (no values, no buffer) its parameter buffer,
 * uninitialised: for a loader that writes every value. */
rn_status rni_model_alloc_params(rn_model *m);
/* Packs a loaded model's f32 projections in panels for the few-row
 * products (decoding, batched decoding, short prompts) when
 * rni_panel_model (params.h); without memory for them the products pack
 * as they go, to the same bits. */
void rni_model_pack_panels(rn_model *m);
/* The first tensor held in another type than f32, or NULL. */
const rn_tensor_info *rni_model_typed(const rn_model *m);
/* RN_ERR_ARG for a model holding typed weights: training and gradients
 * need f32 ones ("WHAT: the model's weights are quantised ..."; for bf16 /
 * f16 the message names RN_LOAD_F32, which widens them at load). */
rn_status rni_model_check_f32(const rn_model *m, const char *what);

#endif
