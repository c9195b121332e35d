"""Options of the Triton build: `[triton]` in pants.toml."""

from __future__ import annotations

from pants.option.option_types import DictOption, EnumOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import softwrap

from triton_monorepo.launcher import Launcher

# NGC's Triton containers 23.xx and 24.xx are built on Ubuntu 22.04 (Python 3.10); 25.xx on
# Ubuntu 24.04 (Python 3.12). The python-backend stub is built for that Python.
_STUB_PYTHON_BY_RELEASE = {
    **{f"23.{m:02d}": "3.10" for m in range(1, 13)},
    **{f"24.{m:02d}": "3.10" for m in range(1, 13)},
    **{f"25.{m:02d}": "3.12" for m in range(1, 13)},
}


class TritonSubsystem(Subsystem):
    options_scope = "triton"
    help = "The Triton release the models target, and how archives are built and tested."

    release = StrOption(
        default="24.10",
        help=softwrap("""
            The Triton release (NGC tag, YY.MM) that serves the models. It picks the Python of the
            packed environments (see `stub_python_versions`). The local server of `test-triton`
            is release 24.10 (Triton 2.51, from PyPI's nvidia-pytriton).
            """),
    )
    stub_python_versions = DictOption[str](
        default=_STUB_PYTHON_BY_RELEASE,
        help=softwrap("""
            The Python X.Y of the python-backend stub of each Triton release. The packed
            environment of every python step must use it: Triton silently ignores an environment
            of another Python.
            """),
        advanced=True,
    )
    engine = StrOption(
        default="//build-support/engine:tritonbuild",
        help="The `pex_binary` target of the engine the goals run.",
        advanced=True,
    )
    launcher = EnumOption(
        default=Launcher.LOCAL,
        help=softwrap("""
            How `test-triton` runs the server. `local`: the tritonserver binary from PyPI's
            nvidia-pytriton, on the CPU, isolated in private namespaces (onnxruntime steps are
            replaced by python stand-ins in the test's copy only). `docker`: an NGC or SageMaker
            Triton image with `--gpus all`, archives unchanged.
            """),
    )
    docker_image = StrOption(
        default="nvcr.io/nvidia/tritonserver:24.10-py3",
        help="The Triton image of the `docker` launcher.",
    )

    def python_version(self, override: str | None) -> str:
        """The Python X.Y of the packed environments."""
        if override:
            return override
        try:
            return self.stub_python_versions[self.release]
        except KeyError:
            raise ValueError(
                f"[triton].release = {self.release!r} has no entry in "
                "[triton].stub_python_versions: add one (the Python X.Y of that release's "
                "python-backend stub)."
            )
