"""Training from Python equals `retnet train` on the same data order, bit for bit."""

import csv
import filecmp
import json

import numpy as np
import pytest

import retnet
from conftest import cli

SEED = 3


def cli_train(corpus, out, *extra):
    cli("train", "--data", corpus, "--dim", 32, "--layers", 2, "--heads", 2, "--seq", 16, "--batch", 2,
        "--lr", 3e-3, "--seed", SEED, "--threads", 1, "--quiet", "--eval-every", 1000, "--ckpt-every", 1000,
        "--out", out, *extra)
    with open(out / "metrics.csv") as f:
        return [row for row in csv.DictReader(f)]


def python_trainer(corpus, steps, accum=1, **kw):
    """What `retnet train` sets up: the model, the trainer, the data and its generator."""
    model = retnet.Model.init("torchscale", dim=32, layers=2, heads=2, vocab=256, seed=SEED)
    # the CLI's warm-up when --warmup is not given: steps / 10 if the default is too long
    warmup = retnet.TrainConfig().warmup
    if warmup >= steps:
        warmup = steps // 10
    trainer = retnet.Trainer(model, batch=2, seq=16, accum=accum, steps=steps, warmup=warmup, lr=3e-3, **kw)
    data = retnet.Dataset.open(corpus, val_fraction=0.05)
    rng = retnet.Rng(SEED ^ 0x5EEDDA7A)
    return model, trainer, data, rng


def run_steps(trainer, data, rng, n, accum=1):
    losses = []
    for _ in range(n):
        xs, ys = zip(*(data.sample(rng, 2, 16) for _ in range(accum)))
        x, y = (np.stack(xs), np.stack(ys)) if accum > 1 else (xs[0], ys[0])
        losses.append(trainer.step(x, y))
    return losses


@pytest.mark.parametrize("extra,kw,accum", [([], {}, 1), (["--chunk", "4"], dict(mode="chunkwise", chunk=4), 1),
                                            (["--accum", "2", "--clip", "0.5"], dict(grad_clip=0.5), 2)])
def test_training_equals_cli(corpus, tmp_path, extra, kw, accum):
    rows = cli_train(corpus, tmp_path / "run", "--steps", 6, *extra)
    model, trainer, data, rng = python_trainer(corpus, 6, accum=accum, **kw)
    losses = run_steps(trainer, data, rng, 6, accum)
    assert [r["train_loss"] for r in rows] == [f"{v:.6f}" for v in losses]
    assert [float(r["lr"]) for r in rows] == pytest.approx([trainer.config.lr_at(i) for i in range(6)], rel=1e-5)
    assert trainer.step_count == 6 and trainer.last.step == 5
    model.save(str(tmp_path / "py.safetensors"))
    assert filecmp.cmp(tmp_path / "py.safetensors", tmp_path / "run" / "model.safetensors", shallow=False)


def test_resume_cli_checkpoint_in_python(corpus, tmp_path):
    """Stop the CLI at step 4, continue in Python from its checkpoint and data-order state:
    the weights of an uninterrupted CLI run."""
    cli_train(corpus, tmp_path / "full", "--steps", 7)
    cli_train(corpus, tmp_path / "part", "--steps", 7, "--stop-at", 4)
    trainer = retnet.Trainer.load(str(tmp_path / "part" / "checkpoint.safetensors"))
    user = trainer.user_json
    assert trainer.step_count == 4 and trainer.config.steps == 7
    rng = retnet.Rng()
    rng.state = [int(w, 16) for w in json.loads(user)["rng"]]
    data = retnet.Dataset.open(corpus, val_fraction=0.05)
    run_steps(trainer, data, rng, 3)
    trainer.model.save(str(tmp_path / "py.safetensors"))
    assert filecmp.cmp(tmp_path / "py.safetensors", tmp_path / "full" / "model.safetensors", shallow=False)


def test_save_load_resume_is_exact(corpus, tmp_path):
    model, trainer, data, rng = python_trainer(corpus, 8)
    run_steps(trainer, data, rng, 3)
    # 64-bit words as hex strings, as the CLI stores them (the user JSON goes through
    # the library's JSON reader, whose numbers are doubles)
    trainer.save(str(tmp_path / "ck.safetensors"), json.dumps({"rng": [f"{w:016x}" for w in rng.state]}))
    tail = run_steps(trainer, data, rng, 5)
    t2 = retnet.Trainer.load(str(tmp_path / "ck.safetensors"))
    user = t2.user_json
    r2 = retnet.Rng()
    r2.state = [int(w, 16) for w in json.loads(user)["rng"]]
    tail2 = run_steps(t2, data, r2, 5)
    assert tail == tail2
    assert np.array_equal(model.params, t2.model.params)
    del t2  # the loaded trainer owns its model: freeing both in either order is safe
    assert model.num_params > 0


def test_loss_grad_matches_trainer_loss(corpus):
    model, trainer, data, rng = python_trainer(corpus, 4)
    x, y = data.sample(retnet.Rng(1), 2, 16)
    loss, g = model.loss_grad(x, y)
    chunked = model.loss(x, y, mode="chunkwise", chunk=4)
    assert g.shape == (model.num_params,) and np.isfinite(g).all() and np.abs(g).sum() > 0
    assert model.loss(x, y) == loss
    assert trainer.step(x, y) == loss
    assert chunked == pytest.approx(loss, rel=1e-5)
    assert model.loss(x, y) < loss  # the step moved the weights


def test_python_loop_learns():
    """A plain NumPy loop: a repeated pattern is learnt."""
    model = retnet.Model.init("fla", dim=32, layers=1, heads=2, vocab=256, seed=1)
    trainer = retnet.Trainer(model, lr=1e-2, steps=40, warmup=2)
    seq = np.frombuffer(b"abcdefgh" * 5, np.uint8).astype(np.int32)
    x, y = seq[None, :-1], seq[None, 1:]
    losses = [trainer.step(x, y) for _ in range(40)]
    assert losses[-1] < 0.3 * losses[0]


def test_dataset_and_rng(corpus):
    data = retnet.Dataset.open(corpus, val_fraction=0.1)
    text = open(corpus, "rb").read()
    n = len(text)
    assert data.size("train") + data.size("val") == n and data.vocab == 256
    assert bytes(data.tokens("train").astype(np.uint8)) == text[:data.size("train")]
    x, y = data.sample(retnet.Rng(5), 3, 10)
    assert x.shape == (3, 10) and np.array_equal(x[:, 1:], y[:, :-1])
    a, b = retnet.Rng(9), retnet.Rng(9)
    assert [a.u64() for _ in range(3)] == [b.u64() for _ in range(3)]
    assert 0 <= a.uniform() < 1
    wx, wy = data.window(0, 16)
    assert np.array_equal(wx[1:], wy[:-1]) and data.num_windows(16) == -(-(data.size("val") - 1) // 16)
    d2 = retnet.Dataset.from_tokens(np.arange(100) % 7, vocab=7, val_fraction=0.2)
    assert d2.size("val") == 20


@pytest.mark.parametrize("preset,mode", [("torchscale", "parallel"), ("fla", "chunkwise"), ("seed", "parallel")])
def test_gradients_equal_cli_grads(models, tmp_path, preset, mode):
    """loss_grad's gradient, written with save_values, is `retnet grads`'s file byte for
    byte, and its loss the one the CLI prints."""
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 256, (2, 29)).astype(np.int32)
    m = retnet.Model.load(models[preset])
    loss, g = m.loss_grad(x, y, mode=mode, chunk=8)
    m.save_values(g, str(tmp_path / "py.safetensors"))
    out = cli("grads", "--model", models[preset], "--tokens", ",".join(map(str, x)), "--targets",
              ",".join(map(str, y)), "--mode", mode, "--chunk", 8, "--out", tmp_path / "cli.safetensors")
    assert float(out.stdout.decode().split()[1]) == loss
    assert filecmp.cmp(tmp_path / "py.safetensors", tmp_path / "cli.safetensors", shallow=False)
