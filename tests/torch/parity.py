#!/usr/bin/python3
"""PyTorch side of tests/cli/test_torch_parity.sh: retnet against ref.py, in every file format.

  parity.py write DIR   PyTorch writes models in every format the library reads (ref.py's
                        modules, perturbed so that no two tensors are alike), malformed
                        variants of them, the token and target ids, and DIR/manifest.tsv.
  parity.py check DIR   PyTorch reads every model of the manifest (the shell script has added
                        those retnet wrote) strictly, and compares its float64 logits and
                        gradients with retnet's (DIR/out/), the convert round trips, and prints
                        one line per check, a summary of the worst errors, and
                        "N passed, N failed".

Formats (README "File formats"): retnet (our safetensors, config in __metadata__), torchscale
(state dict + config.json), torchscale-hf (names under "model.", lm_head), seed (state dict,
config from the shapes), fla (Hugging Face directory, possibly sharded, BF16, older names).
"""

import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ref  # noqa: E402
import st_io  # noqa: E402

T = 1000        # tokens per sequence (not a multiple of the chunk length, 16)
VOCAB = 97
LOGITS_BOUND = 1e-5
GRAD_BOUND = 1e-4

CONFIGS = {
    "ts": ("torchscale", {"decoder_embed_dim": 48, "decoder_value_embed_dim": 96, "decoder_retention_heads": 3,
                          "decoder_ffn_embed_dim": 80, "decoder_layers": 2, "vocab_size": VOCAB}),
    "ts-opts": ("torchscale", {"decoder_embed_dim": 48, "decoder_value_embed_dim": 72, "decoder_retention_heads": 3,
                               "decoder_ffn_embed_dim": 56, "decoder_layers": 2, "vocab_size": VOCAB,
                               "activation_fn": "swish", "no_scale_embedding": False, "layernorm_eps": 1e-5,
                               "share_decoder_input_output_embed": True, "layernorm_embedding": True}),
    "ts-tied": ("torchscale", {"decoder_embed_dim": 32, "decoder_value_embed_dim": 64, "decoder_retention_heads": 2,
                               "decoder_ffn_embed_dim": 48, "decoder_layers": 2, "vocab_size": VOCAB,
                               "share_decoder_input_output_embed": True, "no_scale_embedding": False}),
    "seed": ("seed", {"layers": 2, "hidden_dim": 48, "ffn_size": 80, "heads": 3, "double_v_dim": True,
                      "vocab_size": VOCAB}),
    "fla": ("fla", {"hidden_size": 48, "num_hidden_layers": 2, "num_heads": 3, "expand_k": 1, "expand_v": 2,
                    "intermediate_size": 80, "norm_eps": 1e-6, "vocab_size": VOCAB, "tie_word_embeddings": False}),
    "fla-tied": ("fla", {"hidden_size": 32, "num_hidden_layers": 2, "num_heads": 2, "expand_k": 1, "expand_v": 1,
                         "hidden_ratio": 2, "norm_eps": 1e-5, "vocab_size": VOCAB, "tie_word_embeddings": True}),
}

# What a torchscale config.json holds besides the keys that size the model.
TORCHSCALE_EXTRA = {"decoder_normalize_before": True, "dropout": 0.0, "activation_dropout": 0.0,
                    "drop_path_rate": 0.0, "deepnorm": False, "subln": True, "multiway": False,
                    "max_target_positions": 1024, "no_output_layer": False, "chunkwise_recurrent": False,
                    "recurrent_chunk_size": 512, "moe_freq": 0, "xpos_rel_pos": False, "xpos_scale_base": 512}
# And a Hugging Face fla config.json.
FLA_EXTRA = {"model_type": "retnet", "architectures": ["RetNetForCausalLM"], "attn_mode": "chunk",
             "hidden_act": "swish", "num_kv_heads": None, "feature_map": None, "use_short_conv": False,
             "conv_size": 4, "use_output_gate": True, "elementwise_affine": True, "max_position_embeddings": 2048,
             "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": None, "initializer_range": 0.02,
             "fuse_norm": True, "fuse_cross_entropy": True, "use_cache": True, "transformers_version": "4.40.0"}


# ----------------------------------------------------------------------------------- names


def to_module_names(tensors, fmt, cfg):
    """A format's tensor names -> ref.py's module names."""
    if fmt == "torchscale-hf":
        return {("output_projection.weight" if k == "lm_head.weight" else k[len("model."):]): v
                for k, v in tensors.items()}
    if fmt == "fla" or (fmt == "retnet" and "hidden_size" in cfg):
        return ref.fla_rename(tensors, cfg)
    return dict(tensors)


def from_module_names(tensors, fmt):
    """ref.py's module names -> a format's (the inverse for torchscale-hf)."""
    if fmt == "torchscale-hf":
        return {("lm_head.weight" if k == "output_projection.weight" else "model." + k): v for k, v in tensors.items()}
    return dict(tensors)


# ----------------------------------------------------------------------------------- files


def weight_files(path):
    """The safetensors files of a model path: a file, or a directory's (all, for shards)."""
    if not os.path.isdir(path):
        return [path]
    return [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(".safetensors")]


def read_tensors(path):
    """(tensors name -> numpy, dtypes name -> str, __metadata__) of all the weight files."""
    tensors, dtypes, meta = {}, {}, {}
    for f in weight_files(path):
        t, m = st_io.load(f)
        header, _ = st_io.read_header(f)
        tensors.update(t)
        meta.update(m)
        dtypes.update({k: v["dtype"] for k, v in header.items() if k != "__metadata__"})
    return tensors, dtypes, meta


def config_json_of(path):
    d = path if os.path.isdir(path) else os.path.dirname(path)
    with open(os.path.join(d, "config.json")) as f:
        return json.load(f)


def seed_config_from_shapes(t):
    d = t["embed.weight"].shape[1]
    layers = len({k.split(".")[2] for k in t if k.startswith("retnet.layer_norms_1.")})
    heads = len({k.split(".")[4] for k in t if k.startswith("retnet.retentions.0.retentions.")})
    return {"layers": layers, "hidden_dim": d, "ffn_size": t["retnet.ffns.0.0.weight"].shape[0], "heads": heads,
            "double_v_dim": t["retnet.retentions.0.W_G"].shape[1] == 2 * d, "vocab_size": t["embed.weight"].shape[0]}


def torch_load(path, fmt):
    """A float64 ref.py model loaded strictly from a file of any format: ref.load_model for the
    formats ref.py reads itself (ours, fla directories), else load_state_dict(strict=True) with
    the config from config.json or (seed) the shapes. Returns (model, preset)."""
    if fmt in ("retnet", "fla"):
        model = ref.load_model(path, torch.float64)
        return model, model.preset
    tensors, _, _ = read_tensors(path)
    if fmt == "seed":
        preset, cfg = "seed", seed_config_from_shapes(tensors)
    else:
        preset = "torchscale"
        known = set(ref.TORCHSCALE_DEFAULTS) | ref.TORCHSCALE_IGNORED
        cfg = {k: v for k, v in config_json_of(path).items() if k in known}
    model = ref.build_model(preset, cfg).double()
    state = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in to_module_names(tensors, fmt, cfg).items()}
    for alias, name in model.tied_names().items():
        state.setdefault(alias, state[name])
    model.load_state_dict(state, strict=True)
    return model, preset


# ----------------------------------------------------------------------------------- write


def perturbed_model(key, seed):
    """A ref.py model of CONFIGS[key] with its preset's init, then every vector (norm weights,
    biases) moved off its init so that a misplaced one changes the logits."""
    preset, config = CONFIGS[key]
    model = ref.init_model(preset, config, seed)
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.2 * torch.randn(p.shape, generator=g))
    return model


def state_tensors(model, keep_tied=False):
    """The state dict as float64 numpy (tied aliases dropped unless keep_tied)."""
    tied = {} if keep_tied else model.tied_names()
    return {k: v.detach().double().numpy() for k, v in model.state_dict().items() if k not in tied}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)


def write_shards(d, tensors, dtype, n):
    """Hugging Face shards model-0000i-of-0000n.safetensors and their index."""
    names = list(tensors)
    weight_map, total = {}, 0
    for i in range(n):
        fn = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        part = {k: tensors[k] for k in names[i::n]}
        st_io.save(os.path.join(d, fn), part, {"format": "pt"}, dtype=dtype)
        weight_map.update({k: fn for k in part})
        total += sum(v.size * (2 if dtype == "BF16" else 4) for v in part.values())
    write_json(os.path.join(d, "model.safetensors.index.json"), {"metadata": {"total_size": total},
                                                                  "weight_map": weight_map})


def cmd_write(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(5)
    tokens, targets = rng.integers(0, VOCAB, T), rng.integers(0, VOCAB, T)
    for name, ids in (("tokens", tokens), ("targets", targets)):
        with open(os.path.join(out, name + ".txt"), "w") as f:
            f.write(",".join(map(str, ids)) + "\n")
    manifest = []  # name, path, format, dtype, writer, source

    def entry(name, path, fmt, dtype="f32"):
        manifest.append((name, os.path.relpath(path, out), fmt, dtype, "torch", "-"))

    ts = perturbed_model("ts", 1)
    # ours, as ref.py writes it
    ref.save_model(ts, os.path.join(out, "t-ts.safetensors"))
    entry("t-ts", os.path.join(out, "t-ts.safetensors"), "retnet")
    # a torchscale state dict with config.json beside it (named by its file)
    d = subdir_of(out, "t-ts-sd")
    st_io.save(os.path.join(d, "retnet.safetensors"), state_tensors(ts), {"format": "pt"})
    write_json(os.path.join(d, "config.json"), {**TORCHSCALE_EXTRA, **ts.cfg})
    entry("t-ts-sd", os.path.join(d, "retnet.safetensors"), "torchscale")
    # its Hugging Face port, BF16
    d = subdir_of(out, "t-ts-hf-bf16")
    st_io.save(os.path.join(d, "model.safetensors"), from_module_names(state_tensors(ts), "torchscale-hf"),
               {"format": "pt"}, dtype="BF16")
    write_json(os.path.join(d, "config.json"), {**TORCHSCALE_EXTRA, **ts.cfg})
    entry("t-ts-hf-bf16", d, "torchscale-hf", "bf16")
    # every switch of the preset, the tied head stored too (as torch.save would)
    tso = perturbed_model("ts-opts", 2)
    d = subdir_of(out, "t-ts-opts")
    st_io.save(os.path.join(d, "model.safetensors"), state_tensors(tso, keep_tied=True), {"format": "pt"})
    write_json(os.path.join(d, "config.json"), tso.cfg)
    entry("t-ts-opts", d, "torchscale")
    # tied, in the Hugging Face port (lm_head left out, as transformers saves it)
    tst = perturbed_model("ts-tied", 6)
    d = subdir_of(out, "t-ts-tied-hf")
    st_io.save(os.path.join(d, "model.safetensors"), from_module_names(state_tensors(tst), "torchscale-hf"),
               {"format": "pt"})
    write_json(os.path.join(d, "config.json"), tst.cfg)
    entry("t-ts-tied-hf", d, "torchscale-hf")

    seed = perturbed_model("seed", 3)
    ref.save_model(seed, os.path.join(out, "t-seed.safetensors"))
    entry("t-seed", os.path.join(out, "t-seed.safetensors"), "retnet")
    st_io.save(os.path.join(out, "t-seed-sd.safetensors"), state_tensors(seed))
    entry("t-seed-sd", os.path.join(out, "t-seed-sd.safetensors"), "seed")

    fla = perturbed_model("fla", 4)
    d = subdir_of(out, "t-fla")
    st_io.save(os.path.join(d, "model.safetensors"), state_tensors(fla), {"format": "pt"})
    write_json(os.path.join(d, "config.json"), {**FLA_EXTRA, **fla.cfg, "torch_dtype": "float32"})
    entry("t-fla", d, "fla")
    d = subdir_of(out, "t-fla-shards-bf16")
    write_shards(d, state_tensors(fla), "BF16", 2)
    write_json(os.path.join(d, "config.json"), {**FLA_EXTRA, **fla.cfg, "torch_dtype": "bfloat16"})
    entry("t-fla-shards-bf16", d, "fla", "bf16")
    # the older layout: one fused mlp.gate_proj [2I, d], attn.g_norm
    old = {}
    for k, v in state_tensors(fla).items():
        if k.endswith(".mlp.up_proj.weight"):
            continue
        if k.endswith(".mlp.gate_proj.weight"):
            v = np.concatenate([v, state_tensors(fla)[k.replace("gate_proj", "up_proj")]])
        old[k.replace(".attn.g_norm_swish_gate.", ".attn.g_norm.")] = v
    d = subdir_of(out, "t-fla-old")
    st_io.save(os.path.join(d, "model.safetensors"), old, {"format": "pt"})
    write_json(os.path.join(d, "config.json"), {**FLA_EXTRA, **fla.cfg})
    entry("t-fla-old", d, "fla")
    flat = perturbed_model("fla-tied", 5)
    d = subdir_of(out, "t-fla-tied")
    st_io.save(os.path.join(d, "model.safetensors"), state_tensors(flat), {"format": "pt"})
    write_json(os.path.join(d, "config.json"), {**FLA_EXTRA, **flat.cfg})
    entry("t-fla-tied", d, "fla")

    write_bad(out, ts, fla)
    with open(os.path.join(out, "manifest.tsv"), "w") as f:
        for row in manifest:
            f.write("\t".join(row) + "\n")


def write_bad(out, ts, fla):
    """Malformed models; bad/expect.tsv lists each with a phrase its error must contain."""
    d = subdir_of(out, "bad")
    good = state_tensors(ts)
    cfg = {**TORCHSCALE_EXTRA, **ts.cfg}
    cases = []

    def case(name, tensors, config, needle):
        dd = subdir_of(d, name)
        st_io.save(os.path.join(dd, "model.safetensors"), tensors, {"format": "pt"})
        write_json(os.path.join(dd, "config.json"), config)
        cases.append((name, needle))

    case("shape", good, {**cfg, "decoder_ffn_embed_dim": 64}, "layers.0.ffn.fc1.weight")
    case("unknown", {**good, "layers.0.retention.bias": np.zeros(3)}, cfg, "layers.0.retention.bias")
    case("missing", {k: v for k, v in good.items() if k != "layers.1.ffn.gate.weight"}, cfg,
         "layers.1.ffn.gate.weight")
    case("preset", good, {**FLA_EXTRA, **fla.cfg}, "mismatched preset")
    case("deepnorm", good, {**cfg, "deepnorm": True}, "deepnorm")
    case("tied", good, {**cfg, "share_decoder_input_output_embed": True}, "output_projection.weight")
    nan = {k: v.copy() for k, v in good.items()}
    nan["layers.1.retention.v_proj.weight"][3, 4] = np.nan
    case("nan", nan, cfg, "layers.1.retention.v_proj.weight")
    # an index that puts a tensor in the wrong shard
    dd = subdir_of(d, "index")
    write_shards(dd, state_tensors(fla), "F32", 2)
    write_json(os.path.join(dd, "config.json"), {**FLA_EXTRA, **fla.cfg})
    with open(os.path.join(dd, "model.safetensors.index.json")) as f:
        index = json.load(f)
    index["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors" \
        if index["weight_map"]["model.norm.weight"].startswith("model-00002") else "model-00002-of-00002.safetensors"
    write_json(os.path.join(dd, "model.safetensors.index.json"), index)
    cases.append(("index", "model.norm.weight"))
    with open(os.path.join(d, "expect.tsv"), "w") as f:
        for name, needle in cases:
            f.write(f"{name}\t{needle}\n")


def subdir_of(parent, name):
    d = os.path.join(parent, name)
    os.makedirs(d, exist_ok=True)
    return d


# ----------------------------------------------------------------------------------- check


class Checks:
    def __init__(self):
        self.passed = self.failed = 0
        self.worst = {}  # (preset, what, direction) -> worst value

    def check(self, label, value, bound, key=None):
        ok = bool(value <= bound)
        self.passed += ok
        self.failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {label:<64} {value:10.3e}  (bound {bound:.0e})")
        if key is not None:
            self.worst[key] = max(self.worst.get(key, 0.0), value)

    def truth(self, label, ok, detail=""):
        self.passed += bool(ok)
        self.failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {label}{'' if ok else ': ' + detail}")


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    den = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / den) if den > 0 else float(np.linalg.norm(a - b))


def read_manifest(out):
    with open(os.path.join(out, "manifest.tsv")) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def ids(out, name):
    with open(os.path.join(out, name + ".txt")) as f:
        return [int(t) for t in f.read().replace(",", " ").split()]


def check_model(ck, out, row, tokens, targets):
    name, path, fmt, dtype, writer, source = row
    direction = "torch->retnet" if writer == "torch" else "retnet->torch"
    res = os.path.join(out, "out", name)
    try:
        model, preset = torch_load(os.path.join(out, path), fmt)
    except Exception as e:  # noqa: BLE001  (any failure to load is the finding)
        ck.truth(f"{name}: PyTorch loads the {fmt} file strictly", False, f"{type(e).__name__}: {e}")
        return
    ck.truth(f"{name}: PyTorch loads the {fmt} file strictly", True)
    def ours(label, path):
        """retnet's output file, or None (a failed check: the command failed)."""
        if os.path.exists(path):
            return np.load(path)
        ck.truth(f"{name}: {label}", False, f"retnet wrote no {os.path.basename(path)}")
        return None

    want = ref.compute_logits(model, tokens)
    modes = ["parallel", "chunkwise", "recurrent"]
    for mode in modes:
        got = ours(f"logits {mode}", f"{res}.{mode}.npy")
        if got is not None:
            ck.check(f"{name}: logits {mode} ({fmt}, {dtype}, {direction})", rel(got, want), LOGITS_BOUND,
                     (preset, "logits " + mode, direction))
    if preset == "torchscale":
        got = ours("logits abs_norm", f"{res}.abs-norm.npy")
        if got is not None:
            ck.check(f"{name}: logits parallel abs_norm ({direction})",
                     rel(got, ref.compute_logits(model, tokens, abs_norm=True)), LOGITS_BOUND,
                     (preset, "logits parallel abs_norm", direction))
    if source != "-" and dtype == "f32":
        # a lossless conversion: retnet's logits are those of the model it came from, bit for bit
        src = os.path.join(out, "out", source)
        pairs = [(ours(f"logits {m}", f"{res}.{m}.npy"), ours(f"logits {m} of {source}", f"{src}.{m}.npy"))
                 for m in modes]
        same = all(a is not None and b is not None and np.array_equal(a, b) for a, b in pairs)
        ck.truth(f"{name}: retnet's logits equal those of {source}, bit for bit", same)
    loss, grads = ref.compute_grads(model, tokens, targets)
    for mode in ("parallel", "chunkwise"):
        if not os.path.exists(f"{res}.grads.{mode}.safetensors"):
            # the shell script has failed the run already, unless retnet does not train this configuration
            print(f"note {name}: no gradients from retnet ({mode})")
            continue
        ours, _, _ = read_tensors(f"{res}.grads.{mode}.safetensors")
        ours = to_module_names(ours, fmt, model.cfg)
        if set(ours) != set(grads):
            ck.truth(f"{name}: gradient names ({mode})", False,
                     f"only ours {sorted(set(ours) - set(grads))}, only PyTorch's {sorted(set(grads) - set(ours))}")
            continue
        worst = max(rel(ours[k], grads[k]) for k in grads)
        ck.check(f"{name}: gradients {mode}, worst tensor ({direction})", worst, GRAD_BOUND,
                 (preset, "gradients " + mode, direction))
        with open(f"{res}.loss.{mode}") as f:
            our_loss = float(f.read().split()[1])  # "loss X"
        ck.check(f"{name}: loss {mode}", abs(our_loss - loss) / abs(loss), LOGITS_BOUND)


def canonical(path, fmt):
    """Tensors of a model under canonical names (fla's older layout renamed; tied heads dropped)."""
    tensors, dtypes, _ = read_tensors(path)
    cfg = config_json_of(path) if fmt in ("fla", "torchscale", "torchscale-hf") else {}
    if fmt == "fla":
        cfg = ref.resolve_config("fla", cfg)
        tensors = ref.fla_rename(tensors, cfg)
        dtypes = {k: dtypes.get(k, dtypes.get(k.replace("up_proj", "gate_proj").replace("g_norm_swish_gate", "g_norm")))
                  for k in tensors}
    for alias in ("output_projection.weight", "lm_head.weight"):
        if cfg.get("share_decoder_input_output_embed") or cfg.get("tie_word_embeddings"):
            tensors.pop(alias, None)
    return tensors, dtypes


def check_round_trips(ck, out, rows):
    """A -> retnet -> A: every tensor bit-identical (canonical names), same dtype."""
    for row in rows:
        name, path, fmt = row[0], row[1], row[2]
        back = os.path.join(out, "rt", name)
        if not os.path.exists(back):
            continue
        a, adt = canonical(os.path.join(out, path), fmt)
        b, bdt = canonical(back, fmt)
        bad = [k for k in a if k not in b or adt[k] != bdt[k] or a[k].tobytes() != b[k].tobytes()]
        bad += [k for k in b if k not in a]
        ck.truth(f"{name}: {fmt} -> retnet -> {fmt} keeps every tensor bit for bit", not bad, f"differ: {bad[:4]}")


def check_rounding(ck, out, name, rounding):
    """f32 -> name -> f32 gives the rounding of every parameter (buffers stay exact)."""
    f32, _, _ = read_tensors(os.path.join(out, "r-ts.safetensors"))
    back, dt, _ = read_tensors(os.path.join(out, "rt", f"r-ts.{name}.f32.safetensors"))
    buffers = ("retnet_rel_pos.angle", "retnet_rel_pos.decay")
    bad = []
    for k, v in f32.items():
        want = v if k in buffers else rounding(v)
        if k not in back or dt[k] != "F32" or want.astype(np.float32).tobytes() != back[k].tobytes():
            bad.append(k)
    ck.truth(f"f32 -> {name} -> f32 equals the {name} rounding of every parameter", not bad and set(back) == set(f32),
             f"differ: {bad[:4]}")


def cmd_check(out):
    ck = Checks()
    tokens, targets = ids(out, "tokens"), ids(out, "targets")
    rows = read_manifest(out)
    for row in rows:
        check_model(ck, out, row, tokens, targets)
    check_round_trips(ck, out, rows)
    check_rounding(ck, out, "bf16", lambda v: st_io.bf16_bits_to_f32(st_io.f32_to_bf16_bits(v)))
    check_rounding(ck, out, "f16", lambda v: v.astype(np.float32).astype(np.float16))  # numpy: nearest even
    print("\nworst relative errors (float32 retnet against float64 PyTorch):")
    print(f"  {'preset':<11} {'check':<26} {'torch->retnet':>14} {'retnet->torch':>14}")
    for preset in ("torchscale", "seed", "fla"):
        for what in ("logits parallel", "logits chunkwise", "logits recurrent", "logits parallel abs_norm",
                     "gradients parallel", "gradients chunkwise"):
            a = ck.worst.get((preset, what, "torch->retnet"))
            b = ck.worst.get((preset, what, "retnet->torch"))
            if a is None and b is None:
                continue
            fa = f"{a:14.2e}" if a is not None else f"{'-':>14}"
            fb = f"{b:14.2e}" if b is not None else f"{'-':>14}"
            print(f"  {preset:<11} {what:<26} {fa} {fb}")
    print(f"{ck.passed} passed, {ck.failed} failed")
    return ck.failed == 0


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit(__doc__)
    torch.set_num_threads(1)
    if sys.argv[1] == "write":
        cmd_write(sys.argv[2])
    else:
        sys.exit(0 if cmd_check(sys.argv[2]) else 1)


if __name__ == "__main__":
    main()
