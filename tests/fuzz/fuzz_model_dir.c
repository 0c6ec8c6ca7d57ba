/* fuzz_model_dir.c: model directories in the PyTorch world's layouts, as
 * rn_model_load reads them: config.json beside model.safetensors, or shards
 * listed in model.safetensors.index.json. The input is a list of files,
 * each a record [name index (1 byte)] [length (2 bytes, little-endian)]
 * [bytes], written into an empty directory that is then loaded.
 * Properties, for every input:
 * - no crash, leak or undefined behaviour; a refusal has a one-line message;
 * - a model that loads runs (a chunkwise forward of 3 tokens, then one
 *   recurrent step). */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"

static const char *const names[] = {"config.json", "model.safetensors", "model.safetensors.index.json",
                                    "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
#define NNAMES (int)(sizeof names / sizeof *names)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    rn_set_threads(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int i = 0; i < NNAMES; i++) unlink(fuzz_path(names[i]));
    for (size_t o = 0; o + 3 <= size;) {
        const char *name = names[data[o] % NNAMES];
        size_t n = (size_t)data[o + 1] | (size_t)data[o + 2] << 8;
        o += 3;
        if (n > size - o) n = size - o;
        fuzz_write(name, data + o, n);
        o += n;
    }
    rn_model *m = NULL;
    if (rn_model_load(fuzz_dir, &m) != RN_OK) {
        fuzz_check_message("rn_model_load");
        return 0;
    }
    fuzz_run_model(m);
    rn_model_free(m);
    return 0;
}
