"""Every S3 request the publisher makes, and the IAM permission each one needs.

This is the single list the CI roles' policies (ci/iam/*.json) are checked against, and the
tests record the requests a real publish and promotion make and check them against it, so the
policies cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "S3Call",
    "READ_CALLS",
    "WRITE_CALLS",
    "COPY_WRITE_CALLS",
    "COPY_SOURCE_CALLS",
    "PUBLISH_CALLS",
    "PROMOTE_SOURCE_CALLS",
    "PROMOTE_TARGET_CALLS",
    "CONDITIONAL_OPERATIONS",
]


@dataclass(frozen=True)
class S3Call:
    """One S3 operation and one IAM check S3 makes for it."""

    operation: str  # botocore operation name
    action: str  # IAM action S3 authorises
    resource: Literal["object", "bucket"]
    # Sends `If-None-Match: *`, so the request carries the s3:if-none-match condition key.
    if_none_match: bool = False
    # Value of the s3:ObjectCreationOperation condition key for s3:PutObject requests: true for
    # the requests that make an object appear (PutObject, CompleteMultipartUpload, CopyObject).
    creates_object: bool = False


# The operations sent with `If-None-Match: *` (a botocore parameter hook adds it). Uploads are
# always multipart, so the completion is what creates an uploaded object.
CONDITIONAL_OPERATIONS = ("CompleteMultipartUpload", "CopyObject")

READ_CALLS: tuple[S3Call, ...] = (
    S3Call("HeadObject", "s3:GetObject", "object"),
    # Without s3:ListBucket, S3 answers 403 instead of 404 for a missing key.
    S3Call("HeadObject", "s3:ListBucket", "bucket"),
    # Reading the bytes back to verify them or to hash an object stored without metadata.
    S3Call("GetObject", "s3:GetObject", "object"),
)

WRITE_CALLS: tuple[S3Call, ...] = (
    S3Call("CreateMultipartUpload", "s3:PutObject", "object"),
    S3Call("UploadPart", "s3:PutObject", "object"),
    S3Call(
        "CompleteMultipartUpload", "s3:PutObject", "object", if_none_match=True, creates_object=True
    ),
    # s3transfer aborts a failed multipart upload so its parts are not kept (and billed).
    S3Call("AbortMultipartUpload", "s3:AbortMultipartUpload", "object"),
)

COPY_WRITE_CALLS: tuple[S3Call, ...] = (
    S3Call("CopyObject", "s3:PutObject", "object", if_none_match=True, creates_object=True),
    S3Call("UploadPartCopy", "s3:PutObject", "object"),
    S3Call("CreateMultipartUpload", "s3:PutObject", "object"),
    S3Call(
        "CompleteMultipartUpload", "s3:PutObject", "object", if_none_match=True, creates_object=True
    ),
    S3Call("AbortMultipartUpload", "s3:AbortMultipartUpload", "object"),
)

# A server-side copy also reads the source object with the target's credentials.
COPY_SOURCE_CALLS: tuple[S3Call, ...] = (
    S3Call("CopyObject", "s3:GetObject", "object"),
    S3Call("UploadPartCopy", "s3:GetObject", "object"),
)

PUBLISH_CALLS: tuple[S3Call, ...] = READ_CALLS + WRITE_CALLS
PROMOTE_SOURCE_CALLS: tuple[S3Call, ...] = READ_CALLS + COPY_SOURCE_CALLS
# Promotion never uploads: production only receives server-side copies of staging objects.
PROMOTE_TARGET_CALLS: tuple[S3Call, ...] = READ_CALLS + COPY_WRITE_CALLS
