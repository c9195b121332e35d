"""Read config.pbtxt with Triton's own schema, and render it the way Triton hands it to a model.

Parsing with the generated `model_config_pb2` (shipped by tritonclient) means a typo in a field
name fails here, on the laptop, with a file and line, instead of at server load time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from google.protobuf import json_format, text_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from tritonclient.grpc import model_config_pb2

__all__ = [
    "ModelConfigError",
    "load_model_config",
    "parse_model_config",
    "config_to_triton_json",
    "complete_model_config",
    "is_ensemble",
    "is_onnx",
    "is_python",
]

_LOCATION_PREFIX = re.compile(r"^\d+(:\d+)?\s*:\s*")


class ModelConfigError(Exception):
    """A config.pbtxt that cannot be read or parsed; str(error) names the file and line."""

    def __init__(
        self, path: Path, message: str, line: int | None = None, column: int | None = None
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.column = column
        self.message = message
        location = str(self.path)
        if line is not None:
            location += f":{line}"
            if column is not None:
                location += f":{column}"
        super().__init__(f"{location}: {message}")


def parse_model_config(text: str, path: Path) -> model_config_pb2.ModelConfig:
    """Parse config.pbtxt text; `path` only names the source in errors."""
    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        detail = _LOCATION_PREFIX.sub("", str(error))
        raise ModelConfigError(
            Path(path),
            f"invalid model configuration: {detail}",
            line=error.GetLine(),
            column=error.GetColumn(),
        ) from None
    return config


def load_model_config(path: Path) -> model_config_pb2.ModelConfig:
    """Load and parse a config.pbtxt file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelConfigError(path, "file not found; every step folder needs a config.pbtxt")
    except (OSError, UnicodeDecodeError) as error:
        raise ModelConfigError(path, f"cannot read the file: {error}") from None
    return parse_model_config(text, path)


def config_to_triton_json(cfg: model_config_pb2.ModelConfig) -> dict[str, Any]:
    """The dict a python-backend model receives as json.loads(args["model_config"]).

    Triton prints the protobuf as JSON with field names preserved and every scalar field present,
    then turns 64-bit integers back from strings into numbers; this does the same, so a model
    sees the same data in tests. Pass the config through complete_model_config() first to get
    the defaults the server adds.
    """
    data: dict[str, Any] = json_format.MessageToDict(
        cfg, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
    )
    _ints_for_64bit_fields(data, cfg.DESCRIPTOR)
    # Round-trip through JSON text so the result holds only plain JSON types, as Triton's does.
    result: dict[str, Any] = json.loads(json.dumps(data))
    return result


_INT64_TYPES = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}


def _ints_for_64bit_fields(data: dict[str, Any], descriptor: Descriptor) -> None:
    """Protobuf's JSON writes 64-bit integers as strings; Triton rewrites them (dims, versions,
    queue delays...) as numbers, so a model sees `dims: [-1, 3]`, never `["-1", "3"]`."""
    for key, value in data.items():
        field = descriptor.fields_by_name.get(key)
        if field is None:
            continue
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                value_field = field.message_type.fields_by_name["value"]
                if value_field.message_type is not None:
                    for item in value.values():
                        _ints_for_64bit_fields(item, value_field.message_type)
                elif value_field.type in _INT64_TYPES:
                    for map_key in list(value):
                        value[map_key] = int(value[map_key])
            elif isinstance(value, list):
                for item in value:
                    _ints_for_64bit_fields(item, field.message_type)
            else:
                _ints_for_64bit_fields(value, field.message_type)
        elif field.type in _INT64_TYPES:
            data[key] = [int(v) for v in value] if isinstance(value, list) else int(value)


def complete_model_config(
    cfg: model_config_pb2.ModelConfig, model_name: str
) -> model_config_pb2.ModelConfig:
    """A copy of `cfg` with the defaults the server fills in before a model sees its config.

    Observed on Triton 2.51 (r24.10): the name comes from the folder, the version policy is
    "latest 1", a CPU instance group named after the model appears, dynamic batching prefers
    max_batch_size, pinned memory is enabled, and the default file name is set.
    """
    completed = model_config_pb2.ModelConfig()
    completed.CopyFrom(cfg)
    if not completed.name:
        completed.name = model_name
    if not completed.HasField("version_policy"):
        completed.version_policy.latest.num_versions = 1
    if not is_ensemble(completed):
        if not completed.instance_group:
            group = completed.instance_group.add()
            group.name = completed.name
            group.count = 1
        for index, group in enumerate(completed.instance_group):
            if not group.name:
                group.name = f"{completed.name}_{index}"
            if group.count == 0:
                group.count = 1
            if group.kind == model_config_pb2.ModelInstanceGroup.KIND_AUTO:
                group.kind = model_config_pb2.ModelInstanceGroup.KIND_CPU
        optimization = completed.optimization
        if not optimization.HasField("input_pinned_memory"):
            optimization.input_pinned_memory.enable = True
        if not optimization.HasField("output_pinned_memory"):
            optimization.output_pinned_memory.enable = True
        if (
            completed.HasField("dynamic_batching")
            and not completed.dynamic_batching.preferred_batch_size
            and completed.max_batch_size > 0
        ):
            completed.dynamic_batching.preferred_batch_size.append(completed.max_batch_size)
        if not completed.default_model_filename:
            if is_python(completed):
                completed.default_model_filename = "model.py"
            elif is_onnx(completed):
                completed.default_model_filename = "model.onnx"
    return completed


def is_ensemble(cfg: model_config_pb2.ModelConfig) -> bool:
    """True for an ensemble (wiring only; Triton runs its steps)."""
    return bool(cfg.platform == "ensemble" or cfg.HasField("ensemble_scheduling"))


def is_onnx(cfg: model_config_pb2.ModelConfig) -> bool:
    """True for a model served by the ONNX Runtime backend."""
    return bool(cfg.platform == "onnxruntime_onnx" or cfg.backend == "onnxruntime")


def is_python(cfg: model_config_pb2.ModelConfig) -> bool:
    """True for a python-backend step (a model.py)."""
    return bool(cfg.backend == "python")
