"""The IDX parser: round trips, a hand-encoded file, and every way a file can be broken."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from lineup.data.idx import read_idx, read_idx_file, write_idx
from lineup.errors import DataError


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 0, 3)])
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(dtype: type, shape: tuple[int, ...], compress: bool) -> None:
    rng = np.random.default_rng(0)
    # Values that use the whole width of the type, signs included, so a wrong byte order shows.
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
    values = rng.uniform(float(info.min) / 2, float(info.max) / 2, size=shape).astype(dtype)
    back = read_idx(write_idx(values, compress=compress))
    assert back.dtype == np.dtype(dtype)  # native byte order
    assert back.shape == shape
    np.testing.assert_array_equal(back, values)
    back[...] = 0  # writable, not a view of the input bytes


def test_big_endian_input_round_trips() -> None:
    values = np.array([1, -2, 300], dtype=">i4")
    np.testing.assert_array_equal(read_idx(write_idx(values)), [1, -2, 300])


def test_hand_encoded_int16_file() -> None:
    # magic 00 00 0B (int16) 01 (one dimension), dim 00 00 00 02, then big-endian 0x0102 = 258, 0xFFFE = -2
    data = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE])
    out = read_idx(data)
    assert out.dtype == np.int16
    assert out.tolist() == [258, -2]


def test_write_idx_layout_and_deterministic_gzip() -> None:
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert write_idx(a) == bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5])
    assert write_idx(a, compress=True) == write_idx(a.copy(), compress=True)
    assert gzip.decompress(write_idx(a, compress=True)) == write_idx(a)


def test_write_idx_rejects_types_idx_cannot_store() -> None:
    with pytest.raises(ValueError, match="int64"):
        write_idx(np.zeros(3, dtype=np.int64))


def test_read_idx_file(tmp_path) -> None:
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(write_idx(np.array([3, 1, 4], dtype=np.uint8), compress=True))
    assert read_idx_file(path).tolist() == [3, 1, 4]
    with pytest.raises(DataError, match="missing.idx: cannot read"):
        read_idx_file(tmp_path / "missing.idx")


IMAGES = np.zeros((2, 4, 4), dtype=np.uint8)  # payload 32 bytes after a 16-byte header


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            write_idx(IMAGES)[:-3],
            r"x.idx: truncated: shape \(2, 4, 4\) of uint8 needs 32 bytes of data, got 29",
        ),
        (write_idx(IMAGES) + b"\0\0", r"x.idx: 2 trailing bytes after the 32 bytes of data"),
        (b"\x08\x03" + write_idx(IMAGES)[2:], r"x.idx: bad magic number 0x08030803"),
        (bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 7]), r"x.idx: unknown IDX dtype code 0x0A"),
        (
            write_idx(IMAGES)[:10],
            r"x.idx: truncated: the header of a 3-dimensional IDX file needs 16 bytes, got 10",
        ),
        (b"\0\0", r"x.idx: not an IDX file: 2 bytes"),
    ],
    ids=["truncated", "trailing", "bad-magic", "unknown-dtype", "short-header", "tiny"],
)
def test_broken_files_name_source_and_problem(data: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_idx(data, source="x.idx")


def test_truncated_payload_inside_gzip_is_reported_as_truncated() -> None:
    data = gzip.compress(write_idx(IMAGES)[:-1])
    with pytest.raises(DataError, match="needs 32 bytes of data, got 31"):
        read_idx(data, source="x.idx.gz")


def test_cut_off_gzip_stream_is_corrupt_gzip() -> None:
    data = write_idx(np.arange(1000, dtype=np.int32), compress=True)
    with pytest.raises(DataError, match=r"x.idx.gz: corrupt gzip data"):
        read_idx(data[: len(data) // 2], source="x.idx.gz")


def test_damaged_gzip_stream_is_corrupt_gzip() -> None:
    data = bytearray(write_idx(np.arange(1000, dtype=np.int32), compress=True))
    data[len(data) // 2] ^= 0xFF  # the deflate data or the CRC no longer matches
    with pytest.raises(DataError, match=r"x.idx.gz: corrupt gzip data"):
        read_idx(bytes(data), source="x.idx.gz")
