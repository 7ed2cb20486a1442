"""safetensors header validation: every malformed header is a HeaderError naming the file and problem."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tpa_dist.checkpoint.header import read_header
from tpa_dist.errors import HeaderError

from .conftest import write_safetensors


def _raw_file(tmp_path, header: bytes, data: bytes = b"", hlen: int | None = None):
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(header) if hlen is None else hlen) + header + data)
    return path


def test_valid_header_matches_safetensors_library(tmp_path):
    from safetensors.numpy import load_file

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.arange(5, dtype=np.int64)
    path = write_safetensors(tmp_path / "ok.safetensors", {"a": ("F32", a, (3, 4)), "b": ("I64", b, (5,))})
    header = read_header(path)
    ref = load_file(str(path))
    raw = path.read_bytes()
    for entry in header.tensors:
        got = np.frombuffer(raw[entry.start : entry.start + entry.nbytes], dtype=ref[entry.name].dtype)
        assert np.array_equal(got.reshape(entry.shape), ref[entry.name])


@pytest.mark.parametrize(
    "header, data, hlen, message",
    [
        (b"", b"", None, "not valid JSON"),
        (b"[1, 2]", b"", None, "not an object"),
        (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', b"\0" * 4, None, "outside the data area"),
        (b'{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}', b"\0" * 8, None, "needs 12"),
        (b'{"a": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}', b"\0" * 8, None, "unknown dtype"),
        (
            b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
            b'"b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}',
            b"\0" * 12,
            None,
            "overlap",
        ),
        (
            b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
            b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}',
            b"\0" * 8,
            None,
            "duplicate tensor name",
        ),
        (b'{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', b"\0" * 4, None, "non-negative"),
        (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}', b"\0" * 4, None, "data_offsets"),
        (b"{}", b"", 10**6, "larger than the file"),
        (b"{}", b"", 200_000_000, "exceeds"),
    ],
)
def test_malformed_headers_are_named(tmp_path, header, data, hlen, message):
    path = _raw_file(tmp_path, header, data, hlen)
    with pytest.raises(HeaderError) as exc:
        read_header(path)
    assert message in str(exc.value)
    assert str(path) in str(exc.value)


def test_truncated_file(tmp_path):
    path = tmp_path / "t.safetensors"
    path.write_bytes(b"\x10\x00")
    with pytest.raises(HeaderError, match="too short"):
        read_header(path)


def test_zero_sized_dimension_is_valid_in_header(tmp_path):
    path = write_safetensors(tmp_path / "z.safetensors", {"z": ("F32", b"", (0, 4))})
    (entry,) = read_header(path).tensors
    assert entry.shape == (0, 4) and entry.nbytes == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=2**64 - 1))
def test_fuzzed_headers_raise_only_header_error(tmp_path, blob, hlen):
    path = _raw_file(tmp_path, blob, b"", hlen % (len(blob) + 16) if hlen % 3 else hlen)
    try:
        read_header(path)
    except HeaderError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.text(max_size=8),
        json_values
        | st.fixed_dictionaries(
            {
                "dtype": st.sampled_from(["F32", "BF16", "X"]),
                "shape": st.lists(st.integers(-2, 5), max_size=3),
                "data_offsets": st.lists(st.integers(-2, 64), max_size=3),
            }
        ),
        max_size=4,
    )
)
def test_fuzzed_json_headers_raise_only_header_error(tmp_path, doc):
    path = _raw_file(tmp_path, json.dumps(doc).encode(), b"\0" * 64)
    try:
        header = read_header(path)
    except HeaderError:
        return
    for entry in header.tensors:  # whatever is accepted is self-consistent
        assert entry.start + entry.nbytes <= header.size
