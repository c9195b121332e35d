"""`python -m tritonops.drift check CAPTURE [...]` (see tritonops.drift.cli)."""

import sys

from tritonops.drift.cli import main

sys.exit(main())
