#!/usr/bin/python3
"""retnet.torch.retention against a plain PyTorch chunkwise retention, on the same CPU.

Times forward + backward of multi-scale retention (the same function, same
chunk length, same threads) with the library's kernels and with two plain
PyTorch chunkwise forms (a loop over chunks; every chunk batched, no loop),
and prints the ratio fastest-plain-PyTorch time / retnet time (above 1:
retnet is faster). Checks first that all give the same output and gradients.

    PYTHONPATH=python /usr/bin/python3 bench/torch_retention.py [--B 4 --H 4 --T 1024 --K 64 --Dv 128
                                                                 --chunk 64 --threads 2 --dtype float32]
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import retnet  # noqa: E402
from retnet.torch import retention  # noqa: E402


def torch_chunkwise(q, k, v, gammas, chunk):
    """Chunkwise retention in plain PyTorch (the RetNet paper's chunkwise form), from a zero state."""
    B, H, T, K = q.shape
    Dv = v.shape[-1]
    lg = torch.log(gammas.to(q.dtype)).view(1, H, 1, 1)
    out = []
    U = q.new_zeros(B, H, K, Dv)
    for t0 in range(0, T, chunk):
        L = min(chunk, T - t0)
        qc, kc, vc = q[:, :, t0:t0 + L], k[:, :, t0:t0 + L], v[:, :, t0:t0 + L]
        i = torch.arange(L, dtype=q.dtype)
        diff = i.view(-1, 1) - i.view(1, -1)
        mask = torch.exp(lg * diff.clamp(min=0)) * (diff >= 0)                     # (1, H, L, L)
        inner = (qc @ kc.transpose(-1, -2) * mask) @ vc
        cross = (qc * torch.exp(lg * (i + 1).view(1, 1, -1, 1))) @ U               # gamma^(i+1) q_i U
        out.append(inner + cross)
        kd = kc * torch.exp(lg * (L - 1 - i).view(1, 1, -1, 1))                    # gamma^(L-1-i) k_i
        U = torch.exp(lg * L) * U + kd.transpose(-1, -2) @ vc
    return torch.cat(out, dim=2)


def torch_chunkwise_batched(q, k, v, gammas, chunk):
    """The same, with every chunk's products batched (torchscale's chunk_forward layout)
    and the states entering the chunks as one product with a chunk-decay matrix: no
    Python loop. T must be a multiple of chunk."""
    B, H, T, K = q.shape
    Dv, C = v.shape[-1], chunk
    nc = T // C
    lg = torch.log(gammas.to(q.dtype)).view(1, H, 1, 1, 1)
    qc, kc, vc = q.view(B, H, nc, C, K), k.view(B, H, nc, C, K), v.view(B, H, nc, C, Dv)
    i = torch.arange(C, dtype=q.dtype)
    diff = i.view(-1, 1) - i.view(1, -1)
    mask = torch.exp(lg * diff.clamp(min=0)) * (diff >= 0)                          # (1, H, 1, C, C)
    inner = (qc @ kc.transpose(-1, -2) * mask) @ vc                                 # (B, H, nc, C, Dv)
    kv = (kc * torch.exp(lg * (C - 1 - i).view(-1, 1))).transpose(-1, -2) @ vc      # (B, H, nc, K, Dv)
    c = torch.arange(nc, dtype=q.dtype)
    cd = c.view(-1, 1) - 1 - c.view(1, -1)                                          # U_c = sum_{c'<c} g^(C(c-1-c')) kv_c'
    cmask = torch.exp(lg.view(1, H, 1, 1) * C * cd.clamp(min=0)) * (cd >= 0)         # (1, H, nc, nc)
    U = (cmask @ kv.reshape(B, H, nc, K * Dv)).view(B, H, nc, K, Dv)
    cross = (qc * torch.exp(lg * (i + 1).view(-1, 1))) @ U
    return (inner + cross).reshape(B, H, T, Dv)


def measure(fns, reps):
    """Best (wall, CPU) seconds of each function, the runs interleaved so that a
    shared machine's load falls on all alike; CPU time (of this process, all its
    threads) is the steadier figure on a loaded machine."""
    for f in fns.values():
        f()  # warm-up
    best = {name: [float("inf"), float("inf")] for name in fns}
    for _ in range(reps):
        for name, f in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            f()
            w, c = time.perf_counter() - w0, time.process_time() - c0
            best[name] = [min(best[name][0], w), min(best[name][1], c)]
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--B", type=int, default=4)
    ap.add_argument("--H", type=int, default=4)
    ap.add_argument("--T", type=int, default=1024)
    ap.add_argument("--K", type=int, default=64)
    ap.add_argument("--Dv", type=int, default=128)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    retnet.set_threads(a.threads)
    dt = getattr(torch, a.dtype)
    torch.manual_seed(0)
    q = (torch.randn(a.B, a.H, a.T, a.K, dtype=dt) / a.K ** 0.5).requires_grad_()
    k = (torch.randn(a.B, a.H, a.T, a.K, dtype=dt) / a.K ** 0.5).requires_grad_()
    v = torch.randn(a.B, a.H, a.T, a.Dv, dtype=dt).requires_grad_()
    gammas = 1 - 2.0 ** (-5 - torch.arange(a.H, dtype=torch.float64))
    do = torch.randn(a.B, a.H, a.T, a.Dv, dtype=dt)

    def run(f):
        def go():
            q.grad = k.grad = v.grad = None
            o = f()
            o.backward(do)
            return o
        return go

    ours = run(lambda: retention(q, k, v, gammas, mode="chunkwise", chunk=a.chunk))
    plains = {"chunk loop": run(lambda: torch_chunkwise(q, k, v, gammas, a.chunk))}
    if a.T % a.chunk == 0:
        plains["batched chunks"] = run(lambda: torch_chunkwise_batched(q, k, v, gammas, a.chunk))
    o1 = ours().detach()
    g1 = [t.grad.clone() for t in (q, k, v)]
    rel = 0.0
    for f in plains.values():
        o2 = f().detach()
        g2 = [t.grad.clone() for t in (q, k, v)]
        rel = max(rel, max(float((x - y).abs().max() / y.abs().max()) for x, y in zip([o1] + g1, [o2] + g2)))
    best = measure({"retnet": ours, **plains}, a.reps)
    print(f"retention forward+backward, B={a.B} H={a.H} T={a.T} K={a.K} Dv={a.Dv} chunk={a.chunk}, "
          f"{a.dtype}, {a.threads} threads (torch {torch.__version__}; best of {a.reps}, interleaved)")
    print(f"  max relative difference (output, dq, dk, dv): {rel:.2e}")
    print(f"  {'':40s} {'wall ms':>9s} {'CPU ms':>9s}")
    for name, (w, c) in best.items():
        label = "retnet.torch.retention" if name == "retnet" else f"plain PyTorch chunkwise, {name}"
        print(f"  {label:40s} {w * 1e3:9.2f} {c * 1e3:9.2f}")
    fastest = min((n for n in plains), key=lambda n: best[n][0])
    print(f"  ratio (fastest plain PyTorch / retnet): wall {best[fastest][0] / best['retnet'][0]:.2f}, "
          f"CPU {min(best[n][1] for n in plains) / best['retnet'][1]:.2f}")


if __name__ == "__main__":
    main()
