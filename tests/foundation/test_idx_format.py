"""IDX parsing against hand-built files: valid content round-trips, every malformation is refused."""

import gzip
import struct

import numpy as np
import pytest

from cnn_zoo.idx_format import IdxFormatError, read_idx, read_idx_bytes


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_valid_images_round_trip(tmp_path, compress):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    path = tmp_path / ("images.gz" if compress else "images")
    payload = idx_bytes(images)
    path.write_bytes(gzip.compress(payload) if compress else payload)
    loaded = read_idx(path)
    assert loaded.dtype == np.uint8 and loaded.shape == (3, 4, 5)
    np.testing.assert_array_equal(loaded, images)


def test_labels_header_is_parsed_by_hand():
    # 0x00000801, 4 items, labels 7 0 9 3
    data = bytes([0, 0, 8, 1, 0, 0, 0, 4, 7, 0, 9, 3])
    np.testing.assert_array_equal(read_idx_bytes(data), [7, 0, 9, 3])


def test_truncated_payload_is_refused(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.arange(10, dtype=np.uint8))[:-3])
    with pytest.raises(IdxFormatError, match=r"truncated.*\(10,\).*15 bytes"):
        read_idx(path)


def test_truncated_header_is_refused():
    with pytest.raises(IdxFormatError, match="truncated header"):
        read_idx_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 5]))
    with pytest.raises(IdxFormatError, match="too short"):
        read_idx_bytes(b"\x00\x00")


def test_trailing_bytes_are_refused():
    with pytest.raises(IdxFormatError, match="trailing bytes"):
        read_idx_bytes(idx_bytes(np.zeros(4, np.uint8)) + b"\x00")


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x01", b"PK\x03\x04", b"\x00\x01\x08\x01"])
def test_wrong_magic_number_is_refused(magic):
    with pytest.raises(IdxFormatError, match="bad magic number"):
        read_idx_bytes(magic + struct.pack(">I", 1) + b"\x05")


def test_unsupported_element_type_is_refused():
    with pytest.raises(IdxFormatError, match=r"element type 0x0d"):
        read_idx_bytes(idx_bytes(np.zeros(2, np.uint8), type_code=0x0D))


def test_truncated_gzip_stream_is_refused(tmp_path):
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.ones((2, 28, 28), np.uint8)))[:-10])
    with pytest.raises(IdxFormatError, match="gzip"):
        read_idx(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(IdxFormatError, match="cannot read"):
        read_idx(tmp_path / "absent")
