"""`./pants endpoint` with RuleRunner: the engine command line it runs (ci/with-endpoint.sh
passes its arguments through `--endpoint-args`)."""

from __future__ import annotations

from pathlib import Path

from pants.testutil.rule_runner import RuleRunner, mock_console

from triton_monorepo import local_endpoint, publish
from triton_monorepo.local_endpoint import EndpointGoal
from triton_monorepo.tests.engine_double import engine_double


def test_endpoint_args_are_split_as_a_shell_splits_them(tmp_path: Path) -> None:
    runner = RuleRunner(rules=[*local_endpoint.rules(), *publish.rules(), engine_double])
    ready = tmp_path / "endpoint.json"
    store = ["--triton-publish-staging=file://.published/staging"]
    runner.set_options(store)
    # The goal's engine runs as an InteractiveProcess: it needs the terminal's exclusive use.
    with mock_console(runner.options_bootstrapper):
        result = runner.run_goal_rule(
            EndpointGoal,
            global_args=store,
            args=[
                "--endpoint-port=0",
                f"--endpoint-args=--capture-dir='{tmp_path}/a capture' --ready-file={ready}",
            ],
        )
    assert result.exit_code == 0
    assert ready.read_text().splitlines()[-3:] == [
        "--port=0",
        f"--capture-dir={tmp_path}/a capture",
        f"--ready-file={ready}",
    ]
