from pants.engine.addresses import Address
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
            "models/m/BUILD": "triton_model()",
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
