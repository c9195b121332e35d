"""Every S3 request the drift check makes, and the IAM permission each one needs.

ci/iam/drift-reader.json is checked against this list, and a test records the requests a real
check sends to an S3 server and compares them with it, so the policy cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["S3Call", "S3_CALLS"]


@dataclass(frozen=True)
class S3Call:
    """One S3 operation and the IAM action S3 authorises it with."""

    operation: str  # botocore operation name
    action: str  # IAM action
    resource: Literal["object", "bucket"]


S3_CALLS: tuple[S3Call, ...] = (
    # Listing the capture files; the request carries the prefix as the s3:prefix condition key.
    S3Call("ListObjectsV2", "s3:ListBucket", "bucket"),
    # Reading each capture file, streamed line by line.
    S3Call("GetObject", "s3:GetObject", "object"),
)
