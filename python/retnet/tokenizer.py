"""Tokenizers: the byte-level tokenizer, and trained ones where the library has them."""

from __future__ import annotations

import ctypes
from ctypes import POINTER, byref, c_size_t, c_void_p
from typing import Iterable, Optional, Union

import numpy as np

from . import _lib
from .errors import ArgumentError


class Tokenizer(_lib.Handle):
    """A libretnet tokenizer (``rn_tokenizer``).

    ``Tokenizer.byte()`` is the byte-level tokenizer (256 ids, one per byte,
    lossless). ``Tokenizer.load(path)`` reads a trained tokenizer file when the
    loaded library has ``rn_tokenizer_load`` (see :meth:`available`).
    """

    _free = "rn_tokenizer_free"

    def __init__(self, handle: int, _key: object = None) -> None:
        if _key is not _CREATE:
            raise TypeError("use Tokenizer.byte() or Tokenizer.load(path)")
        self._lib = _lib.lib()
        self._h = c_void_p(handle)
        head = ctypes.cast(self._h, POINTER(_lib.RnTokenizer)).contents
        self.vocab_size: int = head.vocab_size
        self.name: str = (head.name or b"").decode("utf-8", "replace")

    # ------------------------------------------------------------ create
    @classmethod
    def byte(cls) -> "Tokenizer":
        """The byte-level tokenizer: id = byte value, vocab_size 256."""
        L = _lib.lib()
        h = c_void_p()
        L.call(L.rn_tokenizer_byte_create, byref(h))
        return cls(h.value, _CREATE)

    @staticmethod
    def available() -> bool:
        """Whether this build of the library can load trained tokenizers."""
        return _lib.lib().has("rn_tokenizer_load")

    @classmethod
    def load(cls, path: str) -> "Tokenizer":
        """Loads a tokenizer file (``rn_tokenizer_load``).

        Raises :class:`NotImplementedError` when the library predates it.
        """
        L = _lib.lib()
        if not L.has("rn_tokenizer_load"):
            raise NotImplementedError(f"{L.path} has no rn_tokenizer_load: only Tokenizer.byte() is available")
        h = c_void_p()
        L.call(L.rn_tokenizer_load, str(path).encode(), byref(h))
        return cls(h.value, _CREATE)

    def __repr__(self) -> str:
        return f"Tokenizer({self.name!r}, vocab_size={self.vocab_size})"

    # ----------------------------------------------------- special tokens
    @property
    def bos(self) -> Optional[int]:
        """The beginning-of-sequence id, or None."""
        if not self._lib.has("rn_tokenizer_bos"):
            return None
        v = self._lib.rn_tokenizer_bos(self._h)
        return None if v < 0 else int(v)

    @property
    def eos(self) -> Optional[int]:
        """The end-of-sequence id, or None."""
        if not self._lib.has("rn_tokenizer_eos"):
            return None
        v = self._lib.rn_tokenizer_eos(self._h)
        return None if v < 0 else int(v)

    # -------------------------------------------------------------- codec
    def encode(self, text: Union[str, bytes], add_special: bool = False) -> np.ndarray:
        """Token ids (int32 array) of text (str as UTF-8, or bytes).

        add_special adds the tokenizer's special tokens (BOS, ...) where it has
        them (``rn_tokenizer_encode_special``); the byte tokenizer has none.
        """
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        L, n = self._lib, c_size_t()
        special = L.has("rn_tokenizer_encode_special")
        if add_special and not special:
            raise ArgumentError("this library's tokenizers have no special tokens (no rn_tokenizer_encode_special)")

        def run(ids, cap):
            ptr = _lib.i32ptr(ids) if ids is not None else None
            if special:
                L.call(L.rn_tokenizer_encode_special, self._h, data, len(data), int(add_special), ptr, cap,
                       byref(n))
            else:
                L.call(L.rn_tokenizer_encode, self._h, data, len(data), ptr, cap, byref(n))

        cap = len(data) + 8
        ids = np.empty(cap, dtype=np.int32)
        run(ids, cap)
        if n.value > cap:
            cap = n.value
            ids = np.empty(cap, dtype=np.int32)
            run(ids, cap)
        return ids[: n.value]

    def piece(self, token: int) -> bytes:
        """The bytes one id stands for."""
        p, n = c_void_p(), c_size_t()
        self._lib.call(self._lib.rn_tokenizer_decode, self._h, int(token), byref(p), byref(n))
        return ctypes.string_at(p, n.value) if n.value else b""

    def decode_bytes(self, ids: Iterable[int], skip_special: bool = False) -> bytes:
        """The bytes of a sequence of ids."""
        arr = _lib.as_tokens(list(ids) if not isinstance(ids, np.ndarray) else ids, "ids").ravel()
        L = self._lib
        if L.has("rn_tokenizer_decode_all"):
            n = c_size_t()
            cap = 16 * len(arr) + 16
            while True:
                buf = ctypes.create_string_buffer(cap)
                L.call(L.rn_tokenizer_decode_all, self._h, _lib.i32ptr(arr), len(arr), int(skip_special), buf, cap,
                       byref(n))
                if n.value <= cap:
                    return buf.raw[: n.value]
                cap = n.value + 1
        return b"".join(self.piece(int(t)) for t in arr)

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """The text of a sequence of ids (invalid UTF-8 replaced by U+FFFD)."""
        return self.decode_bytes(ids, skip_special).decode("utf-8", "replace")


_CREATE = object()
