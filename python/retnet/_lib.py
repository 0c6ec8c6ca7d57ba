"""Loading libretnet.so with ctypes, the C declarations, and error handling.

The library is found, in order, at:

1. ``$RETNET_LIB`` (the float32 library; ``$RETNET_LIB64`` for the float64 one),
2. this package's directory (where ``pip install`` puts a copy),
3. ``build/`` of the source tree the package sits in (``python/retnet/../../build``),
   so that ``PYTHONPATH=python`` works straight from a build.

Every call goes through :func:`call`, which raises the :class:`retnet.Error`
subclass of the returned ``rn_status`` with ``rn_last_error()``'s message. The
library keeps that message per thread: ctypes makes the call and :func:`call`
reads the message on the same Python thread right after it. ``ctypes.CDLL``
releases the GIL for the duration of every foreign call, so long calls (a
forward, a training step) let other Python threads run.
"""

from __future__ import annotations

import ctypes
import os
from ctypes import (POINTER, Structure, c_char_p, c_double, c_float, c_int, c_int32, c_int64,
                    c_size_t, c_uint, c_uint64, c_void_p)
from typing import Optional

import numpy as np

from .errors import raise_status

_HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates(name: str, env: str) -> list:
    out = []
    if os.environ.get(env):
        out.append(os.environ[env])
    out.append(os.path.join(_HERE, name))
    out.append(os.path.normpath(os.path.join(_HERE, "..", "..", "build", name)))
    return out


# --------------------------------------------------------------- structs

class RnConfig(Structure):
    """rn_config of include/retnet.h (enums are C ints)."""
    _fields_ = [("preset", c_int), ("dim", c_int), ("value_dim", c_int), ("heads", c_int),
                ("ffn_dim", c_int), ("layers", c_int), ("vocab", c_int),
                ("norm_eps", c_double), ("head_eps", c_double),
                ("rotation", c_int), ("decay", c_int), ("decay_norm", c_int), ("qk_scale", c_int),
                ("head_norm", c_int), ("block_norm", c_int), ("final_norm", c_int), ("ffn", c_int),
                ("act", c_int), ("tie_embed", c_int), ("scale_embed", c_int), ("embed_norm", c_int)]


class RnRng(Structure):
    """rn_rng: xoshiro256** state."""
    _fields_ = [("s", c_uint64 * 4)]


class RnSamplerConfig(Structure):
    _fields_ = [("temperature", c_double), ("top_k", c_int), ("top_p", c_double), ("seed", c_uint64)]


class RnTrainConfig(Structure):
    _fields_ = [("batch", c_int), ("seq", c_int), ("accum", c_int), ("mode", c_int), ("chunk", c_int),
                ("steps", c_int), ("warmup", c_int), ("lr", c_double), ("min_lr_ratio", c_double),
                ("beta1", c_double), ("beta2", c_double), ("eps", c_double), ("weight_decay", c_double),
                ("grad_clip", c_double), ("schedule", c_int), ("decay_embed", c_int)]


class RnStepInfo(Structure):
    _fields_ = [("step", c_int64), ("loss", c_double), ("grad_norm", c_double), ("lr", c_double),
                ("tokens", c_int)]


class RnTokenizer(Structure):
    """The public head of rn_tokenizer (retnet_data.h); only the data fields are read."""
    _fields_ = [("vocab_size", c_int), ("name", c_char_p), ("encode", c_void_p), ("decode", c_void_p),
                ("free", c_void_p), ("impl", c_void_p)]


P = c_void_p  # opaque handles (rn_model *, rn_state *, ...)
PP = POINTER(c_void_p)
I32P = POINTER(c_int32)


def _sigs(real) -> dict:
    """name: (restype, argtypes) for every function the binding uses."""
    RP = POINTER(real)
    st = c_int  # rn_status
    return {
        "rn_status_name": (c_char_p, [c_int]),
        "rn_last_error": (c_char_p, []),
        "rn_version": (c_char_p, []),
        "rn_set_threads": (None, [c_int]),
        "rn_get_threads": (c_int, []),
        "rn_rng_seed": (None, [POINTER(RnRng), c_uint64]),
        "rn_rng_u64": (c_uint64, [POINTER(RnRng)]),
        "rn_rng_uniform": (c_double, [POINTER(RnRng)]),
        "rn_rng_normal": (c_double, [POINTER(RnRng)]),
        "rn_config_preset": (st, [POINTER(RnConfig), c_int, c_char_p]),
        "rn_preset_from_name": (st, [c_char_p, POINTER(c_int)]),
        "rn_preset_name": (c_char_p, [c_int]),
        "rn_config_validate": (st, [POINTER(RnConfig)]),
        "rn_config_num_params": (c_size_t, [POINTER(RnConfig)]),
        "rn_model_create": (st, [POINTER(RnConfig), PP]),
        "rn_model_free": (None, [P]),
        "rn_model_init_random": (st, [P, c_uint64]),
        "rn_model_config": (POINTER(RnConfig), [P]),
        "rn_model_num_params": (c_size_t, [P]),
        "rn_model_params": (RP, [P]),
        "rn_state_create": (st, [P, c_int, PP]),
        "rn_state_free": (None, [P]),
        "rn_state_reset": (None, [P]),
        "rn_state_pos": (c_int64, [P]),
        "rn_state_batch": (c_int, [P]),
        "rn_state_copy": (st, [P, P]),
        "rn_mode_from_name": (st, [c_char_p, POINTER(c_int)]),
        "rn_forward": (st, [P, P, I32P, c_int, c_int, c_int, c_int, c_uint, RP]),
        "rn_retention_forward": (st, [c_int, c_int, c_int, c_int, c_int, RP, RP, RP, POINTER(c_double),
                                      c_int, c_int, RP]),
        "rn_retention_backward": (st, [c_int, c_int, c_int, c_int, c_int, RP, RP, RP, POINTER(c_double),
                                       c_int, c_int, RP, RP, RP, RP]),
        "rn_sampler_config_default": (None, [POINTER(RnSamplerConfig)]),
        "rn_session_create": (st, [P, POINTER(RnSamplerConfig), c_int, PP]),
        "rn_session_free": (None, [P]),
        "rn_session_reset": (None, [P]),
        "rn_session_prefill": (st, [P, I32P, c_int]),
        "rn_session_feed": (st, [P, c_int32]),
        "rn_session_step": (st, [P, I32P]),
        "rn_session_logits": (RP, [P]),
        "rn_session_pos": (c_int64, [P]),
        "rn_model_score": (st, [P, P, I32P, I32P, c_int, c_int, POINTER(c_double), POINTER(c_int)]),
        "rn_model_loss_grad": (st, [P, I32P, I32P, c_int, c_int, c_int, c_int, c_double, RP,
                                    POINTER(c_double), POINTER(c_int)]),
        "rn_train_config_default": (None, [POINTER(RnTrainConfig)]),
        "rn_lr_at": (c_double, [POINTER(RnTrainConfig), c_int64]),
        "rn_trainer_create": (st, [P, POINTER(RnTrainConfig), PP]),
        "rn_trainer_free": (None, [P]),
        "rn_trainer_step": (st, [P, I32P, I32P, POINTER(RnStepInfo)]),
        "rn_trainer_config": (POINTER(RnTrainConfig), [P]),
        "rn_trainer_set_config": (st, [P, POINTER(RnTrainConfig)]),
        "rn_trainer_step_count": (c_int64, [P]),
        "rn_trainer_model": (P, [P]),
        "rn_trainer_save": (st, [P, c_char_p, c_char_p]),
        "rn_trainer_load": (st, [c_char_p, PP, POINTER(c_void_p)]),
        "rn_format_name": (c_char_p, [c_int]),
        "rn_format_from_name": (st, [c_char_p, POINTER(c_int)]),
        "rn_dtype_name": (c_char_p, [c_int]),
        "rn_dtype_from_name": (st, [c_char_p, POINTER(c_int)]),
        "rn_model_load_ex": (st, [c_char_p, PP, POINTER(c_int)]),
        "rn_model_save_as": (st, [P, c_char_p, c_int, c_int]),
        "rn_model_save_values": (st, [P, RP, c_char_p, c_int, c_int]),
        "rn_config_to_json": (c_void_p, [POINTER(RnConfig)]),
        "rn_config_from_json": (st, [c_char_p, POINTER(RnConfig)]),
        "rn_npy_save": (st, [c_char_p, RP, c_int, POINTER(c_int64)]),
        # retnet_data.h
        "rn_tokenizer_byte_create": (st, [PP]),
        "rn_tokenizer_encode": (st, [P, c_char_p, c_size_t, I32P, c_size_t, POINTER(c_size_t)]),
        "rn_tokenizer_decode": (st, [P, c_int32, POINTER(c_void_p), POINTER(c_size_t)]),
        "rn_tokenizer_free": (None, [P]),
        "rn_dataset_open": (st, [c_char_p, P, c_double, PP]),
        "rn_dataset_from_tokens": (st, [I32P, c_size_t, c_int, c_double, PP]),
        "rn_dataset_free": (None, [P]),
        "rn_dataset_size": (c_size_t, [P, c_int]),
        "rn_dataset_tokens": (I32P, [P, c_int]),
        "rn_dataset_vocab_size": (c_int, [P]),
        "rn_dataset_sample": (st, [P, c_int, POINTER(RnRng), c_int, c_int, I32P, I32P]),
        "rn_dataset_num_windows": (c_size_t, [P, c_int, c_int]),
        "rn_dataset_window": (st, [P, c_int, c_size_t, c_int, I32P, I32P, POINTER(c_int)]),
    }


# Functions of the tokenizer work (retnet_data.h), bound only when the loaded
# library exports them.
_OPTIONAL = {
    "rn_tokenizer_load": (c_int, [c_char_p, PP]),
    "rn_tokenizer_encode_special": (c_int, [P, c_char_p, c_size_t, c_int, I32P, c_size_t, POINTER(c_size_t)]),
    "rn_tokenizer_decode_all": (c_int, [P, I32P, c_size_t, c_int, c_char_p, c_size_t, POINTER(c_size_t)]),
    "rn_tokenizer_bos": (c_int32, [P]),
    "rn_tokenizer_eos": (c_int32, [P]),
}

_libc = ctypes.CDLL(None)
_libc.free.argtypes = [c_void_p]
_libc.free.restype = None


def c_free(p) -> None:
    """free() for the strings the library hands over (rn_config_to_json, user JSON)."""
    _libc.free(p)


class Handle:
    """An object the library allocated, held as self._h and freed by the library function
    named by _free: by close(), at the end of a `with` block, or when collected."""

    _free = ""

    def close(self) -> None:
        """Frees the object now (it is freed when collected otherwise)."""
        if getattr(self, "_h", None) and self._h.value:
            getattr(self._lib, self._free)(self._h)
            self._h = ctypes.c_void_p()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Library:
    """One loaded libretnet (float32 or float64 build) with its declarations."""

    def __init__(self, path: str, real) -> None:
        # CDLL (not PyDLL): the GIL is released during each call.
        self.path = path
        self.dll = ctypes.CDLL(path)
        self.real = real
        self.dtype = np.dtype(np.float32 if real is c_float else np.float64)
        self.real_p = POINTER(real)
        for name, (res, args) in _sigs(real).items():
            fn = getattr(self.dll, name)
            fn.restype, fn.argtypes = res, args
            setattr(self, name, fn)
        for name, (res, args) in _OPTIONAL.items():
            if hasattr(self.dll, name):
                fn = getattr(self.dll, name)
                fn.restype, fn.argtypes = res, args
                setattr(self, name, fn)

    def has(self, name: str) -> bool:
        """Whether the library exports (and the binding declared) function name."""
        return hasattr(self, name)

    def last_error(self) -> str:
        return self.rn_last_error().decode("utf-8", "replace")

    def call(self, fn, *args) -> None:
        """Calls fn (returning rn_status) and raises on failure with rn_last_error()."""
        st = fn(*args)
        if st != 0:
            raise_status(st, self.last_error())

    def rptr(self, a: np.ndarray):
        """a's data as rn_real * (a must be contiguous of this library's dtype)."""
        return a.ctypes.data_as(self.real_p)


def i32ptr(a: np.ndarray):
    """a's data as int32_t * (a must be a contiguous int32 array)."""
    return a.ctypes.data_as(I32P)


def as_tokens(tokens, name: str = "tokens") -> np.ndarray:
    """tokens as a C-contiguous int32 array, without a copy when it is one already."""
    a = np.asarray(tokens)
    if a.dtype != np.int32:
        if a.size and not np.issubdtype(a.dtype, np.integer):
            from .errors import ArgumentError
            raise ArgumentError(f"{name} must be integers, got {a.dtype}")
        if a.size and (a.min() < -2**31 or a.max() >= 2**31):
            from .errors import ArgumentError
            raise ArgumentError(f"{name}: ids out of int32 range")
        a = a.astype(np.int32)
    return np.ascontiguousarray(a)


_libs: dict = {}


def _load(double: bool) -> Library:
    name = "libretnet64.so" if double else "libretnet.so"
    env = "RETNET_LIB64" if double else "RETNET_LIB"
    tried = []
    for path in _candidates(name, env):
        if os.path.exists(path):
            return Library(path, c_double if double else c_float)
        tried.append(path)
    raise OSError(f"cannot find {name} (tried {', '.join(tried)}); build it with `make python` "
                  f"or set {env}")


def lib(double: bool = False) -> Library:
    """The float32 library (double=False), or the float64 build (libretnet64.so)."""
    if double not in _libs:
        _libs[double] = _load(double)
    return _libs[double]


def lib_path(double: bool = False) -> Optional[str]:
    """Where the library would be loaded from (None if nowhere)."""
    name = "libretnet64.so" if double else "libretnet.so"
    for path in _candidates(name, "RETNET_LIB64" if double else "RETNET_LIB"):
        if os.path.exists(path):
            return path
    return None
