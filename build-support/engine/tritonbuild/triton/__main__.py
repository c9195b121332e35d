"""`python -m tritonbuild.triton`: the test-triton command on its own."""

from __future__ import annotations

import sys

from tritonbuild.triton.cli import main

sys.exit(main())
