#!/usr/bin/python3
"""retnet against a PyTorch RetNet, side by side: training and single-stream decoding.

By default the PyTorch model is our own code (nothing is fetched), written
to torchscale's RetNetDecoder architecture: bias-free q/k/v/g/out projections, keys
scaled by 1/sqrt(key dim), xPos-free rotation of every two channels, the parallel
form with the decay mask normalised by the square root of its row sums and the
|QK^T| row-sum clamp, a per-head RMS group norm, a swish gate, a GELU GLU feed-forward,
pre-RMSNorm residual layers, a final RMSNorm and an untied output projection; decoding
is torchscale's recurrent form (state rescaled by the running decay sum). Training is
AdamW (betas 0.9, 0.95, weight decay 0.1) with gradient clipping at 1, as retnet's
defaults.

The same configuration (issue 18: d 256, 4 layers, 4 heads, value 512, FFN 512,
vocabulary 256, sequence 256, batch 8) runs through `retnet train` (same flags) and
`retnet generate`; both sides use the same threads and the same BLAS kernels
(bench/blas_env.py). Tokens/s are medians of per-step rates after warm-up steps; the
runs alternate (torch, retnet, torch, ...) so a machine whose load changes moves both.

    /usr/bin/python3 bench/torch_side_by_side.py [--retnet build/retnet] [--threads 2]
        [--steps 30] [--decode 1000] [--runs 3] [--data FILE] [--torchscale [DIR]]

With --torchscale the PyTorch side is torchscale's own RetNetDecoder (installed, or a checkout
at DIR), the model issue 18 names, in place of ours.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blas_env import ensure_same_blas, load_average  # noqa: E402

BLAS_LINE = ensure_same_blas()  # before torch loads OpenBLAS

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# ----------------------------------------------------------------------------- model


def rms_norm(x, eps, weight=None):
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return x * weight if weight is not None else x


def rotate_every_two(x):
    x1, x2 = x[..., ::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def theta_shift(x, sin, cos):
    return x * cos + rotate_every_two(x) * sin


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return rms_norm(x, self.eps, self.weight)


class Retention(nn.Module):
    def __init__(self, d, vd, heads, eps):
        super().__init__()
        self.H, self.K, self.Dv, self.eps = heads, d // heads, vd // heads, eps
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, vd, bias=False)
        self.g = nn.Linear(d, vd, bias=False)
        self.o = nn.Linear(vd, d, bias=False)

    def forward(self, x, sin, cos, mask):
        """x (B, T, d); sin, cos (T, K); mask (H, T, T), normalised."""
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.H, self.K).transpose(1, 2)
        k = (self.k(x) * self.K ** -0.5).view(B, T, self.H, self.K).transpose(1, 2)
        v = self.v(x).view(B, T, self.H, self.Dv).transpose(1, 2)
        qr, kr = theta_shift(q, sin, cos), theta_shift(k, sin, cos)
        qk = qr @ kr.transpose(-1, -2) * mask
        qk = qk / qk.detach().abs().sum(-1, keepdim=True).clamp(min=1)
        out = rms_norm((qk @ v).transpose(1, 2), self.eps).reshape(B, T, self.H * self.Dv)
        return self.o(F.silu(self.g(x)) * out)

    def step(self, x, sin, cos, gamma, state):
        """One token: x (1, d); state (kv (H, K, Dv), scale (H)) or None; returns (y, state)."""
        q = self.q(x).view(self.H, 1, self.K)
        k = (self.k(x) * self.K ** -0.5).view(self.H, 1, self.K)
        v = self.v(x).view(self.H, 1, self.Dv)
        qr, kr = theta_shift(q, sin, cos), theta_shift(k, sin, cos)
        kv = kr.transpose(-1, -2) @ v
        if state is None:
            scale = torch.ones_like(gamma)
        else:
            prev, prev_scale = state
            scale = prev_scale * gamma + 1
            kv = prev * (prev_scale.sqrt() * gamma / scale.sqrt()).view(-1, 1, 1) + kv / scale.sqrt().view(-1, 1, 1)
        out = rms_norm((qr @ kv).view(1, self.H, self.Dv), self.eps).reshape(1, self.H * self.Dv)
        return self.o(F.silu(self.g(x)) * out), (kv, scale)


class GLU(nn.Module):
    def __init__(self, d, f):
        super().__init__()
        self.fc1 = nn.Linear(d, f, bias=False)
        self.gate = nn.Linear(d, f, bias=False)
        self.fc2 = nn.Linear(f, d, bias=False)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)) * self.gate(x))


class Layer(nn.Module):
    def __init__(self, d, vd, f, heads, eps):
        super().__init__()
        self.norm1, self.ret = RMSNorm(d, eps), Retention(d, vd, heads, eps)
        self.norm2, self.ffn = RMSNorm(d, eps), GLU(d, f)


class RetNet(nn.Module):
    def __init__(self, vocab, d, layers, heads, vd, f, eps=1e-6):
        super().__init__()
        self.H, self.K = heads, d // heads
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(Layer(d, vd, f, heads, eps) for _ in range(layers))
        self.norm = RMSNorm(d, eps)
        self.head = nn.Linear(d, vocab, bias=False)
        angle = 1.0 / (10000 ** torch.linspace(0, 1, self.K // 2))
        self.register_buffer("angle", angle.unsqueeze(-1).repeat(1, 2).flatten())
        self.register_buffer("log_gamma", torch.log(1 - 2 ** (-5 - torch.arange(heads, dtype=torch.float))))

    def rel_pos(self, T):
        i = torch.arange(T, dtype=torch.float)
        sin, cos = torch.sin(i[:, None] * self.angle), torch.cos(i[:, None] * self.angle)
        diff = i[:, None] - i[None, :]
        mask = torch.exp(diff.clamp(min=0) * self.log_gamma.view(-1, 1, 1)) * (diff >= 0)
        return sin, cos, mask / mask.sum(-1, keepdim=True).sqrt()

    def forward(self, tokens, rel):
        x = self.embed(tokens)
        for l in self.layers:
            x = x + l.ret(l.norm1(x), *rel)
            x = x + l.ffn(l.norm2(x))
        return self.head(self.norm(x))

    def step(self, token, pos, states):
        sin, cos = torch.sin(pos * self.angle), torch.cos(pos * self.angle)
        gamma = self.log_gamma.exp()
        x = self.embed(token.view(1))
        for i, l in enumerate(self.layers):
            y, states[i] = l.ret.step(l.norm1(x), sin, cos, gamma, states[i])
            x = x + y
            x = x + l.ffn(l.norm2(x))
        return self.head(self.norm(x))


# ----------------------------------------------------------------------- PyTorch runs


def train_rate(m, logits, cfg, steps, warm):
    """Median tokens/s of AdamW steps on random batches; logits(m, x) is the model's forward."""
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, foreach=True)
    B, T = cfg["batch"], cfg["seq"]
    rates = []
    for s in range(warm + steps):
        x = torch.randint(0, cfg["vocab"], (B, T))
        y = torch.randint(0, cfg["vocab"], (B, T))
        t0 = time.perf_counter()
        loss = F.cross_entropy(logits(m, x).reshape(-1, cfg["vocab"]), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        if s >= warm:
            rates.append(B * T / (time.perf_counter() - t0))
    return statistics.median(rates)


def torch_train(cfg, steps, warm, seed):
    torch.manual_seed(seed)
    m = RetNet(cfg["vocab"], cfg["dim"], cfg["layers"], cfg["heads"], cfg["value_dim"], cfg["ffn"])
    rel = m.rel_pos(cfg["seq"])
    return train_rate(m, lambda m, x: m(x, rel), cfg, steps, warm)


@torch.inference_mode()
def torch_decode(cfg, n, seed):
    torch.manual_seed(seed)
    m = RetNet(cfg["vocab"], cfg["dim"], cfg["layers"], cfg["heads"], cfg["value_dim"], cfg["ffn"]).eval()
    states = [None] * cfg["layers"]
    tok = torch.tensor(32)
    for p in range(8):  # warm-up
        tok = m.step(tok, p, states).argmax(-1)[0]
    t0 = time.perf_counter()
    for p in range(8, 8 + n):
        tok = m.step(tok, p, states).argmax(-1)[0]
    return n / (time.perf_counter() - t0)


# ------------------------------------------------------------- torchscale's own model


def torchscale_decoder(cfg, path):
    """torchscale's RetNetDecoder (from an installed torchscale, or a checkout at path) in this
    configuration. Its module imports fairscale, timm and einops, which this configuration never
    calls (activation checkpointing, FSDP, drop path and the attention modules are off); where they
    are not installed, stand-ins that refuse to run take their names."""
    import types

    if path:
        sys.path.insert(0, os.path.abspath(path))

    def refuse(pkg):
        def f(*args, **kwargs):
            raise RuntimeError("torch_side_by_side: this needs the real %s package" % pkg)
        return f

    for mod, names in (("fairscale.nn", ("checkpoint_wrapper", "wrap")), ("timm.models.layers", ("drop_path",)),
                       ("einops", ("rearrange",))):
        try:
            __import__(mod)
        except ImportError:
            parts = mod.split(".")
            for i in range(1, len(parts) + 1):
                sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
            for n in names:
                setattr(sys.modules[mod], n, refuse(parts[0]))
    try:
        from torchscale.architecture.config import RetNetConfig
        from torchscale.architecture.retnet import RetNetDecoder
    except ImportError as e:
        sys.exit("torch_side_by_side: cannot import torchscale (%s); give --torchscale DIR, a checkout of "
                 "github.com/microsoft/torchscale" % e)
    args = RetNetConfig(decoder_embed_dim=cfg["dim"], decoder_value_embed_dim=cfg["value_dim"],
                        decoder_retention_heads=cfg["heads"], decoder_ffn_embed_dim=cfg["ffn"],
                        decoder_layers=cfg["layers"], vocab_size=cfg["vocab"])
    embed = nn.Embedding(cfg["vocab"], cfg["dim"])
    head = nn.Linear(cfg["dim"], cfg["vocab"], bias=False)
    return RetNetDecoder(args, embed_tokens=embed, output_projection=head)


def torchscale_train(cfg, steps, warm, seed, path):
    torch.manual_seed(seed)
    return train_rate(torchscale_decoder(cfg, path), lambda m, x: m(x)[0], cfg, steps, warm)


@torch.inference_mode()
def torchscale_decode(cfg, n, seed, path):
    """Its recurrent form: each call takes the tokens so far and an incremental state, and steps
    the last token (as its generation code calls it)."""
    torch.manual_seed(seed)
    m = torchscale_decoder(cfg, path).eval()
    toks = torch.full((1, n + 9), 32, dtype=torch.long)
    state = {}
    for p in range(8):  # warm-up
        toks[0, p + 1] = m(toks[:, :p + 1], incremental_state=state)[0][0, -1].argmax()
    t0 = time.perf_counter()
    for p in range(8, 8 + n):
        toks[0, p + 1] = m(toks[:, :p + 1], incremental_state=state)[0][0, -1].argmax()
    return n / (time.perf_counter() - t0)


# ------------------------------------------------------------------------ retnet runs


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    if p.returncode != 0:
        sys.exit("torch_side_by_side: %s failed (%d): %s" % (cmd[0], p.returncode, p.stderr.strip()[-400:]))
    return p.stderr


def retnet_train(exe, cfg, data, steps, warm, threads, out, seed):
    total = warm + steps
    err = run([exe, "train", "--data", data, "--out", out, "--preset", "torchscale", "--dim", str(cfg["dim"]),
               "--layers", str(cfg["layers"]), "--heads", str(cfg["heads"]), "--value-dim", str(cfg["value_dim"]),
               "--ffn", str(cfg["ffn"]), "--vocab", str(cfg["vocab"]), "--seq", str(cfg["seq"]),
               "--batch", str(cfg["batch"]), "--steps", str(total), "--lr", "1e-3", "--threads", str(threads),
               "--eval-every", str(total), "--eval-batches", "1", "--ckpt-every", str(total), "--log-every", "1",
               "--seed", str(seed)])
    rates = [float(r) for s, r in re.findall(r"step (\d+)/\d+ .*?(\d+) tok/s", err) if int(s) > warm]
    if len(rates) < steps:
        sys.exit("torch_side_by_side: could not read retnet train's progress lines:\n" + err[-400:])
    return statistics.median(rates)


def retnet_decode(exe, model, n, threads):
    err = run([exe, "generate", "--model", model, "--prompt", "The ", "--n", str(n), "--temperature", "0",
               "--threads", str(threads), "--ignore-eos"])
    m = re.search(r"decode: (\d+) tokens, ([\d.]+) tok/s", err)
    if not m:
        sys.exit("torch_side_by_side: could not read retnet generate's speed line:\n" + err[-400:])
    return float(m.group(2))


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--retnet", default=os.path.join(root, "build", "retnet"), help="the retnet binary")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30, help="timed training steps per run (after 3 warm-up steps)")
    ap.add_argument("--decode", type=int, default=1000, help="decoded tokens per run")
    ap.add_argument("--runs", type=int, default=3, help="alternating runs of each side")
    ap.add_argument("--data", default=None, help="training text for retnet (default: a file of random bytes; "
                    "the tokens do not change the speed)")
    ap.add_argument("--torchscale", metavar="DIR", nargs="?", const="", default=None,
                    help="run torchscale's own RetNetDecoder as the PyTorch side instead of ours: an installed "
                    "torchscale (no DIR), or a checkout of github.com/microsoft/torchscale at DIR")
    a = ap.parse_args()
    if not os.access(a.retnet, os.X_OK):
        sys.exit("torch_side_by_side: %s is not an executable (run make first)" % a.retnet)
    if a.threads < 1 or a.steps < 1 or a.decode < 1 or a.runs < 1:
        sys.exit("torch_side_by_side: --threads, --steps, --decode and --runs must be positive")
    torch.set_num_threads(a.threads)
    cfg = dict(vocab=256, dim=256, layers=4, heads=4, value_dim=512, ffn=512, seq=256, batch=8)
    warm = 3
    print("config: d %(dim)d, %(layers)d layers, %(heads)d heads, value %(value_dim)d, FFN %(ffn)d, "
          "vocabulary %(vocab)d, sequence %(seq)d, batch %(batch)d" % cfg)
    print("threads %d each; PyTorch %s (%s); %s; load average %s on %d CPUs"
          % (a.threads, torch.__version__, "our reference model" if a.torchscale is None else
             "torchscale's RetNetDecoder", BLAS_LINE, load_average(), os.cpu_count()))
    print("(tokens/s: median of per-step rates; %d timed training steps and %d decoded tokens per run)\n"
          % (a.steps, a.decode))
    with tempfile.TemporaryDirectory(prefix="retnet-sbs-") as tmp:
        data = a.data
        if data is None:
            data = os.path.join(tmp, "random.txt")
            with open(data, "wb") as f:
                f.write(torch.randint(0, 256, (1 << 20,), generator=torch.Generator().manual_seed(1),
                                      dtype=torch.uint8).numpy().tobytes())
        out = os.path.join(tmp, "run")
        print("| run | train torch tok/s | train retnet tok/s | ratio | decode torch tok/s | decode retnet tok/s | ratio |")
        print("|---|---|---|---|---|---|---|")
        tr, dr = [], []
        for r in range(a.runs):
            t_tr = (torch_train(cfg, a.steps, warm, r + 1) if a.torchscale is None
                    else torchscale_train(cfg, a.steps, warm, r + 1, a.torchscale))
            r_tr = retnet_train(a.retnet, cfg, data, a.steps, warm, a.threads, out, r + 1)
            t_de = (torch_decode(cfg, a.decode, r + 1) if a.torchscale is None
                    else torchscale_decode(cfg, a.decode, r + 1, a.torchscale))
            r_de = retnet_decode(a.retnet, os.path.join(out, "model.safetensors"), a.decode, a.threads)
            tr.append(r_tr / t_tr)
            dr.append(r_de / t_de)
            print("| %d | %.0f | %.0f | %.2f | %.0f | %.0f | %.1f |" % (r + 1, t_tr, r_tr, r_tr / t_tr, t_de, r_de,
                                                                        r_de / t_de), flush=True)
    print("\nretnet / PyTorch: training %.2f-%.2fx, single-stream decoding %.1f-%.1fx (%d runs); load average now %s"
          % (min(tr), max(tr), min(dr), max(dr), a.runs, load_average()))


if __name__ == "__main__":
    main()
