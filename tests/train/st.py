"""st.py — a minimal, independent safetensors reader/writer for the tests
(struct + json + numpy), so that rxc's C implementation is checked against
code that shares nothing with it."""
import json
import struct

import numpy as np

DTYPES = {"F32": np.float32, "I64": np.int64, "U8": np.uint8, "BF16": np.uint16, "F64": np.float64, "I32": np.int32}


def read(path):
    """Returns (tensors: dict name -> numpy array, metadata dict). BF16 comes back as float32."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = blob[8 + n:]
    out = {}
    for name, e in header.items():
        b, en = e["data_offsets"]
        arr = np.frombuffer(data[b:en], dtype=DTYPES[e["dtype"]]).copy()
        if e["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.reshape(e["shape"])
    return out, meta


def write(path, tensors, metadata=None, order=None):
    """tensors: dict name -> numpy array (float32, int64, uint8)."""
    rev = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64", np.dtype(np.uint8): "U8"}
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    chunks, at = [], 0
    for name in (order or list(tensors)):
        a = np.asarray(tensors[name])  # not ascontiguousarray: it turns 0-d into 1-d
        raw = a.tobytes(order="C")
        header[name] = {"dtype": rev[a.dtype], "shape": list(a.shape), "data_offsets": [at, at + len(raw)]}
        chunks.append(raw)
        at += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


def write_raw(path, header_bytes, data=b""):
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)) + header_bytes + data)
