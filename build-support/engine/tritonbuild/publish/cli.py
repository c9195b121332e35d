"""`publish` and `promote` subcommands: one result line per archive on stdout.

    python -m tritonbuild publish --archive dist/x_3.tar.gz --model x --version 3 \
        --destination s3://bucket/prefix [--endpoint-url URL] [--region R] [--profile P]
    python -m tritonbuild promote --archive dist/x_3.tar.gz \
        --from s3://staging-bucket/models --to s3://production-bucket/models

Every destination is given explicitly: the engine has no default store, so nothing can be
published to a place nobody chose (the plugin's `[triton-publish]` options decide it). Progress
goes to stderr; errors print `error: ...` and exit 2 (a conflict included).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from tritonbuild.digests import SIDECAR_SUFFIX
from tritonbuild.errors import UserError
from tritonbuild.publish.archive import Archive
from tritonbuild.publish.destination import Destination, S3Destination, parse_destination
from tritonbuild.publish.errors import PublishError
from tritonbuild.publish.progress import PercentPrinter, ProgressListener
from tritonbuild.publish.promote import promote
from tritonbuild.publish.publisher import publish
from tritonbuild.publish.s3store import TransferSettings

__all__ = ["add_parser", "main", "run_publish", "run_promote"]

_ARCHIVE_NAME_RE = re.compile(r"^(?P<model>.+)_(?P<version>[1-9][0-9]*)\.tar\.gz$")
_DESTINATION_HELP = (
    "s3://bucket/prefix (options: ?region=R&profile=P&endpoint_url=URL&verify=checksum|etag|read), "
    "file://folder, or a folder path"
)


def add_parser(subparsers: Any) -> None:
    """Register `publish` and `promote` on an argparse subparsers object."""
    publish_parser = subparsers.add_parser(
        "publish",
        help="upload a model archive to a store, never overwriting a published version",
        description=(
            "Upload <name>_<version>.tar.gz under its version key. Same bytes already there: "
            "no-op. Different bytes: refused (bump models/<name>/model_version.txt)."
        ),
    )
    _add_archive_arguments(publish_parser)
    publish_parser.add_argument(
        "--destination", required=True, metavar="URL", help=_DESTINATION_HELP
    )
    publish_parser.add_argument(
        "--git-commit", metavar="SHA", help="commit recorded with the archive (default: git HEAD)"
    )
    publish_parser.add_argument(
        "--build-time",
        metavar="TIME",
        help="build time recorded with the archive (default: the archive's modification time)",
    )
    _add_store_options(publish_parser)
    publish_parser.set_defaults(handler=run_publish)

    promote_parser = subparsers.add_parser(
        "promote",
        help="copy the tested archive from staging to production",
        description=(
            "Copy the staging object whose sha256 matches the local archive to production, "
            "server-side (never uploading it). Staging lacking it or holding different bytes: "
            "refused."
        ),
    )
    _add_archive_arguments(promote_parser)
    promote_parser.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="URL",
        help="staging destination; " + _DESTINATION_HELP,
    )
    promote_parser.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="URL",
        help="production destination; " + _DESTINATION_HELP,
    )
    _add_store_options(promote_parser)
    promote_parser.set_defaults(handler=run_promote)


def _add_archive_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--archive",
        required=True,
        type=Path,
        metavar="PATH",
        help="the built <name>_<version>.tar.gz",
    )
    parser.add_argument(
        "--digests",
        type=Path,
        metavar="PATH",
        help="the digests package-triton wrote with the archive (default: "
        f"<archive>{SIDECAR_SUFFIX} beside it; without them, the archive is hashed here)",
    )
    parser.add_argument("--model", help="model name (default: from the archive's file name)")
    parser.add_argument("--version", help="model version (default: from the archive's file name)")


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint-url", metavar="URL", help="S3-compatible endpoint, e.g. http://127.0.0.1:9000"
    )
    parser.add_argument("--region", help="AWS region of the bucket")
    parser.add_argument("--profile", help="AWS profile (credentials come from the AWS chain)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run_publish(args: argparse.Namespace) -> int:
    destination = _destination(args, args.destination)
    settings = TransferSettings()
    archive = _load_archive(args, settings if isinstance(destination, S3Destination) else None)
    outcome = publish(archive, destination, settings=settings, progress=_progress(args, archive))
    print(outcome.line(), flush=True)
    return 0


def run_promote(args: argparse.Namespace) -> int:
    source = _destination(args, args.source)
    target = _destination(args, args.target)
    if source == target:
        raise PublishError(f"--from and --to are the same destination ({source})")
    settings = TransferSettings()
    archive = _load_archive(args, settings if isinstance(target, S3Destination) else None)
    outcome = promote(archive, source, target, settings=settings, progress=_progress(args, archive))
    print(outcome.line(), flush=True)
    return 0


def _load_archive(args: argparse.Namespace, settings: TransferSettings | None) -> Archive:
    """The archive with package-triton's digests (hashed here, with a note, without them);
    for S3, with the digests of the parts it is uploaded in."""
    path: Path = args.archive
    model, version = args.model, args.version
    if model is None or version is None:
        match = _ARCHIVE_NAME_RE.match(path.name)
        if match is None:
            raise PublishError(
                f"{path}: the name is not <name>_<version>.tar.gz; give --model and --version"
            )
        model = model if model is not None else match["model"]
        version = version if version is not None else match["version"]
    archive = Archive.load(
        path,
        model,
        version,
        git_commit=args.git_commit if "git_commit" in args else None,
        build_time=args.build_time if "build_time" in args else None,
        part_size=settings.part_size if settings is not None else None,
        digests_path=args.digests,
    )
    if archive.note:
        print(f"note: {path}: {archive.note}", file=sys.stderr, flush=True)
    return archive


def _destination(args: argparse.Namespace, text: str) -> Destination:
    return parse_destination(
        text, region=args.region, profile=args.profile, endpoint_url=args.endpoint_url
    )


def _progress(args: argparse.Namespace, archive: Archive) -> ProgressListener | None:
    return None if args.quiet else PercentPrinter(archive.filename, sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tritonbuild.publish publish|promote ...`."""
    parser = argparse.ArgumentParser(
        prog="python -m tritonbuild.publish",
        description="Publish model archives to a store and promote them between stages.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
