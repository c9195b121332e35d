"""Keep credentials out of botocore's DEBUG logs.

botocore never logs the secret key, but at DEBUG level it logs every request's headers and its
canonical request, which carry the session token of temporary (role) credentials and the access
key id. A CI run with debug logging switched on must not leak them into its log, so this filter
rewrites those records before any handler sees them.
"""

from __future__ import annotations

import logging
import re

__all__ = ["CredentialRedactor", "install_credential_redactor"]

_REDACTED = "***"
_PATTERNS = (
    # The canonical request's `x-amz-security-token:<token>` line and the headers dict's
    # `'X-Amz-Security-Token': b'<token>'` entry.
    re.compile(r"(?i)(x-amz-security-token:)[^\s'\"]+"),
    re.compile(r"(?i)('x-amz-security-token':\s*b?')[^']*"),
    # Presigned or query-string credentials.
    re.compile(r"(?i)(x-amz-security-token=)[^&\s'\"]+"),
    re.compile(r"(?i)(x-amz-credential=)[^&\s'\"%]+"),
    # Authorization header: Credential=<access key id>/date/region/service/aws4_request
    re.compile(r"(Credential=)[A-Za-z0-9]+"),
)
_LOGGERS = ("botocore.auth", "botocore.endpoint", "botocore.parsers", "urllib3.connectionpool")


class CredentialRedactor(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        redacted = message
        for pattern in _PATTERNS:
            redacted = pattern.sub(lambda match: match.group(1) + _REDACTED, redacted)
        if redacted != message:
            record.msg = redacted
            record.args = ()
        return True


_REDACTOR = CredentialRedactor()


def install_credential_redactor() -> None:
    """Attach the filter to the loggers that print requests (once per process)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
