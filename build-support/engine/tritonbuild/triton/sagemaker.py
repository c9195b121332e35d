"""What SageMaker's multi-model endpoint sees in an archive, and how it loads one.

SageMaker extracts `<TargetModel>` under `/opt/ml/models/<name>/model` and calls `POST /models`
with that url and the `X-Amzn-SageMaker-Target-Model` header. Triton's SageMaker front end then
picks the model folder (a root config.pbtxt, else the only sub-folder, else the one whose config
matches `platform:\\s*"ensemble"`) and registers it under the TargetModel name, e.g. `x_3.tar.gz`;
its steps keep their folder names. `inspect_archive` predicts all of that before a server starts.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

from tritonbuild.archive import read_tar_stream
from tritonbuild.modeldir import CONFIG_FILE, ENV_PATH_PARAMETER, MODEL_DIRECTORY_KEYWORD
from tritonbuild.triton import TestTritonError
from tritonbuild.triton.probe import EnvFacts, scan_env_tarball
from tritonlib.datatypes import normalize_datatype
from tritonlib.model_config import (
    ModelConfigError,
    is_ensemble,
    is_onnx,
    is_python,
    parse_model_config,
)

__all__ = [
    "MODELS_ROOT",
    "ArchiveInfo",
    "StepInfo",
    "TensorSpec",
    "archive_info_from_dict",
    "archive_info_to_dict",
    "extract_like_sagemaker",
    "inspect_archive",
    "metadata_problems",
]

MODELS_ROOT = PurePosixPath("/opt/ml/models")

# The front end's own test for an ensemble config (sagemaker_server.cc).
_ENSEMBLE_PATTERN = re.compile(r'platform:(\s)*"ensemble"')
_ENV_SUFFIXES = (".tar.gz", ".tgz", ".tar")


@dataclass(frozen=True)
class TensorSpec:
    """An input or output of the entry point, as KServe v2 metadata reports it."""

    name: str
    datatype: str


@dataclass(frozen=True)
class StepInfo:
    """One model folder of the archive. `folder` is "" when config.pbtxt sits at the root."""

    folder: str
    kind: str  # "ensemble", "python", "onnx" or "other"
    env: str | None = None  # archive path of its EXECUTION_ENV_PATH, resolved
    env_facts: EnvFacts | None = None
    default_model_filename: str = ""


@dataclass(frozen=True)
class ArchiveInfo:
    """What an archive holds and how the SageMaker front end will load it."""

    path: Path
    steps: dict[str, StepInfo]
    entry: str
    entry_inputs: tuple[TensorSpec, ...]
    entry_outputs: tuple[TensorSpec, ...]
    envs: dict[str, EnvFacts] = field(default_factory=dict)

    @property
    def target_model(self) -> str:
        """The TargetModel SageMaker sends: the archive's key, i.e. its file name."""
        return self.path.name

    def python_steps(self) -> list[StepInfo]:
        return [step for step in self.steps.values() if step.kind == "python"]

    def onnx_steps(self) -> list[StepInfo]:
        return [step for step in self.steps.values() if step.kind == "onnx"]


def _normalize(name: str) -> str:
    """`./a/b`, `/a/b` and `a/./b` all become `a/b`; nothing climbs above the root."""
    return posixpath.normpath("/" + name).lstrip("/")


def inspect_archive(archive: Path) -> ArchiveInfo:
    """Read configs and environments from the archive as streams, never a whole file at once:
    one pass, and a second one only for env tarballs this process has not read before."""
    if not archive.is_file():
        raise TestTritonError(f"{archive}: archive not found")
    configs: dict[str, str] = {}
    env_digests: dict[str, str] = {}
    files: list[str] = []
    try:
        with read_tar_stream(archive) as tar:
            for member in tar:
                name = _normalize(member.name)
                if not member.isfile():
                    continue
                files.append(name)
                parts = name.split("/")
                if parts[-1] == CONFIG_FILE and len(parts) <= 2:
                    handle = tar.extractfile(member)
                    assert handle is not None
                    configs["/".join(parts[:-1])] = handle.read().decode("utf-8", "replace")
                elif name.endswith(_ENV_SUFFIXES):
                    handle = tar.extractfile(member)
                    assert handle is not None
                    env_digests[name] = _sha256_stream(handle)
        envs = _env_facts(archive, env_digests)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise TestTritonError(f"{archive}: not a readable tar archive: {error}") from None
    if not configs:
        raise TestTritonError(
            f"{archive}: no <step>/config.pbtxt at the archive root; SageMaker would find no "
            "model (an extra wrapping folder is a common cause: package the steps at the root)"
        )
    parsed = {folder: _parse(archive, folder, text) for folder, text in configs.items()}
    steps = {
        folder: _step_info(archive, folder, config, files, envs)
        for folder, config in parsed.items()
    }
    entry = _entry_folder(archive, configs)
    return ArchiveInfo(
        path=archive,
        steps=steps,
        entry=entry,
        entry_inputs=tuple(_spec(tensor) for tensor in parsed[entry].input),
        entry_outputs=tuple(_spec(tensor) for tensor in parsed[entry].output),
        envs=envs,
    )


# Facts of the env tarballs already read in this process, by sha256: archives built in one
# monorepo mostly share an env, and reading one through takes longer than hashing it.
_ENV_FACTS: dict[str, EnvFacts] = {}
# Env tarballs are read in pieces of this size: a CUDA-sized env never sits in memory whole.
_READ_CHUNK = 1024 * 1024


def _sha256_stream(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(_READ_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _env_facts(archive: Path, digests: dict[str, str]) -> dict[str, EnvFacts]:
    """The facts of each env tarball of `archive` (archive path -> sha256 of its bytes).

    An env not read before is scanned in a second streaming pass over the archive, so that
    only the hashing pass is paid for the envs that archives share.
    """
    unread = {name for name, digest in digests.items() if digest not in _ENV_FACTS}
    if unread:
        with read_tar_stream(archive) as tar:
            for member in tar:
                name = _normalize(member.name)
                if name not in unread or digests[name] in _ENV_FACTS or not member.isfile():
                    continue
                handle = tar.extractfile(member)
                assert handle is not None
                _ENV_FACTS[digests[name]] = scan_env_tarball(handle, f"{archive}:{name}")
    return {name: _ENV_FACTS[digest] for name, digest in digests.items()}


def _config_path(folder: str) -> str:
    return f"{folder}/{CONFIG_FILE}" if folder else CONFIG_FILE


def _entry_folder(archive: Path, configs: dict[str, str]) -> str:
    if "" in configs:
        return ""
    if len(configs) == 1:
        return next(iter(configs))
    ensembles = sorted(folder for folder, text in configs.items() if _ENSEMBLE_PATTERN.search(text))
    if len(ensembles) == 1:
        return ensembles[0]
    if not ensembles:
        raise TestTritonError(
            f'{archive}: {len(configs)} step folders and none has platform: "ensemble"; '
            "SageMaker would load whichever folder the file system lists last. Add an ensemble "
            "that wires the steps, or package one step per archive."
        )
    raise TestTritonError(
        f"{archive}: several ensembles ({', '.join(ensembles)}); SageMaker would load an "
        "arbitrary one. Keep exactly one ensemble per archive."
    )


def _parse(archive: Path, folder: str, text: str) -> model_config_pb2.ModelConfig:
    try:
        return parse_model_config(text, Path(f"{archive}:{_config_path(folder)}"))
    except ModelConfigError as error:
        raise TestTritonError(str(error)) from None


def _step_info(
    archive: Path,
    folder: str,
    config: model_config_pb2.ModelConfig,
    files: list[str],
    envs: dict[str, EnvFacts],
) -> StepInfo:
    kind = (
        "ensemble"
        if is_ensemble(config)
        else "python" if is_python(config) else "onnx" if is_onnx(config) else "other"
    )
    env = None
    if ENV_PATH_PARAMETER in config.parameters:
        env = _resolve_env(archive, _config_path(folder), folder, config, files, envs)
    return StepInfo(
        folder=folder,
        kind=kind,
        env=env,
        env_facts=envs.get(env) if env else None,
        default_model_filename=str(config.default_model_filename),
    )


def _resolve_env(
    archive: Path,
    config_path: str,
    folder: str,
    config: model_config_pb2.ModelConfig,
    files: list[str],
    envs: dict[str, EnvFacts],
) -> str:
    value = str(config.parameters[ENV_PATH_PARAMETER].string_value)
    where = f"{archive}:{config_path}: {ENV_PATH_PARAMETER} {value!r}"
    if not value.startswith(MODEL_DIRECTORY_KEYWORD):
        raise TestTritonError(
            f"{where} must start with {MODEL_DIRECTORY_KEYWORD}/ so it points into the "
            "extracted archive wherever SageMaker puts it"
        )
    relative = value[len(MODEL_DIRECTORY_KEYWORD) :].lstrip("/")
    resolved = posixpath.normpath(posixpath.join(folder or ".", relative))
    if resolved.startswith(".."):
        raise TestTritonError(f"{where} points outside the archive")
    if resolved not in envs:
        if any(name.startswith(resolved + "/") for name in files):
            raise TestTritonError(
                f"{where} is an unpacked folder; package it as a tarball (python_env.tar.gz)"
            )
        raise TestTritonError(f"{where}: {resolved} is not in the archive")
    return resolved


def _spec(tensor: Any) -> TensorSpec:
    datatype = model_config_pb2.DataType.Name(tensor.data_type)
    return TensorSpec(str(tensor.name), normalize_datatype(datatype))


def extract_like_sagemaker(archive: Path, models_root: Path, container_name: str) -> Path:
    """Extract to `<models_root>/<container_name>/model`, the folder SageMaker would use."""
    model_dir = models_root / container_name / "model"
    model_dir.mkdir(parents=True)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            tar.extractall(model_dir, filter="tar")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise TestTritonError(f"{archive}: extraction failed: {error}") from None
    return model_dir


def metadata_problems(
    info: ArchiveInfo, http_url: str, grpc_url: str, timeout_s: float = 30.0
) -> list[str]:
    """Check the entry point's KServe v2 metadata over HTTP and gRPC, under the TargetModel name.

    Returns one line per problem; empty when both protocols report the archive's inputs and
    outputs under the name `info.target_model`.
    """
    problems: list[str] = []
    name = info.target_model
    expected = {
        "inputs": {(t.name, t.datatype) for t in info.entry_inputs},
        "outputs": {(t.name, t.datatype) for t in info.entry_outputs},
    }
    try:
        http = httpclient.InferenceServerClient(
            http_url, connection_timeout=timeout_s, network_timeout=timeout_s
        )
        try:
            answer = http.get_model_metadata(name)
        finally:
            http.close()
        problems.extend(_compare_metadata("HTTP", name, answer, expected))
    except (InferenceServerException, OSError) as error:
        problems.append(f"HTTP metadata of {name!r}: {error}")
    try:
        grpc = grpcclient.InferenceServerClient(grpc_url)
        try:
            reply = grpc.get_model_metadata(name, as_json=True, client_timeout=timeout_s)
        finally:
            grpc.close()
        problems.extend(_compare_metadata("gRPC", name, reply, expected))
    except (InferenceServerException, OSError) as error:
        problems.append(f"gRPC metadata of {name!r}: {error}")
    return problems


def _compare_metadata(
    protocol: str, name: str, answer: Any, expected: dict[str, set[tuple[str, str]]]
) -> list[str]:
    problems = []
    if answer.get("name") != name:
        problems.append(f"{protocol} metadata names the model {answer.get('name')!r}, not {name!r}")
    for section, wanted in expected.items():
        got = {(t.get("name"), t.get("datatype")) for t in answer.get(section, [])}
        if wanted and got != wanted:  # an empty section is auto-completed by the backend
            problems.append(
                f"{protocol} metadata {section} {sorted(got)} differ from the config's "
                f"{sorted(wanted)}"
            )
    return problems


def archive_info_to_dict(info: ArchiveInfo) -> dict[str, Any]:
    """A JSON-ready form of `info`, to hand it to the process inside the namespaces."""
    data = asdict(info)
    data["path"] = str(info.path)
    return data


def archive_info_from_dict(data: dict[str, Any]) -> ArchiveInfo:
    """The inverse of `archive_info_to_dict`."""

    def facts(raw: dict[str, Any] | None) -> EnvFacts | None:
        return EnvFacts(**raw) if raw is not None else None

    def specs(raw: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(t["name"], t["datatype"]) for t in raw)

    steps = {
        folder: StepInfo(
            folder=step["folder"],
            kind=step["kind"],
            env=step["env"],
            env_facts=facts(step["env_facts"]),
            default_model_filename=step["default_model_filename"],
        )
        for folder, step in data["steps"].items()
    }
    return ArchiveInfo(
        path=Path(data["path"]),
        steps=steps,
        entry=data["entry"],
        entry_inputs=specs(data["entry_inputs"]),
        entry_outputs=specs(data["entry_outputs"]),
        envs={name: EnvFacts(**raw) for name, raw in data["envs"].items()},
    )
