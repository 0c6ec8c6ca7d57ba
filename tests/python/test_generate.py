"""Generation and scoring: equal to `retnet generate` and `retnet eval`."""

import codecs
import re

import numpy as np
import pytest

import retnet
from conftest import cli


def cli_generate(model, prompt, n, **kw):
    """The bytes `retnet generate` samples (its stdout is the prompt, them, and a newline)."""
    args = ["generate", "--model", model, "--prompt", prompt, "-n", n]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", v]
    out = cli(*args).stdout
    p = prompt.encode()
    assert out.startswith(p) and out.endswith(b"\n")
    return out[len(p):-1]


@pytest.mark.parametrize("preset", retnet.PRESETS)
@pytest.mark.parametrize("kw", [dict(seed=1), dict(seed=42, temperature=1.3), dict(seed=7, top_k=5),
                                dict(seed=3, top_p=0.5, temperature=0.7), dict(temperature=0),
                                dict(seed=9, chunk=3)])
def test_generate_equals_cli(models, preset, kw):
    m = retnet.Model.load(models[preset])
    prompt = "The quick brown f\u00f6x "
    want = cli_generate(models[preset], prompt, 60, **kw)
    ids = list(m.generate_tokens(prompt, max_tokens=60, **kw))
    assert bytes(ids) == want
    pieces = list(m.generate(prompt, max_tokens=60, **kw))
    # incomplete UTF-8 is held back: the pieces are the incremental decoding of the bytes
    assert "".join(pieces) == want.decode("utf-8", "replace")
    assert all(pieces)
    assert m.complete(prompt, max_tokens=60, **kw) == "".join(pieces)


def test_generate_token_prompt(models):
    m = retnet.Model.load(models["torchscale"])
    a = list(m.generate_tokens([84, 104, 101], max_tokens=10, seed=4))
    b = list(m.generate_tokens("The", max_tokens=10, seed=4))
    assert a == b and len(a) == 10


def test_generate_holds_back_incomplete_utf8():
    """A character split across byte tokens comes out whole, in one piece."""
    dec = codecs.getincrementaldecoder("utf-8")("replace")
    data = "h\u00e9\u20ac\U0001F600!".encode()
    pieces = [dec.decode(bytes([b])) for b in data]
    assert [p for p in pieces if p] == ["h", "\u00e9", "\u20ac", "\U0001F600", "!"]


def test_generate_stop(models):
    m = retnet.Model.load(models["seed"])
    full = m.complete("abc", max_tokens=80, temperature=0, tokenizer=retnet.Tokenizer.byte())
    text = full.encode("utf-8", "replace").decode("utf-8", "replace")
    # a stop string taken from the middle of the text: generation ends right before it
    stop = text[20:23]
    got = m.complete("abc", max_tokens=80, temperature=0, stop=stop)
    assert got == text[:text.find(stop)]
    assert stop not in got
    got2 = m.complete("abc", max_tokens=80, temperature=0, stop=["\x00never\x00", stop])
    assert got2 == got
    # pieces never contain a partial stop string that then completes
    assert "".join(m.generate("abc", max_tokens=80, temperature=0, stop="\x00zz")) == text


def test_session(models):
    m = retnet.Model.load(models["fla"])
    s = retnet.Session(m, temperature=0, seed=1, chunk=8)
    assert s.logits is None
    x = np.arange(20, dtype=np.int32)
    s.prefill(x)
    assert s.pos == 20
    np.testing.assert_allclose(s.logits, m.logits(x)[-1], rtol=1e-5, atol=1e-5)
    t = s.step()
    assert t == int(np.argmax(m.logits(x)[-1]))
    s.feed(3)
    assert s.pos == 22
    s.reset()
    assert s.pos == 0


# ------------------------------------------------------------------ score

def cli_eval(model, data, *args):
    out = cli("eval", "--model", model, "--data", data, "--quiet", *args).stdout.decode()
    loss = float(re.search(r"loss:\s+([0-9.]+)", out).group(1))
    bpb = float(re.search(r"bits/byte:\s+([0-9.]+)", out).group(1))
    n = int(re.search(r"tokens:\s+([0-9]+)", out).group(1))
    return loss, bpb, n


@pytest.mark.parametrize("args,kw", [([], {}), (["--chunk", "7"], dict(chunk=7)),
                                     (["--window", "300", "--segment", "128"], dict(window=300, segment=128))])
def test_score_equals_cli_eval(models, corpus, args, kw):
    m = retnet.Model.load(models["torchscale"])
    text = open(corpus, "rb").read()
    r = m.score(text, **kw)
    loss, bpb, n = cli_eval(models["torchscale"], corpus, *args)
    assert r.tokens == n == len(text) - 1
    assert f"{r.loss:.6f}" == f"{loss:.6f}" and f"{r.bits_per_byte:.6f}" == f"{bpb:.6f}"
    assert r.perplexity == pytest.approx(np.exp(r.loss))


def test_score_tokens_and_state(models, tokens):
    m = retnet.Model.load(models["seed"])
    r = m.score(tokens)
    lg = m.logits(tokens, mode="parallel").astype(np.float64)
    lse = np.log(np.exp(lg - lg.max(1, keepdims=True)).sum(1)) + lg.max(1)
    nll = (lse[:-1] - lg[np.arange(len(tokens) - 1), tokens[1:]]).sum()
    assert r.tokens == len(tokens) - 1
    assert r.nll == pytest.approx(nll, rel=1e-5)
    assert r.bits_per_byte == pytest.approx(r.loss / np.log(2))
    # continuing from a state: the rest scored with the first 20 tokens as context
    s = m.state()
    m.logits(tokens[:20], state=s)
    r2 = m.score(tokens[20:], state=s)
    want = (lse[20:-1] - lg[np.arange(20, len(tokens) - 1), tokens[21:]]).sum()
    assert r2.tokens == len(tokens) - 21 and s.pos == len(tokens) - 1
    assert r2.nll == pytest.approx(want, rel=1e-5)
