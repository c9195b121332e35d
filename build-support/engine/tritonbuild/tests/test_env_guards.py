"""Which requirements pin the env they build, decided without building one."""

from __future__ import annotations

from pathlib import Path

from tritonbuild.pins import InstalledPackage, requirement_lines, unpinned_message


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
