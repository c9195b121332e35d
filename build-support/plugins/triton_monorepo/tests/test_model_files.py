from pants.backend.python.target_types import PythonSourcesGeneratorTarget
from pants.backend.python.target_types_rules import rules as python_target_types_rules
from pants.core.target_types import FileSourceField
from pants.engine.addresses import Address
from pants.engine.target import HydratedSources, HydrateSourcesRequest, InferredDependencies
from pants.testutil.rule_runner import QueryRule, RuleRunner

from triton_monorepo import model_files
from triton_monorepo.model_files import InferTritonModelDependencies, TritonModelInferenceFieldSet
from triton_monorepo.target_types import TritonModelSourcesField, TritonModelTarget

FILES = {
    "models/m/BUILD": 'triton_model_archive()\npython_sources(name="steps", sources=["*/1/*.py"])\n',
    "models/m/model_version.txt": "1\n",
    "models/m/pre/config.pbtxt": 'backend: "python"\n',
    "models/m/pre/1/model.py": "",
    "models/m/post/config.pbtxt": 'backend: "python"\n',
    "models/m/post/1/model.py": "",
    "models/m/tests/cases/a.json": "{}",
}


def rule_runner() -> RuleRunner:
    runner = RuleRunner(
        target_types=[TritonModelTarget, PythonSourcesGeneratorTarget],
        rules=[
            *model_files.rules(),
            *python_target_types_rules(),
            QueryRule(InferredDependencies, [InferTritonModelDependencies]),
            QueryRule(HydratedSources, [HydrateSourcesRequest]),
        ],
    )
    runner.write_files(FILES)
    return runner


def test_the_python_steps_are_inferred_dependencies() -> None:
    runner = rule_runner()
    tgt = runner.get_target(Address("models/m"))
    inferred = runner.request(
        InferredDependencies,
        [InferTritonModelDependencies(TritonModelInferenceFieldSet.create(tgt))],
    )
    assert set(inferred.include) == {
        Address("models/m", target_name="steps", relative_file_path="pre/1/model.py"),
        Address("models/m", target_name="steps", relative_file_path="post/1/model.py"),
    }


def test_the_model_files_are_visible_as_files() -> None:
    runner = rule_runner()
    tgt = runner.get_target(Address("models/m"))
    hydrated = runner.request(
        HydratedSources,
        [
            HydrateSourcesRequest(
                tgt[TritonModelSourcesField],
                for_sources_types=(FileSourceField,),
                enable_codegen=True,
            )
        ],
    )
    assert "models/m/tests/cases/a.json" in hydrated.snapshot.files
    assert "models/m/pre/config.pbtxt" in hydrated.snapshot.files
