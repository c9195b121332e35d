"""The replay's requests: drawn from the reference profile, shifted as asked, refused clearly."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from tritonops.drift.cli import main
from tritonops.drift.replay import ReplayError, reference_requests
from tritonops.drift.tests.traffic import MODEL

from tritonlib.profiles import PROFILE_FILE, load_profile


def test_rows_come_from_the_profile_and_a_shift_moves_them_by_reference_sds(
    models_dir: Path,
) -> None:
    profile = load_profile(models_dir / MODEL / PROFILE_FILE)
    plain = list(reference_requests(profile, 500, seed=3, shifts={}))
    moved = list(reference_requests(profile, 500, seed=3, shifts={"X": 0.5}))
    sample = profile.samples["X"]

    assert all(request["X"].shape == (1, 3) for request in plain)  # the demo model batches
    rows = {tuple(row) for row in sample}
    assert all(tuple(request["X"][0]) in rows for request in plain)
    difference = np.stack([m["X"][0] - p["X"][0] for m, p in zip(moved, plain)])
    assert np.allclose(difference, 0.5 * sample.astype(np.float64).std(axis=0), rtol=1e-4)
    assert [m["RECORD"].tolist() for m in moved] == [p["RECORD"].tolist() for p in plain]


@pytest.mark.parametrize(
    ("shift", "message"),
    [("Z=0.5", "the profile has no input 'Z' (RECORD, X)"), ("RECORD=1", "only numeric inputs")],
)
def test_a_shift_the_profile_cannot_take_is_refused(
    models_dir: Path, shift: str, message: str
) -> None:
    profile = load_profile(models_dir / MODEL / PROFILE_FILE)
    name, amount = shift.split("=")
    with pytest.raises(ReplayError, match=re.escape(message)):
        reference_requests(profile, 1, seed=0, shifts={name: float(amount)})


def test_the_command_names_a_missing_profile_and_exits_2(
    models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["replay", str(models_dir / "plain"), "--endpoint-name", "local-staging"])
    assert code == 2
    assert f"{models_dir / 'plain' / PROFILE_FILE}" in capsys.readouterr().err
