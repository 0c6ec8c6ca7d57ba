"""retnet.torch.retention: the library's forward and backward as a torch.autograd.Function."""

import pytest

torch = pytest.importorskip("torch")

import retnet  # noqa: E402
from retnet.torch import retention  # noqa: E402

MODES = [("parallel", 64), ("chunkwise", 4), ("chunkwise", 5), ("recurrent", 64)]


def reference(q, k, v, gammas):
    """Parallel retention in plain PyTorch: ((q k^T) * D) v, D[n, m] = gamma^(n-m) for m <= n."""
    T = q.shape[-2]
    n = torch.arange(T, dtype=torch.float64)
    diff = n.view(-1, 1) - n.view(1, -1)
    g = torch.as_tensor(gammas, dtype=torch.float64).view(-1, 1, 1)
    D = torch.where(diff >= 0, g ** diff.clamp(min=0), torch.zeros(()))
    return (q @ k.transpose(-1, -2) * D.to(q.dtype)) @ v


def inputs(dtype, B=2, H=3, T=13, K=4, Dv=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, T, s, dtype=dtype, generator=g).requires_grad_() for s in (K, K, Dv)]


GAMMAS = [0.9, 0.5, 1.0]


@pytest.mark.parametrize("mode,chunk", MODES)
def test_gradcheck_float64(mode, chunk):
    q, k, v = inputs(torch.float64)
    assert torch.autograd.gradcheck(lambda a, b, c: retention(a, b, c, GAMMAS, mode=mode, chunk=chunk), (q, k, v))


@pytest.mark.parametrize("mode,chunk", MODES)
def test_forward_and_gradients_equal_plain_pytorch(mode, chunk):
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        q, k, v = inputs(dtype)
        o = retention(q, k, v, torch.tensor(GAMMAS, dtype=torch.float64), mode=mode, chunk=chunk)
        assert o.dtype == dtype and o.shape == (2, 3, 13, 5)
        w = torch.randn_like(o)
        grads = torch.autograd.grad((o * w).sum(), (q, k, v))
        q2, k2, v2 = [t.detach().double().requires_grad_() for t in (q, k, v)]
        o2 = reference(q2, k2, v2, GAMMAS)
        grads2 = torch.autograd.grad((o2 * w.double()).sum(), (q2, k2, v2))
        for a, b in zip((o, *grads), (o2, *grads2)):
            assert float((a.double() - b).abs().max()) <= tol * max(1.0, float(b.abs().max()))


def test_modes_agree_and_chunkwise_is_the_library_order():
    q, k, v = inputs(torch.float32, T=40, K=8, Dv=8)
    outs = [retention(q, k, v, GAMMAS, mode=m, chunk=c) for m, c in MODES]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0], rtol=1e-5, atol=1e-5)
    # deterministic: the same call twice is bit for bit the same
    assert torch.equal(retention(q, k, v, GAMMAS, chunk=4), outs[1])


def test_unbatched_and_non_contiguous():
    q, k, v = inputs(torch.float64, B=1)
    o = retention(q[0], k[0], v[0], GAMMAS)
    assert o.shape == (3, 13, 5)
    qt = q.detach().transpose(2, 3).contiguous().transpose(2, 3)  # same values, other strides
    assert not qt.is_contiguous()
    torch.testing.assert_close(retention(qt, k, v, GAMMAS)[0], o)


def test_in_a_module_with_an_optimiser():
    """A PyTorch model using the library's retention trains."""
    torch.manual_seed(0)
    proj = torch.nn.Linear(8, 3 * 2 * 4)
    opt = torch.optim.Adam(proj.parameters(), lr=1e-2)
    x = torch.randn(4, 16, 8)
    target = torch.randn(4, 2, 16, 4)
    losses = []
    for _ in range(30):
        qkv = proj(x).view(4, 16, 3, 2, 4).permute(2, 0, 3, 1, 4)
        o = retention(qkv[0], qkv[1], qkv[2], [0.9, 0.7], mode="chunkwise", chunk=4)
        loss = ((o - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_errors():
    q, k, v = inputs(torch.float64)
    with pytest.raises(retnet.ArgumentError, match="gamma of head 1 is 1.5"):
        retention(q, k, v, [0.9, 1.5, 0.5])
    with pytest.raises(retnet.ArgumentError, match="one value per head"):
        retention(q, k, v, [0.9])
    with pytest.raises(retnet.ArgumentError, match="chunk must be >= 1"):
        retention(q, k, v, GAMMAS, mode="chunkwise", chunk=0)
    with pytest.raises(retnet.ArgumentError, match="unknown mode"):
        retention(q, k, v, GAMMAS, mode="sideways")
    with pytest.raises(retnet.ArgumentError, match="float32 or float64"):
        retention(q.half(), k.half(), v.half(), GAMMAS)
    with pytest.raises(retnet.ArgumentError, match="one dtype"):
        retention(q.float(), k, v, GAMMAS)
    with pytest.raises(retnet.ArgumentError, match=r"\(B, H, T, K\)"):
        retention(q, k[:, :, :5], v, GAMMAS)
