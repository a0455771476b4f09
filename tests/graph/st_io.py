"""st_io.py — minimal safetensors reading and writing (8-byte header length,
JSON header, raw little-endian data) for the tests of this suite."""
import json, struct

import numpy as np

DT = {"F32": np.float32, "I64": np.int64}
RDT = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}


def write_st(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": RDT[arr.dtype], "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_st(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, d in header.items():
        if name != "__metadata__":
            b, e = d["data_offsets"]
            out[name] = np.frombuffer(data[8 + n + b:8 + n + e], dtype=DT[d["dtype"]]).reshape(d["shape"])
    return out
