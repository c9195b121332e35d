"""`package-triton` (and `package`): validate a model folder, pack its env, write its archive.

One rule per transformation, each a cached engine process:
  model files            -> validation report, and the steps that get an env (from their configs)
  requirements + code    -> python_env.tar.gz (shared by every model with the same inputs)
  model files + env      -> dist/<name>_<version>.tar.gz

The env's Python is the stub's of `[triton].release`, passed to the engine; a model whose
`python_version` field says otherwise is refused before anything is built.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pants.backend.python.target_types import PythonSourceField
from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.core.util_rules.distdir import DistDir
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.core.util_rules.stripped_source_files import StrippedSourceFiles
from pants.engine.console import Console
from pants.engine.fs import (
    EMPTY_DIGEST,
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
    Snapshot,
    Workspace,
)
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import FallibleProcessResult, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, goal_rule, rule
from pants.engine.target import Targets, TransitiveTargets, TransitiveTargetsRequest
from pants.engine.unions import UnionRule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from triton_monorepo.engine import PIP_CACHE, EngineProcess
from triton_monorepo.subsystems import TritonSubsystem
from triton_monorepo.target_types import TritonModelSourcesField, TritonPythonVersionField
from tritoncontract.names import ENV_BUILD_RULE, ENV_FILE_NAME, PACKAGE_RULE, VALIDATION_JSON
from tritoncontract.releases import UnknownReleaseError

_FIRST_PARTY_DIR = "first_party"
_OUT_DIR = "out"
_SUMMARY_FILE = "summary.json"


class TritonModelError(Exception):
    """A model that did not package; its message is the engine's report."""


@dataclass(frozen=True)
class TritonModelFieldSet(PackageFieldSet):
    required_fields = (TritonModelSourcesField,)

    sources: TritonModelSourcesField
    python_version: TritonPythonVersionField

    @property
    def model_dir(self) -> str:
        return self.address.spec_path

    @property
    def model_name(self) -> str:
        return self.model_dir.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class TritonArchive:
    """The outcome of packaging one model: an archive, or the problems that stopped it."""

    model_name: str
    model_dir: str
    digest: Digest
    relpath: str | None
    summary: str
    problems: str

    @property
    def ok(self) -> bool:
        return self.relpath is not None


@dataclass(frozen=True)
class PythonEnvRequest:
    requirements: Digest
    first_party: Digest
    python_version: str


@dataclass(frozen=True)
class PythonEnv:
    digest: Digest


@rule(
    desc="Pack a python_env.tar.gz with conda-pack",
    level=LogLevel.DEBUG,
    canonical_name=ENV_BUILD_RULE,
)
async def build_python_env(request: PythonEnvRequest, triton: TritonSubsystem) -> PythonEnv:
    # Only the requirements, the first-party code, the Python version and the Triton release are
    # inputs: every model with the same four shares one cached env build.
    inputs = await Get(
        Digest,
        MergeDigests(
            [
                request.requirements,
                await Get(Digest, AddPrefix(request.first_party, _FIRST_PARTY_DIR)),
            ]
        ),
    )
    result = await Get(
        ProcessResult,
        EngineProcess(
            (
                "build-env",
                "--requirements=requirements.txt",
                f"--python-version={request.python_version}",
                f"--triton-release={triton.release}",
                f"--first-party={_FIRST_PARTY_DIR}",
                f"--output={ENV_FILE_NAME}",
            ),
            description=f"Pack a Python {request.python_version} env with conda-pack",
            input_digest=inputs,
            output_files=(ENV_FILE_NAME,),
            extra_env=FrozenDict({"PIP_CACHE_DIR": ".cache/pip"}),
            append_only_caches=PIP_CACHE,
        ),
    )
    return PythonEnv(result.output_digest)


@dataclass(frozen=True)
class FirstPartyCodeRequest:
    field_set: TritonModelFieldSet


@dataclass(frozen=True)
class FirstPartyCode:
    """The first-party python code the model's steps import, stripped of source roots."""

    digest: Digest


@rule(desc="Gather the first-party code of a model's python steps", level=LogLevel.DEBUG)
async def first_party_code(request: FirstPartyCodeRequest) -> FirstPartyCode:
    field_set = request.field_set
    transitive = await Get(TransitiveTargets, TransitiveTargetsRequest([field_set.address]))
    # The steps' own model.py files ship in their step folders; only what they import goes
    # into the env's site-packages.
    code = [
        tgt[PythonSourceField]
        for tgt in transitive.closure
        if tgt.has_field(PythonSourceField)
        and not _is_within(tgt.address.spec_path, field_set.model_dir)
    ]
    stripped = await Get(StrippedSourceFiles, SourceFilesRequest(code))
    return FirstPartyCode(stripped.snapshot.digest)


def _is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(f"{folder}/")


@dataclass(frozen=True)
class ModelRequirementsRequest:
    sources: Snapshot
    model_dir: str


@dataclass(frozen=True)
class ModelRequirements:
    """The model's requirements.txt at the root of a digest (empty when it has none)."""

    digest: Digest


@rule(level=LogLevel.DEBUG)
async def model_requirements(request: ModelRequirementsRequest) -> ModelRequirements:
    path = f"{request.model_dir}/requirements.txt"
    if path not in request.sources.files:
        return ModelRequirements(
            await Get(Digest, CreateDigest([FileContent("requirements.txt", b"")]))
        )
    subset = await Get(Digest, DigestSubset(request.sources.digest, PathGlobs([path])))
    return ModelRequirements(await Get(Digest, RemovePrefix(subset, request.model_dir)))


def _failure(field_set: TritonModelFieldSet, result: FallibleProcessResult) -> TritonArchive:
    return _refused(field_set, (result.stdout + result.stderr).decode(errors="replace").strip())


def _refused(field_set: TritonModelFieldSet, problems: str) -> TritonArchive:
    return TritonArchive(
        field_set.model_name, field_set.model_dir, EMPTY_DIGEST, None, "", problems
    )


def python_version_problem(field_set: TritonModelFieldSet, release: str, stub: str) -> str | None:
    """Why the model's `python_version` field cannot be served by the release, or None."""
    declared = field_set.python_version.value
    if declared is None or declared == stub:
        return None
    field = field_set.python_version.alias
    return (
        f"{field_set.address.spec_path}/BUILD: {field}: the model says Python {declared}, but "
        f"[triton].release {release} runs python steps in its stub's Python {stub}; Triton "
        f"would run them outside a Python {declared} environment without any error.\n"
        f'    fix: remove {field} (the env follows the release), set {field}="{stub}", or set '
        f"[triton].release to a release whose stub is Python {declared}"
    )


def python_steps(validation: DigestContents, model_dir: str) -> tuple[str, ...]:
    """The steps that get an env, as `validate --json` read them from their configs."""
    summary = json.loads(next(c.content for c in validation if c.path == VALIDATION_JSON))
    return tuple(summary[model_dir]["python_steps"])


def _summary_line(summary: dict[str, Any], dist_relpath: str) -> str:
    """One line per model: archive path, size, env size and Python, sha256."""
    env = summary.get("env") or {}
    env_text = (
        f"env {_mib(env['size'])} (Python {env.get('python_version', '?')})"
        if env.get("size")
        else "no env"
    )
    line = f"{dist_relpath}  {_mib(summary['size'])}  {env_text}  sha256 {summary['sha256']}"
    return "\n    ".join([line, *summary.get("notes", [])])


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


@rule(desc="Package a Triton model", level=LogLevel.DEBUG, canonical_name=PACKAGE_RULE)
async def package_triton_model(
    field_set: TritonModelFieldSet,
    triton: TritonSubsystem,
    dist_dir: DistDir,
) -> TritonArchive:
    try:
        stub = triton.stub_python()
    except UnknownReleaseError as error:
        return _refused(field_set, str(error))
    problem = python_version_problem(field_set, triton.release, stub)
    if problem:
        return _refused(field_set, problem)

    sources = await Get(SourceFiles, SourceFilesRequest([field_set.sources]))
    model_dir = field_set.model_dir

    validation = await Get(
        FallibleProcessResult,
        EngineProcess(
            ("validate", model_dir, f"--json={VALIDATION_JSON}"),
            description=f"Validate {model_dir}",
            input_digest=sources.snapshot.digest,
            output_files=(VALIDATION_JSON,),
            level=LogLevel.DEBUG,
        ),
    )
    if validation.exit_code != 0:
        return _failure(field_set, validation)
    steps = python_steps(await Get(DigestContents, Digest, validation.output_digest), model_dir)

    package_inputs = [sources.snapshot.digest]
    env_args: tuple[str, ...] = ()
    if steps:
        requirements, first_party = await MultiGet(
            Get(ModelRequirements, ModelRequirementsRequest(sources.snapshot, model_dir)),
            Get(FirstPartyCode, FirstPartyCodeRequest(field_set)),
        )
        env = await Get(PythonEnv, PythonEnvRequest(requirements.digest, first_party.digest, stub))
        package_inputs.append(env.digest)
        env_args = (f"--env={ENV_FILE_NAME}", f"--python-version={stub}")

    result = await Get(
        FallibleProcessResult,
        EngineProcess(
            (
                "package",
                model_dir,
                *env_args,
                f"--output-dir={_OUT_DIR}",
                f"--summary-json={_SUMMARY_FILE}",
            ),
            description=f"Write the archive of {model_dir}",
            input_digest=await Get(Digest, MergeDigests(package_inputs)),
            output_files=(_SUMMARY_FILE,),
            output_directories=(_OUT_DIR,),
        ),
    )
    if result.exit_code != 0:
        return _failure(field_set, result)

    contents = await Get(DigestContents, Digest, result.output_digest)
    summary = json.loads(next(c.content for c in contents if c.path == _SUMMARY_FILE))
    archive_path = summary["path"]
    # The archive's digests file travels with it, for publish (the engine finds it beside it).
    files = PathGlobs([archive_path, summary["digests"]])
    archive = await Get(
        Digest,
        RemovePrefix(await Get(Digest, DigestSubset(result.output_digest, files)), _OUT_DIR),
    )
    return TritonArchive(
        model_name=field_set.model_name,
        model_dir=model_dir,
        digest=archive,
        relpath=archive_path[len(_OUT_DIR) + 1 :],
        summary=_summary_line(summary, f"{dist_dir.relpath}/{archive_path[len(_OUT_DIR) + 1 :]}"),
        problems="",
    )


@rule(desc="Package a Triton model", level=LogLevel.DEBUG)
async def built_triton_package(field_set: TritonModelFieldSet) -> BuiltPackage:
    archive = await Get(TritonArchive, TritonModelFieldSet, field_set)
    if not archive.ok or archive.relpath is None:
        raise TritonModelError(f"{archive.model_dir} did not package:\n{archive.problems}")
    return BuiltPackage(
        archive.digest,
        (BuiltPackageArtifact(archive.relpath, extra_log_lines=(f"    {archive.summary}",)),),
    )


class PackageTritonSubsystem(GoalSubsystem):
    name = "package-triton"
    help = (
        "Validate Triton model folders and write `dist/<name>_<version>.tar.gz` for each, "
        "ready for a SageMaker multi-model endpoint."
    )


class PackageTriton(Goal):
    subsystem_cls = PackageTritonSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def package_triton(
    targets: Targets, console: Console, workspace: Workspace, dist_dir: DistDir
) -> PackageTriton:
    field_sets = [
        TritonModelFieldSet.create(tgt) for tgt in targets if TritonModelFieldSet.is_applicable(tgt)
    ]
    archives = await MultiGet(
        Get(TritonArchive, TritonModelFieldSet, field_set) for field_set in field_sets
    )
    built = [archive for archive in archives if archive.ok]
    if built:
        merged = await Get(Digest, MergeDigests(archive.digest for archive in built))
        workspace.write_digest(merged, path_prefix=str(dist_dir.relpath))
    for archive in sorted(archives, key=lambda a: a.model_dir):
        if archive.ok:
            console.print_stdout(f"{console.sigil_succeeded()} {archive.summary}")
        else:
            console.print_stderr(
                f"{console.sigil_failed()} {archive.model_dir}: not packaged\n{archive.problems}\n"
            )
    if not field_sets:
        console.print_stderr("No triton_model targets matched; nothing to package.")
    return PackageTriton(exit_code=0 if len(built) == len(archives) else 1)


def rules() -> list[object]:
    return [*collect_rules(), UnionRule(PackageFieldSet, TritonModelFieldSet)]
