"""What SageMaker's multi-model endpoint sees in an archive, and how it loads one.

SageMaker extracts `<TargetModel>` under `/opt/ml/models/<name>/model` and calls `POST /models`
with that url and the `X-Amzn-SageMaker-Target-Model` header. Triton's SageMaker front end then
picks the model folder (the entry point, by the rule `tritonlib.model_folder` states) and
registers it under the TargetModel name, e.g. `x_3.tar.gz`; its steps keep their folder names.
`inspect_archive` predicts all of that before a server starts, judging the archive's members by
the same model of a model folder that validate and the in-process harness use.
"""

from __future__ import annotations

import hashlib
import posixpath
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tritonbuild.archive import read_tar_stream
from tritonbuild.triton import TestTritonError
from tritonbuild.triton.probe import EnvFacts, scan_env_tarball
from tritonlib.datatypes import normalize_datatype
from tritonlib.model_checks import check_model_folder, format_problems, type_name
from tritonlib.model_folder import ENV_PATH_PARAMETER, Listing, ModelFolder, Step, wants_text

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
    contents: dict[str, bytes] = {}
    env_digests: dict[str, str] = {}
    files: list[str] = []
    dirs: list[str] = []
    try:
        with read_tar_stream(archive) as tar:
            for member in tar:
                name = _normalize(member.name)
                if member.isdir() and name:
                    dirs.append(name)
                if not member.isfile():
                    continue
                files.append(name)
                if wants_text(name):
                    handle = tar.extractfile(member)
                    assert handle is not None
                    contents[name] = handle.read()
                elif name.endswith(_ENV_SUFFIXES):
                    handle = tar.extractfile(member)
                    assert handle is not None
                    env_digests[name] = _sha256_stream(handle)
        envs = _env_facts(archive, env_digests)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise TestTritonError(f"{archive}: not a readable tar archive: {error}") from None
    model = ModelFolder.from_listing(Listing.of_archive(archive, files, dirs, contents))
    if not model.steps:
        raise TestTritonError(
            f"{archive}: no <step>/config.pbtxt at the archive root; SageMaker would find no "
            "model (an extra wrapping folder is a common cause: package the steps at the root)"
        )
    problems = check_model_folder(model)
    if problems:
        raise TestTritonError(
            f"{archive}: Triton or SageMaker would refuse this archive:\n"
            + format_problems(problems)
        )
    entry = model.entry_point
    assert entry is not None and entry.config is not None  # both checked above
    return ArchiveInfo(
        path=archive,
        steps={step.name: _step_info(step, model.listing, envs) for step in model.steps},
        entry=entry.name,
        entry_inputs=tuple(_spec(tensor) for tensor in entry.config.input),
        entry_outputs=tuple(_spec(tensor) for tensor in entry.config.output),
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


def _step_info(step: Step, listing: Listing, envs: dict[str, EnvFacts]) -> StepInfo:
    env = None
    if step.env_path is not None:
        env = step.env_path.resolved
        assert env is not None  # an unresolvable path is one of check_model_folder's problems
        where = f"{step.config_path}: {ENV_PATH_PARAMETER} {step.env_path.value!r}"
        if env in listing.dirs:
            raise TestTritonError(
                f"{where} is an unpacked folder; package it as a tarball (python_env.tar.gz)"
            )
        if env in listing.files and env not in envs:
            raise TestTritonError(f"{where}: {env} is not a tarball ({', '.join(_ENV_SUFFIXES)})")
        if env not in envs:
            raise TestTritonError(f"{where}: {env} is not in the archive")
    return StepInfo(
        folder=step.name,
        kind=step.kind,
        env=env,
        env_facts=envs.get(env) if env else None,
        default_model_filename=step.model_filename or "",
    )


def _spec(tensor: Any) -> TensorSpec:
    return TensorSpec(str(tensor.name), normalize_datatype(type_name(tensor.data_type)))


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
