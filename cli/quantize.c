/* quantize.c: retnet quantize: a model's large projections to bf16, f16,
 * q8_0 or q4_0 in one memory-mapped file (README "Low-bit inference"). */
#include "args.h"
#include "cli.h"
#include "common.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

/* "f32" (keep) or die. */
static int keep_flag(const char *flag, const char *v) {
    if (!v) return 0;
    if (strcmp(v, "f32") != 0) die_usage("quantize", "--%s takes f32 (got '%s')", flag, v);
    return 1;
}

int cmd_quantize(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *type_s = NULL, *keep_head = NULL, *keep_embed = NULL;
    opt opts[] = {{"in", OPT_STR, &in, 0, 0, "model (any format retnet reads)", 0},
                  {"out", OPT_STR, &out, 0, 0, "output .safetensors file", 0},
                  {"type", OPT_STR, &type_s, 0, 0, "weight type: bf16, f16, q8_0 or q4_0", 0},
                  {"keep-head", OPT_STR, &keep_head, 0, 0, "f32: keep the output head in f32", 0},
                  {"keep-embed", OPT_STR, &keep_embed, 0, 0, "f32: keep the embedding in f32", 0},
                  {0}};
    command_spec cmd = {"quantize", "--in M --out Q.safetensors --type bf16|f16|q8_0|q4_0 [--keep-head f32] [--keep-embed f32]",
                        "Writes the model with its large projections (q/k/v/g, out, FFN, embedding and head) in\n"
                        "the given type: bf16 and f16 as BF16 / F16 tensors, q8_0 and q4_0 as U8 tensors of\n"
                        "ggml's blocks (32 weights, one f16 scale), each tensor's type and shape in the\n"
                        "metadata; norms and biases stay f32. Every command with --model reads the file in\n"
                        "place and computes with the typed weights. q8_0 and q4_0 need input widths that\n"
                        "are multiples of 32 (others are refused). A tied embedding is the head: either\n"
                        "--keep flag keeps it.",
                        opts};
    args_parse(&cmd, argc, argv);
    if (!in || !out || !type_s) die_usage("quantize", "--in, --out and --type are required");
    rn_wtype t;
    if (rn_wtype_from_name(type_s, &t) != RN_OK || t == RN_WTYPE_F32)
        die_usage("quantize", "unknown --type '%s' (expected bf16, f16, q8_0 or q4_0)", type_s);
    unsigned flags = (keep_flag("keep-head", keep_head) ? RN_QUANT_KEEP_HEAD : 0) |
                     (keep_flag("keep-embed", keep_embed) ? RN_QUANT_KEEP_EMBED : 0);
    rn_model *m = load_model_or_die(in);
    fprintf(stderr, "quantize: %s to %s ...\n", in, rn_wtype_name(t));
    if (rn_model_quantize(m, out, t, flags) != RN_OK) die("%s", rn_last_error());
    rn_model_free(m);
    rn_model_info info;
    if (rn_model_inspect(out, &info) != RN_OK) die("%s", rn_last_error());
    printf("wrote %s: %s weights, %.1f MB, %.1f MB read per token\n", out, rn_wtype_name(t), info.file_bytes / 1e6,
           info.decode_bytes / 1e6);
    return 0;
}
