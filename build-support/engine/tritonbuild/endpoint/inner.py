"""The endpoint inside the private namespaces: tritonserver, the models, the HTTP server.

Started by `runner.LocalEndpoint` as the first process of fresh user, mount, network and PID
namespaces (as test-triton starts its server): it is handed the listening socket the host
created and one end of a socketpair to the host, whose other end serves store requests. On
SIGTERM it stops accepting, lets in-flight requests finish, stops Triton and exits; the kernel
then ends anything left in the PID namespace, and the private /opt/ml with the extracted models
disappears with the mount namespace.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from tritonbuild.endpoint.broker import BrokerClient
from tritonbuild.endpoint.capture import DataCapture
from tritonbuild.endpoint.frontend import EndpointServer, Invoker
from tritonbuild.endpoint.metrics import EndpointMetrics
from tritonbuild.endpoint.models import ModelManager, Settings
from tritonbuild.endpoint.triton_link import TritonLink
from tritonbuild.triton.namespace import enter_private_world
from tritonbuild.triton.sagemaker import MODELS_ROOT
from tritonbuild.triton.server import LOOPBACK, launcher_from_fields

__all__ = ["main", "serve"]

log = logging.getLogger("tritonbuild.endpoint")
_HEALTH_POLL_S = 0.5


def serve(plan: dict[str, Any]) -> int:
    """Run until SIGTERM/SIGINT (0) or until Triton dies (1)."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, request_stop)
    listening = socket.socket(fileno=plan["listen_fd"])
    channel = socket.socket(fileno=plan["broker_fd"])
    enter_private_world()
    launcher = launcher_from_fields(plan, Path(MODELS_ROOT))
    server: EndpointServer | None = None
    capture: DataCapture | None = None
    try:
        started_s = launcher.start()
        log.info("tritonserver ready in %.1f s (SageMaker multi-model mode)", started_s)
        link = TritonLink(LOOPBACK, launcher.ports.sagemaker)
        metrics = EndpointMetrics(plan["endpoint"], plan["variant"])
        broker = BrokerClient(channel)
        models = ModelManager(
            Settings(
                stage=plan["stage"],
                models_root=Path(MODELS_ROOT),
                memory_budget=int(plan["memory_budget"]),
                wait_limit_s=float(plan["wait_limit_s"]),
                log_stream=plan["log_stream"],
            ),
            link,
            broker,
            metrics,
            lambda: launcher.process.pid,
        )
        if plan["capture_dir"]:
            capture = DataCapture(
                Path(plan["capture_dir"]),
                plan["endpoint"],
                plan["variant"],
                float(plan["capture_percent"]),
            )
        server = EndpointServer(
            listening, Invoker(plan["endpoint"], plan["variant"], models, link, metrics, capture)
        )
        serving = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        serving.start()
        broker.notify("ready")
        while not stop.wait(_HEALTH_POLL_S):
            if not launcher.alive():
                log.error(
                    "tritonserver died (%s); last log lines:\n%s",
                    launcher.describe_exit(),
                    launcher.process.log_tail(),
                )
                return 1
        log.info("stopping: draining in-flight requests")
        if not server.drain(float(plan["drain_s"])):
            log.warning("requests still in flight after %s s; stopping anyway", plan["drain_s"])
        models.unload_all()
        return 0
    finally:
        if server is not None:
            server.server_close()
        if capture is not None:
            capture.close()
        shutdown = launcher.stop()
        if shutdown is not None:
            log.info("%s", shutdown.describe())


def main() -> int:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s endpoint: %(message)s"
    )
    plan = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    return serve(plan)


if __name__ == "__main__":
    sys.exit(main())
