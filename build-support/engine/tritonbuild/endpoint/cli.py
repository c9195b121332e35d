"""`python -m tritonbuild endpoint`: serve a stage's store as one SageMaker MME instance.

    python -m tritonbuild endpoint --store .published/staging --stub-python 3.10
    python -m tritonbuild endpoint --store s3://bucket/prefix --endpoint-url http://127.0.0.1:9000 \
        --stub-python 3.10

Runs until Ctrl-C or SIGTERM, then drains in-flight requests, stops Triton and exits 0. With
`--ready-file`, a script that started it (ci/with-endpoint.sh) learns its URL and process id.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from tritonbuild.endpoint import EndpointError
from tritonbuild.endpoint.memory import parse_budget, parse_size
from tritonbuild.endpoint.runner import EndpointConfig, LocalEndpoint
from tritonbuild.publish.destination import parse_destination
from tritoncontract.stages import STAGES

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "endpoint",
        help="serve a stage's published archives as a local SageMaker multi-model endpoint",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--stage",
        choices=STAGES,
        default="staging",
        help="the stage whose store is served; it names the endpoint (local-<stage>)",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        required=True,
        help="the stage's store, as publish writes it: s3://bucket/prefix[?endpoint_url=...], "
        "file://folder or a folder (`./pants endpoint` passes the stage's publish destination)",
    )
    parser.add_argument("--endpoint-url", metavar="URL", help="S3-compatible store endpoint")
    parser.add_argument("--region", help="AWS region of the store's bucket")
    parser.add_argument("--profile", help="AWS profile for the store")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8080, help="port to listen on (default 8080; 0: any free)"
    )
    parser.add_argument("--name", help="the EndpointName callers use (default local-<stage>)")
    parser.add_argument("--variant", default="AllTraffic", help="the variant name (AllTraffic)")
    parser.add_argument(
        "--memory-budget",
        metavar="SIZE|INSTANCE",
        help="memory for the server and its models, e.g. 900MiB, 16GiB or ml.g5.xlarge (its "
        "memory); default: this machine's",
    )
    parser.add_argument(
        "--disk-budget",
        metavar="SIZE",
        default="10GiB",
        help="downloaded archives kept on disk (default 10GiB; least recently used go first)",
    )
    parser.add_argument(
        "--wait-limit",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long a call waits for its model to load before ModelNotReadyException (429); "
        "default 60, as SageMaker",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="downloaded archives and the ONNX stand-in env (default $XDG_CACHE_HOME/tritonbuild)",
    )
    parser.add_argument(
        "--capture-dir",
        type=Path,
        help="turn data capture on: JSON Lines under DIR/<endpoint>/<variant>/yyyy/mm/dd/hh/",
    )
    parser.add_argument(
        "--capture-percent",
        type=float,
        default=100.0,
        metavar="P",
        help="share of invocations captured, 0-100 (default 100 when --capture-dir is set)",
    )
    parser.add_argument(
        "--stub-python",
        required=True,
        metavar="X.Y",
        help="the Python of the python-backend stub of the Triton release you deploy with (e.g. "
        "3.10 for 24.10; `./pants endpoint` passes [triton].release's); every env must use it",
    )
    parser.add_argument(
        "--ready-file",
        type=Path,
        metavar="FILE",
        help="once serving, write {url, name, variant, pid} as JSON to FILE (removed on stop), "
        "for a script that starts the endpoint in the background and must stop it with SIGTERM",
    )
    parser.set_defaults(handler=run)
    return parser


def config_from_args(args: argparse.Namespace) -> EndpointConfig:
    destination = parse_destination(
        args.store, region=args.region, profile=args.profile, endpoint_url=args.endpoint_url
    )
    if not 0 <= args.port <= 65535:
        raise EndpointError(f"--port {args.port}: must be 0-65535")
    options: dict[str, Any] = {}
    if args.memory_budget:
        options["memory_budget"] = parse_budget(args.memory_budget)
    return EndpointConfig(
        destination=destination,
        stage=args.stage,
        name=args.name,
        variant=args.variant,
        host=args.host,
        port=args.port,
        disk_budget=parse_size(args.disk_budget, "--disk-budget"),
        wait_limit_s=args.wait_limit,
        cache_dir=args.cache_dir,
        capture_dir=args.capture_dir,
        capture_percent=args.capture_percent,
        stub_python=args.stub_python,
        **options,
    )


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    endpoint = LocalEndpoint(config)

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    ready_file: Path | None = args.ready_file
    try:
        url = endpoint.start()
        if ready_file is not None:
            _write_ready_file(ready_file, url, config)
        print(
            f"endpoint {config.endpoint_name!r} (variant {config.variant}) serving "
            f"{config.destination} at {url}\n"
            f"  metrics: {url}/metrics; memory budget {config.memory_budget / 2**20:.0f} MiB; "
            f"Ctrl-C or SIGTERM stops it",
            flush=True,
        )
        code = endpoint.wait()
        return 0 if code == 0 else 1
    except KeyboardInterrupt:
        stopped = endpoint.stop()
        print(f"endpoint stopped (exit code {stopped})", file=sys.stderr, flush=True)
        return 0 if stopped == 0 else 1
    finally:
        endpoint.stop()
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _write_ready_file(path: Path, url: str, config: EndpointConfig) -> None:
    """Written whole (a rename), so a reader never sees half of it."""
    ready = {
        "url": url,
        "name": config.endpoint_name,
        "variant": config.variant,
        "pid": os.getpid(),
    }
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(ready) + "\n", encoding="utf-8")
    os.replace(partial, path)
