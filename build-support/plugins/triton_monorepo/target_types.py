"""The `triton_model` target: one Triton model repository folder under `models/<name>/`."""

from __future__ import annotations

import re
from typing import Optional

from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    Dependencies,
    InvalidFieldException,
    MultipleSourcesField,
    StringField,
    Target,
)
from pants.util.strutil import softwrap

_PYTHON_VERSION = re.compile(r"3\.[0-9]+")


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
        The Python X.Y the model's python steps are written for (e.g. "3.10"). It must be the
        Python of the python-backend stub of `[triton].release`, since Triton silently runs a
        step outside an env of any other Python: `package-triton` refuses a mismatch. Leave it
        unset to follow the release; set it to make a later release change fail loudly.
        """)

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None and not _PYTHON_VERSION.fullmatch(value):
            raise InvalidFieldException(
                f"The {cls.alias!r} field in target {address} must be a Python X.Y such as "
                f'"3.10", but it is {value!r}.'
            )
        return value


class TritonModelTarget(Target):
    # A model's BUILD file says `triton_model()`: the macro of build-support/macros/, which
    # declares this target and the python targets of the model's steps, tests and scripts.
    alias = "triton_model_archive"
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
