"""What the env guards decide without building an env: which requirements pin, and which
packages the python stub of a Triton release cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tritonbuild.errors import UserError
from tritonbuild.pins import InstalledPackage, requirement_lines, unpinned_message
from tritonbuild.stubcompat import incompatibilities, parse_release, stub_problems

# ------------------------------------------------------------------------------ pins


def test_pins_count_from_included_and_constraint_files(tmp_path: Path) -> None:
    (tmp_path / "constraints.txt").write_text("beta==2.0\n")
    (tmp_path / "more.txt").write_text("delta===0.1 --hash=sha256:00\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# comment\n"
        "-c constraints.txt\n"
        "--requirement=more.txt\n"
        "alpha==1.0 \\\n"
        "    --hash=sha256:00  # trailing comment\n"
        "beta>=1\n"
        'gamma==3.1; python_version >= "3"\n'
        "epsilon==1.*\n"
        "zeta @ https://example.org/zeta-1.0-py3-none-any.whl\n"
        "./local/eta\n"
    )
    lines = requirement_lines(requirements)
    assert [(line.number, line.name, line.pinned_version) for line in lines] == [
        (1, "beta", "2.0"),
        (1, "delta", "0.1"),
        (4, "alpha", "1.0"),
        (6, "beta", None),
        (7, "gamma", "3.1"),
        (8, "epsilon", None),
        (9, "zeta", None),
        (10, None, None),
    ]
    pinned = [
        InstalledPackage("alpha", "1.0", direct=False, pinned_artifact=True),
        InstalledPackage("Beta", "2.0", direct=False, pinned_artifact=True),
        InstalledPackage("delta", "0.1", direct=False, pinned_artifact=True),
        InstalledPackage("zeta", "1.0", direct=True, pinned_artifact=True),
    ]
    assert unpinned_message(requirements, lines, pinned) is None
    loose = [
        *pinned,
        InstalledPackage("Epsilon", "1.4", direct=False, pinned_artifact=True),
        InstalledPackage("eta", "0.0.1", direct=True, pinned_artifact=False),
    ]
    message = unpinned_message(requirements, lines, loose)
    assert message is not None
    assert f"{requirements}:8: epsilon==1.*" in message
    assert "name no single artifact (use an archive, or a VCS URL at a full commit hash): eta" in (
        message
    )
    assert message.splitlines()[-1] == "    Epsilon==1.4"


# ----------------------------------------------------------------- the release's stub


def test_every_known_incompatibility_cites_a_source_and_parses() -> None:
    cases = incompatibilities()
    assert cases, "the data file lists no case"
    for case in cases:
        assert case.sources and all(s.startswith("https://") for s in case.sources), case
        assert case.fix and case.symptom


def test_release_24_10_refuses_numpy_2_and_24_11_accepts_it() -> None:
    (problem,) = stub_problems({"numpy": "2.2.6", "six": "1.17.0"}, "24.10")
    assert problem.startswith(
        "numpy 2.2.6 cannot run under the python backend stub of Triton 24.10"
    )
    assert "unpack_from requires a buffer" in problem
    assert "numpy==1.26.4" in problem and "Triton 24.11 or newer" in problem
    assert "https://github.com/triton-inference-server/python_backend/pull/384" in problem
    assert stub_problems({"numpy": "2.2.6"}, "24.11") == []
    assert stub_problems({"numpy": "1.26.4"}, "24.10") == []
    assert stub_problems({"NumPy": "2.0.0"}, "23.05") != []


def test_release_that_is_not_an_ngc_tag_is_refused() -> None:
    with pytest.raises(UserError, match=r"'2410' is not an NGC release tag YY\.MM"):
        parse_release("2410")
