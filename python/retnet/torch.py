"""The library's multi-scale retention as a PyTorch autograd function (CPU).

    from retnet.torch import retention
    o = retention(q, k, v, gammas, mode="chunkwise", chunk=64)   # q, k (B, H, T, K); v (B, H, T, Dv)
    o.sum().backward()

For each stream b and head h, from a zero state,

    o[b, h, n] = sum_{m <= n} (q[b, h, n] . k[b, h, m]) gammas[h] ** (n - m) v[b, h, m]

(no rotation, scaling or normalisation: the caller's model does those). The
forward is rn_retention_forward, the backward rn_retention_backward: the same
kernels the library's models train with. float32 tensors run in libretnet.so,
float64 ones in libretnet64.so (the library built with -DRETNET_DOUBLE), so
``torch.autograd.gradcheck`` can check the gradients in float64. mode is the
evaluation order ("parallel", "chunkwise", "recurrent"); they agree to
rounding. gammas get no gradient. Tensors are passed to C without a copy when
they are contiguous.
"""

from __future__ import annotations

import ctypes
from typing import Sequence, Union

import numpy as np
import torch

from . import _lib
from .errors import ArgumentError
from .model import mode_id

__all__ = ["retention", "Retention"]


def _ptr(t: torch.Tensor, L: _lib.Library):
    return ctypes.cast(ctypes.c_void_p(t.data_ptr()), L.real_p)


def _library(dtype: torch.dtype) -> _lib.Library:
    if dtype == torch.float32:
        return _lib.lib(False)
    if dtype == torch.float64:
        return _lib.lib(True)
    raise ArgumentError(f"retention: float32 or float64 tensors, got {dtype}")


def _gammas(gammas, H: int) -> np.ndarray:
    g = gammas.detach().cpu().double().numpy() if isinstance(gammas, torch.Tensor) else np.asarray(gammas, float)
    g = np.ascontiguousarray(g, dtype=np.float64).ravel()
    if g.shape != (H,):
        raise ArgumentError(f"retention: gammas must have one value per head ({H}), got {g.shape[0]}")
    return g


class Retention(torch.autograd.Function):
    """autograd.Function over rn_retention_forward / rn_retention_backward."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gammas, mode: str = "chunkwise",
                chunk: int = 64) -> torch.Tensor:
        if q.dim() != 4 or k.shape != q.shape or v.dim() != 4 or v.shape[:3] != q.shape[:3]:
            raise ArgumentError(f"retention: q, k (B, H, T, K) and v (B, H, T, Dv), got {tuple(q.shape)}, "
                                f"{tuple(k.shape)}, {tuple(v.shape)}")
        if not (q.dtype == k.dtype == v.dtype):
            raise ArgumentError("retention: q, k and v must have one dtype")
        if q.device.type != "cpu" or k.device.type != "cpu" or v.device.type != "cpu":
            raise ArgumentError("retention: CPU tensors only")
        L = _library(q.dtype)
        B, H, T, K = q.shape
        Dv = v.shape[3]
        g = _gammas(gammas, H)
        m = mode_id(mode)
        q, k, v = q.detach().contiguous(), k.detach().contiguous(), v.detach().contiguous()
        o = torch.empty((B, H, T, Dv), dtype=q.dtype)
        L.call(L.rn_retention_forward, B, H, T, K, Dv, _ptr(q, L), _ptr(k, L), _ptr(v, L),
               g.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), m, int(chunk), _ptr(o, L))
        ctx.save_for_backward(q, k, v)
        ctx.g, ctx.mode, ctx.chunk = g, m, int(chunk)
        return o

    @staticmethod
    def backward(ctx, do: torch.Tensor):
        q, k, v = ctx.saved_tensors
        L = _library(q.dtype)
        B, H, T, K = q.shape
        Dv = v.shape[3]
        do = do.detach().to(q.dtype).contiguous()
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        L.call(L.rn_retention_backward, B, H, T, K, Dv, _ptr(q, L), _ptr(k, L), _ptr(v, L),
               ctx.g.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), ctx.mode, ctx.chunk, _ptr(do, L),
               _ptr(dq, L), _ptr(dk, L), _ptr(dv, L))
        return dq, dk, dv, None, None, None


def retention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              gammas: Union[torch.Tensor, Sequence[float]], mode: str = "chunkwise",
              chunk: int = 64) -> torch.Tensor:
    """Multi-scale retention of q, k (B, H, T, K) and v (B, H, T, Dv) with per-head
    decays gammas (H) in (0, 1]: o (B, H, T, Dv). (H, T, K) inputs (no batch) work too."""
    if q.dim() == 3:
        return Retention.apply(q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0), gammas, mode, chunk).squeeze(0)
    return Retention.apply(q, k, v, gammas, mode, chunk)
