"""Options of the Triton build: `[triton]` in pants.toml."""

from __future__ import annotations

from pants.option.option_types import DictOption, EnumOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import softwrap

from triton_monorepo.launcher import Launcher
from tritoncontract.releases import LOCAL_SERVER_RELEASE, STUB_PYTHON_BY_RELEASE, stub_python


class TritonSubsystem(Subsystem):
    options_scope = "triton"
    help = "The Triton release the models target, and how archives are built and tested."

    release = StrOption(
        default=LOCAL_SERVER_RELEASE,
        help=softwrap(f"""
            The Triton release (NGC tag, YY.MM) that serves the models. It picks the Python of the
            packed environments and of `test-triton`'s python-backend stub (see
            `stub_python_versions`). The local server of `test-triton` is release
            {LOCAL_SERVER_RELEASE} (Triton 2.51, from PyPI's nvidia-pytriton).
            """),
    )
    stub_python_versions = DictOption[str](
        default=dict(STUB_PYTHON_BY_RELEASE),
        help=softwrap("""
            The Python X.Y of the python-backend stub of each Triton release, from each
            release's notes ("Ubuntu ... including Python X.Y"; sources in
            build-support/contract/tritoncontract/releases.py). Every packed environment uses it,
            and `test-triton` runs that stub only: Triton silently runs a step outside an
            environment of any other Python. Add a release with
            `stub_python_versions = "+{'YY.MM': 'X.Y'}"`.
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

    def stub_python(self) -> str:
        """The Python X.Y of `[triton].release`'s stub; UnknownReleaseError says how to add it."""
        return stub_python(self.release, self.stub_python_versions)
