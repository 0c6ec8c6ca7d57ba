"""Models: logits equal the CLI's bit for bit, states carried across calls, files."""

import filecmp

import numpy as np
import pytest

import retnet
from conftest import DIMS, cli

PRESETS = retnet.PRESETS


def cli_logits(model, toks, tmp_path, mode, chunk=16, abs_norm=False):
    out = tmp_path / f"l-{mode}-{chunk}-{abs_norm}.npy"
    args = ["logits", "--model", model, "--tokens", ",".join(map(str, toks)), "--mode", mode, "--chunk", chunk,
            "--out", out]
    cli(*args, *(["--abs-norm"] if abs_norm else []))
    return np.load(out)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("mode", ["parallel", "chunkwise", "recurrent"])
def test_logits_equal_cli(models, tokens, tmp_path, preset, mode):
    m = retnet.Model.load(models[preset])
    ours = m.logits(tokens, mode=mode, chunk=16)
    theirs = cli_logits(models[preset], tokens, tmp_path, mode)
    assert ours.dtype == np.float32 and ours.shape == (len(tokens), 256)
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32)), "logits differ from retnet logits"


def test_logits_abs_norm_equal_cli(models, tokens, tmp_path):
    m = retnet.Model.load(models["torchscale"])
    ours = m.logits(tokens, mode="parallel", abs_norm=True)
    theirs = cli_logits(models["torchscale"], tokens, tmp_path, "parallel", abs_norm=True)
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))


@pytest.mark.parametrize("dtype", ["bf16", "f16"])
def test_logits_of_converted_files_equal_cli(models, tokens, tmp_path, dtype):
    """A model saved from Python in another format and weight type is the file `retnet
    convert` writes, and loads to the same logits as the CLI's."""
    src = models["fla"]
    ours, theirs = tmp_path / "py-fla", tmp_path / "cli-fla"
    retnet.Model.load(src).save(str(ours), format="fla", dtype=dtype)
    cli("convert", "--in", src, "--out", theirs, "--to", "fla", "--dtype", dtype)
    for name in ("model.safetensors", "config.json"):
        assert filecmp.cmp(ours / name, theirs / name, shallow=False), name
    m = retnet.Model.load(str(ours))
    assert m.format == "fla"
    a = m.logits(tokens, mode="chunkwise", chunk=16)
    b = cli_logits(str(theirs), tokens, tmp_path, "chunkwise")
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("fmt", retnet.FORMATS)
def test_save_equals_cli_convert(models, tmp_path, fmt):
    preset = {"torchscale-hf": "torchscale", "retnet": "seed"}.get(fmt, fmt)
    src = models[preset]
    ours, theirs = tmp_path / "py.safetensors", tmp_path / "cli.safetensors"
    retnet.Model.load(src).save(str(ours), format=fmt)
    cli("convert", "--in", src, "--out", theirs, "--to", fmt)
    assert filecmp.cmp(ours, theirs, shallow=False)
    assert retnet.Model.load(str(ours)).format == fmt


@pytest.mark.parametrize("preset", PRESETS)
def test_init_equals_cli_init(models, tmp_path, preset):
    m = retnet.Model.init(preset, seed=5, **DIMS)
    m.save(str(tmp_path / "m.safetensors"))
    assert filecmp.cmp(tmp_path / "m.safetensors", models[preset], shallow=False)


@pytest.mark.parametrize("kw,args", [
    (dict(), []),
    (dict(size="small"), ["--size", "small"]),
    (dict(preset="seed", dim=48, heads=3), ["--preset", "seed", "--dim", "48", "--heads", "3"]),
    (dict(preset="fla", dim=64, value_dim=96, ffn_dim=80, layers=1), ["--preset", "fla", "--dim", "64",
                                                                     "--value-dim", "96", "--ffn", "80",
                                                                     "--layers", "1"]),
])
def test_init_sizes_equal_cli(tmp_path, kw, args):
    m = retnet.Model.init(seed=2, **kw)
    m.save(str(tmp_path / "py.safetensors"))
    cli("init", *args, "--seed", 2, "--out", tmp_path / "cli.safetensors")
    assert filecmp.cmp(tmp_path / "py.safetensors", tmp_path / "cli.safetensors", shallow=False)


def test_config_and_params(models):
    m = retnet.Model.load(models["torchscale"])
    c = m.config
    got = (c.preset, c.dim, c.layers, c.heads, c.vocab, c.value_dim, c.ffn_dim)
    assert got == ("torchscale", 32, 2, 2, 256, 64, 64)
    assert isinstance(c, retnet.Config) and c.num_params == m.num_params
    assert retnet.Config.from_json(c.to_json()) == c
    tiny = retnet.Config.preset_config("fla", "tiny")
    assert tiny.preset == "fla" and tiny == retnet.Model.config_for("fla", "tiny") and tiny.num_params > 0
    info = cli("info", "--model", models["torchscale"]).stdout.decode()
    assert f"parameters: {m.num_params} " in info
    p = m.params
    assert p.shape == (m.num_params,) and p.dtype == np.float32
    assert np.shares_memory(p, m.params)  # a view of the model, not a copy
    x = np.arange(10, dtype=np.int32)
    before = m.logits(x)
    p[:] = 0  # writes through
    assert not np.array_equal(before, m.logits(x))
    m2 = retnet.Model.create(c)
    assert not m2.params.any()  # zeroed


def test_params_keep_model_alive(models):
    p = retnet.Model.load(models["seed"]).params
    assert np.isfinite(p).all() and p.any()


# ------------------------------------------------------------------ states

@pytest.mark.parametrize("mode,chunk,cut", [("recurrent", 1, 13), ("chunkwise", 8, 16), ("chunkwise", 8, 24),
                                            ("parallel", 1, 20)])
def test_state_across_calls_equals_one_call(models, tokens, mode, chunk, cut):
    """Calls that continue from a state give the logits of one call: bit for bit where
    the evaluation order is the same (recurrent; chunkwise cut at a chunk boundary),
    to rounding otherwise (a parallel call cut in two is chunkwise with two chunks)."""
    m = retnet.Model.load(models["torchscale"])
    whole = m.logits(tokens, mode=mode, chunk=chunk)
    s = m.state()
    assert s.pos == 0
    a = m.logits(tokens[:cut], mode=mode, chunk=chunk, state=s)
    assert s.pos == cut
    b = m.logits(tokens[cut:], mode=mode, chunk=chunk, state=s)
    assert s.pos == len(tokens)
    both = np.concatenate([a, b])
    if mode == "parallel":
        np.testing.assert_allclose(both, whole, rtol=1e-5, atol=1e-5)
        ref = m.logits(tokens, mode="chunkwise", chunk=cut)
        np.testing.assert_allclose(both, ref, rtol=1e-5, atol=1e-5)
    else:
        assert np.array_equal(both.view(np.uint32), whole.view(np.uint32))


def test_paradigms_continue_each_other(models, tokens):
    m = retnet.Model.load(models["fla"])
    whole = m.logits(tokens, mode="parallel")
    s = m.state()
    parts = [m.logits(tokens[:10], mode="parallel", state=s),
             m.logits(tokens[10:11], mode="recurrent", state=s),
             m.logits(tokens[11:30], mode="chunkwise", chunk=4, state=s),
             m.logits(tokens[30:], mode="recurrent", state=s)]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-5, atol=1e-5)


def test_state_copy_branches(models, tokens):
    m = retnet.Model.load(models["seed"])
    s = m.state()
    m.logits(tokens[:20], mode="chunkwise", state=s)
    c = s.copy()
    assert c.pos == 20 and c.batch == 1
    a = m.logits(tokens[20:], mode="recurrent", state=s)
    b = m.logits(tokens[20:], mode="recurrent", state=c)
    assert np.array_equal(a, b)
    c.reset()
    assert c.pos == 0 and s.pos == len(tokens)
    assert np.array_equal(m.logits(tokens[:5], state=c), m.logits(tokens[:5]))


def test_batch_and_last_only(models, tokens):
    m = retnet.Model.load(models["torchscale"])
    x = np.stack([tokens, tokens[::-1].copy()])
    out = m.logits(x, mode="chunkwise", chunk=8)
    assert out.shape == (2, len(tokens), 256)
    for b in range(2):
        np.testing.assert_allclose(out[b], m.logits(x[b], mode="chunkwise", chunk=8), rtol=1e-5, atol=1e-5)
    last = m.logits(x, mode="chunkwise", chunk=8, last_only=True)
    assert last.shape == (2, 256)
    np.testing.assert_allclose(last, out[:, -1], rtol=1e-5, atol=1e-5)
    s = m.state(batch=2)
    m.logits(x[:, :5], state=s)
    assert s.batch == 2 and s.pos == 5


def test_zero_copy_in_and_out(models, tokens):
    m = retnet.Model.load(models["torchscale"])
    out = np.empty((len(tokens), 256), np.float32)
    r = m.logits(tokens, out=out)
    assert r is out
    assert np.array_equal(out, m.logits(tokens))
    assert retnet._lib.as_tokens(tokens) is tokens  # an int32 contiguous array is passed as is
    # any integer sequence works (converted)
    assert np.array_equal(m.logits(list(map(int, tokens))), out)
