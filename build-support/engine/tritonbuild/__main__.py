"""`python -m tritonbuild`: the engine's command line."""

from __future__ import annotations

import sys

from tritonbuild.cli import main

sys.exit(main())
