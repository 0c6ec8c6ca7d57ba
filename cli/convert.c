/* convert.c: interoperability with the PyTorch implementations.
 *   retnet convert: a model from any format the library reads into any it
 *                   writes (README "File formats").
 *   retnet grads:   the gradient of one training step, under the tensor
 *                   names of the model's format, to compare with PyTorch. */
#include "args.h"
#include "cli.h"
#include "common.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------- convert */

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *to_s = "retnet", *dtype_s = "f32";
    opt opts[] = {{"in", OPT_STR, &in, 0, 0, "model: file, Hugging Face directory or shard index (format detected)", 0},
                  {"out", OPT_STR, &out, 0, 0, "output: file, or directory for torchscale, torchscale-hf and fla", 0},
                  {"to", OPT_STR, &to_s, 0, 0, "format: retnet, torchscale, torchscale-hf, seed or fla", 0},
                  {"dtype", OPT_STR, &dtype_s, 0, 0, "tensor type written: f32, bf16 or f16", 0},
                  {0}};
    command_spec cmd = {"convert", "--in PATH --out PATH [--to FORMAT] [--dtype f32|bf16|f16]",
                        "Converts a model between file formats. The format of --in is detected; --to\n"
                        "torchscale, torchscale-hf and fla write a config.json beside the weights (in the\n"
                        "directory --out, or beside --out when it ends in .safetensors). Tensors read\n"
                        "and written in the same type are bit-identical; bf16 and f16 round to nearest\n"
                        "even (a value beyond f16's range, 65504, is an error).",
                        opts};
    args_parse(&cmd, argc, argv);
    if (!in || !out) die_usage("convert", "--in and --out are required");
    rn_format to, from;
    rn_dtype dt;
    if (rn_format_from_name(to_s, &to) != RN_OK) die_usage("convert", "%s", rn_last_error());
    if (rn_dtype_from_name(dtype_s, &dt) != RN_OK || dt == RN_DTYPE_F64)
        die_usage("convert", "unknown --dtype '%s' (expected f32, bf16 or f16)", dtype_s);
    rn_model *m;
    if (rn_model_load_ex(in, &m, &from) != RN_OK) die("%s", rn_last_error());
    if (rn_model_save_as(m, out, to, dt) != RN_OK) die("%s", rn_last_error());
    printf("converted %s (%s format, %s preset) to %s (%s format, %s)\n", in, rn_format_name(from),
           rn_preset_name(rn_model_config(m)->preset), out, rn_format_name(to), rn_dtype_name(dt));
    rn_model_free(m);
    return 0;
}

/* ------------------------------------------------------------- grads */

int cmd_grads(int argc, char **argv) {
    const char *path = NULL, *tokens = NULL, *targets = NULL, *out = NULL, *mode_s = "parallel", *dtype_s = "f32";
    int chunk = 64;
    opt opts[] = {{"model", OPT_STR, &path, 0, 0, "model (any format)", 0},
                  {"tokens", OPT_STR, &tokens, 0, 0, "input ids: 1,2,3 or @file", 0},
                  {"targets", OPT_STR, &targets, 0, 0, "target ids, one per token: 1,2,3 or @file", 0},
                  {"mode", OPT_STR, &mode_s, 0, 0, "parallel or chunkwise", 0},
                  {"chunk", OPT_INT, &chunk, 1, 1 << 20, "chunk length for chunkwise", 0},
                  {"dtype", OPT_STR, &dtype_s, 0, 0, "tensor type written: f32 or f64", 0},
                  {"out", OPT_STR, &out, 0, 0, "output .safetensors: the gradients under the model format's names", 0},
                  {0}};
    command_spec cmd = {"grads", "--model M --tokens IDS --targets IDS --out FILE.safetensors [--mode M]",
                        "Writes the gradient of the mean cross-entropy of one sequence with respect to\n"
                        "every parameter, under the tensor names of the model's format (the names of\n"
                        "PyTorch's named_parameters()), and prints the loss.",
                        opts};
    args_parse(&cmd, argc, argv);
    if (!path || !tokens || !targets || !out) die_usage("grads", "--model, --tokens, --targets and --out are required");
    rn_mode mode;
    rn_dtype dt;
    if (rn_mode_from_name(mode_s, &mode) != RN_OK || mode == RN_RECURRENT)
        die_usage("grads", "unknown --mode '%s' (expected parallel or chunkwise)", mode_s);
    if (rn_dtype_from_name(dtype_s, &dt) != RN_OK || dt == RN_DTYPE_BF16 || dt == RN_DTYPE_F16)
        die_usage("grads", "unknown --dtype '%s' (expected f32 or f64)", dtype_s);
    int T, Ty;
    int32_t *x = parse_tokens("grads", tokens, &T), *y = parse_tokens("grads", targets, &Ty);
    if (Ty != T) die_usage("grads", "%d tokens but %d targets", T, Ty);
    rn_format fmt;
    rn_model *m;
    /* f32 weights, as gradients need: bf16 / f16 widened (q8_0 / q4_0 are refused) */
    if (rn_model_load_flags(path, RN_LOAD_F32, &m, &fmt) != RN_OK) die("%s", rn_last_error());
    rn_real *grad = calloc(rn_model_num_params(m), sizeof *grad);
    if (!grad) die("out of memory");
    double loss;
    int count;
    if (rn_model_loss_grad(m, x, y, 1, T, mode, chunk, 1.0, grad, &loss, &count) != RN_OK) die("%s", rn_last_error());
    if (rn_model_save_values(m, grad, out, fmt, dt) != RN_OK) die("%s", rn_last_error());
    printf("loss %.17g\n", loss);
    fprintf(stderr, "wrote %s: gradients of %zu parameters (%s format, %d targets, %s)\n", out, rn_model_num_params(m),
            rn_format_name(fmt), count, mode_s);
    free(grad);
    free(x);
    free(y);
    rn_model_free(m);
    return 0;
}
