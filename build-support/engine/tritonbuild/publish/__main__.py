"""`python -m tritonbuild.publish`: the publish and promote commands on their own."""

from __future__ import annotations

import sys

from tritonbuild.publish.cli import main

sys.exit(main())
