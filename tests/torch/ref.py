#!/usr/bin/python3
"""Independent PyTorch reference implementation of RetNet (the math of docs/ARCHITECTURE.md).

Written from the spec, for parity tests of the C implementation in both directions:
retnet reads files this script writes (`init`), and this script reads files retnet
writes (`logits`, `grads`).

Presets (see the spec for the math):
  torchscale  torchscale's RetNetDecoder (weights [out,in], RMSNorm, GLU, decay
              normalisation by sqrt(c_n), optional abs_norm row clamp)
  seed        the seed repository's RetNetCLM (weights [in,out], xPos, GroupNorm,
              LayerNorm, exact-erf GELU MLP with biases, no final norm)
  fla         flash-linear-attention's Hugging Face RetNet (names under `model.`)

Every model computes retention in the spec's parallel form by default; a
step-by-step recurrent form is available (`mode="recurrent"`) as a cross-check.

Model files are safetensors; the config is a JSON string under the `retnet` key of
`__metadata__` (with a "preset" field). For `fla`, a Hugging Face directory
(config.json + *.safetensors) is accepted too.

CLI (run with /usr/bin/python3, Debian's PyTorch):
  ref.py logits --model F.safetensors --tokens 1,2,3|@file [--abs-norm] [--dtype f64|f32]
                [--mode parallel|recurrent] [--file-buffers] [--upstream-fp32] --out out.npy
  ref.py init   --preset torchscale|seed|fla --config-json '{...}' --seed S
                [--dtype f32|bf16] --out F.safetensors
  ref.py grads  --model F --tokens ... --targets ... [--abs-norm] --out grads.safetensors

Python API: load_model(path, dtype=torch.float64), save_model(model, path),
init_model(preset, config, seed), model(tokens) -> logits [B,T,V].

Numerical conventions: the constant tables (rotation sin/cos of n*angle, xPos scales,
decay matrix and sqrt(c_n) normalisers) are computed in float64 from the spec's
formulas and rounded to the model's dtype; parameters and activations are in the
model's dtype. Buffers written to files are the float32 roundings of the exact values.

Options that reproduce upstream PyTorch bit-for-bit rather than the spec's math
(used only by check_golden.py to explain residual differences):
  file_buffers   use the float32 buffers stored in the file (torchscale's angle and
                 decay, the seed's xpos.scale) instead of the exact float64 values.
  upstream_fp32  (torchscale only) emulate torchscale's float32 islands inside a
                 float64 model: it casts RMSNorm inputs (all of its norms) and the GLU
                 activation's input to float32 and the results back.
With both options, float64 logits match torchscale's golden files to ~3e-16; the seed's
golden logits match with file_buffers alone.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402  (local helper module)

METADATA_KEY = "retnet"

# ----------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------

# Defaults as torchscale's RetNetConfig; vocab_size has no default.
TORCHSCALE_DEFAULTS = {
    "decoder_embed_dim": 768,
    "decoder_value_embed_dim": 1280,
    "decoder_retention_heads": 3,
    "decoder_ffn_embed_dim": 1280,
    "decoder_layers": 12,
    "vocab_size": None,
    "layernorm_eps": 1e-6,
    "activation_fn": "gelu",
    "no_scale_embedding": True,
    "share_decoder_input_output_embed": False,
    "layernorm_embedding": False,
}
# Keys torchscale configs carry that do not change the math of a forward pass.
TORCHSCALE_IGNORED = {"recurrent_chunk_size", "dropout", "activation_dropout", "drop_path_rate"}

# The seed's RetNetCLM constructor arguments; only double_v_dim has a default.
SEED_DEFAULTS = {
    "layers": None,
    "hidden_dim": None,
    "ffn_size": None,
    "heads": None,
    "double_v_dim": False,
    "vocab_size": None,
}
SEED_IGNORED = set()

# Defaults as fla's RetNetConfig (config.json keys).
FLA_DEFAULTS = {
    "hidden_size": 2048,
    "num_hidden_layers": 24,
    "num_heads": 8,
    "expand_k": 1,
    "expand_v": 2,
    "hidden_ratio": 2,
    "intermediate_size": None,
    "norm_eps": 1e-6,
    "vocab_size": 32000,
    "tie_word_embeddings": False,
}
# config.json keys accepted only with these values (anything else changes the model).
FLA_REQUIRED = {
    "hidden_act": ("swish", "silu"),
    "use_short_conv": (False,),
    "use_output_gate": (True,),
    "elementwise_affine": (True,),
    "feature_map": (None,),
}

PRESETS = {
    "torchscale": (TORCHSCALE_DEFAULTS, TORCHSCALE_IGNORED),
    "seed": (SEED_DEFAULTS, SEED_IGNORED),
    "fla": (FLA_DEFAULTS, None),  # fla: unknown config.json keys are ignored
}


def resolve_config(preset, given):
    """Fill defaults, validate and return a full config dict (without "preset")."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}")
    defaults, ignored = PRESETS[preset]
    cfg = dict(defaults)
    for key, value in given.items():
        if key == "preset":
            continue
        if key in defaults:
            cfg[key] = value
        elif preset == "fla":
            if key in FLA_REQUIRED and value not in FLA_REQUIRED[key]:
                raise ValueError(f"fla: unsupported {key}={value!r}")
            if key == "num_kv_heads" and value not in (None, given.get("num_heads")):
                raise ValueError("fla: grouped keys/values (num_kv_heads) are not supported")
        elif key not in ignored:
            raise ValueError(f"{preset}: unknown config key {key!r}")
    missing = [k for k, v in cfg.items() if v is None and k != "intermediate_size"]
    if missing:
        raise ValueError(f"{preset}: config lacks {missing}")
    if preset == "torchscale":
        d, h = cfg["decoder_embed_dim"], cfg["decoder_retention_heads"]
        if d % h or cfg["decoder_value_embed_dim"] % h or (d // h) % 2:
            raise ValueError("torchscale: heads must divide both widths, with an even K")
        if cfg["activation_fn"] not in ("gelu", "swish"):
            raise ValueError(f"torchscale: activation_fn {cfg['activation_fn']!r}")
    elif preset == "seed":
        d, h = cfg["hidden_dim"], cfg["heads"]
        if d % h or (d // h) % 2:
            raise ValueError("seed: heads must divide hidden_dim, with an even K")
    else:
        h = cfg["num_heads"]
        kd, vd = fla_key_value_dims(cfg)
        if kd % h or vd % h or (kd // h) % 2:
            raise ValueError("fla: heads must divide the key and value widths, even K")
    return cfg


def fla_key_value_dims(cfg):
    """(key width, value width) of an fla config, over all heads."""
    d = cfg["hidden_size"]
    return int(d * cfg["expand_k"]), int(d * cfg["expand_v"])


def fla_intermediate_size(cfg):
    """MLP width I: intermediate_size, else 256*ceil(int(d*hidden_ratio*2/3)/256)."""
    if cfg.get("intermediate_size"):
        return int(cfg["intermediate_size"])
    i = int(cfg["hidden_size"] * cfg["hidden_ratio"] * 2 / 3)
    return 256 * ((i + 255) // 256)


# ----------------------------------------------------------------------------------------
# Shared math
# ----------------------------------------------------------------------------------------


def rms_norm(x, eps, weight=None, fp32=False):
    """x / sqrt(mean(x^2, -1) + eps) [* weight]. fp32: torchscale's float32 island."""
    if fp32:
        x32 = x.float()
        y = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    else:
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y if weight is None else y * weight


def rotate_every_two(x):
    """Pairs (x[2i], x[2i+1]) -> (-x[2i+1], x[2i]) along the last dim."""
    return torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)


def rotate_half(x):
    """NeoX rotation: [x1, x2] -> [-x2, x1] with halves x1, x2 of the last dim."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotary_tables(T, freqs, dtype, pair_layout="interleaved"):
    """sin, cos of n * freqs_j for n = 0..T-1: [T,K] each.

    freqs: [K/2] frequencies. The products n*freq and the sines are formed in float64
    and then rounded to `dtype` (a float32 n*freq alone would cost ~1e-5 relative in
    the logits at n ~ 4096). pair_layout "interleaved": dims (2j, 2j+1) share freq j
    (rotate_every_two); "halves": dims j and j+K/2 share it (NeoX rotate_half).
    """
    theta = torch.arange(T, dtype=torch.float64)[:, None] * freqs.double()[None, :]  # [T,K/2]
    if pair_layout == "interleaved":
        theta = theta.repeat_interleave(2, dim=-1)
    else:
        theta = torch.cat((theta, theta), dim=-1)
    return theta.sin().to(dtype), theta.cos().to(dtype)


def decay_normaliser(log_gamma, T):
    """c_n = sum_{i=0..n} gamma^i = expm1((n+1) lambda) / expm1(lambda).

    log_gamma: [H] -> [H,T] (float64)
    """
    lg = log_gamma.double()
    n1 = torch.arange(1, T + 1, dtype=torch.float64)
    return torch.expm1(n1[None, :] * lg[:, None]) / torch.expm1(lg)[:, None]


def retention(qr, kr, v, log_gamma, normalise, abs_norm=False, mode="parallel"):
    """Multi-head retention o_n = sum_{m<=n} (qr_n . kr_m) gamma^(n-m) v_m [/ sqrt(c_n)].

    qr, kr: [B,H,T,K]   v: [B,H,T,Dv]   log_gamma: [H] (lambda_h = log gamma_h)
    normalise: divide row n by sqrt(c_n) (torchscale); abs_norm: torchscale's parallel
    row clamp R[n,:] /= clamp(sum_m |R[n,m]|, 1, 5e4) (detached, as torchscale).
    mode: "parallel" (R = (Qr Kr^T) * D; O = R V) or "recurrent" (the spec's
    normalised state, one position at a time).
    The decay tables are computed in float64 and rounded to the dtype of qr.
    Returns o: [B,H,T,Dv].
    """
    T, dt = qr.shape[2], qr.dtype
    inv_sqrt_c = decay_normaliser(log_gamma, T).rsqrt() if normalise else None  # [H,T]
    if mode == "parallel":
        idx = torch.arange(T)
        diff = (idx[:, None] - idx[None, :]).double()  # [T,T] n-m
        decay = torch.exp(diff[None] * log_gamma.double()[:, None, None])  # [H,T,T] gamma^(n-m)
        decay = decay.masked_fill(diff[None] < 0, 0.0)
        if normalise:
            decay = decay * inv_sqrt_c[:, :, None]
        r = (qr @ kr.transpose(-1, -2)) * decay.to(dt)  # [B,H,T,T]
        if abs_norm:
            r = r / r.detach().abs().sum(-1, keepdim=True).clamp(min=1, max=5e4)
        return r @ v
    if mode != "recurrent":
        raise ValueError(f"unknown mode {mode!r}")
    if abs_norm:
        raise ValueError("abs_norm exists only in the parallel form")
    # S_n = gamma sqrt(c_{n-1}/c_n) S_{n-1} + kr_n^T v_n / sqrt(c_n);  o_n = qr_n S_n
    B, H, _, K = qr.shape
    gamma = log_gamma.double().exp()  # [H]
    state = qr.new_zeros(B, H, K, v.shape[-1])  # [B,H,K,Dv]
    outs = []
    for n in range(T):
        kv = kr[:, :, n, :, None] * v[:, :, n, None, :]  # [B,H,K,Dv]
        if normalise:
            s_now = inv_sqrt_c[:, n]  # 1/sqrt(c_n): [H]
            s_prev = 1.0 / inv_sqrt_c[:, n - 1] if n else torch.zeros(H, dtype=torch.float64)
            decay_n = (gamma * s_prev * s_now).to(dt)[None, :, None, None]
            state = state * decay_n + kv * s_now.to(dt)[None, :, None, None]
        else:
            state = state * gamma.to(dt)[None, :, None, None] + kv
        outs.append((qr[:, :, n, None, :] @ state).squeeze(-2))  # [B,H,Dv]
    return torch.stack(outs, dim=2)


# ----------------------------------------------------------------------------------------
# torchscale
# ----------------------------------------------------------------------------------------


# Constants are computed in float64 and then rounded to the requested dtype, so that
# they do not depend on the PyTorch version (float32 torch.linspace changed between
# versions by an ulp, which 10000**x turns into several ulps of angle).


def torchscale_angle(K, dtype=torch.float64):
    """angle_j = 1/10000^(j/(K/2-1)) (torch.linspace(0,1,K/2)), each repeated twice: [K]."""
    j = torch.arange(K // 2, dtype=torch.float64)
    a = 10000.0 ** (-j / max(K // 2 - 1, 1))
    return a.repeat_interleave(2).to(dtype)


def torchscale_decay(H, dtype=torch.float64):
    """lambda_h = log(1 - 2^(-5-h)): [H]."""
    return torch.log1p(-(2.0 ** (-5.0 - torch.arange(H, dtype=torch.float64)))).to(dtype)


class RMSNorm(nn.Module):
    """torchscale's RMSNorm (affine weight, init 1)."""

    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x, fp32=False):
        return rms_norm(x, self.eps, self.weight, fp32)


class TorchscaleRelPos(nn.Module):
    """Holds the buffers `angle` [K] and `decay` [H] (float32, as torchscale keeps them)."""

    def __init__(self, K, H):
        super().__init__()
        self.register_buffer("angle", torchscale_angle(K, torch.float32))
        self.register_buffer("decay", torchscale_decay(H, torch.float32))


class TorchscaleRetention(nn.Module):
    """MultiScaleRetention: q,k,v,g,out projections, per-head no-affine RMSNorm, swish gate."""

    def __init__(self, d, vd, heads, eps):
        super().__init__()
        self.heads, self.eps = heads, eps
        self.key_dim = d // heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, vd, bias=False)
        self.g_proj = nn.Linear(d, vd, bias=False)
        self.out_proj = nn.Linear(vd, d, bias=False)

    def reset_parameters(self):
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.g_proj):
            nn.init.xavier_uniform_(lin.weight, gain=2**-2.5)
        nn.init.xavier_uniform_(self.out_proj.weight, gain=2**-1)

    def forward(self, x, angle, log_gamma, opts):
        """x: [B,T,d]; angle: [K] (pairs repeated); log_gamma: [H] -> [B,T,d]."""
        B, T, _ = x.shape
        H, K = self.heads, self.key_dim
        q = self.q_proj(x).view(B, T, H, K).transpose(1, 2)  # [B,H,T,K]
        k = (self.k_proj(x) * K**-0.5).view(B, T, H, K).transpose(1, 2)  # [B,H,T,K]
        v = self.v_proj(x).view(B, T, H, -1).transpose(1, 2)  # [B,H,T,Dv]
        g = self.g_proj(x)  # [B,T,Vd]
        sin, cos = rotary_tables(T, angle[0::2], x.dtype)  # [T,K]
        qr = q * cos + rotate_every_two(q) * sin
        kr = k * cos + rotate_every_two(k) * sin
        o = retention(qr, kr, v, log_gamma, True, opts["abs_norm"], opts["mode"])
        o = rms_norm(o, self.eps, fp32=opts["upstream_fp32"])  # per head over Dv
        o = o.transpose(1, 2).reshape(B, T, -1)  # [B,T,Vd]
        return self.out_proj(F.silu(g) * o)


class TorchscaleGLU(nn.Module):
    """fc2( act(fc1 x) * (gate x) ), no biases; default Linear init."""

    def __init__(self, d, f, activation):
        super().__init__()
        self.activation = activation
        self.fc1 = nn.Linear(d, f, bias=False)
        self.gate = nn.Linear(d, f, bias=False)
        self.fc2 = nn.Linear(f, d, bias=False)

    def forward(self, x, fp32=False):
        act = F.gelu if self.activation == "gelu" else F.silu
        h = self.fc1(x)
        h = act(h.float()).to(x.dtype) if fp32 else act(h)
        return self.fc2(h * self.gate(x))


class TorchscaleLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, eps = cfg["decoder_embed_dim"], cfg["layernorm_eps"]
        self.retention = TorchscaleRetention(
            d, cfg["decoder_value_embed_dim"], cfg["decoder_retention_heads"], eps
        )
        self.retention_layer_norm = RMSNorm(d, eps)
        self.final_layer_norm = RMSNorm(d, eps)
        self.ffn = TorchscaleGLU(d, cfg["decoder_ffn_embed_dim"], cfg["activation_fn"])

    def forward(self, x, angle, log_gamma, opts):
        fp32 = opts["upstream_fp32"]
        x = x + self.retention(self.retention_layer_norm(x, fp32), angle, log_gamma, opts)
        return x + self.ffn(self.final_layer_norm(x, fp32), fp32)


class TorchscaleRetNet(nn.Module):
    """torchscale RetNetDecoder with its embedding and output projection.

    State-dict names are the spec's: embed_tokens.weight, layers.{i}.…, layer_norm.weight,
    output_projection.weight, retnet_rel_pos.{angle,decay} (+ layernorm_embedding.weight).
    """

    preset = "torchscale"

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, V = cfg["decoder_embed_dim"], cfg["vocab_size"]
        H = cfg["decoder_retention_heads"]
        self.embed_tokens = nn.Embedding(V, d)
        if cfg["layernorm_embedding"]:
            self.layernorm_embedding = RMSNorm(d, cfg["layernorm_eps"])
        self.layers = nn.ModuleList(TorchscaleLayer(cfg) for _ in range(cfg["decoder_layers"]))
        self.layer_norm = RMSNorm(d, cfg["layernorm_eps"])
        self.output_projection = nn.Linear(d, V, bias=False)
        if cfg["share_decoder_input_output_embed"]:
            self.output_projection.weight = self.embed_tokens.weight
        self.retnet_rel_pos = TorchscaleRelPos(d // H, H)
        self.opts = default_opts()

    def reset_parameters(self):
        """torchscale's init (spec): xavier on retention, normal(0, d^-0.5) embeddings."""
        d = self.cfg["decoder_embed_dim"]
        nn.init.normal_(self.embed_tokens.weight, 0.0, d**-0.5)
        if not self.cfg["share_decoder_input_output_embed"]:
            nn.init.normal_(self.output_projection.weight, 0.0, d**-0.5)
        for layer in self.layers:
            layer.retention.reset_parameters()
            # fc1, gate, fc2 keep nn.Linear's default init; RMSNorm weights are 1.

    def positions(self):
        """(angle [K], log_gamma [H]) in float64: the file's buffers or the exact formula."""
        if self.opts["file_buffers"]:
            return self.retnet_rel_pos.angle.double(), self.retnet_rel_pos.decay.double()
        H = self.cfg["decoder_retention_heads"]
        return torchscale_angle(self.cfg["decoder_embed_dim"] // H), torchscale_decay(H)

    def forward(self, tokens):
        """tokens: [B,T] int64 -> logits [B,T,V]."""
        fp32 = self.opts["upstream_fp32"]
        x = self.embed_tokens(tokens)  # [B,T,d]
        if not self.cfg["no_scale_embedding"]:
            x = x * math.sqrt(self.cfg["decoder_embed_dim"])
        if self.cfg["layernorm_embedding"]:
            x = self.layernorm_embedding(x, fp32)
        angle, log_gamma = self.positions()
        for layer in self.layers:
            x = layer(x, angle, log_gamma, self.opts)
        return self.output_projection(self.layer_norm(x, fp32))

    def expected_buffers(self):
        """Buffers (name -> float32 tensor) a file should hold, with their exact values."""
        H = self.cfg["decoder_retention_heads"]
        K = self.cfg["decoder_embed_dim"] // H
        return {
            "retnet_rel_pos.angle": torchscale_angle(K, torch.float64),
            "retnet_rel_pos.decay": torchscale_decay(H, torch.float64),
        }

    def tied_names(self):
        """{alias: name} of state-dict entries that are the same tensor."""
        if self.cfg["share_decoder_input_output_embed"]:
            return {"output_projection.weight": "embed_tokens.weight"}
        return {}


# ----------------------------------------------------------------------------------------
# seed
# ----------------------------------------------------------------------------------------


def seed_gammas(H, dtype=torch.float64):
    """gamma_h = 1 - exp(linspace(log(1/32), log(1/512), H)): [H]."""
    t = torch.arange(H, dtype=torch.float64) / max(H - 1, 1)
    lin = math.log(1 / 32) + t * (math.log(1 / 512) - math.log(1 / 32))
    return (1 - torch.exp(lin)).to(dtype)


def seed_xpos_scale(K, dtype=torch.float64):
    """zeta_j = (2j + 0.4K) / (1.4K), j = 0..K/2-1: [K/2]."""
    return ((torch.arange(0, K, 2, dtype=torch.float64) + 0.4 * K) / (1.4 * K)).to(dtype)


class XPos(nn.Module):
    """Holds the seed's buffer `scale` [K/2] (zeta)."""

    def __init__(self, K):
        super().__init__()
        self.register_buffer("scale", seed_xpos_scale(K, torch.float32))


class SeedHead(nn.Module):
    """One SimpleRetention head: W_Q, W_K [d,K], W_V [d,Dv] (stored [in,out])."""

    def __init__(self, d, K, Dv):
        super().__init__()
        self.W_Q = nn.Parameter(torch.randn(d, K) / d)
        self.W_K = nn.Parameter(torch.randn(d, K) / d)
        self.W_V = nn.Parameter(torch.randn(d, Dv) / d)
        self.xpos = XPos(K)


class SeedRetention(nn.Module):
    """The seed's MultiScaleRetention: heads, GroupNorm, swish gate W_G, output W_O."""

    def __init__(self, d, heads, double_v_dim):
        super().__init__()
        self.heads = heads
        K = d // heads
        vd = 2 * d if double_v_dim else d
        self.retentions = nn.ModuleList(SeedHead(d, K, vd // heads) for _ in range(heads))
        self.W_G = nn.Parameter(torch.randn(d, vd) / d)
        self.W_O = nn.Parameter(torch.randn(vd, d) / d)
        self.group_norm = nn.GroupNorm(heads, vd)  # eps 1e-5, affine

    def forward(self, x, opts):
        """x: [B,T,d] -> [B,T,d]."""
        B, T, _ = x.shape
        H = self.heads
        heads = self.retentions
        q = torch.stack([x @ h.W_Q for h in heads], dim=1)  # [B,H,T,K]
        k = torch.stack([x @ h.W_K for h in heads], dim=1)  # [B,H,T,K]
        v = torch.stack([x @ h.W_V for h in heads], dim=1)  # [B,H,T,Dv]
        K = q.shape[-1]
        dt = x.dtype

        # xPos: rotation by n*theta_j and scale s_{n,j} = zeta_j^(n/512) on pairs (2j, 2j+1),
        # tables formed in float64. Explicit s_n and 1/s_m are fine for T up to ~1e5 in
        # float64 (the spec's relative-factor form is only needed beyond).
        theta = 10000.0 ** (-torch.arange(K // 2, dtype=torch.float64) / (K // 2))  # [K/2]
        sin, cos = rotary_tables(T, theta, dt)  # [T,K]
        if opts["file_buffers"]:
            zeta = torch.stack([h.xpos.scale.double() for h in heads])  # [H,K/2]
        else:
            zeta = seed_xpos_scale(K).expand(H, -1)
        pos = torch.arange(T, dtype=torch.float64)
        s = zeta[:, None, :] ** (pos[None, :, None] / 512)  # [H,T,K/2]
        s = s.repeat_interleave(2, -1).to(dt)  # [H,T,K]
        qx = (q * cos + rotate_every_two(q) * sin) * s
        kx = (k * cos + rotate_every_two(k) * sin) / s

        log_gamma = seed_gammas(H).log()  # [H]
        o = retention(qx, kx, v, log_gamma, False, False, opts["mode"])  # [B,H,T,Dv]
        y = o.transpose(1, 2).reshape(B * T, -1)  # [B*T,Vd], channels grouped by head
        y = self.group_norm(y).reshape(B, T, -1)
        return (F.silu(x @ self.W_G) * y) @ self.W_O


class SeedRetNetBody(nn.Module):
    """The seed's RetNet: retentions, ffns (Linear, GELU, Linear), layer_norms_1/2."""

    def __init__(self, cfg):
        super().__init__()
        d, L = cfg["hidden_dim"], cfg["layers"]
        self.retentions = nn.ModuleList(
            SeedRetention(d, cfg["heads"], cfg["double_v_dim"]) for _ in range(L)
        )
        self.ffns = nn.ModuleList(
            nn.Sequential(nn.Linear(d, cfg["ffn_size"]), nn.GELU(), nn.Linear(cfg["ffn_size"], d))
            for _ in range(L)
        )
        self.layer_norms_1 = nn.ModuleList(nn.LayerNorm(d) for _ in range(L))
        self.layer_norms_2 = nn.ModuleList(nn.LayerNorm(d) for _ in range(L))

    def forward(self, x, opts):
        for ret, ffn, ln1, ln2 in zip(self.retentions, self.ffns, self.layer_norms_1, self.layer_norms_2):
            y = ret(ln1(x), opts) + x
            x = ffn(ln2(y)) + y
        return x


class SeedRetNetCLM(nn.Module):
    """The seed's RetNetCLM: embed [V,d], retnet body, proj [d,V]; no final norm."""

    preset = "seed"

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, V = cfg["hidden_dim"], cfg["vocab_size"]
        self.retnet = SeedRetNetBody(cfg)
        self.embed = nn.Embedding(V, d)
        self.proj = nn.Parameter(torch.randn(d, V) / d)
        self.opts = default_opts()

    def reset_parameters(self):
        """The seed's own init is its constructors' (randn/d, default Linear/Embedding)."""

    def forward(self, tokens):
        """tokens: [B,T] int64 -> logits [B,T,V]."""
        x = self.retnet(self.embed(tokens), self.opts)
        return x @ self.proj

    def expected_buffers(self):
        d, H = self.cfg["hidden_dim"], self.cfg["heads"]
        zeta = seed_xpos_scale(d // H, torch.float64)
        return {
            f"retnet.retentions.{i}.retentions.{h}.xpos.scale": zeta
            for i in range(self.cfg["layers"])
            for h in range(H)
        }

    def tied_names(self):
        return {}


# ----------------------------------------------------------------------------------------
# fla
# ----------------------------------------------------------------------------------------


class FlaRMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, self.eps, self.weight)


class FlaAttention(nn.Module):
    """fla MultiScaleRetention: q scaled by K^-0.5, NeoX rotary, no decay normalisation,
    per-head RMSNorm with one weight [Dv] shared by the heads, swish output gate."""

    def __init__(self, cfg):
        super().__init__()
        d, H = cfg["hidden_size"], cfg["num_heads"]
        kd, vd = fla_key_value_dims(cfg)
        self.heads, self.K, self.Dv = H, kd // H, vd // H
        self.q_proj = nn.Linear(d, kd, bias=False)
        self.k_proj = nn.Linear(d, kd, bias=False)
        self.v_proj = nn.Linear(d, vd, bias=False)
        self.g_proj = nn.Linear(d, vd, bias=False)
        self.o_proj = nn.Linear(vd, d, bias=False)
        self.g_norm_swish_gate = FlaRMSNorm(self.Dv, cfg["norm_eps"])

    def forward(self, x, opts):
        """x: [B,T,d] -> [B,T,d]."""
        B, T, _ = x.shape
        H, K, Dv = self.heads, self.K, self.Dv
        q = (self.q_proj(x) * K**-0.5).view(B, T, H, K).transpose(1, 2)  # [B,H,T,K]
        k = self.k_proj(x).view(B, T, H, K).transpose(1, 2)  # [B,H,T,K]
        v = self.v_proj(x).view(B, T, H, Dv).transpose(1, 2)  # [B,H,T,Dv]
        inv_freq = 10000.0 ** (-torch.arange(0, K, 2, dtype=torch.float64) / K)  # [K/2]
        sin, cos = rotary_tables(T, inv_freq, x.dtype, pair_layout="halves")  # [T,K]
        qr = q * cos + rotate_half(q) * sin
        kr = k * cos + rotate_half(k) * sin
        log_gamma = torchscale_decay(H)  # [H] same gammas as torchscale
        o = retention(qr, kr, v, log_gamma, False, False, opts["mode"])  # [B,H,T,Dv]
        o = self.g_norm_swish_gate(o).transpose(1, 2).reshape(B, T, H * Dv)
        return self.o_proj(F.silu(self.g_proj(x)) * o)


class FlaMLP(nn.Module):
    """down( silu(gate x) * up x )."""

    def __init__(self, d, inter):
        super().__init__()
        self.gate_proj = nn.Linear(d, inter, bias=False)
        self.up_proj = nn.Linear(d, inter, bias=False)
        self.down_proj = nn.Linear(inter, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class FlaBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, eps = cfg["hidden_size"], cfg["norm_eps"]
        self.attn_norm = FlaRMSNorm(d, eps)
        self.attn = FlaAttention(cfg)
        self.mlp_norm = FlaRMSNorm(d, eps)
        self.mlp = FlaMLP(d, fla_intermediate_size(cfg))

    def forward(self, x, opts):
        x = x + self.attn(self.attn_norm(x), opts)
        return x + self.mlp(self.mlp_norm(x))


class FlaBackbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embeddings = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList(FlaBlock(cfg) for _ in range(cfg["num_hidden_layers"]))
        self.norm = FlaRMSNorm(cfg["hidden_size"], cfg["norm_eps"])


class FlaRetNet(nn.Module):
    """fla RetNetForCausalLM: names model.embeddings, model.layers.{i}.…, model.norm, lm_head."""

    preset = "fla"

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = FlaBackbone(cfg)
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        if cfg["tie_word_embeddings"]:
            self.lm_head.weight = self.model.embeddings.weight
        self.opts = default_opts()

    def reset_parameters(self):
        """fla-like init: normal(0, 0.02) for embeddings and projections, norms 1."""
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, tokens):
        """tokens: [B,T] int64 -> logits [B,T,V]."""
        x = self.model.embeddings(tokens)
        for layer in self.model.layers:
            x = layer(x, self.opts)
        return self.lm_head(self.model.norm(x))

    def expected_buffers(self):
        return {}

    def tied_names(self):
        if self.cfg["tie_word_embeddings"]:
            return {"lm_head.weight": "model.embeddings.weight"}
        return {}


def fla_rename(tensors, cfg):
    """Map older fla names onto this module's: attn.g_norm -> attn.g_norm_swish_gate, and a
    fused mlp.gate_proj [2I,d] -> gate_proj (first half) and up_proj (second half)."""
    out = {}
    inter = fla_intermediate_size(cfg)
    for name, t in tensors.items():
        if name.endswith(".attn.g_norm.weight"):
            out[name.replace(".attn.g_norm.", ".attn.g_norm_swish_gate.")] = t
        elif name.endswith(".mlp.gate_proj.weight") and t.shape[0] == 2 * inter:
            out[name] = t[:inter]
            out[name.replace(".gate_proj.", ".up_proj.")] = t[inter:]
        else:
            out[name] = t
    return out


# ----------------------------------------------------------------------------------------
# Building, loading, saving
# ----------------------------------------------------------------------------------------

MODEL_CLASSES = {"torchscale": TorchscaleRetNet, "seed": SeedRetNetCLM, "fla": FlaRetNet}


def default_opts():
    """Forward options shared by all presets (see the module docstring)."""
    return {"abs_norm": False, "mode": "parallel", "file_buffers": False, "upstream_fp32": False}


def build_model(preset, config):
    """An un-initialised model (PyTorch default init) for a full or partial config."""
    cfg = resolve_config(preset, config)
    return MODEL_CLASSES[preset](cfg)


def init_model(preset, config, seed):
    """A model with the preset's initialisation, deterministic for a given seed (float32)."""
    torch.manual_seed(seed)
    model = build_model(preset, config)
    model.reset_parameters()
    return model


def config_metadata(model):
    """The `retnet` metadata string: JSON with "preset" first, then the full config."""
    return json.dumps({"preset": model.preset, **model.cfg})


def read_model_file(path):
    """(preset, config dict, tensors name -> numpy, stored dtypes name -> str) of a file.

    path: a .safetensors file with the `retnet` metadata, or a Hugging Face directory
    (config.json + *.safetensors, fla only).
    """
    if os.path.isdir(path):
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
        preset = "fla"
        tensors, dtypes = {}, {}
        for fn in sorted(os.listdir(path)):
            if fn.endswith(".safetensors"):
                t, _ = st_io.load(os.path.join(path, fn))
                header, _ = st_io.read_header(os.path.join(path, fn))
                tensors.update(t)
                dtypes.update({k: v["dtype"] for k, v in header.items() if k != "__metadata__"})
        return preset, config, tensors, dtypes
    tensors, metadata = st_io.load(path)
    header, _ = st_io.read_header(path)
    dtypes = {k: v["dtype"] for k, v in header.items() if k != "__metadata__"}
    if METADATA_KEY not in metadata:
        raise ValueError(f"{path}: no `{METADATA_KEY}` config in the safetensors metadata")
    config = json.loads(metadata[METADATA_KEY])
    preset = config.get("preset", "torchscale")
    return preset, config, tensors, dtypes


def load_model(path, dtype=torch.float64):
    """Load a model file (any preset) strictly into a fresh module of `dtype`.

    Every parameter must be present with its shape; no unknown tensors are allowed. The
    position buffers are optional; when present they must match the spec's formula (to
    the rounding of their stored type) and are kept in the module.
    """
    preset, config, tensors, dtypes = read_model_file(path)
    model = build_model(preset, config).to(dtype)
    if preset == "fla":
        tensors = fla_rename(tensors, model.cfg)
    state = model.state_dict()
    tied = model.tied_names()
    expected_buffers = model.expected_buffers()
    new_state = {}
    for name, ref in state.items():
        if name in tied:
            continue  # same tensor as tied[name]
        if name not in tensors:
            if name in expected_buffers:
                new_state[name] = ref  # absent buffer: keep the computed one
                continue
            raise KeyError(f"{path}: missing tensor {name}")
        t = torch.from_numpy(np.asarray(tensors[name], dtype=np.float64))
        if tuple(t.shape) != tuple(ref.shape):
            raise ValueError(f"{path}: {name} has shape {tuple(t.shape)}, want {tuple(ref.shape)}")
        if name in expected_buffers:
            tol = 1e-2 if dtypes.get(name) in ("BF16", "F16") else 1e-6
            err = ((t - expected_buffers[name]).abs() / expected_buffers[name].abs()).max().item()
            if err > tol:
                raise ValueError(f"{path}: buffer {name} differs from the spec (rel {err:.3g})")
        new_state[name] = t.to(ref.dtype)
    for name, alias_of in tied.items():
        if name in tensors and not np.array_equal(tensors[name], tensors[alias_of]):
            raise ValueError(f"{path}: {name} is tied to {alias_of} but differs from it")
    unknown = set(tensors) - set(state)
    if unknown:
        raise KeyError(f"{path}: unexpected tensors {sorted(unknown)}")
    model.load_state_dict(new_state, strict=False)
    return model


def save_model(model, path, dtype="F32"):
    """Write a model's state dict (spec names, buffers included) with its config metadata.

    dtype: "F32", "F64" or "BF16". Tied aliases (output_projection / lm_head when shared)
    are written once, under the embedding's name.
    """
    tied = model.tied_names()
    tensors = {
        name: t.detach().cpu().double().numpy()
        for name, t in model.state_dict().items()
        if name not in tied
    }
    st_io.save(path, tensors, {METADATA_KEY: config_metadata(model)}, dtype=dtype)


# ----------------------------------------------------------------------------------------
# Computations
# ----------------------------------------------------------------------------------------


def compute_logits(model, tokens, **opts):
    """Logits [T,V] (numpy, model dtype) for one sequence; opts override model.opts."""
    model.opts = {**default_opts(), **opts}
    with torch.no_grad():
        x = torch.tensor([tokens], dtype=torch.long)
        return model(x)[0].cpu().numpy()


def compute_grads(model, tokens, targets, **opts):
    """Mean cross-entropy of the logits against targets and its gradients.

    Returns (loss float, {parameter name: gradient numpy}) in the model's dtype.
    """
    if len(tokens) != len(targets):
        raise ValueError("tokens and targets differ in length")
    model.opts = {**default_opts(), **opts}
    model.zero_grad(set_to_none=True)
    logits = model(torch.tensor([tokens], dtype=torch.long))[0]  # [T,V]
    loss = F.cross_entropy(logits, torch.tensor(targets, dtype=torch.long))
    loss.backward()
    grads = {}
    for name, p in model.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        grads[name] = g.detach().cpu().numpy()
    return loss.item(), grads


# ----------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------


def parse_ids(arg):
    """"1,2,3" or "@file" (ids separated by commas and/or whitespace) -> list of int."""
    text = open(arg[1:]).read() if arg.startswith("@") else arg
    return [int(t) for t in text.replace(",", " ").split()]


DTYPES = {"f64": torch.float64, "f32": torch.float32}


def add_forward_options(p):
    p.add_argument("--model", required=True, help="model .safetensors (or fla HF directory)")
    p.add_argument("--tokens", required=True, help="ids: 1,2,3 or @file")
    p.add_argument("--abs-norm", action="store_true", help="torchscale parallel row clamp")
    p.add_argument("--dtype", choices=DTYPES, default="f64")
    p.add_argument("--mode", choices=("parallel", "recurrent"), default="parallel")
    p.add_argument("--file-buffers", action="store_true", help="use the file's f32 buffers")
    p.add_argument("--upstream-fp32", action="store_true", help="emulate upstream f32 islands")
    p.add_argument("--out", required=True)


def forward_opts(args):
    return {
        "abs_norm": args.abs_norm,
        "mode": args.mode,
        "file_buffers": args.file_buffers,
        "upstream_fp32": args.upstream_fp32,
    }


def cmd_logits(args):
    model = load_model(args.model, DTYPES[args.dtype])
    logits = compute_logits(model, parse_ids(args.tokens), **forward_opts(args))
    np.save(args.out, logits)


def cmd_init(args):
    config = json.loads(args.config_json)
    model = init_model(args.preset, config, args.seed)
    save_model(model, args.out, dtype={"f32": "F32", "bf16": "BF16"}[args.dtype])


def cmd_grads(args):
    model = load_model(args.model, DTYPES[args.dtype])
    loss, grads = compute_grads(model, parse_ids(args.tokens), parse_ids(args.targets), **forward_opts(args))
    tensors = {"loss": np.array(loss, dtype=np.float64), **grads}
    st_io.save(args.out, tensors, dtype="F64")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("logits", help="logits [T,V] of one sequence -> .npy")
    add_forward_options(p)
    p.set_defaults(func=cmd_logits)

    p = sub.add_parser("init", help="write a randomly initialised model")
    p.add_argument("--preset", choices=sorted(MODEL_CLASSES), required=True)
    p.add_argument("--config-json", required=True, help="config JSON (preset keys)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=("f32", "bf16"), default="f32")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("grads", help="mean cross-entropy gradients -> .safetensors (F64)")
    add_forward_options(p)
    p.add_argument("--targets", required=True, help="target ids: 1,2,3 or @file")
    p.set_defaults(func=cmd_grads)

    args = ap.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
