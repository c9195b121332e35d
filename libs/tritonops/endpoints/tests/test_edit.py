"""The load test's write: a variant's invocations target changed in place, the rest kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tritonops.endpoints.edit import set_invocations_target
from tritonops.endpoints.errors import DefinitionsError
from tritonops.endpoints.parse import load_definitions
from tritonops.endpoints.tests.examples import STAGES

COMMITTED = Path(__file__).resolve().parents[4] / "autoscaling" / "endpoints.toml"


def test_the_target_changes_and_nothing_else(definitions_file: Path) -> None:
    before = definitions_file.read_text()

    set_invocations_target(
        definitions_file,
        "production",
        "Current",
        183.6,
        STAGES,
        note="load test 2026-11-29: p99 412 ms",
    )

    after = definitions_file.read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert changed == [
        (
            "invocations_per_instance = 120",
            "invocations_per_instance = 183.6 # load test 2026-11-29: p99 412 ms",
        )
    ]
    assert len(before.splitlines()) == len(after.splitlines())
    definitions = load_definitions(definitions_file, STAGES)
    assert definitions.stages["production"].scaling[0].policies[0].target == 183.6


def test_a_whole_number_stays_a_whole_number_and_the_comment_is_replaced(
    definitions_file: Path,
) -> None:
    set_invocations_target(definitions_file, "staging", "AllTraffic", 95.0, STAGES, note="measured")
    assert "invocations_per_instance = 95 # measured\n" in definitions_file.read_text()


@pytest.mark.parametrize(
    ("stage", "variant", "target", "field", "message"),
    [
        (
            "staging",
            "Canary",
            80,
            "staging.variants",
            "stage staging has no variant 'Canary' (its variants: AllTraffic)",
        ),
        (
            "production",
            "Candidate",
            80,
            "production.scaling",
            "variant 'Candidate' of production does not autoscale",
        ),
        ("qa", "AllTraffic", 80, "qa", "no endpoint is defined for stage 'qa'"),
        (
            "staging",
            "AllTraffic",
            0,
            "staging.scaling[0].invocations_per_instance",
            "must be greater than 0",
        ),
    ],
)
def test_a_bad_write_names_file_stage_and_variant_and_leaves_the_file_alone(
    definitions_file: Path, stage: str, variant: str, target: float, field: str, message: str
) -> None:
    before = definitions_file.read_bytes()
    with pytest.raises(DefinitionsError) as caught:
        set_invocations_target(definitions_file, stage, variant, target, STAGES)
    assert (caught.value.path, caught.value.field) == (definitions_file, field)
    assert message in caught.value.message
    assert definitions_file.read_bytes() == before
    assert [p.name for p in definitions_file.parent.iterdir()] == [definitions_file.name]


def test_the_committed_file_takes_a_write(tmp_path: Path) -> None:
    copy = tmp_path / "endpoints.toml"
    shutil.copyfile(COMMITTED, copy)
    set_invocations_target(copy, "production", "AllTraffic", 150, STAGES)
    assert (
        load_definitions(copy, STAGES).stages["production"].scaling[0].policies[0].target == 150.0
    )
