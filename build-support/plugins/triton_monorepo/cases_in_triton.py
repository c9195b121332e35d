"""`test-triton`: load every selected model's archive in one real Triton server, the way a
SageMaker multi-model endpoint does, and check its `tests/cases/*.json`.

The engine process takes the archives and the cases as its only inputs, so Pants caches a
passing run on their digests: re-running with no change is instant. The server runs the
python-backend stub of `[triton].release` only, as the production image does: an archive whose
env has another Python never passes.
"""

from __future__ import annotations

from pants.core.util_rules.distdir import DistDir
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.console import Console
from pants.engine.fs import AddPrefix, Digest, DigestSubset, MergeDigests, PathGlobs, Workspace
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import FallibleProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, goal_rule
from pants.engine.target import Targets
from pants.util.logging import LogLevel

from triton_monorepo.engine import TRITONBUILD_CACHE, EngineProcess
from triton_monorepo.launcher import Launcher
from triton_monorepo.package import TritonArchive, TritonModelFieldSet
from triton_monorepo.subsystems import TritonSubsystem
from tritoncontract.names import TEST_TRITON_REPORT, server_log_name
from tritoncontract.releases import UnknownReleaseError

_ARCHIVES_DIR = "archives"


class TestTritonSubsystem(GoalSubsystem):
    name = "test-triton"
    help = (
        "Package the selected Triton models and check their `tests/cases/*.json` in a real "
        "Triton server, loaded through its SageMaker multi-model front end."
    )


class TestTriton(Goal):
    subsystem_cls = TestTritonSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def test_triton(
    targets: Targets,
    console: Console,
    triton: TritonSubsystem,
    workspace: Workspace,
    dist_dir: DistDir,
) -> TestTriton:
    field_sets = [
        TritonModelFieldSet.create(tgt) for tgt in targets if TritonModelFieldSet.is_applicable(tgt)
    ]
    if not field_sets:
        console.print_stderr("No triton_model targets matched; nothing to test.")
        return TestTriton(exit_code=0)
    try:
        stub = triton.stub_python()
    except UnknownReleaseError as error:
        console.print_stderr(f"{console.sigil_failed()} {error}")
        return TestTriton(exit_code=1)

    archives = await MultiGet(
        Get(TritonArchive, TritonModelFieldSet, field_set) for field_set in field_sets
    )
    sources = await MultiGet(
        Get(SourceFiles, SourceFilesRequest([field_set.sources])) for field_set in field_sets
    )
    failed = [archive for archive in archives if not archive.ok]
    for archive in failed:
        console.print_stderr(
            f"{console.sigil_failed()} {archive.model_dir}: not packaged\n{archive.problems}\n"
        )
    built = [(a, s) for a, s in zip(archives, sources) if a.ok]
    if not built:
        return TestTriton(exit_code=1)

    cases = await MultiGet(
        Get(
            Digest,
            DigestSubset(src.snapshot.digest, PathGlobs([f"{archive.model_dir}/tests/cases/**"])),
        )
        for archive, src in built
    )
    archives_digest = await Get(
        Digest,
        AddPrefix(await Get(Digest, MergeDigests(a.digest for a, _ in built)), _ARCHIVES_DIR),
    )
    inputs = await Get(Digest, MergeDigests([archives_digest, *cases]))
    model_args = tuple(
        f"--model={_ARCHIVES_DIR}/{archive.relpath}={archive.model_dir}/tests/cases"
        for archive, _ in built
    )
    result = await Get(
        FallibleProcessResult,
        EngineProcess(
            (
                "test-triton",
                *model_args,
                *launcher_args(triton, stub),
                "--cache-dir=.cache/tritonbuild",
                f"--report={TEST_TRITON_REPORT}",
            ),
            description=f"Run the cases of {len(built)} model(s) in Triton",
            input_digest=inputs,
            level=LogLevel.INFO,
            append_only_caches=TRITONBUILD_CACHE,
            output_files=(TEST_TRITON_REPORT, server_log_name(TEST_TRITON_REPORT)),
        ),
    )
    # The JSON report and the server's log land in dist/ for CI to keep.
    workspace.write_digest(result.output_digest, path_prefix=str(dist_dir.relpath))
    console.print_stdout(result.stdout.decode(errors="replace").rstrip())
    if result.exit_code != 0:
        console.print_stderr(result.stderr.decode(errors="replace").rstrip())
    return TestTriton(exit_code=1 if failed or result.exit_code != 0 else 0)


def launcher_args(triton: TritonSubsystem, stub: str) -> tuple[str, ...]:
    """How the engine runs the server: the launcher, the release's stub, the docker image."""
    args: tuple[str, ...] = (f"--launcher={triton.launcher.value}", f"--stub-python={stub}")
    if triton.launcher == Launcher.DOCKER:
        args += (f"--image={triton.docker_image}",)
    return args


def rules() -> list[object]:
    return [*collect_rules()]
