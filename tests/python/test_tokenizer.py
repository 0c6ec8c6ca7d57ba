"""Tokenizers: the byte tokenizer, and the binding of the trained-tokenizer functions
(checked against a fake of them until the tokenizer work lands)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import retnet
from conftest import ROOT


def test_byte_tokenizer():
    tok = retnet.Tokenizer.byte()
    assert tok.vocab_size == 256 and tok.name == "byte"
    text = "h\u00e9llo \U0001F600"
    ids = tok.encode(text)
    assert ids.dtype == np.int32 and list(ids) == list(text.encode())
    assert tok.decode(ids) == text and tok.decode_bytes(ids) == text.encode()
    assert tok.encode(b"\xff\x00").tolist() == [255, 0]
    assert tok.decode([0xC3]) == "\ufffd"  # invalid UTF-8 replaced
    assert tok.piece(65) == b"A"
    assert len(tok.encode("")) == 0
    if not retnet.Tokenizer.available():
        assert tok.bos is None and tok.eos is None
        with pytest.raises(retnet.ArgumentError, match="special"):
            tok.encode("a", add_special=True)


FAKE_CHECKS = r"""
import sys
sys.path.insert(0, {py!r})
import numpy as np, retnet
assert retnet.Tokenizer.available()
tok = retnet.Tokenizer.load({path!r})
assert (tok.bos, tok.eos) == (1, 2)
assert tok.encode("ab", add_special=True).tolist() == [1, 97, 98]
assert tok.encode("ab").tolist() == [97, 98]
assert tok.decode([1, 97, 98, 2], skip_special=True) == "ab"
assert tok.decode_bytes([1, 97]) == b"\x01a"
long = "x\u00e9" * 5000
assert tok.decode(tok.encode(long)) == long
try:
    retnet.Tokenizer.load({path!r} + ".missing")
    raise SystemExit("no error")
except retnet.FileError:
    pass
# generation ends at the tokenizer's EOS (here: the id greedy decoding samples third)
m = retnet.Model.init(dim=32, heads=2, seed=1)
full = list(m.generate_tokens("ab", max_tokens=12, temperature=0))
import os
os.environ["FAKE_EOS"] = str(full[2])
cut = list(m.generate_tokens("ab", max_tokens=12, temperature=0, tokenizer=tok))
assert cut == full[:full.index(full[2])], (cut, full)
assert list(m.generate_tokens("ab", max_tokens=12, temperature=0, tokenizer=tok, stop_at_eos=False)) == full
assert "".join(m.generate("ab", max_tokens=12, temperature=0, tokenizer=tok)) == tok.decode(cut)
print("ok", retnet.library_path())
"""


def test_trained_tokenizer_binding(tmp_path):
    """With a library that has rn_tokenizer_load & co (here a fake linked to
    libretnet.so), Tokenizer.load, encode(add_special), decode(skip_special), bos
    and eos use them."""
    so = tmp_path / "libfake.so"
    real = os.path.realpath(retnet.library_path())
    # libretnet.so may carry a versioned soname (libretnet.so.0): the fake needs it by that name
    dyn = subprocess.run(["readelf", "-d", real], capture_output=True).stdout.decode()
    m = re.search(r"SONAME.*\[(.+)\]", dyn)
    soname = m.group(1) if m else "libretnet.so"
    os.symlink(real, tmp_path / soname)
    cc = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-I", os.path.join(ROOT, "include"), "-o", str(so),
                         os.path.join(os.path.dirname(__file__), "fake_tokenizer.c"), str(tmp_path / soname),
                         f"-Wl,-rpath,{tmp_path}"], capture_output=True)
    if cc.returncode != 0:
        pytest.skip(f"cannot build the fake tokenizer library: {cc.stderr.decode()[-300:]}")
    (tmp_path / "tok.json").write_text("{}")
    code = FAKE_CHECKS.format(py=os.path.join(ROOT, "python"), path=str(tmp_path / "tok.json"))
    env = dict(os.environ, RETNET_LIB=str(so))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert p.stdout.decode().startswith("ok " + str(so))
