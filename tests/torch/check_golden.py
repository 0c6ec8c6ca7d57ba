#!/usr/bin/python3
"""Developer self-check of ref.py against the peers' golden logits (not part of the suite).

  /usr/bin/python3 tests/torch/check_golden.py [--golden DIR]

DIR defaults to ../shared/golden beside the repository; if it is missing the script
prints SKIP and exits 0. For each golden model it prints ||a-b||/||b|| between ref.py's
float64 logits and the golden .npy, under three settings:
  spec        the spec's math, constants recomputed in float64 (the default of ref.py)
  file-buf    the float32 position buffers stored in the file (as PyTorch loads them)
  file-buf+f32  additionally torchscale's float32 RMSNorm / GLU activation
and checks that the parallel and recurrent forms agree. It then round-trips every
preset through init -> save -> load (in Python and through the CLI), and checks the
`grads` command against central finite differences.

Exit status 1 if any check fails.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ref  # noqa: E402
import st_io  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
FAILED = []


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def check(label, value, bound):
    ok = value <= bound
    print(f"  {label:<52} {value:10.3e}  (bound {bound:.0e}) {'ok' if ok else 'FAIL'}")
    if not ok:
        FAILED.append(label)


# (golden model, golden logits, forward options, bound for spec / file-buf / file-buf+f32)
GOLDEN = [
    ("torchscale-tiny", "torchscale-tiny.logits.npy", {}, (1e-5, 1e-5, 1e-14)),
    ("torchscale-tiny", "torchscale-tiny.abs-norm-parallel.logits.npy", {"abs_norm": True},
     (1e-5, 1e-5, 1e-14)),
    ("seed-tiny", "seed-tiny.logits.npy", {}, (1e-9, 1e-14, 1e-14)),
]

SETTINGS = [
    ("spec", {}),
    ("file-buf", {"file_buffers": True}),
    ("file-buf+f32", {"file_buffers": True, "upstream_fp32": True}),
]


def check_goldens(golden):
    tokens = ref.parse_ids("@" + os.path.join(golden, "tokens.txt"))
    print(f"golden logits, T={len(tokens)}: relative error ||ref - golden|| / ||golden||")
    for model_name, logits_name, base, bounds in GOLDEN:
        model = ref.load_model(os.path.join(golden, model_name + ".safetensors"))
        want = np.load(os.path.join(golden, logits_name))
        print(f" {logits_name} ({model.preset})")
        for (label, opts), bound in zip(SETTINGS, bounds):
            got = ref.compute_logits(model, tokens, **base, **opts)
            check(f"f64 {label}", rel(got, want), bound)
        if not base.get("abs_norm"):
            par = ref.compute_logits(model, tokens)
            rec = ref.compute_logits(model, tokens, mode="recurrent")
            check("f64 parallel vs recurrent (spec)", rel(rec, par), 1e-13)
        model32 = ref.load_model(os.path.join(golden, model_name + ".safetensors"), torch.float32)
        check("f32 spec", rel(ref.compute_logits(model32, tokens, **base), want), 1e-5)


ROUND_TRIP_CONFIGS = [
    ("torchscale", {"decoder_embed_dim": 32, "decoder_value_embed_dim": 48, "decoder_retention_heads": 2,
                    "decoder_ffn_embed_dim": 40, "decoder_layers": 2, "vocab_size": 30}),
    ("torchscale", {"decoder_embed_dim": 24, "decoder_value_embed_dim": 36, "decoder_retention_heads": 3,
                    "decoder_ffn_embed_dim": 20, "decoder_layers": 1, "vocab_size": 17,
                    "activation_fn": "swish", "no_scale_embedding": False,
                    "share_decoder_input_output_embed": True, "layernorm_embedding": True}),
    ("seed", {"layers": 2, "hidden_dim": 16, "ffn_size": 24, "heads": 2, "double_v_dim": True,
              "vocab_size": 19}),
    ("seed", {"layers": 1, "hidden_dim": 24, "ffn_size": 8, "heads": 3, "vocab_size": 11}),
    ("fla", {"hidden_size": 32, "num_hidden_layers": 2, "num_heads": 2, "vocab_size": 23}),
    ("fla", {"hidden_size": 24, "num_hidden_layers": 1, "num_heads": 3, "expand_v": 1,
             "intermediate_size": 40, "tie_word_embeddings": True, "vocab_size": 13}),
]


def cli(*args):
    subprocess.run([sys.executable, os.path.join(HERE, "ref.py"), *args], check=True)


def check_round_trips(tmp):
    print("round trips: init -> f64 logits -> save -> load -> logits (must be identical)")
    tokens = [int(t) for t in np.random.default_rng(0).integers(0, 11, size=37)]
    for i, (preset, config) in enumerate(ROUND_TRIP_CONFIGS):
        print(f" {preset} {json.dumps(config)}")
        path = os.path.join(tmp, f"rt{i}.safetensors")
        model = ref.init_model(preset, config, seed=i).double()
        before = ref.compute_logits(model, tokens)
        ref.save_model(model, path)
        after = ref.compute_logits(ref.load_model(path), tokens)
        # Parameters are stored as float32; the f64 model was made from float32 values.
        check("python save/load", rel(after, before), 0.0)
        par, rec = before, ref.compute_logits(model, tokens, mode="recurrent")
        check("parallel vs recurrent", rel(rec, par), 1e-13)

        cli_path = os.path.join(tmp, f"cli{i}.safetensors")
        cli("init", "--preset", preset, "--config-json", json.dumps(config), "--seed", str(i),
            "--out", cli_path)
        tensors, _ = st_io.load(cli_path)
        same = all(np.array_equal(tensors[k], v) for k, v in st_io.load(path)[0].items())
        check("CLI init writes the same file contents", 0.0 if same else 1.0, 0.0)
        out = os.path.join(tmp, f"cli{i}.npy")
        cli("logits", "--model", cli_path, "--tokens", ",".join(map(str, tokens)), "--out", out)
        check("CLI logits", rel(np.load(out), before), 0.0)

        bf16 = os.path.join(tmp, f"bf{i}.safetensors")
        ref.save_model(model, bf16, dtype="BF16")
        check("BF16 file, f64 logits", rel(ref.compute_logits(ref.load_model(bf16), tokens), before), 0.1)


def check_grads(tmp):
    """The grads command against central differences on a few entries of every tensor."""
    print("grads vs central finite differences (float64)")
    rng = np.random.default_rng(1)
    for i, (preset, config) in enumerate(ROUND_TRIP_CONFIGS[::2]):
        path = os.path.join(tmp, f"g{i}.safetensors")
        ref.save_model(ref.init_model(preset, config, seed=10 + i), path)
        V = ref.load_model(path).cfg["vocab_size"]
        tokens = ",".join(str(t) for t in rng.integers(0, V, size=9))
        targets = ",".join(str(t) for t in rng.integers(0, V, size=9))
        out = os.path.join(tmp, f"g{i}.grads.safetensors")
        cli("grads", "--model", path, "--tokens", tokens, "--targets", targets, "--out", out)
        grads, _ = st_io.load(out)

        model = ref.load_model(path)
        tok, tgt = ref.parse_ids(tokens), ref.parse_ids(targets)

        def loss():
            with torch.no_grad():
                logits = model(torch.tensor([tok]))[0]
                return torch.nn.functional.cross_entropy(logits, torch.tensor(tgt)).item()

        num, ana = [], []
        for name, p in model.named_parameters():
            flat = p.data.view(-1)
            for j in rng.choice(flat.numel(), size=min(3, flat.numel()), replace=False):
                h = 1e-6
                orig = flat[j].item()
                flat[j] = orig + h
                up = loss()
                flat[j] = orig - h
                down = loss()
                flat[j] = orig
                num.append((up - down) / (2 * h))
                ana.append(grads[name].reshape(-1)[j])
        check(f"{preset}: loss matches", abs(float(grads["loss"]) - loss()), 1e-12)
        check(f"{preset}: {len(num)} gradient entries", rel(ana, num), 1e-6)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden", default=os.path.join(REPO, "..", "shared", "golden"))
    args = ap.parse_args()
    if not os.path.isdir(args.golden):
        print(f"SKIP: no golden directory at {args.golden}")
        return 0
    torch.set_num_threads(min(4, torch.get_num_threads()))
    check_goldens(args.golden)
    with tempfile.TemporaryDirectory() as tmp:
        check_round_trips(tmp)
        check_grads(tmp)
    print("FAILED: " + ", ".join(FAILED) if FAILED else "all checks passed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
