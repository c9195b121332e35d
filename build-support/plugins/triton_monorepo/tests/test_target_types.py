from pants.backend.python.target_types import PythonRunGoalUseSandboxField
from pants.backend.python.typecheck.mypy import skip_field
from pants.backend.python.typecheck.mypy.skip_field import SkipMyPyField
from pants.engine.addresses import Address
from pants.engine.target import Dependencies
from pants.engine.target import MultipleSourcesField as Sources
from pants.engine.target import SourcesPaths, SourcesPathsRequest
from pants.testutil.rule_runner import QueryRule, RuleRunner

from triton_monorepo.target_types import TritonModelSourcesField, TritonModelTarget


def test_triton_model_default_sources_find_the_model_files() -> None:
    rule_runner = RuleRunner(
        target_types=[TritonModelTarget],
        rules=[QueryRule(SourcesPaths, [SourcesPathsRequest])],
    )
    rule_runner.write_files(
        {
            "models/m/BUILD": "triton_model_archive()",
            "models/m/model_version.txt": "3\n",
            "models/m/requirements.txt": "numpy==1.26.4\n",
            "models/m/pre/config.pbtxt": 'backend: "python"\n',
            "models/m/pre/1/model.py": "",
            "models/m/tests/cases/a.json": "{}",
            "models/m/reference_profile.npz": "",
            "models/m/reference_profile.npz.dvc": "",
            "models/m/tests/test_m.py": "",
            "models/m/README.md": "",
        }
    )
    tgt = rule_runner.get_target(Address("models/m"))
    paths = rule_runner.request(SourcesPaths, [SourcesPathsRequest(tgt[TritonModelSourcesField])])
    assert set(paths.files) == {
        "models/m/model_version.txt",
        "models/m/requirements.txt",
        "models/m/pre/config.pbtxt",
        "models/m/pre/1/model.py",
        "models/m/tests/cases/a.json",
        # validate (in package-triton's sandbox) checks the drift profile; it is not archived.
        "models/m/reference_profile.npz",
        "models/m/reference_profile.npz.dvc",
    }


def test_triton_model_macro_declares_the_archive_and_the_python_targets() -> None:
    from pathlib import Path

    from pants.backend.python.target_types import (
        PythonSourcesGeneratorTarget,
        PythonTestsGeneratorTarget,
    )
    from pants.backend.python.target_types_rules import rules as python_target_types_rules

    prelude = Path("build-support/macros/triton_model.py").read_text()
    rule_runner = RuleRunner(
        target_types=[TritonModelTarget, PythonSourcesGeneratorTarget, PythonTestsGeneratorTarget],
        rules=[*skip_field.rules(), *python_target_types_rules()],
    )
    rule_runner.write_files(
        {
            "build-support/macros/triton_model.py": prelude,
            "models/m/BUILD": "triton_model()",
            "models/m/tests/test_m.py": "",
            "models/m/train.py": "",
        }
    )
    rule_runner.set_options(["--build-file-prelude-globs=build-support/macros/*.py"])
    archive = rule_runner.get_target(Address("models/m"))
    steps = rule_runner.get_target(Address("models/m", target_name="steps"))
    tests = rule_runner.get_target(
        Address("models/m", target_name="tests", relative_file_path="tests/test_m.py")
    )
    scripts = rule_runner.get_target(Address("models/m", target_name="scripts"))
    train = rule_runner.get_target(
        Address("models/m", target_name="scripts", relative_file_path="train.py")
    )
    assert isinstance(archive, TritonModelTarget)
    assert steps.get(SkipMyPyField).value is True
    assert steps[Sources].value == ("*/[0-9]*/**/*.py",)
    assert tests[Dependencies].value == (":m",)
    assert scripts[Sources].value == ("*.py",)
    assert train[PythonRunGoalUseSandboxField].value is False
