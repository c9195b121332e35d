"""The S3 store: boto3's transfer manager for the bytes, conditional writes against overwrite.

Uploads go through `upload_file` with a `TransferConfig` (multipart, concurrency, progress);
s3transfer makes the object appear only when the upload completes, and aborts a failed
multipart upload. s3transfer's `ALLOWED_UPLOAD_ARGS` has no `IfNoneMatch`, so a botocore
parameter hook adds `If-None-Match: *` to the requests that create the object (PutObject,
CompleteMultipartUpload, CopyObject): S3 then answers 412 instead of replacing an existing key.
Stores that ignore the header (rclone's `serve s3`) are covered by the head-before and
verify-after steps of the publisher.
"""

from __future__ import annotations

import functools
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import boto3
import botocore.session
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.loaders import Loader, create_loader
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
)

from tritonbuild.publish.archive import (
    Archive,
    composite_sha256,
    hex_to_base64,
    md5_etag,
    normalized_metadata,
    sha256_of_stream,
    whole_md5,
)
from tritonbuild.publish.destination import S3Destination
from tritonbuild.publish.errors import DestinationError, PromotionRefused, PublishError
from tritonbuild.publish.permissions import CONDITIONAL_OPERATIONS
from tritonbuild.publish.progress import ProgressListener, TransferProgress
from tritonbuild.publish.redact import install_credential_redactor
from tritonbuild.publish.store import Store, StoredObject, VerificationError, WriteOutcome

__all__ = ["TransferSettings", "S3Store", "make_s3_client", "CONTENT_TYPE"]

MiB = 1024 * 1024
GiB = 1024 * MiB
CONTENT_TYPE = "application/gzip"
_READ_CHUNK = MiB
_MULTIPART_ETAG_RE = re.compile(r"-[0-9]+$")
_MD5_ETAG_RE = re.compile(r"^[0-9a-f]{32}(-[0-9]+)?$")
_IF_NONE_MATCH_HOOK_ID = "tritonbuild-publish-if-none-match-{operation}"


@dataclass(frozen=True)
class TransferSettings:
    """How bytes move. Defaults suit archives of tens of MB to several GB on a small CI runner:
    awscli's 8 MiB parts on 10 threads, which keep the connection busy while each part is
    signed and checksummed (1.25x faster than 32 MiB on 4 threads against moto, see
    BENCHMARKS.md). 10,000 parts of 8 MiB allow archives up to 78 GiB."""

    multipart_threshold: int = 8 * MiB
    multipart_chunksize: int = 8 * MiB
    max_concurrency: int = 10
    # CopyObject copies up to 5 GiB in one request; larger objects are copied in parts.
    copy_threshold: int = 5 * GiB
    copy_chunksize: int = 512 * MiB
    max_attempts: int = 5
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0

    def upload_config(self) -> TransferConfig:
        return TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=self.max_concurrency,
            use_threads=True,
        )

    def copy_config(self) -> TransferConfig:
        return TransferConfig(
            multipart_threshold=self.copy_threshold,
            multipart_chunksize=self.copy_chunksize,
            max_concurrency=self.max_concurrency,
            use_threads=True,
        )


def make_s3_client(destination: S3Destination, settings: TransferSettings) -> Any:
    """A client from the standard credential chain; credentials are never read or shown here."""
    install_credential_redactor()
    config = Config(
        signature_version="s3v4",
        retries={"mode": "standard", "max_attempts": settings.max_attempts},
        connect_timeout=settings.connect_timeout_s,
        read_timeout=settings.read_timeout_s,
        # S3-compatible servers on a host name or IP address want path-style URLs.
        s3={"addressing_style": "path"} if destination.endpoint_url else None,
    )
    try:
        core_session = botocore.session.Session(profile=destination.profile)
        core_session.register_component("data_loader", _shared_loader())
        session = boto3.session.Session(
            botocore_session=core_session, region_name=destination.region
        )
        return session.client("s3", endpoint_url=destination.endpoint_url, config=config)
    except ProfileNotFound:
        raise DestinationError(
            f"AWS profile {destination.profile!r} is not in the AWS config files; "
            "check --profile or AWS_CONFIG_FILE"
        ) from None


@functools.lru_cache(maxsize=1)
def _shared_loader() -> Loader:
    """botocore's service models, parsed once per process rather than once per client."""
    return create_loader()


class S3Store:
    def __init__(
        self,
        destination: S3Destination,
        settings: TransferSettings | None = None,
        client: Any | None = None,
    ) -> None:
        self.destination = destination
        self.settings = settings or TransferSettings()
        self.client = client if client is not None else make_s3_client(destination, self.settings)
        for operation in CONDITIONAL_OPERATIONS:
            self.client.meta.events.register(
                f"before-parameter-build.s3.{operation}",
                self._require_absent_key,
                unique_id=_IF_NONE_MATCH_HOOK_ID.format(operation=operation),
            )

    @property
    def url(self) -> str:
        return self.destination.url

    def key_for(self, filename: str) -> str:
        return self.destination.key_for(filename)

    def url_for(self, key: str) -> str:
        return self.destination.url_for(key)

    def stat(self, key: str) -> StoredObject | None:
        try:
            head = self.client.head_object(Bucket=self.destination.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and _status(exc) == 404:
                return None
            raise self._failure("reading", key, exc) from None
        return StoredObject(
            size=int(head["ContentLength"]),
            metadata=normalized_metadata(head.get("Metadata") or {}),
        )

    def read_sha256(self, key: str) -> str:
        try:
            response = self.client.get_object(Bucket=self.destination.bucket, Key=key)
            body = response["Body"]
            try:
                return sha256_of_stream(body.iter_chunks(_READ_CHUNK))
            finally:
                body.close()
        except (ClientError, BotoCoreError) as exc:
            raise self._failure("reading back", key, exc) from None

    def write_new(
        self,
        source: Path,
        key: str,
        metadata: Mapping[str, str],
        progress: ProgressListener | None,
    ) -> WriteOutcome:
        extra_args = {
            "Metadata": dict(metadata),
            "ContentType": CONTENT_TYPE,
            "ChecksumAlgorithm": "SHA256",
        }
        try:
            self.client.upload_file(
                str(source),
                self.destination.bucket,
                key,
                ExtraArgs=extra_args,
                Callback=TransferProgress(source.stat().st_size, progress),
                Config=self.settings.upload_config(),
            )
        except (S3UploadFailedError, ClientError, BotoCoreError) as exc:
            refused = _refusal(exc)
            if refused is not None:
                return refused
            error = _client_error(exc)
            interrupted = error is None or (_status(error) or 500) >= 500
            advice = "An interrupted upload never appears at the key: run publish again."
            raise self._failure("uploading", key, exc, advice if interrupted else "") from None
        return WriteOutcome.WRITTEN

    def copy_refusal(self, source: Store) -> str | None:
        """A server-side copy needs both buckets behind the same endpoint."""
        if not isinstance(source, S3Store):
            return f"{source.url} is not an S3 store"
        if source.destination.endpoint_url != self.destination.endpoint_url:
            where = source.destination.endpoint_url or "AWS"
            here = self.destination.endpoint_url or "AWS"
            return f"{source.url} is at {where} and {self.url} at {here}"
        return None

    def copy_new(
        self,
        source: Store,
        source_key: str,
        key: str,
        archive: Archive,
        metadata: Mapping[str, str],
        progress: ProgressListener | None,
    ) -> WriteOutcome:
        """Server-side copy: CopyObject up to copy_threshold, the transfer manager's multipart
        copy above."""
        assert isinstance(source, S3Store)
        copy_source = {"Bucket": source.destination.bucket, "Key": source_key}
        extra_args = {
            "Metadata": dict(metadata),
            "MetadataDirective": "REPLACE",
            "ContentType": CONTENT_TYPE,
            "ChecksumAlgorithm": "SHA256",
        }
        try:
            if archive.size <= self.settings.copy_threshold:
                self.client.copy_object(
                    Bucket=self.destination.bucket, Key=key, CopySource=copy_source, **extra_args
                )
                if progress is not None:
                    progress(archive.size, archive.size)
            else:
                self.client.copy(
                    copy_source,
                    self.destination.bucket,
                    key,
                    ExtraArgs=extra_args,
                    Callback=TransferProgress(archive.size, progress),
                    Config=self.settings.copy_config(),
                )
        except KeyError:
            # s3transfer reads the ETag of each copied part; some S3-compatible servers
            # (rclone's `serve s3`) answer UploadPartCopy without one. The parts are aborted.
            reason = "the store answers UploadPartCopy without an ETag"
            raise self._cannot_copy(key, reason) from None
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and _status(exc) == 501:
                reason = f"the store does not copy: {_describe(exc)}"
                raise self._cannot_copy(key, reason) from None
            refused = _refusal(exc)
            if refused is not None:
                return refused
            raise self._failure("copying to", key, exc) from None
        return WriteOutcome.WRITTEN

    def verify(self, key: str, archive: Archive) -> str:
        """Size and recorded sha256 from a head; then the bytes: by the store's checksum, by its
        ETag, or by reading them back. Returns how the bytes were checked."""
        if self.destination.verify_mode != "etag":
            return self._verify(key, archive, None)
        # Some servers (rclone's) compute the MD5 when first asked: hash the local file meanwhile.
        with _BackgroundMd5(archive.path) as local_md5:
            return self._verify(key, archive, local_md5)

    def _verify(self, key: str, archive: Archive, local_md5: _BackgroundMd5 | None) -> str:
        try:
            head = self.client.head_object(
                Bucket=self.destination.bucket, Key=key, ChecksumMode="ENABLED"
            )
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and _status(exc) == 404:
                raise VerificationError(f"{self.url_for(key)} is missing after the write") from None
            raise self._failure("verifying", key, exc) from None
        where = self.url_for(key)
        size = int(head["ContentLength"])
        if size != archive.size:
            raise VerificationError(f"{where} holds {size} bytes, the archive has {archive.size}")
        recorded = normalized_metadata(head.get("Metadata") or {}).get("sha256")
        if recorded != archive.sha256:
            raise VerificationError(
                f"{where} records sha256 {recorded}, the archive has {archive.sha256}"
            )
        checksum = head.get("ChecksumSHA256")
        mode = self.destination.verify_mode
        if mode == "checksum" and checksum:
            stored_checksum = str(checksum).split("-")[0]
            expected = self._expected_checksum(key, head, archive)
            if stored_checksum != expected:
                raise VerificationError(
                    f"{where} has SHA-256 checksum {checksum}, the archive's is {expected}"
                )
            return "the store's SHA-256 checksum"
        if local_md5 is not None and self._etag_matches(key, head, archive, local_md5):
            return "the store's ETag (MD5)"
        # An ETag that is no MD5 of the bytes (SSE-KMS, some servers) settles nothing: read.
        actual = self.read_sha256(key)
        if actual != archive.sha256:
            raise VerificationError(f"{where} reads back as sha256 {actual}, not {archive.sha256}")
        return "reading it back"

    def _etag_matches(
        self, key: str, head: Mapping[str, Any], archive: Archive, local_md5: _BackgroundMd5
    ) -> bool:
        """Whether the store's ETag is the MD5 a store computes of the archive's bytes: of the
        whole object, or S3's multipart form with the part size the store reports."""
        etag = str(head.get("ETag", "")).strip('"').lower()
        if not _MD5_ETAG_RE.match(etag):
            return False
        if _MULTIPART_ETAG_RE.search(etag):
            local_md5.abandon()
            return md5_etag(archive.path, self._part_size(key)) == etag
        return local_md5.result() == etag

    def _expected_checksum(self, key: str, head: Mapping[str, Any], archive: Archive) -> str:
        """The base64 SHA-256 S3 reports: of the whole object, or of its parts' digests."""
        etag = str(head.get("ETag", "")).strip('"')
        multipart = (
            "-" in str(head.get("ChecksumSHA256", ""))
            or head.get("ChecksumType") == "COMPOSITE"
            or _MULTIPART_ETAG_RE.search(etag) is not None
        )
        if not multipart:
            return hex_to_base64(archive.sha256)
        # A multipart object's checksum covers its parts: the part size S3 used decides it.
        part_size = self._part_size(key)
        if archive.parts is not None and archive.parts.part_size == part_size:
            return archive.parts.composite_sha256().split("-")[0]
        return composite_sha256(archive.path, part_size).split("-")[0]

    def _part_size(self, key: str) -> int:
        """The size of a multipart object's first part: the part size of the upload."""
        try:
            first_part = self.client.head_object(
                Bucket=self.destination.bucket, Key=key, PartNumber=1
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._failure("verifying", key, exc) from None
        return int(first_part["ContentLength"])

    @staticmethod
    def _require_absent_key(params: dict[str, Any], **_: Any) -> None:
        params["IfNoneMatch"] = "*"

    def _cannot_copy(self, key: str, reason: str) -> PromotionRefused:
        return PromotionRefused(
            f"cannot promote to {self.url_for(key)}: {reason}. Production only receives a "
            "server-side copy of the staging object; nothing was written."
        )

    def _failure(self, doing: str, key: str, exc: BaseException, advice: str = "") -> PublishError:
        message = f"{doing} {self.url_for(key)}"
        if self.destination.endpoint_url:
            message += f" at {self.destination.endpoint_url}"
        message += f" failed: {_describe(exc)}"
        return PublishError(f"{message} {advice}".rstrip())


class _BackgroundMd5:
    """The whole file's MD5, computed on a thread while the caller waits for the store."""

    def __init__(self, path: Path) -> None:
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="md5")
        self._future: Future[str | None] = self._pool.submit(whole_md5, path, self._stop)

    def result(self) -> str | None:
        return self._future.result()

    def abandon(self) -> None:
        """Stop hashing: another digest is needed, and it should have both cores."""
        self._stop.set()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> _BackgroundMd5:
        return self

    def __exit__(self, *_: object) -> None:
        self.abandon()


def _client_error(exc: BaseException) -> ClientError | None:
    """The ClientError behind `exc`; boto3 wraps it in S3UploadFailedError without a cause."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ClientError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _status(exc: ClientError) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _refusal(exc: BaseException) -> WriteOutcome | None:
    error = _client_error(exc)
    if error is None:
        return None
    code = error.response.get("Error", {}).get("Code")
    if code == "PreconditionFailed" or _status(error) == 412:
        return WriteOutcome.KEY_EXISTS
    if code == "ConditionalRequestConflict" or _status(error) == 409:
        return WriteOutcome.CONCURRENT_WRITE
    return None


def _describe(exc: BaseException) -> str:
    """A one-line reason without request details (which never hold secrets, but are noise)."""
    if isinstance(exc, NoCredentialsError):
        return (
            "no AWS credentials found; set AWS_PROFILE or --profile, or the AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY variables, or run under a role"
        )
    if isinstance(exc, EndpointConnectionError):
        return f"cannot connect to the store ({exc})"
    error = _client_error(exc)
    if error is not None:
        details = error.response.get("Error", {})
        code = details.get("Code", "?")
        text = details.get("Message", "") or ""
        status = _status(error)
        reason = f"{code} (HTTP {status})" if status else str(code)
        if text:
            reason += f": {text}"
        if status == 403:
            reason += (
                "; the credentials lack a permission this step needs "
                "(see ci/iam/*.json and docs/publishing.md)"
            )
        return reason
    return str(exc) or type(exc).__name__
