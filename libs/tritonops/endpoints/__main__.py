"""Entry point of ``python -m tritonops.endpoints``."""

from tritonops.endpoints.cli import main

raise SystemExit(main())
