"""The IDX format of MNIST and Fashion-MNIST (LeCun et al., http://yann.lecun.com/exdb/mnist/).

An IDX file is a 4-byte magic number -- two zero bytes, a dtype code and the number of dimensions -- then
one big-endian uint32 per dimension, then the values in row-major order, big-endian. The files are
usually distributed gzip-compressed.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

from lineup.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"

# dtype code (third byte of the magic number) -> element type as stored, big-endian.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def decompress(data: bytes, *, source: str = "<bytes>") -> bytes:
    """``data`` gunzipped when it starts with the gzip magic number, else ``data`` unchanged.

    Args:
        data: file contents, compressed or not.
        source: where the bytes come from, for error messages.

    Raises:
        DataError: the bytes look like gzip but do not decompress (corrupt or truncated download).
    """
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{source}: corrupt gzip data ({e}); delete the file and fetch it again") from None


def read_idx(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse one IDX file, gzip-compressed or not.

    Args:
        data: the file's bytes.
        source: where the bytes come from (a path or URL), named in every error.

    Returns:
        The array with the shape of the header, in native byte order and writable.

    Raises:
        DataError: bad magic number, unknown dtype code, corrupt gzip, or a payload that is shorter or longer
            than the header's dimensions say.

    Example:
        >>> read_idx(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9])).tolist()
        [7, 8, 9]
    """
    data = decompress(data, source=source)
    if len(data) < 4:
        raise DataError(f"{source}: not an IDX file: {len(data)} bytes, shorter than the 4-byte magic number")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{source}: bad magic number 0x{data[:4].hex()}: an IDX file starts with two zero bytes "
            "(is this the right file?)"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{source}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    dtype = IDX_DTYPES[code]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{source}: truncated: the header of a {ndim}-dimensional IDX file needs {header} bytes, "
            f"got {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header])
    count = math.prod(shape)
    expected, actual = count * dtype.itemsize, len(data) - header
    if actual < expected:
        raise DataError(
            f"{source}: truncated: shape {shape} of {dtype.name} needs {expected} bytes of data, got {actual}"
        )
    if actual > expected:
        raise DataError(
            f"{source}: {actual - expected} trailing bytes after the {expected} bytes of data that "
            f"shape {shape} of {dtype.name} needs"
        )
    # astype copies: the result owns its memory (writable, unlike a view of ``bytes``) in native order.
    stored = np.frombuffer(data, dtype=dtype, count=count, offset=header)
    return stored.astype(dtype.newbyteorder("=")).reshape(shape)


def read_idx_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Parse the IDX file at ``path`` (``.gz`` or not); see ``read_idx``.

    Raises:
        DataError: the file is missing or unreadable, or does not parse.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"{os.fspath(path)}: cannot read ({e.strerror or e})") from None
    return read_idx(data, source=os.fspath(path))


def write_idx(array: np.ndarray, *, compress: bool = False) -> bytes:
    """The IDX encoding of ``array``, the inverse of ``read_idx``.

    Args:
        array: an array of a dtype in ``IDX_DTYPES`` (any byte order), with at most 255 dimensions.
        compress: gzip the result; the gzip header carries no timestamp, so equal arrays give equal bytes.

    Raises:
        ValueError: a dtype that IDX cannot store (int64, uint16, bool ...).
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder(">"): code for code, dt in IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder(">"))
    if code is None:
        names = ", ".join(dt.name for dt in IDX_DTYPES.values())
        raise ValueError(f"IDX cannot store dtype {array.dtype.name}; use one of: {names}")
    if array.ndim > 255:
        raise ValueError(f"IDX stores at most 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    data = header + payload
    return gzip.compress(data, mtime=0) if compress else data
