"""Where the load goes: a local endpoint on a loopback address, or one instance of a real
SageMaker endpoint, named explicitly. Both are called through one client,
``tritonlib.client.SageMakerRuntimeClient`` (boto3's ``invoke_endpoint``).
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

from tritonlib.client import RetryPolicy, SageMakerRuntimeClient

__all__ = [
    "LOCAL_REGION",
    "USER_AGENT",
    "Target",
    "TargetError",
    "instance_count",
    "local_target",
]

# The product token the load test's requests carry in their User-Agent header.
USER_AGENT = "tritonops-loadtest"
# The local endpoint accepts any signature; boto3 still needs a region and credentials to sign.
LOCAL_REGION = "us-east-1"
_LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


class TargetError(ValueError):
    """A target that may not or cannot be load-tested; the message says why and what to do."""


@dataclass(frozen=True)
class Target:
    """The endpoint under test: ``local`` (a URL on loopback) or ``sagemaker`` (a real endpoint
    reached only through boto3, with an explicit name and region)."""

    kind: Literal["local", "sagemaker"]
    endpoint_name: str
    region: str
    url: str | None = None
    profile: str | None = None
    variant: str | None = None

    def describe(self) -> str:
        if self.kind == "local":
            return f"local endpoint {self.endpoint_name} at {self.url}"
        variant = f", variant {self.variant}" if self.variant else ""
        return f"SageMaker endpoint {self.endpoint_name} in {self.region}{variant}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "endpoint_name": self.endpoint_name,
            "region": self.region,
            "url": self.url,
            "profile": self.profile,
            "variant": self.variant,
        }

    def _session(self) -> Any:
        import boto3
        import botocore.exceptions

        try:
            if self.kind == "local":
                return boto3.session.Session(region_name=self.region, **_LOCAL_CREDENTIALS)
            return boto3.session.Session(profile_name=self.profile, region_name=self.region)
        except botocore.exceptions.BotoCoreError as error:
            raise TargetError(f"cannot use AWS profile {self.profile!r}: {error}") from None

    def client(
        self, *, timeout_s: float, retry: RetryPolicy, max_connections: int = 10
    ) -> SageMakerRuntimeClient:
        """The one client both kinds of target are called with; botocore's own retries off.

        The load generator's CPU per request bounds the rate one process offers, so the client
        is set up to spend little of it, with botocore's documented ``Config`` options only:

        - ``user_agent``: a fixed User-Agent. Without it botocore assembles its structured
          header (SDK, OS, language and feature ids, each component sanitized) twice per
          request, when it builds the request and again in the ``request-created`` handler
          that refreshes the feature ids: a sixth of its CPU per call. With it, that is a
          join of this string and the session's extra (``Botocore/<version>``). The header is
          telemetry only: SigV4 never signs it (``SIGNED_HEADERS_BLACKLIST``), and no
          endpoint behaviour depends on it; it also names this tool in the endpoint's logs.
        - ``parameter_validation=False``: the parameters are built here (the endpoint name,
          the TargetModel of a checked model folder, bytes), so checking their types on
          every call only costs; a bad value would still be refused by the endpoint.
        """
        import platform

        import boto3
        import botocore
        import botocore.config

        # The local endpoint accepts any signature, so its requests are not signed: SigV4 is a
        # fifth of boto3's time per call, which the load generator spends on the endpoint's CPU.
        unsigned = {"signature_version": botocore.UNSIGNED} if self.kind == "local" else {}
        config = botocore.config.Config(
            connect_timeout=min(timeout_s, 10.0),
            read_timeout=timeout_s,
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_connections,
            user_agent=(
                f"{USER_AGENT} Boto3/{boto3.__version__} Python/{platform.python_version()}"
            ),
            parameter_validation=False,
            **unsigned,
        )
        runtime = self._session().client("sagemaker-runtime", endpoint_url=self.url, config=config)
        return SageMakerRuntimeClient(
            self.endpoint_name,
            runtime,
            "binary",
            timeout_s=timeout_s,
            retry=retry,
            target_variant=self.variant,
        )

    def control_client(self) -> Any:
        """boto3's ``sagemaker`` client, to read the endpoint's instance count."""
        return self._session().client("sagemaker")


def local_target(url: str, endpoint_name: str) -> Target:
    """A local endpoint: its URL must name a loopback address (127.0.0.0/8, ::1, localhost),
    so that the load never leaves this machine; a real endpoint is named instead."""
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    if parsed.scheme not in ("http", "https") or not host:
        raise TargetError(f"--url {url!r}: not an http(s) URL, e.g. http://127.0.0.1:8080")
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False  # a host name: never resolved, so never trusted
    if not loopback:
        raise TargetError(
            f"--url {url!r}: {host} is not a loopback address; the local target is load-tested "
            "only on 127.0.0.0/8, ::1 or localhost. A real SageMaker endpoint is reached through "
            "boto3 by name: --sagemaker-endpoint NAME --region REGION [--profile PROFILE]"
        )
    return Target("local", endpoint_name, LOCAL_REGION, url=url.rstrip("/"))


def instance_count(target: Target) -> tuple[str, int]:
    """The variant the load reaches and its current instance count (DescribeEndpoint).

    The target is per instance, and this tool measures one: an endpoint whose variant runs more
    than one instance is refused rather than divided (requests are not spread evenly over the
    instances of a multi-model endpoint, each holding its own set of models, so dividing the
    rate by the count would not give one instance's capacity).
    """
    import botocore.exceptions

    try:
        described = target.control_client().describe_endpoint(EndpointName=target.endpoint_name)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        raise TargetError(
            f"cannot describe SageMaker endpoint {target.endpoint_name!r} in {target.region}: "
            f"{error}"
        ) from None
    variants = {
        str(v["VariantName"]): int(v.get("CurrentInstanceCount", 0))
        for v in described.get("ProductionVariants", [])
    }
    if target.variant is None and len(variants) != 1:
        raise TargetError(
            f"SageMaker endpoint {target.endpoint_name!r} has variants "
            f"{', '.join(sorted(variants))}: name the one to load with --target-variant"
        )
    variant = target.variant or next(iter(variants))
    if variant not in variants:
        raise TargetError(
            f"SageMaker endpoint {target.endpoint_name!r} has no variant {variant!r} "
            f"(its variants: {', '.join(sorted(variants))})"
        )
    return variant, variants[variant]


def require_one_instance(target: Target) -> str:
    """The variant under load, after checking it runs exactly one instance."""
    variant, count = instance_count(target)
    if count != 1:
        raise TargetError(
            f"SageMaker endpoint {target.endpoint_name!r} variant {variant!r} runs {count} "
            "instances; the load test measures one instance and refuses more (it does not divide: "
            "an MME does not spread its models evenly). Load a staging endpoint whose variant "
            "runs one instance (initial_instance_count = 1, autoscaling max_instances = 1 "
            "during the test)"
        )
    return variant
