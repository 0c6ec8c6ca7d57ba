"""Minimal safetensors reader/writer (json + struct + numpy; no `safetensors` package).

File layout:
    u64 little-endian N | N bytes of JSON header | raw little-endian tensor data
The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
(offsets relative to the start of the data section) and may hold "__metadata__",
a string -> string map.

Reading supports F32, F64, F16 and BF16 (BF16 widened exactly to float32) plus the
integer types; writing supports F32, F64 and BF16 (BF16 rounded to nearest even).
The writer lays tensors out in the given order, pads the header with spaces so the
data section starts 8-byte aligned, and accepts 0-d arrays (shape []).
"""

import json
import struct

import numpy as np

# safetensors dtype name -> numpy dtype of the stored bytes (BF16 handled apart).
_NP_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}


def bf16_bits_to_f32(bits):
    """uint16 bfloat16 bit patterns -> float32 (exact: bf16 is the top half of f32)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(x):
    """float32 -> uint16 bfloat16 bit patterns, round to nearest even (NaN kept NaN)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    out = rounded.astype(np.uint16)
    nan = np.isnan(x)
    if np.any(nan):
        out[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)  # keep a quiet NaN
    return out


def read_header(path):
    """Return (header dict, data-section byte offset) without reading the data."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
    return header, 8 + n


def load(path):
    """Read a .safetensors file.

    Returns (tensors, metadata): tensors is a dict name -> numpy array (BF16 and F16
    come back as float32, everything else in its stored type), in header order;
    metadata is the `__metadata__` dict (empty if absent).
    """
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n :]
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        dtype = info["dtype"]
        raw = data[begin:end]
        if dtype == "BF16":
            arr = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2"))
        elif dtype in _NP_DTYPES:
            arr = np.frombuffer(raw, dtype=_NP_DTYPES[dtype])
            if dtype == "F16":
                arr = arr.astype(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dtype}")
        count = int(np.prod(shape, dtype=np.int64))
        if arr.size != count:
            raise ValueError(f"{path}: tensor {name}: {arr.size} values for shape {shape}")
        tensors[name] = arr.reshape(shape).copy()  # copy: writable, native order
    return tensors, metadata


def save(path, tensors, metadata=None, dtype="F32"):
    """Write numpy arrays to a .safetensors file.

    tensors: dict name -> array-like (written in the dict's order).
    metadata: optional dict str -> str stored under "__metadata__".
    dtype: "F32", "F64" or "BF16" for every floating tensor; integer tensors keep
    their own type.
    """
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("safetensors metadata must map str -> str")
        header["__metadata__"] = dict(metadata)
    chunks = []
    offset = 0
    for name, value in tensors.items():
        arr = np.asarray(value)
        if np.issubdtype(arr.dtype, np.floating):
            if dtype == "BF16":
                raw = f32_to_bf16_bits(arr.astype(np.float32)).astype("<u2").tobytes()
            elif dtype in ("F32", "F64"):
                raw = arr.astype(_NP_DTYPES[dtype]).tobytes()
            else:
                raise ValueError(f"unsupported write dtype {dtype}")
            st_dtype = dtype
        else:
            st_dtype = next(
                (k for k, d in _NP_DTYPES.items() if d == arr.dtype.newbyteorder("<")), None
            )
            if st_dtype is None:
                raise ValueError(f"tensor {name}: unsupported numpy dtype {arr.dtype}")
            raw = arr.astype(_NP_DTYPES[st_dtype]).tobytes()
        header[name] = {
            "dtype": st_dtype,
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * ((-len(head)) % 8)  # 8 + len(head) is then a multiple of 8
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for raw in chunks:
            f.write(raw)
