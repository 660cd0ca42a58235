"""Read TensorFlow TensorBundle checkpoints (``.index`` + ``.data-00000-of-00001``) without TensorFlow.

The ``.index`` file is a LevelDB-style table (uncompressed blocks, footer magic
``0xdb4775248b80fb57``) mapping each variable name to a serialised ``BundleEntryProto``
(dtype, shape, shard, offset, size, crc32c). The ``.data`` shard holds the raw little-endian
tensors. Only what the musicnn checkpoints use is supported: float32 tensors in one shard,
not sliced. Protobuf messages are decoded by hand (no protobuf dependency).
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np

from ..errors import CheckpointError

MAGIC = 0xDB4775248B80FB57
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes):
    """Yield (field number, wire type, value) of a protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield num, wire, value


def _block_entries(data: bytes, offset: int, size: int):
    """Yield (key, value) of one table block."""
    block = data[offset:offset + size]
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + vlen]
        pos += vlen


def _entry(value: bytes) -> dict:
    out = {"dtype": 1, "shape": [], "shard": 0, "offset": 0, "size": 0, "sliced": False}
    for num, _, v in _fields(value):
        if num == 1:
            out["dtype"] = v
        elif num == 2:
            for dnum, _, dim in _fields(v):
                if dnum == 2:
                    out["shape"].append(next((s for n, _, s in _fields(dim) if n == 1), 0))
        elif num == 3:
            out["shard"] = v
        elif num == 4:
            out["offset"] = v
        elif num == 5:
            out["size"] = v
        elif num == 7:
            out["sliced"] = True
    return out


def read_bundle(prefix: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of a TensorBundle checkpoint, by variable name.

    Parameters
    ----------
    prefix : the checkpoint prefix: ``<prefix>.index`` and ``<prefix>.data-00000-of-00001``
        must exist (for musicnn the prefix is the model folder plus ``/``)

    Raises
    ------
    CheckpointError
        when the files are missing, truncated or damaged, or not a TensorBundle of supported
        tensors.
    """
    prefix = str(prefix)
    index, shard = Path(prefix + ".index"), Path(prefix + ".data-00000-of-00001")
    for p in (index, shard):
        if not p.is_file():
            raise CheckpointError(f"{str(p)!r}: TensorBundle file missing")
    data = index.read_bytes()
    if len(data) < 48 or struct.unpack_from("<Q", data, len(data) - 8)[0] != MAGIC:
        raise CheckpointError(f"{str(index)!r}: not a TensorBundle index (bad footer magic)")
    try:
        entries = list(_index_entries(data))
    except (IndexError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{str(index)!r}: TensorBundle index truncated or damaged ({exc}); "
                              "get a fresh copy of the checkpoint") from None
    # np.memmap refuses an empty file: an empty shard is a truncated one, reported per tensor
    raw = np.memmap(shard, dtype=np.uint8, mode="r") if shard.stat().st_size else np.zeros(0, np.uint8)
    tensors: dict[str, np.ndarray] = {}
    for name, e in entries:
        if e["sliced"] or e["shard"] != 0 or e["dtype"] not in _DTYPES:
            raise CheckpointError(f"{str(index)!r}: tensor {name!r} is sliced, sharded "
                                  f"or of unsupported dtype {e['dtype']}")
        dtype = np.dtype(_DTYPES[e["dtype"]]).newbyteorder("<")
        expected = math.prod(e["shape"])
        found = max(0, min(e["size"], raw.size - e["offset"])) // dtype.itemsize
        if e["size"] != expected * dtype.itemsize or found != expected:
            raise CheckpointError(f"{str(shard)!r}: tensor {name!r} truncated or damaged: expected "
                                  f"{expected} values, found {found}; get a fresh copy of the checkpoint")
        buf = np.asarray(raw[e["offset"]:e["offset"] + e["size"]])
        tensors[name] = buf.view(dtype).reshape(e["shape"]).astype(dtype.newbyteorder("="))
    return tensors


def _index_entries(data: bytes):
    """Yield (variable name, :func:`_entry`) of a TensorBundle index's table, header left out."""
    footer = data[-48:]
    _, pos = _varint(footer, 0)
    _, pos = _varint(footer, pos)  # metaindex handle (unused)
    idx_off, pos = _varint(footer, pos)
    idx_size, pos = _varint(footer, pos)
    for _, handle in _block_entries(data, idx_off, idx_size):
        off, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        for key, value in _block_entries(data, off, size):
            if key:  # the empty key is the bundle header
                yield key.decode(), _entry(value)
