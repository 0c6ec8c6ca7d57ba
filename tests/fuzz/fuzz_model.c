/* fuzz_model.c: model files (safetensors header, config JSON, tensors) as
 * rn_model_load reads them. Properties, for every input:
 * - no crash, leak or undefined behaviour; a refusal has a one-line message;
 * - a file that loads saves again, and the saved file loads to the same
 *   config and bit-identical parameters;
 * - a model that loads runs: a chunkwise forward of 3 tokens, then one
 *   recurrent step; a quantised one (bf16, f16, q8_0, q4_0 weights read in
 *   place) also with float activations, and its typed weights described
 *   consistently (a type, and its bytes for the shape), before it is made
 *   f32 for the resave. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"

static void check_same(const rn_model *a, const rn_model *b) {
    if (!same_config(rn_model_config(a), rn_model_config(b)))
        fuzz_fail("resave", "the config changed");
    size_t n = rn_model_num_params(a);
    if (n != rn_model_num_params(b)) fuzz_fail("resave", "the parameter count changed");
    if (memcmp(rn_model_params((rn_model *)a), rn_model_params((rn_model *)b), n * sizeof(rn_real)) != 0)
        fuzz_fail("resave", "the parameters changed");
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    rn_set_threads(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *in = fuzz_write("input.safetensors", data, size);
    rn_model *m = NULL;
    if (rn_model_load(in, &m) != RN_OK) {
        fuzz_check_message("rn_model_load");
        return 0;
    }
    if (rn_model_quantized(m)) {  /* the typed kernels, before rn_model_params makes it f32 */
        for (int i = 0; i < rn_model_num_tensors(m); i++) {
            rn_tensor_desc d;
            if (rn_model_tensor(m, i, &d) != RN_OK) fuzz_fail("rn_model_tensor", rn_last_error());
            size_t rb = rn_wtype_row_bytes(d.wtype, d.cols);
            if (d.wtype != RN_WTYPE_F32 && (!rb || d.bytes != rb * (size_t)d.rows))
                fuzz_fail("typed tensor", "its bytes disagree with its type and shape");
        }
        fuzz_run_model(m);
        rn_model_set_int8_activations(m, 0);
        fuzz_run_model(m);
    }
    const char *out = fuzz_path("resaved.safetensors");
    rn_model *m2 = NULL;
    if (rn_model_save(m, out) != RN_OK) fuzz_fail("rn_model_save", rn_last_error());
    if (rn_model_load(out, &m2) != RN_OK) fuzz_fail("reload", rn_last_error());
    check_same(m, m2);
    rn_model_free(m2);
    /* A loaded model is at most as large as its file: cheap to run. */
    fuzz_run_model(m);
    rn_model_free(m);
    return 0;
}
