"""The S3 store: boto3's transfer manager for the bytes, the archive's digests for their checks.

Uploads go through `upload_file` with a `TransferConfig` (multipart, concurrency, progress);
s3transfer makes the object appear only when the upload completes, and aborts a failed
multipart upload. botocore parameter hooks add what s3transfer does not:
- `If-None-Match: *` on the requests that create the object (CompleteMultipartUpload,
  CopyObject): S3 then answers 412 instead of replacing an existing key;
- right before a CompleteMultipartUpload, one more head request: a key that a concurrent
  publisher filled while the parts were sent aborts the upload, so stores that ignore
  `If-None-Match` (rclone's `serve s3`) overwrite nothing the upload could have seen;
- each part's CRC32, from the archive's digests (package-triton computed them while writing
  it), which S3 verifies as the part arrives, so nothing is hashed here;
- before the completion, each part's ETag (the MD5 the store computed of the part it received)
  against the digests: a file that changed since it was packaged is refused, the upload is
  aborted, and nothing appears at the key, on stores that check checksums or not.
Every upload is multipart, even of one part, so that these checks always come before the key
exists. A completion that answers with the multipart ETag of the packaged parts (the MD5 of
their MD5s, computed by the store of the parts it assembled) has verified the bytes, so no
head request follows it.
"""

from __future__ import annotations

import functools
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import boto3
import botocore.session
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
)
from botocore.loaders import Loader, create_loader

from tritonbuild.digests import CHECKSUM_ALGORITHM, PART_SIZE, ArchiveDigests
from tritonbuild.publish.archive import Archive, normalized_metadata, sha256_of_stream
from tritonbuild.publish.destination import S3Destination
from tritonbuild.publish.errors import (
    ArchiveChangedError,
    DestinationError,
    PromotionRefused,
    PublishError,
)
from tritonbuild.publish.permissions import CONDITIONAL_OPERATIONS
from tritonbuild.publish.progress import ProgressListener, TransferProgress
from tritonbuild.publish.redact import install_credential_redactor
from tritonbuild.publish.store import Store, StoredObject, VerificationError, WriteOutcome

__all__ = ["TransferSettings", "S3Store", "make_s3_client", "CONTENT_TYPE"]

MiB = 1024 * 1024
GiB = 1024 * MiB
CONTENT_TYPE = "application/gzip"
_READ_CHUNK = MiB
_IF_NONE_MATCH_HOOK_ID = "tritonbuild-publish-if-none-match-{operation}"
_UPLOAD_HOOK_ID = "tritonbuild-publish-upload-{event}"
# Server-side encryption with KMS keys (or customer keys) makes ETags something other than MD5s.
_ETAG_NOT_MD5_ENCRYPTION = ("aws:kms", "aws:kms:dsse")
# What S3 answers when a part's bytes do not match the checksum sent with them.
_CHECKSUM_MISMATCH_CODES = ("BadDigest", "XAmzContentChecksumMismatch")


@dataclass(frozen=True)
class TransferSettings:
    """How bytes move. Defaults suit archives of tens of MB to several GB on a small CI runner:
    awscli's 10 threads, on the digests' parts (8 MiB, tritonbuild.digests.PART_SIZE), which
    keep the connection busy while each part is sent. `part_size` applies only to an archive
    hashed here, without digests from package-triton."""

    part_size: int = PART_SIZE
    max_concurrency: int = 10
    # CopyObject copies up to 5 GiB in one request; larger objects are copied in parts.
    copy_threshold: int = 5 * GiB
    copy_chunksize: int = 512 * MiB
    max_attempts: int = 5
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0

    def upload_config(self, part_size: int) -> TransferConfig:
        # Every upload is multipart (threshold of one byte), in the digests' parts; the
        # classic transfer manager, whose requests the hooks see (not the CRT one).
        return TransferConfig(
            multipart_threshold=1,
            multipart_chunksize=part_size,
            max_concurrency=self.max_concurrency,
            use_threads=True,
            preferred_transfer_client="classic",
        )

    def download_config(self) -> TransferConfig:
        # Ranged GETs in the same parts, on the same threads (the endpoint's archive fetches).
        return TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=self.max_concurrency,
            use_threads=True,
            preferred_transfer_client="classic",
        )

    def copy_config(self) -> TransferConfig:
        return TransferConfig(
            multipart_threshold=self.copy_threshold,
            multipart_chunksize=self.copy_chunksize,
            max_concurrency=self.max_concurrency,
            use_threads=True,
            preferred_transfer_client="classic",
        )


def make_s3_client(destination: S3Destination, settings: TransferSettings) -> Any:
    """A client from the standard credential chain; credentials are never read or shown here."""
    install_credential_redactor()
    s3_options: dict[str, Any] = {
        # Every body this client sends carries a checksum the store verifies (the parts), or is
        # checked after (the completion, by the object's ETag): signing a SHA-256 of each part
        # as well would hash the archive again. botocore already skips it over HTTPS when a
        # request carries a checksum, but not when the checksum is set by the caller.
        "payload_signing_enabled": False,
    }
    if destination.endpoint_url:
        # S3-compatible servers on a host name or IP address want path-style URLs.
        s3_options["addressing_style"] = "path"
    config = Config(
        signature_version="s3v4",
        retries={"mode": "standard", "max_attempts": settings.max_attempts},
        connect_timeout=settings.connect_timeout_s,
        read_timeout=settings.read_timeout_s,
        s3=s3_options,
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


class _KeyTaken(Exception):
    """Raised from a hook when the key filled up during the transfer (s3transfer then aborts)."""


class _PartsChanged(Exception):
    """Raised from a hook to stop the transfer before it completes (s3transfer then aborts)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass
class _Transfer:
    """What the hooks of one upload or copy need and learn."""

    digests: ArchiveDigests | None
    # A copy in parts asks for the full-object checksum, the same whatever the parts.
    full_object_copy: bool = False
    etags_are_md5: bool = True
    # The store's answer to the write's completion (its ETag and checksums).
    completion: Mapping[str, Any] | None = None


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
        # The store's answer to each write this store completed, by key: the ETag and checksums
        # it computed of the bytes it assembled, which verify() compares with the digests.
        self._completions: dict[str, Mapping[str, Any]] = {}
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
            etag=_etag(head),
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
        archive: Archive,
        key: str,
        metadata: Mapping[str, str],
        progress: ProgressListener | None,
    ) -> WriteOutcome:
        digests = archive.digests
        if digests is None:
            raise PublishError(f"{archive.path}: an upload to S3 needs the archive's part digests")
        extra_args: dict[str, Any] = {
            "Metadata": dict(metadata),
            "ContentType": CONTENT_TYPE,
            **_checksum_args(digests),
        }
        transfer = _Transfer(digests)
        self._completions.pop(key, None)
        try:
            with self._hooks(transfer):
                self.client.upload_file(
                    str(archive.path),
                    self.destination.bucket,
                    key,
                    ExtraArgs=extra_args,
                    Callback=TransferProgress(archive.size, progress),
                    Config=self.settings.upload_config(digests.part_size),
                )
        except _PartsChanged as changed:
            raise self._changed(archive, key, changed.detail) from None
        except _KeyTaken:
            return WriteOutcome.KEY_EXISTS
        except (S3UploadFailedError, ClientError, BotoCoreError) as exc:
            refused = _refusal(exc)
            if refused is not None:
                return refused
            error = _client_error(exc)
            if error is not None and _code(error) in _CHECKSUM_MISMATCH_CODES:
                detail = f"the store refused a part: {_describe(exc)}"
                raise self._changed(archive, key, detail) from None
            interrupted = error is None or (_status(error) or 500) >= 500
            advice = "An interrupted upload never appears at the key: run publish again."
            raise self._failure("uploading", key, exc, advice if interrupted else "") from None
        self._remember(key, transfer)
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
        copy above; the store computes the full-object checksum of what it copied."""
        assert isinstance(source, S3Store)
        copy_source = {"Bucket": source.destination.bucket, "Key": source_key}
        algorithm = archive.digests.algorithm if archive.digests else CHECKSUM_ALGORITHM
        extra_args = {
            "Metadata": dict(metadata),
            "MetadataDirective": "REPLACE",
            "ContentType": CONTENT_TYPE,
            "ChecksumAlgorithm": algorithm,
        }
        transfer = _Transfer(None, full_object_copy=algorithm != "SHA256")
        self._completions.pop(key, None)
        try:
            if archive.size <= self.settings.copy_threshold:
                response = self.client.copy_object(
                    Bucket=self.destination.bucket, Key=key, CopySource=copy_source, **extra_args
                )
                transfer.completion = response.get("CopyObjectResult") or {}
                if progress is not None:
                    progress(archive.size, archive.size)
            else:
                with self._hooks(transfer):
                    self.client.copy(
                        copy_source,
                        self.destination.bucket,
                        key,
                        ExtraArgs=extra_args,
                        Callback=TransferProgress(archive.size, progress),
                        Config=self.settings.copy_config(),
                    )
        except _KeyTaken:
            return WriteOutcome.KEY_EXISTS
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
        self._remember(key, transfer)
        return WriteOutcome.WRITTEN

    def verify(self, key: str, archive: Archive, source: StoredObject | None = None) -> str:
        """No request after an upload this store completed with the multipart ETag of the
        packaged parts: the store computed it of the parts it assembled (each checked against
        the digests before), and the key was free right before (If-None-Match, and a head
        request); with verify=checksum, by the checksum in the same answer (AWS gives it).
        Otherwise one head request: size and recorded sha256, then the bytes by what
        the store computed of them (its checksum on AWS, its ETag elsewhere), against the
        archive's digests, the ETag the store gave when it completed this write, or (for a copy)
        the source's ETag. Only when none of them settles it is the object read back."""
        mode = self.destination.verify_mode
        digests = archive.digests
        completion = self._completions.get(key, {})
        completed = _etag(completion)
        if digests is not None and completed == digests.multipart_etag() and source is None:
            if mode == "etag":
                return "the multipart ETag the store computed when it completed the upload"
            if mode == "checksum":
                how = _by_checksum(completion, digests, self.url_for(key))
                if how is not None:
                    return how
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
        if mode == "checksum" and digests is not None:
            how = _by_checksum(head, digests, where)
            if how is not None:
                return how
        if mode != "read":
            multipart = digests.multipart_etag() if digests else None
            known = {completed, source.etag if source else None, multipart} - {None}
            if _etag(head) in known:
                return "the store's ETag (MD5)"
        # Nothing the store computed settles it (SSE-KMS ETags, no checksum): read the bytes.
        actual = self.read_sha256(key)
        if actual != archive.sha256:
            raise VerificationError(f"{where} reads back as sha256 {actual}, not {archive.sha256}")
        return "reading it back"

    @contextmanager
    def _hooks(self, transfer: _Transfer) -> Iterator[None]:
        """The per-part checksums and checks of one transfer, registered while it runs."""
        handlers = {
            "before-parameter-build.s3.UploadPart": functools.partial(
                _send_part_checksum, transfer
            ),
            "before-parameter-build.s3.CreateMultipartUpload": functools.partial(
                _declare_checksum_type, transfer
            ),
            "after-call.s3.CreateMultipartUpload": functools.partial(_note_encryption, transfer),
            "before-parameter-build.s3.CompleteMultipartUpload": functools.partial(
                self._before_completion, transfer
            ),
            "after-call.s3.CompleteMultipartUpload": functools.partial(_note_completion, transfer),
        }
        events = self.client.meta.events
        for event, handler in handlers.items():
            events.register(event, handler, unique_id=_UPLOAD_HOOK_ID.format(event=event))
        try:
            yield
        finally:
            for event in handlers:
                events.unregister(event, unique_id=_UPLOAD_HOOK_ID.format(event=event))

    def _before_completion(self, transfer: _Transfer, params: dict[str, Any], **_: Any) -> None:
        """The parts against the digests, then whether the key is still free: a concurrent
        publisher that completed while the parts were sent is found before anything is
        overwritten, on stores that ignore If-None-Match too (a head request of a missing key
        is cheap everywhere; rclone hashes only objects that exist)."""
        _check_parts(transfer, params)
        if self.stat(str(params["Key"])) is not None:
            raise _KeyTaken()

    def _remember(self, key: str, transfer: _Transfer) -> None:
        if transfer.completion and _etag(transfer.completion):
            self._completions[key] = transfer.completion
        else:
            self._completions.pop(key, None)

    @staticmethod
    def _require_absent_key(params: dict[str, Any], **_: Any) -> None:
        params["IfNoneMatch"] = "*"

    def _changed(self, archive: Archive, key: str, detail: str) -> ArchiveChangedError:
        return ArchiveChangedError(
            f"{archive.path} is not the archive package-triton hashed: {detail}. It changed "
            f"after it was packaged; nothing was written to {self.url_for(key)}. Rebuild it "
            "with package-triton, then publish."
        )

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


def _checksum_args(digests: ArchiveDigests) -> dict[str, str]:
    """The upload's checksum, of S3's default type for the algorithm: a full-object one is given
    whole (s3transfer then declares ChecksumType FULL_OBJECT and sends it with the completion,
    where S3 checks it against the parts); a composite one only by name (S3 combines the parts'
    checksums it verified)."""
    if digests.upload_type == "FULL_OBJECT":
        return {f"Checksum{digests.algorithm}": digests.full_object_checksum()}
    return {"ChecksumAlgorithm": digests.algorithm}


def _declare_checksum_type(transfer: _Transfer, params: dict[str, Any], **_: Any) -> None:
    if transfer.full_object_copy:
        # s3transfer does not pass ChecksumType to a copy; S3 takes it on the creation.
        params["ChecksumType"] = "FULL_OBJECT"


def _send_part_checksum(transfer: _Transfer, params: dict[str, Any], **_: Any) -> None:
    digests = transfer.digests
    if digests is None:
        return
    number = int(params["PartNumber"])
    if number > digests.parts:
        raise _PartsChanged(f"it has more than the {digests.parts} parts its digests describe")
    # Set by the caller, botocore sends it as is and hashes nothing.
    params[f"Checksum{digests.algorithm}"] = digests.part_checksum(number)


def _note_encryption(transfer: _Transfer, parsed: dict[str, Any], **_: Any) -> None:
    encrypted = parsed.get("ServerSideEncryption") in _ETAG_NOT_MD5_ENCRYPTION
    if encrypted or parsed.get("SSECustomerAlgorithm"):
        # S3 itself verified each part's checksum as it arrived; the ETags prove nothing.
        transfer.etags_are_md5 = False


def _check_parts(transfer: _Transfer, params: dict[str, Any], **_: Any) -> None:
    digests = transfer.digests
    if digests is None:
        return
    parts = params["MultipartUpload"]["Parts"]
    if len(parts) != digests.parts:
        raise _PartsChanged(f"{len(parts)} parts were sent, its digests describe {digests.parts}")
    if not transfer.etags_are_md5:
        return
    for part in parts:
        number = int(part["PartNumber"])
        received = str(part["ETag"]).strip('"').lower()
        if received != digests.part_md5(number):
            first = (number - 1) * digests.part_size
            raise _PartsChanged(
                f"the store received part {number} (bytes {first} to "
                f"{first + digests.part_size - 1}) with MD5 {received}, but package-triton "
                f"recorded {digests.part_md5(number)}"
            )


def _note_completion(transfer: _Transfer, parsed: dict[str, Any], **_: Any) -> None:
    transfer.completion = {
        name: value
        for name, value in parsed.items()
        if name == "ETag" or name.startswith("Checksum")
    }


def _etag(response: Mapping[str, Any]) -> str | None:
    etag = response.get("ETag")
    return str(etag).strip('"').lower() if etag else None


def _by_checksum(answer: Mapping[str, Any], digests: ArchiveDigests, where: str) -> str | None:
    """How the store's checksum in `answer` (a head request's, or the completion's) verified the
    object; VerificationError when it is not the archive's; None when it settles nothing."""
    checked = _checksum_verdict(answer, digests)
    if checked is None:
        return None
    stored, expected = checked
    if stored != expected:
        raise VerificationError(
            f"{where} has {digests.algorithm} checksum {stored}, the archive's is {expected}"
        )
    return f"the store's {digests.algorithm} checksum"


def _checksum_verdict(head: Mapping[str, Any], digests: ArchiveDigests) -> tuple[str, str] | None:
    """(the store's checksum, the archive's) when the store reports one the digests can be
    compared with: the full-object checksum (of a copy, or a full-object upload), or the composite
    of an upload in the digests' parts (some stores omit its `-<parts>`); None otherwise (no
    checksum in the digests' algorithm, or a composite of other parts)."""
    stored = head.get(f"Checksum{digests.algorithm}")
    if not stored:
        return None
    value, _, parts = str(stored).partition("-")
    if parts and parts != str(digests.parts):
        return None
    composite = digests.composite_checksum().split("-")[0]
    candidates = {composite} if parts else {composite, digests.full_object_checksum()}
    return value, value if value in candidates else digests.object_checksum()


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


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _refusal(exc: BaseException) -> WriteOutcome | None:
    error = _client_error(exc)
    if error is None:
        return None
    code = _code(error)
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
