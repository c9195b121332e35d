"""test-triton: run a model archive's cases in a real Triton server, loaded the way SageMaker's
multi-model endpoint loads it.

The archive is extracted to `/opt/ml/models/<name>/model`, registered with `POST /models` and the
`X-Amzn-SageMaker-Target-Model` header, and invoked through `/models/<name>/invoke`; the server
runs inside private namespaces so its 0.0.0.0 SageMaker port and its scratch files never reach
the host. `python -m tritonbuild test-triton --help` describes the command.
"""

from __future__ import annotations

from tritonbuild.errors import UserError

__all__ = ["TestTritonError"]


class TestTritonError(UserError):
    """test-triton cannot run as asked (missing server, bad archive, env/stub mismatch)."""

    # Not a pytest test class, despite the name.
    __test__ = False
