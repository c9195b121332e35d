"""S3 locations named in the definitions and by the publish destination.

The publish destination arrives as the build resolved it (``s3://bucket/prefix`` with optional
``?region=..&endpoint_url=..``) or as a local folder store (``file://...``), which no endpoint can
read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

__all__ = ["S3Location", "parse_s3_url"]

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # no leading or trailing slash; "" for the whole bucket
    region: str | None = None  # the store's region, when the URL says it

    @property
    def url(self) -> str:
        """``s3://bucket/prefix/``: a prefix, as a multi-model endpoint's ModelDataUrl is."""
        return f"s3://{self.bucket}/{self.prefix}/" if self.prefix else f"s3://{self.bucket}/"

    def contains(self, other: S3Location) -> bool:
        if other.bucket != self.bucket:
            return False
        return (
            not self.prefix
            or other.prefix == self.prefix
            or other.prefix.startswith(self.prefix + "/")
        )

    def key_arn(self) -> str:
        """The IAM resource of every object under the prefix (``${AWS::Partition}`` for Fn::Sub)."""
        keys = f"{self.prefix}/*" if self.prefix else "*"
        return f"arn:${{AWS::Partition}}:s3:::{self.bucket}/{keys}"

    def bucket_arn(self) -> str:
        return f"arn:${{AWS::Partition}}:s3:::{self.bucket}"


def parse_s3_url(text: str) -> S3Location:
    """Parse ``s3://bucket[/prefix][?region=..]``; raises ValueError with what to write instead."""
    parts = urlsplit(text.strip())
    if parts.scheme != "s3":
        raise ValueError(f"{text!r} is not an S3 location; write s3://bucket/prefix")
    if not _BUCKET.fullmatch(parts.netloc) or ".." in parts.netloc:
        raise ValueError(f"{text!r}: {parts.netloc!r} is not a valid S3 bucket name")
    prefix = parts.path.strip("/")
    if any(segment in ("", ".", "..") for segment in prefix.split("/")) and prefix:
        raise ValueError(f"{text!r}: the prefix has an empty, '.' or '..' segment")
    query = dict(parse_qsl(parts.query)) if parts.query else {}
    return S3Location(bucket=parts.netloc, prefix=prefix, region=query.get("region"))
