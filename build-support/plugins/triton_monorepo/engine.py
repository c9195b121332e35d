"""The engine (`tritonbuild`) as a PEX from the project's resolve, and how to run it."""

from __future__ import annotations

from dataclasses import dataclass

from pants.backend.python.target_types import EntryPoint
from pants.backend.python.util_rules.pex import VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_environment import PexEnvironment
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.engine.addresses import Address, AddressInput
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import Digest
from pants.engine.process import Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel
from pants.util.strutil import create_path_env_var

from triton_monorepo.subsystems import TritonSubsystem

# What the engine needs from the host: the interpreters that build packed environments (pyenv)
# and TMPDIR. Its PATH (for unshare, ip) is `[pex].executable_search_paths`, as for every pex
# process: the host's PATH by default, a fixed list where cache keys must match across machines
# (pants.remote-cache.toml). Nothing else leaks into the sandbox.
_HOST_ENV_VARS = ("PYENV_ROOT", "TMPDIR")

# Caches that outlive a sandbox: pip's downloads for env builds, and test-triton's stand-in envs.
PIP_CACHE = FrozenDict({"tritonbuild_pip": ".cache/pip"})
TRITONBUILD_CACHE = FrozenDict({"tritonbuild": ".cache/tritonbuild"})


@dataclass(frozen=True)
class TritonEngine:
    pex: VenvPex
    env: FrozenDict[str, str]


@dataclass(frozen=True)
class EngineProcess:
    """One run of the engine's command line (`python -m tritonbuild ARGV`).

    Rules ask for `Get(FallibleProcessResult, EngineProcess(...))` or `Get(Process, ...)`; only
    `engine_process` knows how the engine is built, so tests can swap it and assert the exact
    command lines, as Pants' own backends test theirs.
    """

    argv: tuple[str, ...]
    description: str
    input_digest: Digest
    output_files: tuple[str, ...] = ()
    output_directories: tuple[str, ...] = ()
    level: LogLevel = LogLevel.INFO
    cache_scope: ProcessCacheScope = ProcessCacheScope.SUCCESSFUL
    extra_env: FrozenDict[str, str] = FrozenDict()
    append_only_caches: FrozenDict[str, str] = FrozenDict()


@rule(level=LogLevel.DEBUG)
async def engine_process(request: EngineProcess, engine: TritonEngine) -> Process:
    return await Get(
        Process,
        VenvPexProcess(
            engine.pex,
            argv=request.argv,
            description=request.description,
            input_digest=request.input_digest,
            output_files=request.output_files,
            output_directories=request.output_directories,
            extra_env=FrozenDict({**engine.env, **request.extra_env}),
            level=request.level,
            cache_scope=request.cache_scope,
            append_only_caches=request.append_only_caches,
        ),
    )


@rule(desc="Build the tritonbuild engine", level=LogLevel.DEBUG)
async def build_triton_engine(triton: TritonSubsystem, pex_env: PexEnvironment) -> TritonEngine:
    address, host_env = await MultiGet(
        Get(
            Address,
            AddressInput,
            AddressInput.parse(triton.engine, description_of_origin="the option [triton].engine"),
        ),
        Get(EnvironmentVars, EnvironmentVarsRequest(_HOST_ENV_VARS)),
    )
    pex = await Get(
        VenvPex,
        PexFromTargetsRequest(
            [address],
            output_filename="tritonbuild.pex",
            internal_only=True,
            main=EntryPoint("tritonbuild"),
        ),
    )
    return TritonEngine(
        pex=pex, env=FrozenDict({**host_env, "PATH": create_path_env_var(pex_env.path)})
    )


def rules() -> list[object]:
    return [*collect_rules()]
