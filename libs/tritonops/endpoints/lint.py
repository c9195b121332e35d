"""cfn-lint on a rendered template: AWS's resource specification checks every property name,
type and allowed value before the template goes anywhere near CloudFormation."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LintFinding", "lint_template"]


@dataclass(frozen=True)
class LintFinding:
    rule: str
    message: str
    line: int
    severity: str

    def format(self, name: str) -> str:
        return f"{name}:{self.line}: {self.rule} {self.message}"


def lint_template(template: str, region: str) -> list[LintFinding]:
    """Every error and warning cfn-lint finds in ``template`` for ``region``."""
    from cfnlint.api import ManualArgs, lint

    matches = lint(template, config=ManualArgs(regions=[region]))
    return [
        LintFinding(
            rule=match.rule.id,
            message=match.message,
            line=match.linenumber,
            severity=match.rule.severity,
        )
        for match in matches
    ]
