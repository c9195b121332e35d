"""`package-triton` and `test-triton` with RuleRunner: the engine command lines they run, which
steps get an env, and the Python the env and the test server use."""

from __future__ import annotations

from pathlib import Path

import pytest  # pants: no-infer-dep (the test runner provides it)
from pants.core.util_rules import distdir, source_files, stripped_source_files
from pants.engine.addresses import Address
from pants.engine.fs import Digest, DigestContents
from pants.engine.internals.scheduler import ExecutionError
from pants.testutil.rule_runner import QueryRule, RuleRunner

from triton_monorepo import cases_in_triton, package
from triton_monorepo.cases_in_triton import TestTriton
from triton_monorepo.package import TritonArchive, TritonModelFieldSet
from triton_monorepo.target_types import TritonModelTarget
from triton_monorepo.tests.engine_double import engine_double

PYTHON_CONFIG = 'backend: "python"\n'
ONNX_CONFIG = 'backend: "onnxruntime"\n'


@pytest.fixture
def rule_runner() -> RuleRunner:
    return RuleRunner(
        target_types=[TritonModelTarget],
        rules=[
            *package.rules(),
            *cases_in_triton.rules(),
            *source_files.rules(),
            *stripped_source_files.rules(),
            *distdir.rules(),
            engine_double,
            QueryRule(TritonArchive, [TritonModelFieldSet]),
            QueryRule(DigestContents, [Digest]),
        ],
    )


def write_model(runner: RuleRunner, build: str = "triton_model_archive()", **files: str) -> None:
    """models/m with one case; `files` are paths inside the model folder."""
    files = {"BUILD": build, "model_version.txt": "1\n", "tests/cases/a.json": "{}", **files}
    runner.write_files({f"models/m/{path}": text for path, text in files.items()})


def archive_text(runner: RuleRunner, archive: TritonArchive) -> str:
    assert archive.ok, archive.problems
    contents = runner.request(DigestContents, [archive.digest])
    return contents[0].content.decode()


def package_model(runner: RuleRunner, options: list[str] | None = None) -> TritonArchive:
    runner.set_options(options or [], env_inherit={"PATH"})
    target = runner.get_target(Address("models/m"))
    return runner.request(TritonArchive, [TritonModelFieldSet.create(target)])


def test_package_runs_validate_then_build_env_then_package_with_the_release_stub(
    rule_runner: RuleRunner,
) -> None:
    write_model(
        rule_runner,
        **{"pre/config.pbtxt": PYTHON_CONFIG, "pre/1/model.py": "", "requirements.txt": ""},
    )
    text = archive_text(rule_runner, package_model(rule_runner))
    lines = text.splitlines()
    assert lines[0] == (
        "package models/m --env=python_env.tar.gz --python-version=3.10 --output-dir=out "
        "--summary-json=summary.json"
    )
    assert lines[1] == (
        "build-env --requirements=requirements.txt --python-version=3.10 "
        "--triton-release=24.10 --first-party=first_party --output=python_env.tar.gz"
    )


def test_the_release_picks_the_env_python(rule_runner: RuleRunner) -> None:
    write_model(rule_runner, **{"pre/config.pbtxt": PYTHON_CONFIG, "pre/1/model.py": ""})
    text = archive_text(rule_runner, package_model(rule_runner, ["--triton-release=23.02"]))
    assert "--python-version=3.8" in text.splitlines()[0]


def test_a_python_step_with_another_file_name_gets_an_env(rule_runner: RuleRunner) -> None:
    write_model(
        rule_runner,
        **{
            "pre/config.pbtxt": PYTHON_CONFIG + 'default_model_filename: "pre.py"\n',
            "pre/1/pre.py": "",
        },
    )
    text = archive_text(rule_runner, package_model(rule_runner))
    assert "--env=python_env.tar.gz" in text.splitlines()[0]
    assert text.splitlines()[1].startswith("build-env ")


def test_a_stray_model_py_in_a_non_python_step_builds_no_env(rule_runner: RuleRunner) -> None:
    write_model(
        rule_runner,
        **{"net/config.pbtxt": ONNX_CONFIG, "net/1/model.onnx": "w", "net/1/model.py": ""},
    )
    text = archive_text(rule_runner, package_model(rule_runner))
    assert text.splitlines() == ["package models/m --output-dir=out --summary-json=summary.json"]


def test_python_version_that_differs_from_the_release_stub_is_refused(
    rule_runner: RuleRunner,
) -> None:
    write_model(
        rule_runner,
        build='triton_model_archive(python_version="3.11")',
        **{"pre/config.pbtxt": PYTHON_CONFIG, "pre/1/model.py": ""},
    )
    archive = package_model(rule_runner)
    assert not archive.ok
    assert archive.problems.startswith(
        "models/m/BUILD: python_version: the model says Python 3.11, but [triton].release 24.10 "
        "runs python steps in its stub's Python 3.10"
    )
    assert (
        'fix: remove python_version (the env follows the release), set python_version="3.10"'
        in (archive.problems)
    )
    # The same field agrees with a release whose stub is 3.11 only if the table says so.
    archive = package_model(
        rule_runner, ["--triton-stub-python-versions=+{'99.01': '3.11'}", "--triton-release=99.01"]
    )
    assert archive.ok, archive.problems


def test_python_version_must_be_x_y_when_the_build_file_is_read(rule_runner: RuleRunner) -> None:
    write_model(rule_runner, build='triton_model_archive(python_version="3.10.4")')
    with pytest.raises(ExecutionError) as error:
        rule_runner.get_target(Address("models/m"))
    assert (
        "The 'python_version' field in target models/m:m must be a Python X.Y such as \"3.10\", "
        "but it is '3.10.4'."
    ) in str(error.value)


def test_a_release_missing_from_the_table_says_how_to_add_it(rule_runner: RuleRunner) -> None:
    write_model(rule_runner, **{"pre/config.pbtxt": PYTHON_CONFIG, "pre/1/model.py": ""})
    archive = package_model(rule_runner, ["--triton-release=26.01"])
    assert not archive.ok
    assert "[triton].release = '26.01' is not in [triton].stub_python_versions" in (
        archive.problems
    )


def run_test_triton(runner: RuleRunner, *args: str) -> str:
    write_model(runner, **{"pre/config.pbtxt": PYTHON_CONFIG, "pre/1/model.py": ""})
    result = runner.run_goal_rule(TestTriton, args=[*args, "models/m"], env_inherit={"PATH"})
    assert result.exit_code == 0, result.stderr
    return Path(runner.build_root, "dist", "test-triton-report.json").read_text()


def test_test_triton_runs_the_local_server_with_the_release_stub(rule_runner: RuleRunner) -> None:
    assert run_test_triton(rule_runner).split() == [
        "test-triton",
        "--model=archives/m_1.tar.gz=models/m/tests/cases",
        "--launcher=local",
        "--stub-python=3.10",
        "--cache-dir=.cache/tritonbuild",
        "--report=test-triton-report.json",
    ]
    assert Path(rule_runner.build_root, "dist", "test-triton-report.tritonserver.log").exists()


def test_test_triton_docker_launcher_gets_the_image_and_the_stub(rule_runner: RuleRunner) -> None:
    argv = run_test_triton(
        rule_runner,
        "--triton-launcher=docker",
        "--triton-docker-image=nvcr.io/nvidia/tritonserver:23.02-py3",
        "--triton-release=23.02",
    ).split()
    assert argv[2:5] == [
        "--launcher=docker",
        "--stub-python=3.8",
        "--image=nvcr.io/nvidia/tritonserver:23.02-py3",
    ]


def test_test_triton_refuses_a_model_whose_python_is_not_the_release_stub(
    rule_runner: RuleRunner,
) -> None:
    write_model(
        rule_runner,
        build='triton_model_archive(python_version="3.11")',
        **{"pre/config.pbtxt": PYTHON_CONFIG, "pre/1/model.py": ""},
    )
    result = rule_runner.run_goal_rule(TestTriton, args=["models/m"], env_inherit={"PATH"})
    assert result.exit_code == 1
    assert "models/m: not packaged" in result.stderr
    assert "the model says Python 3.11" in result.stderr
    assert not Path(rule_runner.build_root, "dist", "test-triton-report.json").exists()
