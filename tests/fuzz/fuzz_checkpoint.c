/* fuzz_checkpoint.c: training checkpoints (model config, parameters, AdamW
 * moments, training state JSON) as rn_trainer_load reads them. Properties,
 * for every input:
 * - no crash, leak or undefined behaviour; a refusal has a one-line message;
 * - a checkpoint that loads saves again and reloads at the same step with
 *   the same settings, parameters and user data;
 * - a loaded trainer steps (when its batch is small): RN_OK, or
 *   RN_ERR_NUMERIC for settings that overflow, never anything else. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"

static int same_settings(const rn_train_config *a, const rn_train_config *b) {
    return a->batch == b->batch && a->seq == b->seq && a->accum == b->accum && a->mode == b->mode &&
           a->chunk == b->chunk && a->steps == b->steps && a->warmup == b->warmup && a->lr == b->lr &&
           a->min_lr_ratio == b->min_lr_ratio && a->beta1 == b->beta1 && a->beta2 == b->beta2 && a->eps == b->eps &&
           a->weight_decay == b->weight_decay && a->grad_clip == b->grad_clip && a->schedule == b->schedule &&
           a->decay_embed == b->decay_embed;
}

static void step_once(rn_trainer *t) {
    rn_model *m = rn_trainer_model(t);
    const rn_train_config *tc = rn_trainer_config(t);
    size_t n = (size_t)tc->accum * tc->batch * tc->seq;
    if (n > 256 || rn_model_num_params(m) > 20000) return;
    int32_t x[256], y[256];
    int V = rn_model_config(m)->vocab;
    for (size_t i = 0; i < n; i++) { x[i] = (int32_t)(i * 7 % (size_t)V); y[i] = (int32_t)(i * 5 % (size_t)V); }
    rn_step_info info;
    rn_status st = rn_trainer_step(t, x, y, &info);
    if (st != RN_OK && st != RN_ERR_NUMERIC) fuzz_fail("rn_trainer_step", rn_last_error());
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    rn_set_threads(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *in = fuzz_write("checkpoint.safetensors", data, size);
    rn_trainer *t = NULL, *t2 = NULL;
    char *user = NULL, *user2 = NULL;
    if (rn_trainer_load(in, &t, &user) != RN_OK) {
        fuzz_check_message("rn_trainer_load");
        return 0;
    }
    const char *out = fuzz_path("resaved.safetensors");
    if (rn_trainer_save(t, out, user) != RN_OK) fuzz_fail("rn_trainer_save", rn_last_error());
    if (rn_trainer_load(out, &t2, &user2) != RN_OK) fuzz_fail("reload", rn_last_error());
    rn_model *m = rn_trainer_model(t), *m2 = rn_trainer_model(t2);
    if (rn_trainer_step_count(t) != rn_trainer_step_count(t2)) fuzz_fail("reload", "the step changed");
    if (!same_config(rn_model_config(m), rn_model_config(m2))) fuzz_fail("reload", "the config changed");
    if (!same_settings(rn_trainer_config(t), rn_trainer_config(t2)))
        fuzz_fail("reload", "the training settings changed");
    if (rn_model_num_params(m) != rn_model_num_params(m2) ||
        memcmp(rn_model_params(m), rn_model_params(m2), rn_model_num_params(m) * sizeof(rn_real)) != 0)
        fuzz_fail("reload", "the parameters changed");
    if ((user == NULL) != (user2 == NULL) || (user && strcmp(user, user2) != 0)) fuzz_fail("reload", "the user data changed");
    rn_trainer_free(t2);
    rn_model_free(m2);
    free(user2);
    step_once(t);
    rn_trainer_free(t);
    rn_model_free(m);
    free(user);
    return 0;
}
