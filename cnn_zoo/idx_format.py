"""Reader for the IDX format of MNIST and Fashion-MNIST (optionally gzip-compressed).

Layout: two zero bytes, a type code (0x08 = unsigned byte, the only one these datasets use), the number
of dimensions d, then d big-endian uint32 sizes and the row-major payload. A file is accepted only when
its size is exactly what the header announces, so a truncated download or a file with trailing garbage
raises `IdxFormatError` instead of returning partial data.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

UNSIGNED_BYTE_TYPE_CODE = 0x08
GZIP_MAGIC = b"\x1f\x8b"


class IdxFormatError(ValueError):
    """A file is not a well-formed IDX file; the message names the file and the problem."""


def read_idx_bytes(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse IDX content (already decompressed) into a uint8 array of the shape its header declares.

    Raises `IdxFormatError` for a wrong magic number, an unsupported element type, or a payload whose
    length differs from the product of the declared dimensions.
    """
    if len(data) < 4:
        raise IdxFormatError(
            f"{source}: {len(data)} bytes is too short for an IDX header (4 bytes)"
        )
    if data[0] != 0 or data[1] != 0:
        raise IdxFormatError(
            f"{source}: bad magic number 0x{data[:4].hex()}: the first two bytes of an IDX file are zero"
        )
    type_code, num_dims = data[2], data[3]
    if type_code != UNSIGNED_BYTE_TYPE_CODE:
        raise IdxFormatError(
            f"{source}: element type 0x{type_code:02x} is not supported (only 0x08, unsigned byte)"
        )
    if num_dims == 0:
        raise IdxFormatError(f"{source}: the header declares zero dimensions")
    header_size = 4 + 4 * num_dims
    if len(data) < header_size:
        raise IdxFormatError(
            f"{source}: truncated header: {num_dims} dimensions need {header_size} bytes, "
            f"file has {len(data)}"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(num_dims))
    expected = header_size + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        raise IdxFormatError(
            f"{source}: {problem}: header declares shape {dims} ({expected} bytes in all), "
            f"file has {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims).copy()


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or gzip, detected from its first bytes) into a uint8 numpy array."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise IdxFormatError(f"{path}: cannot read: {error.strerror or error}") from error
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise IdxFormatError(f"{path}: corrupt or truncated gzip stream: {error}") from error
    return read_idx_bytes(raw, source=str(path))
