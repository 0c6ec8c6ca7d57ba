"""Every error path raises a retnet.Error subclass carrying the library's message."""

import threading
import time

import numpy as np
import pytest

import retnet
from conftest import DIMS, cli


def raises(cls, fn, *needles):
    with pytest.raises(cls) as ei:
        fn()
    e = ei.value
    assert isinstance(e, retnet.Error) and str(e) == e.message and e.message
    for n in needles:
        assert n in e.message, (n, e.message)
    return e


def test_status_classes():
    names = {1: "RN_ERR_NOMEM", 2: "RN_ERR_IO", 3: "RN_ERR_FORMAT", 4: "RN_ERR_ARG", 5: "RN_ERR_NUMERIC",
             6: "RN_ERR_INTERRUPTED"}
    bases = {1: MemoryError, 2: OSError, 4: ValueError, 5: ArithmeticError}
    L = retnet._lib.lib()
    for st, name in names.items():
        cls = retnet.error_class(st)
        assert issubclass(cls, retnet.Error) and cls.status == st and cls("m").status_name == name
        assert L.rn_status_name(st).decode()  # its description
        if st in bases:
            assert issubclass(cls, bases[st])


@pytest.mark.parametrize("kind", ["missing", "garbage"])
def test_load_errors_carry_the_cli_message(tmp_path, kind):
    path = tmp_path / "m.safetensors"
    if kind == "garbage":
        path.write_bytes(b"not a safetensors file at all")
    cls = retnet.FileError if kind == "missing" else retnet.FormatError
    e = raises(cls, lambda: retnet.Model.load(str(path)), str(path))
    err = cli("info", "--model", path, check=False).stderr.decode().strip()
    assert err == f"retnet: error: {e.message}"


def test_config_errors():
    raises(retnet.ArgumentError, lambda: retnet.Model.init("nope"), "unknown preset 'nope'")
    raises(retnet.ArgumentError, lambda: retnet.Model.init(size="huge"), "unknown size 'huge'")
    raises(retnet.ArgumentError, lambda: retnet.Model.init(dim=30, heads=4), "not divisible")
    raises(retnet.ArgumentError, lambda: retnet.Config(dim=0).validate())
    raises(retnet.ArgumentError, lambda: retnet.Config(rotation="spiral").to_c(), "unknown rotation")


def test_forward_errors(models):
    m = retnet.Model.load(models["torchscale"])
    raises(retnet.ArgumentError, lambda: m.logits([1, 2], mode="sideways"), "unknown mode 'sideways'")
    raises(retnet.ArgumentError, lambda: m.logits([1, 2], mode="chunkwise", chunk=0), "chunk")
    raises(retnet.ArgumentError, lambda: m.logits([1, 300]), "token 300", "vocabulary")
    raises(retnet.ArgumentError, lambda: m.logits([1, -1]), "vocabulary")
    raises(retnet.ArgumentError, lambda: m.logits([]), "not empty")
    raises(retnet.ArgumentError, lambda: m.logits([1.5, 2]), "integers")
    raises(retnet.ArgumentError, lambda: m.logits([1, 2], state=m.state(batch=2)), "batch")
    other = retnet.Model.init(**DIMS)
    raises(retnet.ArgumentError, lambda: m.logits([1, 2], state=other.state()), "another model")
    raises(retnet.ArgumentError, lambda: m.logits([1, 2], out=np.empty((2, 5), np.float32)), "out")
    raises(retnet.ArgumentError, lambda: m.state(batch=0))
    m.close()
    raises(retnet.ArgumentError, lambda: m.logits([1, 2]), "closed")


def test_save_errors(models, tmp_path):
    m = retnet.Model.load(models["torchscale"])
    raises(retnet.FileError, lambda: m.save("/nonexistent-dir/x.safetensors"), "/nonexistent-dir/x.safetensors")
    raises(retnet.ArgumentError, lambda: m.save(str(tmp_path / "x"), format="onnx"), "unknown format 'onnx'")
    raises(retnet.ArgumentError, lambda: m.save(str(tmp_path / "x"), dtype="f8"), "unknown dtype 'f8'")
    raises(retnet.ArgumentError, lambda: m.save(str(tmp_path / "x"), format="fla"), "fla")
    m.params[3] = 1e6
    raises(retnet.ArgumentError, lambda: m.save(str(tmp_path / "x.safetensors"), dtype="f16"), "65504")


def test_generation_errors(models):
    m = retnet.Model.load(models["seed"])
    raises(retnet.ArgumentError, lambda: list(m.generate("")), "the prompt is empty")
    raises(retnet.ArgumentError, lambda: m.complete("x", top_p=0), "top-p")
    raises(retnet.ArgumentError, lambda: m.complete("x", temperature=-1), "temperature")
    small = retnet.Model.init(dim=32, heads=2, vocab=100)
    raises(retnet.ArgumentError, lambda: small.complete("x"), "vocabulary (100)")
    raises(retnet.ArgumentError, lambda: m.score([5]), "at least 2")
    raises(retnet.ArgumentError, lambda: m.score([5, 999]), "vocabulary")


def test_training_errors(models, tmp_path, corpus):
    m = retnet.Model.load(models["torchscale"])
    raises(retnet.ArgumentError, lambda: retnet.Trainer(m, lr=-1), "out of range")
    raises(retnet.ArgumentError, lambda: retnet.Trainer(m, mode="recurrent"))
    raises(retnet.ArgumentError, lambda: retnet.Trainer(m, schedule="zigzag"), "unknown schedule")
    t = retnet.Trainer(m, steps=5, warmup=0)
    x = np.arange(16, dtype=np.int32).reshape(2, 8)
    raises(retnet.ArgumentError, lambda: t.step(x, x[:, :4]), "same shape")
    m.params[0] = np.nan
    before = m.params.copy()
    raises(retnet.NumericError, lambda: t.step(x, x))
    assert np.array_equal(m.params, before, equal_nan=True)  # untouched
    raises(retnet.FileError, lambda: retnet.Trainer.load(str(tmp_path / "none.safetensors")), "cannot open")
    raises(retnet.FormatError, lambda: retnet.Trainer.load(models["seed"]), "not a retnet training checkpoint")
    raises(retnet.FileError, lambda: t.save("/nonexistent-dir/ck.safetensors"), "/nonexistent-dir")
    raises(retnet.FileError, lambda: retnet.Dataset.open(str(tmp_path / "none.txt")), "none.txt")
    (tmp_path / "short.txt").write_text("a")
    raises(retnet.FormatError, lambda: retnet.Dataset.open(str(tmp_path / "short.txt")), "short.txt")
    d = retnet.Dataset.open(corpus)
    raises(retnet.ArgumentError, lambda: d.sample(retnet.Rng(1), 1, 10 ** 7))
    raises(retnet.ArgumentError, lambda: d.sample(retnet.Rng(1), 1, 4, split="test"), "unknown split")
    raises(retnet.ArgumentError, lambda: d.window(10 ** 9, 16))
    raises(retnet.FormatError, lambda: retnet.Dataset.from_tokens([1, 2, 9, 1, 2, 3], vocab=5, val_fraction=0), "is 9")


def test_tokenizer_errors(tmp_path):
    tok = retnet.Tokenizer.byte()
    raises(retnet.ArgumentError, lambda: tok.piece(256), "256")
    raises(retnet.ArgumentError, lambda: tok.decode([1, -3]), "-3")
    if retnet.Tokenizer.available():
        raises(retnet.FileError, lambda: retnet.Tokenizer.load(str(tmp_path / "none.json")))
    else:
        with pytest.raises(NotImplementedError):
            retnet.Tokenizer.load(str(tmp_path / "none.json"))


def test_messages_are_per_thread(models):
    """rn_last_error is thread-local: concurrent failures each report their own message."""
    m = retnet.Model.load(models["torchscale"])
    results = {}
    barrier = threading.Barrier(2)

    def fail(name, fn):
        barrier.wait()
        msgs = []
        for _ in range(200):
            try:
                fn()
            except retnet.Error as e:
                msgs.append(e.message)
        results[name] = set(msgs)

    a = threading.Thread(target=fail, args=("a", lambda: retnet.Tokenizer.byte().piece(999)))
    b = threading.Thread(target=fail, args=("b", lambda: retnet.Model.load("/nonexistent/b.safetensors")))
    a.start(), b.start(), a.join(), b.join()
    assert results["a"] == {"token id 999 outside the vocabulary [0, 256)"}
    assert len(results["b"]) == 1 and "/nonexistent/b.safetensors" in next(iter(results["b"]))
    assert m.num_params > 0


def test_gil_released_during_calls():
    """Python threads run while the library computes (ctypes.CDLL drops the GIL)."""
    m = retnet.Model.init(dim=128, layers=4, heads=4, vocab=256, seed=1)
    x = np.zeros((4, 512), np.int32)
    done = threading.Event()
    ticks = []

    def work():
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.5:
            m.logits(x, mode="parallel")
        done.set()

    th = threading.Thread(target=work)
    th.start()
    calls_before = time.perf_counter()
    while not done.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    th.join()
    # with the GIL held through each forward (tens of ms), the main thread could not tick
    gaps = np.diff(ticks)
    assert len(ticks) > 50 and np.median(gaps) < 0.01, (len(ticks), float(np.median(gaps)))
    assert calls_before > 0


def test_threads_setting_holds_in_other_threads(tmp_path):
    """set_threads(1) on the main thread, then a forward from another thread: the
    library used to size its scratch for 1 thread while OpenMP (whose thread count
    is per calling thread) ran that thread's regions with the default count, and
    wrote past the scratch (found by this binding; fixed in rn_get_threads)."""
    import os
    import subprocess
    import sys
    code = """
import sys, threading
sys.path[:0] = [{path!r}]
import numpy as np, retnet
retnet.set_threads(1)
m = retnet.Model.init(dim=128, layers=2, heads=4, vocab=256, seed=1)
x = np.arange(4 * 300, dtype=np.int32).reshape(4, 300) % 256
want = m.logits(x, mode="parallel")
got = []
t = threading.Thread(target=lambda: got.extend(m.logits(x, mode="parallel") for _ in range(3)))
t.start(); t.join()
assert all(np.array_equal(g, want) for g in got) and len(got) == 3
print("ok")
""".format(path=os.path.dirname(retnet.__file__) + "/..")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env["OMP_NUM_THREADS"] = "4"  # the default of threads that never called rn_set_threads
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == b"ok", p.stderr.decode()[-2000:]


def test_closed_model_is_refused_by_its_users(models):
    m = retnet.Model.load(models["torchscale"])
    t = retnet.Trainer(m, steps=3, warmup=0)
    s = m.state()
    m.close()
    x = np.zeros((1, 4), np.int32)
    raises(retnet.ArgumentError, lambda: t.step(x, x), "closed")
    raises(retnet.ArgumentError, lambda: t.save("/tmp/never.safetensors"), "closed")
    raises(retnet.ArgumentError, lambda: m.logits([1], state=s), "closed")
    raises(retnet.ArgumentError, lambda: m.num_params, "closed")
