"""Run the project's benchmarks (see BENCHMARKS.md): `python benchmarks/run.py [--quick]`.

Use an interpreter that has the project's requirements (the `python-default` resolve); the
repository's own code is found from this file's location.
"""

from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
for _folder in (
    _REPO / "benchmarks",
    _REPO / "build-support" / "engine",
    _REPO / "build-support" / "contract",
    _REPO / "build-support" / "remote-cache",
    _REPO / "libs",
):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from tritonbench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
