"""Request bodies as a SageMaker endpoint receives (and captures) them: encode, decode back."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from tritonlib.client import (
    BINARY_CONTENT_TYPE_PREFIX,
    RequestBodyError,
    decode_request_body,
    encode_request_body,
    json_header_size,
    media_type,
)

INPUTS: dict[str, NDArray[Any]] = {
    "IMAGE": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    "SCORE": np.array([[0.5, -1.25]], dtype=np.float32),
    "WIDE": np.array([1e300, -2.0]),
    "FLAG": np.array([True, False, True]),
    "HALF": np.array([1.5, 2.0], dtype=np.float16),
    "TEXT": np.array([[b"caf\xc3\xa9"], [b""]], dtype=np.object_),
}


@pytest.mark.parametrize("content_type", ["json", "binary"])
def test_every_datatype_round_trips_through_both_encodings(content_type: str) -> None:
    body, header = encode_request_body(INPUTS, content_type)  # type: ignore[arg-type]
    assert header.startswith(
        BINARY_CONTENT_TYPE_PREFIX if content_type == "binary" else "application/json"
    )
    decoded = decode_request_body(body, header)
    assert list(decoded) == list(INPUTS)
    for name, array in INPUTS.items():
        assert decoded[name].dtype == array.dtype, name
        assert decoded[name].tolist() == array.tolist(), name


def test_nested_json_data_as_other_clients_send_it() -> None:
    body = json.dumps(
        {"inputs": [{"name": "X", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}]}
    ).encode()
    assert decode_request_body(body, "application/json")["X"].tolist() == [[1, 2], [3, 4]]


def test_json_header_size_is_read_from_the_content_type() -> None:
    assert json_header_size(f"{BINARY_CONTENT_TYPE_PREFIX}42") == 42
    assert json_header_size("application/json") is None
    with pytest.raises(ValueError, match="unreadable json-header-size"):
        json_header_size(f"{BINARY_CONTENT_TYPE_PREFIX}x")


@pytest.mark.parametrize(
    "content_type, expected",
    [
        ("application/json", "application/json"),
        ("Application/JSON ; charset=utf-8", "application/json"),
        (f"{BINARY_CONTENT_TYPE_PREFIX}42", "application/vnd.sagemaker-triton.binary+json"),
        (None, ""),
    ],
)
def test_media_type_drops_parameters_and_case(content_type: str | None, expected: str) -> None:
    assert media_type(content_type) == expected


def _binary(header: dict[str, Any], tail: bytes) -> tuple[bytes, str]:
    text = json.dumps(header).encode()
    return text + tail, f"{BINARY_CONTENT_TYPE_PREFIX}{len(text)}"


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        (b"{", "application/json", "not valid JSON"),
        (b'{"outputs": []}', "application/json", 'no "inputs" list'),
        (b"{}", f"{BINARY_CONTENT_TYPE_PREFIX}99", "exceeds the body"),
        (
            b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [3], "data": [1, 2]}]}',
            "application/json",
            "2 elements do not fill shape [3]",
        ),
        (
            b'{"inputs": [{"name": "X", "datatype": "FLOAT", "shape": [1], "data": [1]}]}',
            "application/json",
            "unsupported datatype 'FLOAT'",
        ),
        (
            b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": ["a"]}]}',
            "application/json",
            "data is not FP32",
        ),
        (
            b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1]}]}',
            "application/json",
            "neither data nor binary_data_size",
        ),
        (
            *_binary(
                {
                    "inputs": [
                        {
                            "name": "X",
                            "datatype": "FP32",
                            "shape": [2],
                            "parameters": {"binary_data_size": 8},
                        }
                    ]
                },
                b"\x00" * 4,
            ),
            "overruns the body",
        ),
        (
            *_binary(
                {
                    "inputs": [
                        {
                            "name": "X",
                            "datatype": "FP32",
                            "shape": [1],
                            "parameters": {"binary_data_size": 4},
                        }
                    ]
                },
                b"\x00" * 6,
            ),
            "2 bytes after the last binary tensor",
        ),
        (
            *_binary(
                {
                    "inputs": [
                        {
                            "name": "T",
                            "datatype": "BYTES",
                            "shape": [1],
                            "parameters": {"binary_data_size": 6},
                        }
                    ]
                },
                b"\x09\x00\x00\x00ab",
            ),
            "truncated BYTES element",
        ),
    ],
)
def test_a_body_that_is_not_a_request_says_what_is_wrong(
    body: bytes, content_type: str, words: str
) -> None:
    with pytest.raises(RequestBodyError, match=words.replace("[", r"\[").replace("]", r"\]")):
        decode_request_body(body, content_type)
