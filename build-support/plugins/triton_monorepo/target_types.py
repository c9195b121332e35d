"""The `triton_model` target: one Triton model repository folder under `models/<name>/`."""

from __future__ import annotations

from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    Dependencies,
    MultipleSourcesField,
    StringField,
    Target,
)
from pants.util.strutil import softwrap


class TritonModelSourcesField(MultipleSourcesField):
    default = (
        "model_version.txt",
        "requirements.txt",
        "*/config.pbtxt",
        "*/[0-9]*/**",
        "tests/cases/**",
        "reference_profile.npz",
        "reference_profile.npz.dvc",
        "!**/__pycache__/**",
    )
    help = softwrap("""
        The files of the model repository: `model_version.txt`, `requirements.txt`, each step's
        `config.pbtxt` and version folders (python code, weights), the test cases under
        `tests/cases/`, and the drift check's `reference_profile.npz` (validated, never
        archived). The default finds them all; override it only for an unusual layout.
        """)


class TritonModelDependenciesField(Dependencies):
    help = softwrap("""
        Extra dependencies of the model. The python steps' own imports (for example the shared
        `tritonlib` library) are found by dependency inference on their `python_sources`, so this
        is rarely needed.
        """)


class TritonPythonVersionField(StringField):
    alias = "python_version"
    help = softwrap("""
        The X.Y version of the Python that runs the model's python steps inside Triton. Defaults
        to the version of the python-backend stub of `[triton].release`. The packed environment
        must use the stub's version, or Triton silently ignores it.
        """)


class TritonModelTarget(Target):
    alias = "triton_model"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        TritonModelSourcesField,
        TritonModelDependenciesField,
        TritonPythonVersionField,
    )
    help = softwrap("""
        A Triton model repository packaged as one SageMaker multi-model archive.

        `pants package-triton` validates the folder, packs the python steps' environment with
        conda-pack, and writes `dist/<name>_<version>.tar.gz` with every step at the archive
        root. `pants test-triton` loads that archive in a real Triton server and checks the
        `tests/cases/*.json` cases. `pants publish` uploads it to the stage's store.
        """)
