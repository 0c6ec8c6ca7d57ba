#!/usr/bin/python3
"""nanoGPT's character-level Shakespeare baseline against retnet, side by side.

The GPT is our own minimal PyTorch code of nanoGPT's architecture (nanoGPT is not
vendored and nothing is fetched): learned token and position embeddings, pre-LayerNorm
blocks of causal multi-head self-attention and a 4x GELU MLP, no biases (nanoGPT's
`bias=False`), no dropout, a final LayerNorm and a head tied to the token embedding,
nanoGPT's initialisation (normal 0.02, residual projections 0.02/sqrt(2 n_layer)).
The recipe is its README's CPU run: 4 layers, 4 heads, width 128, block 64, batch 12,
2,000 iterations, AdamW (lr 1e-3, betas 0.9/0.99, weight decay 0.1 on matrices, clip 1),
100 warm-up iterations then cosine decay to 1e-4; characters are its `prepare.py`
vocabulary (every distinct character of the file).

retnet trains a RetNet of the same size and budget (2,000 iterations of 12 x 64):
    retnet train --preset torchscale --dim 128 --layers 4 --heads 4 --value-dim 256 --ffn 256
                 --seq 64 --batch 12 --steps 2000 --lr 2e-3 --warmup 20 --val-frac 0.1
and is scored with `retnet eval --window 64` on the held-out split. Its learning rate
and warm-up are RetNet's own, tuned on a validation split cut from the training 90%
(never on the final 10%; README, "Against PyTorch"); the rest is retnet train's
defaults (AdamW betas 0.9/0.95, weight decay 0.1, clip 1, cosine decay to 0.1 of lr).

Both use the same split of the same file (the first 90% for training, the last 10%
for validation, cut as retnet cuts it), the same threads and the same BLAS kernels
(bench/blas_env.py). During training both log a validation loss every --eval-every
iterations on the same 20 batches of 12 x 64 characters (the first 240 windows of 64
of the validation split, which `retnet train` scores; nanoGPT's eval_iters=20 draws
random ones). The final figure of each is the loss over the whole validation split
in windows of 64 characters (what `retnet eval --window 64` computes). Printed: wall
time, CPU seconds (all threads), tokens/s, final validation loss, and the time each
first reached the other's last logged loss (both on the same logged windows), in wall
seconds and, for retnet, in CPU seconds too (what a loaded machine's time slicing
moves less: the two sides train one after the other, so a load that changes between
them moves their wall times apart).

    /usr/bin/python3 bench/nanogpt_side_by_side.py --data FILE [--iters 2000] [--threads 2]
"""

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blas_env import ensure_same_blas, load_average  # noqa: E402

BLAS_LINE = ensure_same_blas(passive=True)  # before torch loads OpenBLAS and OpenMP

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# ----------------------------------------------------------------------------- model


class Block(nn.Module):
    def __init__(self, d, heads, block):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.Parameter(torch.ones(d))  # LayerNorm weights; no biases
        self.attn = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.ln2 = nn.Parameter(torch.ones(d))
        self.fc = nn.Linear(d, 4 * d, bias=False)
        self.fc_proj = nn.Linear(4 * d, d, bias=False)
        self.register_buffer("mask", torch.tril(torch.ones(block, block, dtype=torch.bool)))

    def forward(self, x):
        B, T, C = x.shape
        h = F.layer_norm(x, (C,), self.ln1, None, 1e-5)
        q, k, v = self.attn(h).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = F.softmax(att.masked_fill(~self.mask[:T, :T], float("-inf")), dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(B, T, C))
        h = F.layer_norm(x, (C,), self.ln2, None, 1e-5)
        return x + self.fc_proj(F.gelu(self.fc(h)))


class GPT(nn.Module):
    def __init__(self, vocab, d, layers, heads, block):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(block, d)
        self.blocks = nn.ModuleList(Block(d, heads, block) for _ in range(layers))
        self.ln_f = nn.Parameter(torch.ones(d))
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight  # tied, as nanoGPT
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "fc_proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.blocks:
            x = b(x)
        return self.head(F.layer_norm(x, (x.shape[-1],), self.ln_f, None, 1e-5))


def nanogpt_lr(it, iters, lr=1e-3, min_lr=1e-4, warmup=100):
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    ratio = min(1.0, (it - warmup) / max(1, iters - warmup))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


@torch.inference_mode()
def windows_loss(model, val, block, batch=64):
    """Mean loss over the whole of val in non-overlapping windows of block characters
    (the last, shorter one included), each predicted from its own start."""
    total, count = 0.0, 0
    n = len(val) - 1
    starts = list(range(0, n, block))
    full = [s for s in starts if s + block <= n]
    for i in range(0, len(full), batch):
        idx = torch.tensor(full[i:i + batch])
        off = torch.arange(block)
        x, y = val[idx[:, None] + off], val[idx[:, None] + off + 1]
        total += F.cross_entropy(model(x).view(-1, model.head.weight.shape[0]), y.view(-1), reduction="sum").item()
        count += y.numel()
    rest = [s for s in starts if s + block > n]
    for s in rest:
        x, y = val[s:n].view(1, -1), val[s + 1:n + 1].view(1, -1)
        total += F.cross_entropy(model(x)[0], y[0], reduction="sum").item()
        count += y.numel()
    return total / count


def train_nanogpt(train, val, vocab, a, log):
    torch.manual_seed(1337)
    B, T = 12, 64
    m = GPT(vocab, 128, 4, 4, T)
    decay = [p for n, p in m.named_parameters() if p.dim() >= 2]
    other = [p for n, p in m.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99), foreach=True)
    g = torch.Generator().manual_seed(1337)

    def batch(data):
        ix = torch.randint(len(data) - T, (B,), generator=g)
        off = torch.arange(T)
        return data[ix[:, None] + off], data[ix[:, None] + off + 1]

    # The windows retnet train validates on (cli/train.c validation_loss): the
    # first 20 batches of 12 consecutive windows of 64 of the validation split.
    starts = torch.arange(20 * B) * T
    starts = starts[starts + T < len(val)]
    off = torch.arange(T)
    vx, vy = val[starts[:, None] + off], val[starts[:, None] + off + 1]

    @torch.inference_mode()
    def estimate():
        m.eval()
        total = sum(F.cross_entropy(m(vx[i:i + B]).view(-1, vocab), vy[i:i + B].reshape(-1), reduction="sum").item()
                    for i in range(0, len(vx), B))
        m.train()
        return total / vy.numel()

    t0, c0 = time.perf_counter(), time.process_time()
    for it in range(a.iters + 1):
        if it % a.eval_every == 0 or it == a.iters:
            v = estimate()
            log.append((time.perf_counter() - t0, it, v, time.process_time() - c0))
        if it == a.iters:
            break
        for pg in opt.param_groups:
            pg["lr"] = nanogpt_lr(it, a.iters)
        x, y = batch(train)
        loss = F.cross_entropy(m(x).view(-1, vocab), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
    wall = time.perf_counter() - t0
    return m, wall, time.process_time() - c0


# RetNet's learning rate and warm-up (the docstring says how they were chosen).
RETNET_RECIPE = ["--lr", "2e-3", "--warmup", "20"]


def train_retnet(a, data, out, log):
    cmd = [a.retnet, "train", "--data", data, "--out", out, "--preset", "torchscale", "--dim", "128", "--layers", "4",
           "--heads", "4", "--value-dim", "256", "--ffn", "256", "--seq", "64", "--batch", "12",
           "--steps", str(a.iters)] + RETNET_RECIPE + ["--val-frac", "0.1", "--threads", str(a.threads),
           "--eval-every", str(a.eval_every), "--eval-batches", "20", "--ckpt-every", str(a.iters),
           "--log-every", str(a.iters), "--seed", "1"] + a.retnet_args
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    tail, cpu = [], 0.0
    for line in p.stderr:
        tail = (tail + [line])[-5:]
        cpu = cpu_seconds(p.pid, cpu)
        mm = re.match(r"step (\d+): val loss ([\d.]+)", line)
        if mm:
            log.append((time.perf_counter() - t0, int(mm.group(1)), float(mm.group(2)), cpu))
    if p.wait() != 0:
        sys.exit("nanogpt_side_by_side: retnet train failed: " + "".join(tail).strip())
    return time.perf_counter() - t0, cpu


def cpu_seconds(pid, last):
    """CPU seconds (user + system, all threads) of a running process, from /proc (last
    when it cannot be read)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return last


def retnet_eval(a, model, val_file):
    p = subprocess.run([a.retnet, "eval", "--model", model, "--data", val_file, "--window", "64", "--threads",
                        str(a.threads), "--quiet"], capture_output=True, text=True, errors="replace")
    mm = re.search(r"loss:\s+([\d.]+)", p.stdout)
    if p.returncode != 0 or not mm:
        sys.exit("nanogpt_side_by_side: retnet eval failed: " + (p.stdout + p.stderr).strip()[-400:])
    return float(mm.group(1))


def first_reach(log, target, cpu=False):
    """Seconds into training (wall, or with cpu the process's CPU seconds) of the first
    logged validation loss <= target (None: never)."""
    for t, _, v, c in log:
        if v <= target:
            return c if cpu else t
    return None


def fmt_reach(t, wall):
    return "never" if t is None else "%.0f s (%.2f of its wall time)" % (t, t / wall)


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(root, "data", "brown.txt"),
                    help="the text (tinyshakespeare's input.txt for nanoGPT's baseline; default: the demo corpus)")
    ap.add_argument("--retnet", default=os.path.join(root, "build", "retnet"), help="the retnet binary")
    ap.add_argument("--iters", type=int, default=2000, help="training iterations of each (nanoGPT: 2000)")
    ap.add_argument("--eval-every", type=int, default=100, help="iterations between logged validation losses (both)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-torch", action="store_true", help="run retnet only (recipe tuning)")
    ap.add_argument("retnet_args", nargs="*", help="extra flags for retnet train, after --")
    a = ap.parse_args()
    if not os.access(a.retnet, os.X_OK):
        sys.exit("nanogpt_side_by_side: %s is not an executable (run make first)" % a.retnet)
    if a.iters < 1 or a.eval_every < 1 or a.threads < 1:
        sys.exit("nanogpt_side_by_side: --iters, --eval-every and --threads must be positive")
    try:
        with open(a.data, "rb") as f:
            raw = f.read()
    except OSError as e:
        sys.exit("nanogpt_side_by_side: cannot read %s: %s" % (a.data, e.strerror))
    n_val = int(math.floor(len(raw) * 0.1 + 0.5))  # as retnet's --val-frac 0.1 (src/data.c)
    if len(raw) - n_val < 1000 or n_val < 1000:
        sys.exit("nanogpt_side_by_side: %s is too short (%d bytes)" % (a.data, len(raw)))
    torch.set_num_threads(a.threads)
    chars = sorted(set(raw))  # nanoGPT's vocabulary: the file's distinct characters (bytes here)
    stoi = torch.full((256,), -1, dtype=torch.long)
    stoi[torch.tensor(chars)] = torch.arange(len(chars))
    data = stoi[torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()]
    train, val = data[:len(raw) - n_val], data[len(raw) - n_val:]
    tokens = a.iters * 12 * 64
    print("data: %s, %d bytes (train %d, validation the last %d); vocabulary %d characters (GPT), 256 bytes (retnet)"
          % (a.data, len(raw), len(train), n_val, len(chars)))
    print("threads %d each; PyTorch %s; %s; %d iterations of 12 x 64 tokens; load average %s on %d CPUs\n"
          % (a.threads, torch.__version__, BLAS_LINE, a.iters, load_average(), os.cpu_count()))
    with tempfile.TemporaryDirectory(prefix="retnet-nanogpt-") as tmp:
        val_file = os.path.join(tmp, "val.txt")
        with open(val_file, "wb") as f:
            f.write(raw[len(raw) - n_val:])
        out = os.path.join(tmp, "run")
        rlog = []
        r_wall, r_cpu = train_retnet(a, a.data, out, rlog)
        r_loss = retnet_eval(a, os.path.join(out, "model.safetensors"), val_file)
        rows = [("retnet (RetNet)", r_wall, r_cpu, r_loss, rlog)]
        if not a.skip_torch:
            glog = []
            model, g_wall, g_cpu = train_nanogpt(train, val, len(chars), a, glog)
            rows.insert(0, ("PyTorch nanoGPT-style GPT", g_wall, g_cpu, windows_loss(model, val, 64), glog))
    print("load average at the end: %s\n" % load_average())
    print("| model | wall s | CPU s | tokens/s | val loss (nats/char, windows of 64) |")
    print("|---|---|---|---|---|")
    for name, wall, cpu, loss, _ in rows:
        print("| %s | %.1f | %.1f | %.0f | %.4f |" % (name, wall, cpu, tokens / wall, loss))
    print("\nlogged validation losses (seconds into training, iteration, loss on the first 240 windows of 64):")
    for name, _, _, _, log in rows:
        print("  %s: %s" % (name, ", ".join("%.0fs/%d/%.3f" % e[:3] for e in log)))
    if len(rows) == 2:
        (gn, gw, gc, gl, glog), (rn, rw, rc, rl, rlog) = rows
        g_last, r_last = glog[-1][2], rlog[-1][2]
        tr, trc = first_reach(rlog, g_last), first_reach(rlog, g_last, cpu=True)
        print("\nretnet first reached the GPT's last logged loss %.4f at %s; that time / the GPT's wall time: %s"
              % (g_last, fmt_reach(tr, rw), "-" if tr is None else "%.2f" % (tr / gw)))
        # A loaded machine's time slicing moves wall times; CPU seconds less so.
        print("in CPU seconds (all threads): at %s; / the GPT's CPU seconds: %s"
              % ("never" if trc is None else "%.0f s" % trc, "-" if trc is None else "%.2f" % (trc / gc)))
        print("the GPT first reached retnet's last logged loss %.4f at %s" % (r_last, fmt_reach(first_reach(glog, r_last), gw)))

if __name__ == "__main__":
    main()
