"""Models, recurrent states, logits, generation and scoring."""

from __future__ import annotations

import codecs
import ctypes
import dataclasses
import math
from ctypes import byref, c_double, c_int, c_int32, c_void_p
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Union

import numpy as np

from . import _lib
from .errors import ArgumentError
from .tokenizer import Tokenizer

PRESETS = ("torchscale", "seed", "fla")
MODES = {"parallel": 0, "chunkwise": 1, "recurrent": 2}
FORMATS = ("retnet", "torchscale", "torchscale-hf", "seed", "fla")
DTYPES = ("f32", "bf16", "f64", "f16")

_ENUMS = {
    "rotation": ("torchscale", "xpos", "half"),
    "decay": ("pow2", "logspace"),
    "qk_scale": ("none", "scale_k", "scale_q"),
    "head_norm": ("rms", "rms_shared", "group"),
    "block_norm": ("rms", "layer"),
    "ffn": ("glu", "mlp"),
    "act": ("gelu", "swish"),
}
_BOOLS = ("decay_norm", "final_norm", "tie_embed", "scale_embed", "embed_norm")


@dataclass
class Config:
    """A model's architecture: ``rn_config`` of include/retnet.h.

    The enum fields are their names as strings (``rotation="xpos"``), the
    switches are bools. ``Config.preset_config("torchscale", "tiny")`` fills one from a
    named preset and size.
    """

    preset: str = "torchscale"
    dim: int = 0
    value_dim: int = 0
    heads: int = 0
    ffn_dim: int = 0
    layers: int = 0
    vocab: int = 0
    norm_eps: float = 0.0
    head_eps: float = 0.0
    rotation: str = "torchscale"
    decay: str = "pow2"
    decay_norm: bool = False
    qk_scale: str = "none"
    head_norm: str = "rms"
    block_norm: str = "rms"
    final_norm: bool = False
    ffn: str = "glu"
    act: str = "gelu"
    tie_embed: bool = False
    scale_embed: bool = False
    embed_norm: bool = False

    @classmethod
    def from_c(cls, c: _lib.RnConfig) -> "Config":
        kw = {"preset": PRESETS[c.preset]}
        for f in dataclasses.fields(cls):
            if f.name == "preset":
                continue
            v = getattr(c, f.name)
            if f.name in _ENUMS:
                v = _ENUMS[f.name][v]
            elif f.name in _BOOLS:
                v = bool(v)
            kw[f.name] = v
        return cls(**kw)

    def to_c(self) -> _lib.RnConfig:
        c = _lib.RnConfig()
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "preset":
                v = preset_id(v)
            elif f.name in _ENUMS:
                v = _index(_ENUMS[f.name], v, f.name)
            elif f.name in _BOOLS:
                v = int(bool(v))
            setattr(c, f.name, v)
        return c

    @classmethod
    def preset_config(cls, preset: str = "torchscale", size: Optional[str] = None, vocab: int = 256) -> "Config":
        """The preset's switches with a named size (``rn_config_preset``)."""
        L = _lib.lib()
        c = _lib.RnConfig()
        c.vocab = vocab
        L.call(L.rn_config_preset, byref(c), preset_id(preset),
               size.encode() if size else None)
        c.vocab = vocab
        return cls.from_c(c)

    def validate(self) -> None:
        """Raises :class:`ArgumentError` unless the config is valid (``rn_config_validate``)."""
        L = _lib.lib()
        L.call(L.rn_config_validate, byref(self.to_c()))

    @property
    def num_params(self) -> int:
        """Parameters of a model of this config (0 if invalid)."""
        return int(_lib.lib().rn_config_num_params(byref(self.to_c())))

    def to_json(self) -> str:
        """The config as stored in model files."""
        L = _lib.lib()
        p = L.rn_config_to_json(byref(self.to_c()))
        if not p:
            raise ArgumentError("rn_config_to_json failed")
        try:
            return ctypes.string_at(p).decode()
        finally:
            _lib.c_free(p)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        L = _lib.lib()
        c = _lib.RnConfig()
        L.call(L.rn_config_from_json, text.encode(), byref(c))
        return cls.from_c(c)


def _index(names: Sequence[str], v, what: str) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(names):
        return v
    try:
        return names.index(str(v).replace("-", "_"))
    except ValueError:
        raise ArgumentError(f"unknown {what} '{v}' (one of {', '.join(names)})") from None


def mode_id(mode: str) -> int:
    """rn_mode of "parallel", "chunkwise" or "recurrent" (rn_mode_from_name)."""
    L = _lib.lib()
    out = c_int()
    L.call(L.rn_mode_from_name, str(mode).encode(), byref(out))
    return out.value


def preset_id(preset: str) -> int:
    """rn_preset of "torchscale", "seed" or "fla" (rn_preset_from_name)."""
    L = _lib.lib()
    out = c_int()
    L.call(L.rn_preset_from_name, str(preset).encode(), byref(out))
    return out.value


# ------------------------------------------------------------------ model

class Model(_lib.Handle):
    """A RetNet language model (``rn_model``), float32.

    Create one with :meth:`load`, :meth:`init` or :meth:`create`. A model may be
    used by one thread at a time.
    """

    _free = "rn_model_free"

    def __init__(self, handle: int, _key: object = None, fmt: Optional[str] = None) -> None:
        if _key is not _CREATE:
            raise TypeError("use Model.load(path), Model.init(...) or Model.create(config)")
        self._lib = _lib.lib()
        self._h = c_void_p(handle)
        self.format: Optional[str] = fmt
        self._tok: Optional[Tokenizer] = None

    # ------------------------------------------------------------ create
    @classmethod
    def load(cls, path: str) -> "Model":
        """Loads a model file or directory in any format and weight type the CLI reads.

        ``.format`` tells the format detected.
        """
        L = _lib.lib()
        h, fmt = c_void_p(), c_int()
        L.call(L.rn_model_load_ex, str(path).encode(), byref(h), byref(fmt))
        return cls(h.value, _CREATE, L.rn_format_name(fmt.value).decode())

    @classmethod
    def create(cls, config: Config, seed: Optional[int] = None) -> "Model":
        """A model of config: zeroed parameters, or the preset's initialisation with seed."""
        L = _lib.lib()
        h = c_void_p()
        L.call(L.rn_model_create, byref(config.to_c()), byref(h))
        m = cls(h.value, _CREATE)
        if seed is not None:
            L.call(L.rn_model_init_random, m._h, int(seed))
        return m

    @classmethod
    def init(cls, preset: str = "torchscale", size: Optional[str] = None, *, dim: Optional[int] = None,
             layers: Optional[int] = None, heads: Optional[int] = None, value_dim: Optional[int] = None,
             ffn_dim: Optional[int] = None, vocab: int = 256, seed: int = 1) -> "Model":
        """A randomly initialised model, exactly as ``retnet init`` (and ``retnet train``) make it.

        Give a named size ("tiny", "small", "demo"; torchscale also "base" ..
        "65b") or dims; with neither, "tiny". As in the CLI, with dim and no
        size, value_dim and ffn_dim default to 2 dim, layers to 2 and heads to
        4 (1 when dim < 64).
        """
        config = cls.config_for(preset, size, dim=dim, layers=layers, heads=heads, value_dim=value_dim,
                                ffn_dim=ffn_dim, vocab=vocab)
        return cls.create(config, seed=seed)

    @staticmethod
    def config_for(preset: str = "torchscale", size: Optional[str] = None, *, dim: Optional[int] = None,
                   layers: Optional[int] = None, heads: Optional[int] = None, value_dim: Optional[int] = None,
                   ffn_dim: Optional[int] = None, vocab: int = 256) -> Config:
        """The config :meth:`init` builds (the CLI's arch_config)."""
        L = _lib.lib()
        c = _lib.RnConfig()
        p = preset_id(preset)
        if size is None and dim is None:
            size = "tiny"
        c.vocab = vocab
        L.call(L.rn_config_preset, byref(c), p, size.encode() if size else None)
        if dim is not None:
            c.dim = dim
        if layers is not None:
            c.layers = layers
        if heads is not None:
            c.heads = heads
        if ffn_dim is not None:
            c.ffn_dim = ffn_dim
        if value_dim is not None:
            c.value_dim = value_dim
        elif size is None or dim is not None:
            c.value_dim = 2 * c.dim
        if size is None and ffn_dim is None:
            c.ffn_dim = 2 * c.dim
        if size is None and layers is None:
            c.layers = 2
        if size is None and heads is None:
            c.heads = 4 if c.dim >= 64 else 1
        c.vocab = vocab
        L.call(L.rn_config_validate, byref(c))
        return Config.from_c(c)

    def _handle(self) -> c_void_p:
        if not self._h.value:
            raise ArgumentError("the model is closed")
        return self._h

    def __repr__(self) -> str:
        c = self.config
        return (f"Model({c.preset}, dim={c.dim}, layers={c.layers}, heads={c.heads}, value_dim={c.value_dim}, "
                f"ffn_dim={c.ffn_dim}, vocab={c.vocab}: {self.num_params} parameters)")

    # -------------------------------------------------------- properties
    @property
    def config(self) -> Config:
        """The architecture (a copy: changing it does not change the model)."""
        return Config.from_c(self._lib.rn_model_config(self._handle()).contents)

    @property
    def num_params(self) -> int:
        return int(self._lib.rn_model_num_params(self._handle()))

    @property
    def vocab(self) -> int:
        return self._lib.rn_model_config(self._handle()).contents.vocab

    @property
    def params(self) -> np.ndarray:
        """All parameters as one float32 array: a writable view of the model's memory,
        not a copy (it keeps the model alive)."""
        return _view(self._lib.rn_model_params(self._handle()), self.num_params, self._lib.real, self)

    # --------------------------------------------------------------- files
    def save(self, path: str, format: str = "retnet", dtype: str = "f32") -> None:
        """Writes the model atomically in format ("retnet", "torchscale", "torchscale-hf",
        "seed", "fla") as dtype ("f32", "bf16", "f16", "f64"), as ``retnet convert``."""
        L = self._lib
        f, d = c_int(), c_int()
        L.call(L.rn_format_from_name, str(format).encode(), byref(f))
        L.call(L.rn_dtype_from_name, str(dtype).encode(), byref(d))
        L.call(L.rn_model_save_as, self._handle(), str(path).encode(), f.value, d.value)

    def save_values(self, values: np.ndarray, path: str, format: Optional[str] = None,
                    dtype: str = "f32") -> None:
        """Writes values laid out like :attr:`params` (e.g. a gradient of
        :meth:`loss_grad`) as one safetensors file under the tensor names of format
        (default: the format the model was loaded from, else "retnet"), as
        ``retnet grads`` does: the names and shapes of PyTorch's named_parameters()."""
        L = self._lib
        v = np.ascontiguousarray(values, dtype=L.dtype)
        if v.shape != (self.num_params,):
            raise ArgumentError(f"values must have shape ({self.num_params},), got {v.shape}")
        f, d = c_int(), c_int()
        L.call(L.rn_format_from_name, str(format or self.format or "retnet").encode(), byref(f))
        L.call(L.rn_dtype_from_name, str(dtype).encode(), byref(d))
        L.call(L.rn_model_save_values, self._handle(), L.rptr(v), str(path).encode(), f.value, d.value)

    # ------------------------------------------------------------- forward
    def state(self, batch: int = 1) -> "State":
        """A fresh recurrent state for batch streams (position 0)."""
        return State(self, batch)

    def logits(self, tokens, mode: str = "chunkwise", chunk: int = 64, state: Optional["State"] = None,
               abs_norm: bool = False, last_only: bool = False, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Logits of tokens (T,) -> (T, V), or (B, T) -> (B, T, V), float32.

        mode is the paradigm ("parallel", "chunkwise" with chunk, "recurrent");
        they agree to rounding. With state the tokens continue from it and it
        is advanced (any paradigm continues from any other's state); without,
        they start from position 0. last_only returns the last position's
        logits only, (V,) or (B, V). abs_norm is torchscale's parallel row
        clamp. tokens are passed to C without a copy when they are a
        C-contiguous int32 array; out (a C-contiguous float32 array of the
        result's shape) receives the logits without an allocation.
        """
        x = _lib.as_tokens(tokens)
        if x.ndim not in (1, 2) or x.size == 0:
            raise ArgumentError(f"tokens must be (T,) or (B, T) and not empty, got shape {x.shape}")
        B, T = (1, x.shape[0]) if x.ndim == 1 else x.shape
        V = self.vocab
        shape = ((T, V) if not last_only else (V,)) if x.ndim == 1 else ((B, T, V) if not last_only else (B, V))
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ArgumentError(f"out must be a C-contiguous float32 array of shape {shape}")
        st = state if state is not None else State(self, B)
        if st.batch != B:
            raise ArgumentError(f"the state has batch {st.batch}, the tokens {B}")
        if st._model is not self:
            raise ArgumentError("the state belongs to another model")
        flags = (1 if abs_norm else 0) | (2 if last_only else 0)
        L = self._lib
        L.call(L.rn_forward, self._handle(), st._h, _lib.i32ptr(x), B, T, mode_id(mode), int(chunk), flags,
               L.rptr(out))
        return out

    # ------------------------------------------------------------ tokenizer
    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer generate() and score() use for text (the byte tokenizer unless set)."""
        if self._tok is None:
            self._tok = Tokenizer.byte()
        return self._tok

    @tokenizer.setter
    def tokenizer(self, tok: Tokenizer) -> None:
        self._tok = tok

    # ------------------------------------------------------------ generate
    def generate(self, prompt: Union[str, bytes, Sequence[int]] = "\n", max_tokens: int = 256,
                 temperature: float = 0.8, top_k: int = 0, top_p: float = 0.95, seed: int = 1,
                 stop: Union[None, str, Sequence[str]] = None, chunk: int = 256,
                 tokenizer: Optional[Tokenizer] = None, stop_at_eos: bool = True) -> Iterator[str]:
        """Streams generated text, piece by piece, as ``retnet generate`` samples it.

        The prompt (text, or token ids) is prefilled chunkwise, then each token
        is one recurrent step. With the same model, prompt and sampling
        arguments, the text is the CLI's (which prints the prompt before it).
        Bytes that end inside a UTF-8 character are held back until it is
        complete. stop: a string or strings that end the generation (not
        yielded). With a tokenizer that has an end-of-sequence id (not the
        byte tokenizer), sampling it ends the generation unless stop_at_eos
        is False. Defaults are the CLI's.
        """
        tok = tokenizer or self.tokenizer
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        stops: List[str] = [stop] if isinstance(stop, str) else list(stop or [])
        stops = [s for s in stops if s]
        acc, emitted = "", 0
        for t in self.generate_tokens(prompt, max_tokens, temperature, top_k, top_p, seed, chunk, tok, stop_at_eos):
            text = decoder.decode(tok.piece(t))
            if not text:
                continue
            if not stops:
                yield text
                continue
            acc += text
            hit = _find_stop(acc, stops, emitted)
            if hit >= 0:
                if hit > emitted:
                    yield acc[emitted:hit]
                return
            safe = len(acc) - _held_back(acc, stops)
            if safe > emitted:
                yield acc[emitted:safe]
                emitted = safe
        tail = decoder.decode(b"", final=True)
        if stops:
            acc += tail
            hit = _find_stop(acc, stops, emitted)
            tail = acc[emitted:hit if hit >= 0 else len(acc)]
        if tail:
            yield tail

    def generate_tokens(self, prompt: Union[str, bytes, Sequence[int]] = "\n", max_tokens: int = 256,
                        temperature: float = 0.8, top_k: int = 0, top_p: float = 0.95, seed: int = 1,
                        chunk: int = 256, tokenizer: Optional[Tokenizer] = None,
                        stop_at_eos: bool = True) -> Iterator[int]:
        """Streams the sampled token ids (see :meth:`generate`; the EOS id is not yielded)."""
        tok = tokenizer or self.tokenizer
        eos = tok.eos if stop_at_eos else None
        if isinstance(prompt, (str, bytes)):
            if tok.vocab_size > self.vocab:
                raise ArgumentError(f"the model's vocabulary ({self.vocab}) is smaller than the tokenizer's "
                                    f"({tok.vocab_size})")
            ids = tok.encode(prompt)
        else:
            ids = _lib.as_tokens(prompt, "prompt").ravel()
        if len(ids) == 0:
            raise ArgumentError("the prompt is empty")
        with Session(self, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, chunk=chunk) as s:
            s.prefill(ids)
            for _ in range(int(max_tokens)):
                t = s.step()
                if t == eos:
                    return
                yield t

    def complete(self, prompt: Union[str, bytes, Sequence[int]] = "\n", max_tokens: int = 256, **kw) -> str:
        """The whole generated text of :meth:`generate` (without the prompt)."""
        return "".join(self.generate(prompt, max_tokens, **kw))

    # --------------------------------------------------------------- score
    def score(self, data: Union[str, bytes, Sequence[int], np.ndarray], chunk: int = 512,
              window: Optional[int] = None, segment: int = 4096, state: Optional["State"] = None,
              tokenizer: Optional[Tokenizer] = None) -> "Score":
        """Loss of text (or token ids): each token predicted from all before it, as ``retnet eval``.

        The state is carried across the whole input unless window cuts it to
        windows of that many tokens; segment is the tokens per call (memory,
        not results). With state, scoring continues from it (and advances it).
        Returns a :class:`Score` (loss in nats per token, bits per byte, ...);
        for token ids, bytes are counted with the tokenizer (byte tokenizer:
        one per token).
        """
        tok = tokenizer or self.tokenizer
        if isinstance(data, (str, bytes)):
            ids = tok.encode(data)
        else:
            ids = _lib.as_tokens(data, "tokens").ravel()
        n = len(ids)
        if n < 2:
            raise ArgumentError("scoring needs at least 2 tokens")
        st = state if state is not None else State(self, 1)
        L = self._lib
        total, count, p = 0.0, 0, 0
        nll, cnt = c_double(), c_int()
        while p + 1 < n:
            end = p + segment
            if window:
                wend = (p // window + 1) * window
                if p % window == 0:
                    st.reset()
                end = min(end, wend)
            end = min(end, n - 1)
            T = end - p
            L.call(L.rn_model_score, self._handle(), st._h, _lib.i32ptr(ids[p:]), _lib.i32ptr(ids[p + 1:]), T,
                   int(chunk), byref(nll), byref(cnt))
            total += nll.value
            count += cnt.value
            p = end
        if tok.name == "byte":
            nbytes = count
        else:
            nbytes = sum(len(tok.piece(int(t))) for t in ids[1:])
        return Score(loss=total / count, bits_per_byte=total / math.log(2) / max(nbytes, 1), tokens=count,
                     nll=total)

    def loss(self, x, y, mode: str = "parallel", chunk: int = 64) -> float:
        """Mean cross-entropy of predictions for x (B, T) against targets y (B, T), from a
        fresh state (``rn_model_loss_grad`` without a gradient). Targets < 0 are ignored."""
        return self.loss_grad(x, y, mode, chunk, grad=False)[0]

    def loss_grad(self, x, y, mode: str = "parallel", chunk: int = 64, grad: bool = True):
        """(loss, gradient) of the mean cross-entropy: the gradient laid out like
        :attr:`params` (float32), or None with grad=False."""
        xa, ya = _lib.as_tokens(x, "x"), _lib.as_tokens(y, "y")
        if xa.ndim == 1:
            xa, ya = xa[None], ya.reshape(1, -1)
        if xa.ndim != 2 or xa.shape != ya.shape:
            raise ArgumentError(f"x and y must have the same shape (B, T), got {xa.shape} and {ya.shape}")
        g = np.zeros(self.num_params, dtype=np.float32) if grad else None
        loss, cnt = c_double(), c_int()
        L = self._lib
        L.call(L.rn_model_loss_grad, self._handle(), _lib.i32ptr(xa), _lib.i32ptr(ya), xa.shape[0], xa.shape[1],
               mode_id(mode), int(chunk), 1.0, L.rptr(g) if g is not None else None, byref(loss), byref(cnt))
        return loss.value, g


def _find_stop(acc: str, stops: Sequence[str], emitted: int) -> int:
    """Where the first stop string in acc starts (-1: none); only the text from
    emitted on (less a stop's length) can hold a new one."""
    found = [i for i in (acc.find(s, max(0, emitted - len(s) + 1)) for s in stops) if i >= 0]
    return min(found) if found else -1


def _held_back(acc: str, stops: Sequence[str]) -> int:
    """Length of the longest end of acc that is a proper prefix of a stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(acc)), best, -1):
            if acc.endswith(s[:k]):
                best = k
                break
    return best


def _view(ptr, n: int, ctype, owner: object) -> np.ndarray:
    """A numpy view of n values of ctype at ptr that keeps owner alive."""
    arr = (ctype * n).from_address(ctypes.addressof(ptr.contents))
    arr._owner = owner
    return np.frombuffer(arr, dtype=np.dtype(ctype))


@dataclass
class Score:
    """Result of :meth:`Model.score`."""
    loss: float            # nats per token
    bits_per_byte: float
    tokens: int            # predicted tokens
    nll: float             # summed negative log-likelihood (nats)

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)


# ------------------------------------------------------------------ state

class State(_lib.Handle):
    """The recurrent state of batch streams of a model (``rn_state``): per layer and head
    a K x Dv matrix and the position of the next token. Its size does not grow with
    the sequence."""

    _free = "rn_state_free"

    def __init__(self, model: Model, batch: int = 1) -> None:
        self._lib = model._lib
        self._model = model
        h = c_void_p()
        self._h = c_void_p()
        self._lib.call(self._lib.rn_state_create, model._handle(), int(batch), byref(h))
        self._h = h

    @property
    def pos(self) -> int:
        """Position of the next token."""
        return int(self._lib.rn_state_pos(self._h))

    @property
    def batch(self) -> int:
        return int(self._lib.rn_state_batch(self._h))

    def reset(self) -> None:
        """Back to position 0 (a zero state)."""
        self._lib.rn_state_reset(self._h)

    def copy(self) -> "State":
        """An independent copy (e.g. to branch a generation)."""
        s = State(self._model, self.batch)
        self._lib.call(self._lib.rn_state_copy, s._h, self._h)
        return s

    __copy__ = copy

    def __repr__(self) -> str:
        return f"State(batch={self.batch}, pos={self.pos})"


# ---------------------------------------------------------------- session

class Session(_lib.Handle):
    """A generation session (``rn_session``): one stream's state, a sampler and the
    logits of the next token. Prompts are prefilled chunkwise; each step is one
    recurrent update."""

    _free = "rn_session_free"

    def __init__(self, model: Model, temperature: float = 0.8, top_k: int = 0, top_p: float = 0.95,
                 seed: int = 1, chunk: int = 256) -> None:
        self._lib = model._lib
        self._model = model
        sc = _lib.RnSamplerConfig(float(temperature), int(top_k), float(top_p), int(seed))
        h = c_void_p()
        self._h = c_void_p()
        self._lib.call(self._lib.rn_session_create, model._handle(), byref(sc), int(chunk), byref(h))
        self._h = h

    def prefill(self, tokens) -> None:
        """Runs tokens through the model (chunkwise) and keeps the last logits."""
        x = _lib.as_tokens(tokens).ravel()
        self._lib.call(self._lib.rn_session_prefill, self._h, _lib.i32ptr(x), len(x))

    def feed(self, token: int) -> None:
        """Feeds one token (recurrent) and keeps its logits."""
        self._lib.call(self._lib.rn_session_feed, self._h, int(token))

    def step(self) -> int:
        """Samples the next token from the current logits, feeds it and returns it."""
        t = c_int32()
        self._lib.call(self._lib.rn_session_step, self._h, byref(t))
        return int(t.value)

    @property
    def logits(self) -> Optional[np.ndarray]:
        """The current next-token logits (a copy), or None before the first token."""
        p = self._lib.rn_session_logits(self._h)
        if not p:
            return None
        return np.ctypeslib.as_array(p, shape=(self._model.vocab,)).copy()

    @property
    def pos(self) -> int:
        return int(self._lib.rn_session_pos(self._h))

    def reset(self) -> None:
        self._lib.rn_session_reset(self._h)


_CREATE = object()
