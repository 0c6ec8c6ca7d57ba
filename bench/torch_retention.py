#!/usr/bin/python3
"""retnet.torch.retention against a plain PyTorch chunkwise retention, on the same CPU.

Times forward + backward of multi-scale retention (the same function, same
chunk length, same threads) both ways and prints the ratio
plain-PyTorch time / retnet time (above 1: retnet is faster). Checks first
that both give the same output and gradients.

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


def timed(fn, reps):
    fn()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
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
    ap.add_argument("--reps", type=int, default=5)
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
    plain = run(lambda: torch_chunkwise(q, k, v, gammas, a.chunk))
    o1 = ours().detach()
    g1 = [t.grad.clone() for t in (q, k, v)]
    o2 = plain().detach()
    g2 = [t.grad.clone() for t in (q, k, v)]
    rel = max(float((x - y).abs().max() / y.abs().max()) for x, y in zip([o1] + g1, [o2] + g2))
    t_ours, t_plain = timed(ours, a.reps), timed(plain, a.reps)
    print(f"retention forward+backward, B={a.B} H={a.H} T={a.T} K={a.K} Dv={a.Dv} chunk={a.chunk}, "
          f"{a.dtype}, {a.threads} threads (torch {torch.__version__})")
    print(f"  max relative difference (output, dq, dk, dv): {rel:.2e}")
    print(f"  retnet.torch.retention: {t_ours * 1e3:9.2f} ms")
    print(f"  plain PyTorch chunkwise: {t_plain * 1e3:8.2f} ms")
    print(f"  ratio (PyTorch / retnet): {t_plain / t_ours:.2f}")


if __name__ == "__main__":
    main()
