"""Where archives are published: an S3 (or S3-compatible) prefix, or a local folder store.

A destination is written as one URL so that CI can hold it in one variable:

    s3://bucket/prefix?region=eu-west-1&profile=ci&endpoint_url=http://127.0.0.1:9000
    file:///abs/folder    file://relative/folder    relative/folder    /abs/folder

Credentials never appear here: they come from the standard AWS chain (environment, profile,
role), so a URL can be printed and logged safely.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, urlsplit

from tritonbuild.publish.errors import DestinationError

__all__ = [
    "S3Destination",
    "LocalDestination",
    "Destination",
    "VerifyMode",
    "VERIFY_MODES",
    "parse_destination",
]

VerifyMode = Literal["checksum", "etag", "read"]
VERIFY_MODES: tuple[VerifyMode, ...] = ("checksum", "etag", "read")

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_REGION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_QUERY_OPTIONS = ("region", "profile", "endpoint_url", "verify")


@dataclass(frozen=True)
class S3Destination:
    """A bucket and key prefix, plus how to reach the store."""

    bucket: str
    prefix: str = ""
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    # How an upload is verified: "checksum" trusts the SHA-256 the store computes (AWS S3 does);
    # "etag" compares the MD5 the store computed of what it holds (its ETag) with the local
    # file's; "read" reads the object back. Default: checksum on AWS, etag on any other
    # endpoint, since some S3-compatible servers echo a client's checksum without checking it.
    verify: VerifyMode | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def verify_mode(self) -> VerifyMode:
        if self.verify is not None:
            return self.verify
        return "checksum" if self.endpoint_url is None else "etag"

    def key_for(self, filename: str) -> str:
        return f"{self.prefix}/{filename}" if self.prefix else filename

    def url_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def __str__(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"{self.url}{where}"


@dataclass(frozen=True)
class LocalDestination:
    """A folder that behaves like a store: no overwrite, atomic appearance, sidecar metadata."""

    path: Path

    @property
    def url(self) -> str:
        return f"file://{quote(str(self.path))}"

    def key_for(self, filename: str) -> str:
        return filename

    def url_for(self, key: str) -> str:
        return f"file://{quote(str(self.path / key))}"

    def __str__(self) -> str:
        return self.url


Destination = S3Destination | LocalDestination


def parse_destination(
    text: str,
    *,
    region: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    base_dir: Path | None = None,
) -> Destination:
    """Parse a destination URL; keyword options override the URL's query options."""
    text = text.strip()
    if not text:
        raise DestinationError("empty destination: give s3://bucket/prefix or a folder path")
    scheme_match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    scheme = scheme_match.group(1).lower() if scheme_match else None
    if scheme == "s3":
        return _parse_s3(text, region=region, profile=profile, endpoint_url=endpoint_url)
    if scheme not in (None, "file"):
        raise DestinationError(
            f"destination {text!r}: unsupported scheme {scheme!r}; use s3://bucket/prefix, "
            "file://folder or a plain folder path"
        )
    for option, value in (("region", region), ("profile", profile), ("endpoint_url", endpoint_url)):
        if value is not None:
            raise DestinationError(
                f"destination {text!r} is a local folder: {option} applies only to s3:// "
                "destinations"
            )
    raw_path = text[len("file://") :] if scheme == "file" else text
    if not raw_path:
        raise DestinationError(f"destination {text!r}: the folder path is empty")
    if "?" in raw_path or "#" in raw_path:
        raise DestinationError(
            f"destination {text!r}: a local folder takes no query options ('?' or '#')"
        )
    path = Path(raw_path)
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    return LocalDestination(path=Path(os.path.normpath(path)))


def _parse_s3(
    text: str, *, region: str | None, profile: str | None, endpoint_url: str | None
) -> S3Destination:
    parts = urlsplit(text)
    if parts.fragment:
        raise DestinationError(f"destination {text!r}: remove the '#{parts.fragment}' part")
    bucket = parts.netloc
    if "@" in bucket:
        raise DestinationError(
            f"destination {text!r}: credentials do not belong in the URL; they come from the "
            "AWS credential chain (environment, --profile, or the CI role)"
        )
    if not bucket:
        raise DestinationError(f"destination {text!r}: no bucket name; write s3://bucket/prefix")
    if not _BUCKET_RE.match(bucket) or ".." in bucket or _IPV4_RE.match(bucket):
        raise DestinationError(
            f"destination {text!r}: {bucket!r} is not a valid S3 bucket name "
            "(3-63 characters: lowercase letters, digits, '.' and '-', starting and ending "
            "with a letter or digit)"
        )
    prefix = _parse_prefix(text, parts.path)
    options = _parse_query(text, parts.query)
    region = region if region is not None else options.get("region")
    profile = profile if profile is not None else options.get("profile")
    endpoint_url = endpoint_url if endpoint_url is not None else options.get("endpoint_url")
    verify_text = options.get("verify")
    if region is not None and not _REGION_RE.match(region):
        raise DestinationError(f"destination {text!r}: region {region!r} is not a region name")
    if profile is not None and (not profile or any(ch.isspace() for ch in profile)):
        raise DestinationError(f"destination {text!r}: profile {profile!r} is not a profile name")
    if endpoint_url is not None:
        _check_endpoint_url(text, endpoint_url)
    verify: VerifyMode | None = None
    if verify_text is not None:
        chosen = [mode for mode in VERIFY_MODES if mode == verify_text]
        if not chosen:
            raise DestinationError(
                f"destination {text!r}: verify={verify_text!r}; use verify=checksum, "
                "verify=etag or verify=read"
            )
        verify = chosen[0]
    return S3Destination(
        bucket=bucket,
        prefix=prefix,
        region=region,
        profile=profile,
        endpoint_url=endpoint_url.rstrip("/") if endpoint_url else None,
        verify=verify,
    )


def _parse_prefix(text: str, path: str) -> str:
    prefix = path.strip("/")
    if not prefix:
        return ""
    for segment in prefix.split("/"):
        if segment in ("", ".", ".."):
            raise DestinationError(
                f"destination {text!r}: the prefix {prefix!r} has an empty, '.' or '..' segment"
            )
    if any(ord(ch) < 32 or ch == "\\" for ch in prefix):
        raise DestinationError(
            f"destination {text!r}: the prefix has a control character or a backslash"
        )
    return prefix


def _parse_query(text: str, query: str) -> dict[str, str]:
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise DestinationError(f"destination {text!r}: cannot read the options: {exc}") from None
    options: dict[str, str] = {}
    for name, value in pairs:
        if name not in _QUERY_OPTIONS:
            raise DestinationError(
                f"destination {text!r}: unknown option {name!r}; known options: "
                + ", ".join(_QUERY_OPTIONS)
            )
        if name in options:
            raise DestinationError(f"destination {text!r}: option {name!r} is given twice")
        if not value:
            raise DestinationError(f"destination {text!r}: option {name!r} has no value")
        options[name] = value
    return options


def _check_endpoint_url(text: str, endpoint_url: str) -> None:
    parts = urlsplit(endpoint_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationError(
            f"destination {text!r}: endpoint_url {endpoint_url!r} must look like "
            "http://host:port or https://host"
        )
    if parts.username or parts.password:
        raise DestinationError(
            f"destination {text!r}: the endpoint URL carries credentials; remove them and use "
            "the AWS credential chain (environment, --profile, or the CI role)"
        )
