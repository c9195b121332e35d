"""The GitHub workflows pass zizmor, the security linter for GitHub Actions: actions pinned to
commit SHAs, no credentials persisted by checkout, tokens granted only to the job that needs
them, no template injection."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

WORKFLOWS = Path(".github/workflows")


def zizmor() -> str:
    """The zizmor binary of the lockfile's wheel (a script, not a module)."""
    found = shutil.which("zizmor") or shutil.which("zizmor", path=str(Path(sys.executable).parent))
    if found:
        return found
    for file in metadata.distribution("zizmor").files or ():
        if file.name == "zizmor":
            return str(file.locate())
    raise AssertionError("zizmor's binary is not installed")


def test_the_workflows_have_no_zizmor_findings() -> None:
    workflows = sorted(WORKFLOWS.glob("*.y*ml"))
    assert workflows, f"no workflow under {WORKFLOWS.resolve()}"
    result = subprocess.run(
        [zizmor(), "--offline", "--persona=pedantic", "--no-progress", "--format=json"]
        + list(map(str, workflows)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    findings = json.loads(result.stdout or "[]")
    summary = [
        f"{finding['ident']}: {finding['desc']} ({finding['determinations']['severity']})"
        for finding in findings
    ]
    assert summary == [], result.stdout + result.stderr
    assert result.returncode == 0, result.stderr
