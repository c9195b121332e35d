import pytest

from tritoncontract.names import server_log_name
from tritoncontract.releases import STUB_PYTHON_BY_RELEASE, UnknownReleaseError, stub_python
from tritoncontract.stages import Stage, resolve_stage


def test_early_23_releases_run_python_3_8_and_later_ones_3_10() -> None:
    assert [stub_python(r) for r in ("23.01", "23.03", "23.04", "24.10", "24.12")] == [
        "3.8",
        "3.8",
        "3.10",
        "3.10",
        "3.10",
    ]


def test_an_unknown_release_names_the_options_and_the_fix() -> None:
    with pytest.raises(UnknownReleaseError) as error:
        stub_python("26.01")
    message = str(error.value)
    assert "[triton].release = '26.01' is not in [triton].stub_python_versions" in message
    assert "'26.01': 'X.Y'" in message and "release notes" in message
    assert "26.01" not in STUB_PYTHON_BY_RELEASE


@pytest.mark.parametrize(
    "environ, branch, expected",
    [
        ({}, "main", Stage.STAGING),
        ({"CI": "true"}, "main", Stage.PRODUCTION),
        ({"CI": "true"}, "feature", Stage.STAGING),
        ({"CI": "true", "GITHUB_REF_NAME": "main"}, None, Stage.PRODUCTION),
        ({"CI": "true", "GITHUB_REF_NAME": "main", "GITHUB_HEAD_REF": "pr"}, None, Stage.STAGING),
    ],
)
def test_stage_follows_ci_and_the_branch(environ, branch, expected) -> None:
    assert resolve_stage(None, environ, branch) is expected


def test_an_explicit_stage_wins() -> None:
    assert resolve_stage(Stage.STAGING, {"CI": "1"}, "main") is Stage.STAGING


def test_the_server_log_sits_beside_the_report() -> None:
    assert server_log_name("test-triton-report.json") == "test-triton-report.tritonserver.log"
