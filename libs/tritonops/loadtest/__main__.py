"""``python -m tritonops.loadtest``: gevent patches the standard library first, before ssl,
urllib3 or boto3 are imported (Locust's callers are greenlets; patching later recurses)."""

import gevent.monkey  # type: ignore[import-untyped]  # pants: no-infer-dep (Locust brings it)

gevent.monkey.patch_all()

# isort: split
import sys

from tritonops.loadtest.cli import main

if __name__ == "__main__":
    sys.exit(main())
