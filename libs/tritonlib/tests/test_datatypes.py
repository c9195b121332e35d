import numpy as np
import pytest

from tritonlib.datatypes import (
    UnknownDatatypeError,
    from_numpy_dtype,
    normalize_datatype,
    to_config_datatype,
    to_numpy_dtype,
)


@pytest.mark.parametrize(
    "name, dtype",
    [
        ("FP32", np.float32),
        ("TYPE_FP32", np.float32),
        ("fp16", np.float16),
        ("INT64", np.int64),
        ("TYPE_UINT8", np.uint8),
        ("BOOL", np.bool_),
        ("BYTES", np.object_),
        ("TYPE_STRING", np.object_),
    ],
)
def test_to_numpy_dtype_accepts_both_spellings(name: str, dtype: type) -> None:
    assert to_numpy_dtype(name) == np.dtype(dtype)


def test_round_trip_for_every_numeric_type() -> None:
    for name in ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32"]:
        assert from_numpy_dtype(to_numpy_dtype(name)) == name
    for name in ["INT64", "FP16", "FP32", "FP64", "BYTES"]:
        assert from_numpy_dtype(to_numpy_dtype(name)) == name


def test_strings_of_any_kind_are_bytes() -> None:
    assert from_numpy_dtype(np.array(["a"]).dtype) == "BYTES"
    assert from_numpy_dtype(np.array([b"a"]).dtype) == "BYTES"
    assert from_numpy_dtype(np.dtype(object)) == "BYTES"


def test_config_names() -> None:
    assert to_config_datatype("BYTES") == "TYPE_STRING"
    assert to_config_datatype("TYPE_FP32") == "TYPE_FP32"
    assert normalize_datatype("TYPE_STRING") == "BYTES"
    assert normalize_datatype("BF16") == "BF16"


def test_unknown_names_and_dtypes_fail_clearly() -> None:
    with pytest.raises(UnknownDatatypeError, match="FLOAT32.*expected one of"):
        to_numpy_dtype("FLOAT32")
    with pytest.raises(UnknownDatatypeError, match="no numpy equivalent"):
        to_numpy_dtype("BF16")
    with pytest.raises(UnknownDatatypeError, match="complex128"):
        from_numpy_dtype(np.dtype(np.complex128))
