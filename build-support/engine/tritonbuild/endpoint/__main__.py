"""`python -m tritonbuild.endpoint`: the endpoint command on its own."""

from __future__ import annotations

import sys

from tritonbuild.cli import main

sys.exit(main(["endpoint", *sys.argv[1:]]))
