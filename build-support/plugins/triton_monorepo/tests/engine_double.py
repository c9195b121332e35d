"""A stand-in for the engine in RuleRunner tests: the goal rules run, the engine does not.

It replaces the one rule that turns an `EngineProcess` into a `Process`, so the rules under test
are the real ones. The stand-in is a bash script that writes what each subcommand would write,
with the command line it was given as the content, so a test asserts the exact engine command
lines a goal runs. Its `validate --json` reports as python steps the steps whose config says
`backend: "python"`, as the engine does.
"""

from __future__ import annotations

from pants.engine.process import Process
from pants.engine.rules import rule

from triton_monorepo.engine import EngineProcess

_SCRIPT = r"""
set -eu
command="$1"; shift
option() { for arg in "$@"; do case "$arg" in "--$OPTION="*) echo "${arg#--$OPTION=}";; esac; done; }
case "$command" in
  validate)
    model="$1"; json="$(OPTION=json option "$@")"
    steps=""
    for config in "$model"/*/config.pbtxt; do
      if grep -q 'backend: *"python"' "$config"; then
        step="$(basename "$(dirname "$config")")"
        steps="${steps:+$steps, }\"$step\""
      fi
    done
    printf '{"%s": {"python_steps": [%s]}}\n' "$model" "$steps" > "$json"
    ;;
  build-env)
    echo "build-env $*" > "$(OPTION=output option "$@")"
    ;;
  package)
    model="$1"; out="$(OPTION=output-dir option "$@")"; summary="$(OPTION=summary-json option "$@")"
    mkdir -p "$out"
    archive="$out/$(basename "$model")_1.tar.gz"
    echo "package $*" > "$archive"
    if [ -f python_env.tar.gz ]; then cat python_env.tar.gz >> "$archive"; fi
    echo "{}" > "$archive.digests.json"
    printf '{"path": "%s", "digests": "%s", "size": 1, "sha256": "0", "env": null}\n' \
      "$archive" "$archive.digests.json" > "$summary"
    ;;
  test-triton)
    report="$(OPTION=report option "$@")"
    echo "test-triton $*" > "$report"
    : > "${report%.json}.tritonserver.log"
    ;;
  endpoint)
    # The ready file gets the engine's arguments, one a line: the real one writes its URL.
    printf '%s\n' "$@" > "$(OPTION=ready-file option "$@")"
    ;;
esac
"""


@rule
async def engine_double(request: EngineProcess) -> Process:
    return Process(
        argv=("/bin/bash", "-c", _SCRIPT, "tritonbuild", *request.argv),
        description=request.description,
        input_digest=request.input_digest,
        output_files=request.output_files,
        output_directories=request.output_directories,
        env={"PATH": "/usr/bin:/bin", **request.extra_env},
        level=request.level,
        cache_scope=request.cache_scope,
    )


def engine_argv(process: Process) -> tuple[str, ...]:
    """The engine command line of a process made by `engine_double`."""
    return tuple(process.argv[4:])
