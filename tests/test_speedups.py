"""The optional C accelerator gives the same bytes as the pure-Python path."""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncws.core import frames

speedups: ModuleType | None = None
if importlib.util.find_spec("syncws.core.speedups") is not None:
    speedups = importlib.import_module("syncws.core.speedups")

# tox builds the package with a C compiler and sets this, so that a build that silently fell
# back to pure Python fails here instead of passing slowly.
REQUIRED = os.environ.get("SYNCWS_REQUIRE_SPEEDUPS") == "1"


def test_speedups_built_when_required() -> None:
    if REQUIRED:
        assert speedups is not None, "the C accelerator was not built"
        assert frames.apply_mask is speedups.apply_mask
        assert frames.encode_frame is speedups.encode_frame
    elif speedups is None:
        assert frames.apply_mask is frames._apply_mask_python
        assert frames.encode_frame is frames._encode_frame_python


needs_speedups = pytest.mark.skipif(speedups is None, reason="built without a C compiler")


@needs_speedups
@given(st.binary(max_size=20_000), st.binary(min_size=4, max_size=4))
def test_c_mask_matches_python(data: bytes, key: bytes) -> None:
    assert speedups is not None
    assert speedups.apply_mask(data, key) == frames._apply_mask_python(data, key)


@needs_speedups
@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 65536, 65537, 3 * 2**20 + 3])
def test_c_mask_sizes_and_buffer_types(size: int) -> None:
    assert speedups is not None
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    key = b"\x01\x80\xff\x10"
    expected = frames._apply_mask_python(data, key)
    assert speedups.apply_mask(data, key) == expected
    assert speedups.apply_mask(bytearray(data), key) == expected
    assert speedups.apply_mask(memoryview(data), key) == expected
    # Masking twice gives the data back.
    assert speedups.apply_mask(expected, key) == data


@needs_speedups
@pytest.mark.parametrize("key", [b"", b"abc", b"abcde"])
def test_c_mask_needs_four_byte_key(key: bytes) -> None:
    assert speedups is not None
    with pytest.raises(ValueError, match="4 bytes"):
        speedups.apply_mask(b"data", key)


@needs_speedups
@given(
    st.integers(0, 255),
    st.binary(max_size=70_000),
    st.none() | st.binary(min_size=4, max_size=4),
)
def test_c_frame_matches_python(head: int, data: bytes, key: bytes | None) -> None:
    assert speedups is not None
    assert speedups.encode_frame(head, data, key) == frames._encode_frame_python(head, data, key)


@needs_speedups
@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 3 * 2**20 + 3])
@pytest.mark.parametrize("key", [None, b"\x01\x80\xff\x10"])
def test_c_frame_length_forms_and_buffer_types(size: int, key: bytes | None) -> None:
    assert speedups is not None
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    expected = frames._encode_frame_python(0x82, data, key)
    assert speedups.encode_frame(0x82, data, key) == expected
    assert speedups.encode_frame(0x82, bytearray(data), key) == expected
    assert speedups.encode_frame(0x82, memoryview(data), key) == expected
    # The header says how long the payload is, in the shortest form, and whether it is masked.
    header = frames.encode_header(0x82, size, key is not None)
    assert expected.startswith(header)
    assert len(expected) == len(header) + (0 if key is None else 4) + size


@needs_speedups
@pytest.mark.parametrize(
    ("head", "key", "message"),
    [
        (256, None, "head must be a byte"),
        (-1, None, "head must be a byte"),
        (0x81, b"abc", "4 bytes"),
        (0x81, b"abcde", "4 bytes"),
    ],
)
def test_c_frame_refuses_bad_arguments(head: int, key: bytes | None, message: str) -> None:
    assert speedups is not None
    with pytest.raises(ValueError, match=message):
        speedups.encode_frame(head, b"data", key)
