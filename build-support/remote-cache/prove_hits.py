"""Runs the remote cache's checks (docs/remote-cache.md): `python3 prove_hits.py [--help]`.

Standard library only, so any CPython >= 3.9 runs it; the cache server installs its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from remotecache.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
