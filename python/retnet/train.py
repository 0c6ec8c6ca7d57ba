"""Training: the AdamW trainer, the dataset and its random generator."""

from __future__ import annotations

import ctypes
import dataclasses
from ctypes import byref, c_int, c_void_p
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from . import _lib
from .errors import ArgumentError
from .model import MODES, Model, mode_id
from .tokenizer import Tokenizer

SCHEDULES = ("cosine", "linear", "constant")
SPLITS = {"train": 0, "val": 1}


@dataclass
class TrainConfig:
    """``rn_train_config``: the defaults are the library's (rn_train_config_default)."""
    batch: int = 16
    seq: int = 256
    accum: int = 1
    mode: str = "parallel"
    chunk: int = 64
    steps: int = 1000
    warmup: int = 100
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    schedule: str = "cosine"
    decay_embed: bool = False

    def to_c(self) -> _lib.RnTrainConfig:
        c = _lib.RnTrainConfig()
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "mode":
                v = mode_id(v)
            elif f.name == "schedule":
                if v not in SCHEDULES:
                    raise ArgumentError(f"unknown schedule '{v}' (cosine, linear or constant)")
                v = SCHEDULES.index(v)
            elif f.name == "decay_embed":
                v = int(bool(v))
            setattr(c, f.name, v)
        return c

    @classmethod
    def from_c(cls, c: _lib.RnTrainConfig) -> "TrainConfig":
        kw = {f.name: getattr(c, f.name) for f in dataclasses.fields(cls)}
        kw["mode"] = {v: k for k, v in MODES.items()}[kw["mode"]]
        kw["schedule"] = SCHEDULES[kw["schedule"]]
        kw["decay_embed"] = bool(kw["decay_embed"])
        return cls(**kw)

    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step step (0-based)."""
        return float(_lib.lib().rn_lr_at(byref(self.to_c()), int(step)))


@dataclass
class StepInfo:
    """``rn_step_info`` of one optimiser step."""
    step: int          # step index before the update (0-based)
    loss: float        # mean loss over the accumulated micro-batches
    grad_norm: float   # before clipping
    lr: float
    tokens: int        # scored targets


class Trainer(_lib.Handle):
    """AdamW training of a model (``rn_trainer``) from a Python loop with NumPy batches.

    Trainer(model, lr=..., steps=..., ...) takes the fields of :class:`TrainConfig`
    (or config=TrainConfig(...)). :meth:`step` takes x, y of shape (batch, seq), or
    (accum, batch, seq); a shape other than the config's updates its batch, seq and
    accum. The trainer keeps a reference to its model.
    """

    _free = "rn_trainer_free"  # the trainer, not its model

    def __init__(self, model: Model, config: Optional[TrainConfig] = None, **kw) -> None:
        cfg = dataclasses.replace(config or TrainConfig(), **kw)
        self._lib = model._lib
        self.model = model
        self._h = c_void_p()
        h = c_void_p()
        self._lib.call(self._lib.rn_trainer_create, model._handle(), byref(cfg.to_c()), byref(h))
        self._h = h
        self.last: Optional[StepInfo] = None
        self.user_json: str = ""  # of the checkpoint a loaded trainer came from

    @classmethod
    def load(cls, path: str) -> "Trainer":
        """Loads a checkpoint (rn_trainer_save's, or ``retnet train``'s
        OUT/checkpoint.safetensors) for an exact resume. The model is
        ``trainer.model``; the checkpoint's user JSON is ``trainer.user_json``."""
        L = _lib.lib()
        h, user = c_void_p(), c_void_p()
        L.call(L.rn_trainer_load, str(path).encode(), byref(h), byref(user))
        t = cls.__new__(cls)
        t._lib, t._h, t.last = L, h, None
        from .model import _CREATE
        t.model = Model(L.rn_trainer_model(h), _CREATE)
        t.user_json = ""
        if user.value:
            t.user_json = ctypes.string_at(user.value).decode("utf-8", "replace")
            _lib.c_free(user)
        return t

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_c(self._lib.rn_trainer_config(self._h).contents)

    @config.setter
    def config(self, cfg: TrainConfig) -> None:
        self._lib.call(self._lib.rn_trainer_set_config, self._h, byref(cfg.to_c()))

    @property
    def step_count(self) -> int:
        """Optimiser steps taken."""
        return int(self._lib.rn_trainer_step_count(self._h))

    def step(self, x, y) -> float:
        """One optimiser step on x, y (batch, seq) or (accum, batch, seq); returns the loss.

        Targets < 0 are ignored. The full :class:`StepInfo` is in ``.last``. A
        non-finite loss or gradient raises :class:`NumericError` and leaves the
        weights untouched.
        """
        self.model._handle()  # raises if the model was closed
        xa, ya = _lib.as_tokens(x, "x"), _lib.as_tokens(y, "y")
        if xa.shape != ya.shape or xa.ndim not in (2, 3):
            raise ArgumentError(f"x and y must have the same shape (batch, seq) or (accum, batch, seq), "
                                f"got {xa.shape} and {ya.shape}")
        A, B, T = (1,) + xa.shape if xa.ndim == 2 else xa.shape
        c = self._lib.rn_trainer_config(self._h).contents
        if (c.accum, c.batch, c.seq) != (A, B, T):
            cfg = self.config
            cfg.accum, cfg.batch, cfg.seq = A, B, T
            self.config = cfg
        info = _lib.RnStepInfo()
        self._lib.call(self._lib.rn_trainer_step, self._h, _lib.i32ptr(xa), _lib.i32ptr(ya), byref(info))
        self.last = StepInfo(int(info.step), info.loss, info.grad_norm, info.lr, int(info.tokens))
        return info.loss

    def save(self, path: str, user_json: Optional[str] = None) -> None:
        """Checkpoint (model, AdamW moments, step, user_json) atomically, for an exact resume.

        user_json (a JSON object) goes through the library's JSON reader, whose
        numbers are doubles: store 64-bit values (an :class:`Rng` state) as strings.
        """
        self.model._handle()
        self._lib.call(self._lib.rn_trainer_save, self._h, str(path).encode(),
                       user_json.encode() if user_json is not None else None)


class Rng:
    """The library's random generator (``rn_rng``, xoshiro256** seeded by splitmix64)."""

    def __init__(self, seed: int = 1) -> None:
        self._r = _lib.RnRng()
        self.seed(seed)

    def seed(self, seed: int) -> None:
        _lib.lib().rn_rng_seed(byref(self._r), int(seed) & (2**64 - 1))

    def u64(self) -> int:
        return int(_lib.lib().rn_rng_u64(byref(self._r)))

    def uniform(self) -> float:
        """Uniform in [0, 1)."""
        return float(_lib.lib().rn_rng_uniform(byref(self._r)))

    def normal(self) -> float:
        return float(_lib.lib().rn_rng_normal(byref(self._r)))

    @property
    def state(self) -> Tuple[int, int, int, int]:
        """The four 64-bit words (``retnet train`` stores them in its checkpoints)."""
        return tuple(int(v) for v in self._r.s)

    @state.setter
    def state(self, s) -> None:
        for i in range(4):
            self._r.s[i] = int(s[i])


def _split(split: str) -> int:
    if split not in SPLITS:
        raise ArgumentError(f"unknown split '{split}' (train or val)")
    return SPLITS[split]


class Dataset(_lib.Handle):
    """A token stream in memory split into a training and a validation part (``rn_dataset``)."""

    _free = "rn_dataset_free"

    def __init__(self, handle: int, _key: object = None) -> None:
        if _key is not _CREATE:
            raise TypeError("use Dataset.open(path) or Dataset.from_tokens(tokens, vocab)")
        self._lib = _lib.lib()
        self._h = c_void_p(handle)

    @classmethod
    def open(cls, path: str, tokenizer: Optional[Tokenizer] = None, val_fraction: float = 0.05) -> "Dataset":
        """Reads and tokenizes a text file (byte tokenizer by default) as ``retnet train`` does;
        the last val_fraction of the tokens are the validation split."""
        L = _lib.lib()
        tok = tokenizer or Tokenizer.byte()
        h = c_void_p()
        L.call(L.rn_dataset_open, str(path).encode(), tok._h, float(val_fraction), byref(h))
        return cls(h.value, _CREATE)

    @classmethod
    def from_tokens(cls, tokens, vocab: int, val_fraction: float = 0.05) -> "Dataset":
        L = _lib.lib()
        a = _lib.as_tokens(tokens).ravel()
        h = c_void_p()
        L.call(L.rn_dataset_from_tokens, _lib.i32ptr(a), len(a), int(vocab), float(val_fraction), byref(h))
        return cls(h.value, _CREATE)

    @property
    def vocab(self) -> int:
        return int(self._lib.rn_dataset_vocab_size(self._h))

    def size(self, split: str = "train") -> int:
        return int(self._lib.rn_dataset_size(self._h, _split(split)))

    def tokens(self, split: str = "train") -> np.ndarray:
        """The split's tokens (a copy)."""
        n = self.size(split)
        p = self._lib.rn_dataset_tokens(self._h, _split(split))
        return np.ctypeslib.as_array(p, shape=(n,)).copy() if n else np.zeros(0, np.int32)

    def sample(self, rng: Rng, batch: int, seq: int, split: str = "train") -> Tuple[np.ndarray, np.ndarray]:
        """batch random windows: x, y (batch, seq), y the next tokens of x (``rn_dataset_sample``)."""
        x = np.empty((batch, seq), np.int32)
        y = np.empty((batch, seq), np.int32)
        self._lib.call(self._lib.rn_dataset_sample, self._h, _split(split), byref(rng._r), int(batch), int(seq),
                       _lib.i32ptr(x), _lib.i32ptr(y))
        return x, y

    def num_windows(self, seq: int, split: str = "val") -> int:
        return int(self._lib.rn_dataset_num_windows(self._h, _split(split), int(seq)))

    def window(self, index: int, seq: int, split: str = "val") -> Tuple[np.ndarray, np.ndarray]:
        """The index-th evaluation window: x, y of its n <= seq positions."""
        x = np.empty(seq, np.int32)
        y = np.empty(seq, np.int32)
        n = c_int()
        self._lib.call(self._lib.rn_dataset_window, self._h, _split(split), int(index), int(seq), _lib.i32ptr(x),
                       _lib.i32ptr(y), byref(n))
        return x[: n.value], y[: n.value]


_CREATE = object()
