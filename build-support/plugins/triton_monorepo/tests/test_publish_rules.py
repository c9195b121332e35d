"""`publish` with RuleRunner, as Pants tests its docker publish goal: the stage and destination
it resolves, with and without CI, and the exact engine command lines it would run."""

from __future__ import annotations

import pytest  # pants: no-infer-dep (the test runner provides it)
from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact
from pants.core.goals.publish import PublishPackages, PublishProcesses
from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.process import InteractiveProcess
from pants.testutil.rule_runner import QueryRule, RuleRunner
from pants.vcs import git

from triton_monorepo import publish
from triton_monorepo.publish import PublishTritonFieldSet, PublishTritonRequest
from triton_monorepo.target_types import TritonModelTarget
from triton_monorepo.tests.engine_double import engine_argv, engine_double

S3_STAGING = "s3://models-staging/triton"
S3_PRODUCTION = "s3://models-production/triton"


@pytest.fixture
def rule_runner() -> RuleRunner:
    runner = RuleRunner(
        target_types=[TritonModelTarget],
        rules=[
            *publish.rules(),
            *git.rules(),
            engine_double,
            QueryRule(PublishProcesses, [PublishTritonRequest]),
        ],
    )
    runner.write_files({"models/m/BUILD": "triton_model_archive()"})
    return runner


def publish_jobs(
    runner: RuleRunner, options: list[str], env: dict[str, str]
) -> list[PublishPackages]:
    runner.set_options(options, env=env)
    field_set = PublishTritonFieldSet.create(runner.get_target(Address("models/m")))
    packages = (BuiltPackage(EMPTY_DIGEST, (BuiltPackageArtifact("m_1.tar.gz"),)),)
    return list(runner.request(PublishProcesses, [field_set._request(packages)]))


def argv_of(job: PublishPackages) -> tuple[str, ...]:
    assert isinstance(job.process, InteractiveProcess)
    return engine_argv(job.process.process)


def test_outside_ci_an_s3_staging_destination_gets_an_upload(rule_runner: RuleRunner) -> None:
    jobs = publish_jobs(
        rule_runner,
        [f"--triton-publish-staging={S3_STAGING}", "--triton-publish-staging-region=eu-west-1"],
        env={},
    )
    assert [(job.names, job.description) for job in jobs] == [(("m_1.tar.gz",), "staging")]
    assert argv_of(jobs[0]) == (
        "publish",
        f"--destination={S3_STAGING}?region=eu-west-1",
        "--archive=m_1.tar.gz",
    )


def test_in_ci_on_main_staging_first_gets_what_it_lacks_then_production_a_copy(
    rule_runner: RuleRunner,
) -> None:
    jobs = publish_jobs(
        rule_runner,
        [f"--triton-publish-staging={S3_STAGING}", f"--triton-publish-production={S3_PRODUCTION}"],
        env={"CI": "true", "GITHUB_REF_NAME": "main"},
    )
    assert [job.description for job in jobs] == ["staging", "production"]
    assert argv_of(jobs[0]) == ("publish", f"--destination={S3_STAGING}", "--archive=m_1.tar.gz")
    assert argv_of(jobs[1]) == (
        "promote",
        f"--from={S3_STAGING}",
        f"--to={S3_PRODUCTION}",
        "--archive=m_1.tar.gz",
    )


def test_in_ci_on_a_branch_only_staging(rule_runner: RuleRunner) -> None:
    jobs = publish_jobs(
        rule_runner,
        [f"--triton-publish-staging={S3_STAGING}", f"--triton-publish-production={S3_PRODUCTION}"],
        env={"CI": "true", "GITHUB_REF_NAME": "feature"},
    )
    assert [job.description for job in jobs] == ["staging"]


def test_in_ci_without_a_destination_publish_fails_naming_the_settings(
    rule_runner: RuleRunner,
) -> None:
    with pytest.raises(ExecutionError) as error:
        publish_jobs(rule_runner, [], env={"CI": "true", "GITHUB_REF_NAME": "feature"})
    message = str(error.value)
    assert "No destination for the staging stage (CI is set" in message
    for setting in (
        "[triton-publish].staging",
        "PANTS_TRITON_PUBLISH_STAGING",
        "PANTS_TRITON_PUBLISH_STAGING_ENDPOINT_URL",
        "file://.published/staging",
    ):
        assert setting in message


def test_in_ci_on_main_a_missing_production_destination_fails(rule_runner: RuleRunner) -> None:
    with pytest.raises(ExecutionError, match="No destination for the production stage"):
        publish_jobs(
            rule_runner,
            [f"--triton-publish-staging={S3_STAGING}"],
            env={"CI": "true", "GITHUB_REF_NAME": "main"},
        )


def test_outside_ci_nothing_is_published_without_a_chosen_destination(
    rule_runner: RuleRunner,
) -> None:
    with pytest.raises(ExecutionError, match=r"No destination for the staging stage \(nothing"):
        publish_jobs(rule_runner, [], env={})


def test_the_local_folder_store_is_chosen_with_a_file_url_under_the_repository(
    rule_runner: RuleRunner,
) -> None:
    jobs = publish_jobs(
        rule_runner,
        ["--triton-publish-stage=production"],
        env={
            "PANTS_TRITON_PUBLISH_STAGING": "file://.published/staging",
            "PANTS_TRITON_PUBLISH_PRODUCTION": "file:///srv/models",
        },
    )
    root = rule_runner.build_root
    assert argv_of(jobs[1]) == (
        "promote",
        f"--from=file://{root}/.published/staging",
        "--to=file:///srv/models",
        "--archive=m_1.tar.gz",
    )


def test_a_bare_path_destination_is_refused(rule_runner: RuleRunner) -> None:
    with pytest.raises(ExecutionError, match="use s3://bucket/prefix or file://FOLDER"):
        publish_jobs(rule_runner, ["--triton-publish-staging=.published/staging"], env={})


def test_an_unknown_stage_is_refused_when_options_are_parsed(rule_runner: RuleRunner) -> None:
    with pytest.raises(Exception) as error:
        publish_jobs(
            rule_runner,
            ["--triton-publish-stage=prod", f"--triton-publish-staging={S3_STAGING}"],
            env={},
        )
    assert "Invalid choice 'prod'. Choose from: staging, production" in str(error.value)
