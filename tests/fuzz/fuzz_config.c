/* fuzz_config.c: the config JSON of model files (rn_config_from_json), in
 * any of the three presets' key sets. Properties, for every input:
 * - no crash, leak or undefined behaviour; a refusal has a one-line message;
 * - an accepted config is valid, counts its parameters without allocating,
 *   and survives rn_config_to_json -> rn_config_from_json unchanged. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    rn_config c, c2;
    if (rn_config_from_json(s, &c) != RN_OK) {
        fuzz_check_message("rn_config_from_json");
        free(s);
        return 0;
    }
    free(s);
    if (rn_config_validate(&c) != RN_OK) fuzz_fail("validate", rn_last_error());
    if (rn_config_num_params(&c) == 0) fuzz_fail("num_params", "0 for an accepted config");
    char *js = rn_config_to_json(&c);
    if (!js) fuzz_fail("rn_config_to_json", "NULL");
    if (rn_config_from_json(js, &c2) != RN_OK) fuzz_fail("round trip", rn_last_error());
    if (!same_config(&c, &c2)) fuzz_fail("round trip", js);
    free(js);
    return 0;
}
