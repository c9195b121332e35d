"""Entry point of ``python -m tritonlib.autoscaling``."""

from tritonlib.autoscaling.cli import main

raise SystemExit(main())
