"""Reads and writes the safetensors format with numpy and struct only (there is no
safetensors package here).

Layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the raw
little-endian tensor bytes. The header maps each tensor name to
{"dtype", "shape", "data_offsets": [begin, end)} relative to the start of the data, and may
hold "__metadata__" (a str -> str map). We write tensors sorted by name, contiguous, the
header padded with spaces to a multiple of 8 bytes (as the Rust writer does).
"""

import json
import struct

import numpy as np
import torch

# safetensors dtype name -> (numpy dtype or None, itemsize). BF16 has no numpy dtype: it is
# read as uint16 and widened through torch.
DTYPES = {
    "F64": (np.float64, 8), "F32": (np.float32, 4), "F16": (np.float16, 2),
    "BF16": (None, 2), "I64": (np.int64, 8), "I32": (np.int32, 4), "I16": (np.int16, 2),
    "I8": (np.int8, 1), "U8": (np.uint8, 1), "BOOL": (np.bool_, 1),
}
TORCH_TO_ST = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
               torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
               torch.int8: "I8"}


class FormatError(ValueError):
    pass


def read(path):
    """Returns {name: torch.Tensor} (copies) and the metadata dict. Raises FormatError naming
    the problem for a malformed file."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise FormatError(f"{path}: {len(blob)} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise FormatError(f"{path}: header length {n} exceeds the file ({len(blob)} bytes)")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: header is not a JSON object")
    data = memoryview(blob)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    spans = []
    for name, info in header.items():
        try:
            dtype, shape, (b, e) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise FormatError(f"{path}: tensor {name!r}: entry needs dtype, shape, data_offsets")
        if dtype not in DTYPES:
            raise FormatError(f"{path}: tensor {name!r}: unsupported dtype {dtype!r}")
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            raise FormatError(f"{path}: tensor {name!r}: bad shape {shape}")
        npdt, size = DTYPES[dtype]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= b <= e <= len(data)) or e - b != count * size:
            raise FormatError(f"{path}: tensor {name!r}: data_offsets [{b}, {e}) do not fit "
                              f"shape {shape} x {size} bytes within {len(data)} data bytes")
        spans.append((b, e, name))
        raw = bytes(data[b:e])
        if dtype == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.int32) << 16
            t = torch.from_numpy(u.view(np.float32).copy()).to(torch.bfloat16)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(npdt).newbyteorder("<")).astype(npdt)
            t = torch.from_numpy(arr.copy())
        out[name] = t.reshape(shape)
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise FormatError(f"{path}: tensors {n0!r} and {n1!r} overlap")
    return out, meta


def write(path, tensors, metadata=None):
    """Writes {name: torch.Tensor} deterministically (sorted names, no timestamps)."""
    header, chunks, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        if t.dtype not in TORCH_TO_ST:
            raise FormatError(f"tensor {name!r}: unsupported dtype {t.dtype}")
        dt = TORCH_TO_ST[t.dtype]
        if dt == "BF16":
            raw = (t.to(torch.float32).numpy().view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            raw = t.numpy().astype(np.dtype(t.numpy().dtype).newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)
