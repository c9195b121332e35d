"""Destination URLs: what parses, and the errors for what does not."""

from __future__ import annotations

import pytest

from tritonbuild.publish.destination import LocalDestination, S3Destination, parse_destination
from tritonbuild.publish.errors import DestinationError


def test_s3_url_with_prefix_and_options():
    destination = parse_destination(
        "s3://models-staging/triton/mme?region=eu-west-1&profile=ci"
        "&endpoint_url=http://127.0.0.1:9000/&verify=read"
    )

    assert destination == S3Destination(
        bucket="models-staging",
        prefix="triton/mme",
        region="eu-west-1",
        profile="ci",
        endpoint_url="http://127.0.0.1:9000",
        verify="read",
    )
    assert destination.key_for("x_3.tar.gz") == "triton/mme/x_3.tar.gz"
    assert destination.url == "s3://models-staging/triton/mme"


def test_s3_url_without_prefix_and_keyword_options_override_the_query():
    destination = parse_destination(
        "s3://bucket1/?region=us-east-1", region="eu-central-1", endpoint_url="https://s3.example"
    )

    assert isinstance(destination, S3Destination)
    assert destination.prefix == ""
    assert destination.key_for("x_3.tar.gz") == "x_3.tar.gz"
    assert destination.region == "eu-central-1"
    assert destination.verify_mode == "etag"  # a non-AWS endpoint is checked by its ETag
    assert parse_destination("s3://bucket1").verify_mode == "checksum"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("s3://", "no bucket name"),
        ("s3://Bad_Bucket/x", "not a valid S3 bucket name"),
        ("s3://ab/x", "not a valid S3 bucket name"),
        ("s3://192.168.1.1/x", "not a valid S3 bucket name"),
        ("s3://bucket/a//b", "empty, '.' or '..' segment"),
        ("s3://bucket/a/../b", "empty, '.' or '..' segment"),
        ("s3://key:secret@bucket/x", "credentials do not belong in the URL"),
        ("s3://bucket/x?colour=blue", "unknown option 'colour'"),
        ("s3://bucket/x?region=a&region=b", "given twice"),
        ("s3://bucket/x?region=", "has no value"),
        ("s3://bucket/x?verify=maybe", "verify=checksum, verify=etag or verify=read"),
        ("s3://bucket/x?endpoint_url=ftp://host", "must look like http://host:port"),
        ("s3://bucket/x?endpoint_url=http://user:pw@host:9000", "carries credentials"),
        ("s3://bucket/x#frag", "remove the '#frag' part"),
        ("gs://bucket/x", "unsupported scheme 'gs'"),
        ("file://", "the folder path is empty"),
        ("   ", "empty destination"),
    ],
)
def test_bad_destinations_are_explained(text, complaint):
    with pytest.raises(DestinationError) as caught:
        parse_destination(text)

    assert complaint in str(caught.value)


def test_local_destinations(tmp_path):
    assert parse_destination(f"file://{tmp_path}/store") == LocalDestination(tmp_path / "store")
    assert parse_destination("published/x", base_dir=tmp_path) == LocalDestination(
        tmp_path / "published" / "x"
    )
    assert parse_destination("file://rel", base_dir=tmp_path) == LocalDestination(tmp_path / "rel")


def test_s3_options_on_a_local_destination_are_refused(tmp_path):
    with pytest.raises(DestinationError) as caught:
        parse_destination(str(tmp_path), region="eu-west-1")

    assert "applies only to s3:// destinations" in str(caught.value)


def test_percent_encoded_options_are_decoded():
    """urllib.parse.urlencode (as the Pants plugin writes the URL) encodes the endpoint."""
    destination = parse_destination("s3://bucket1/p?endpoint_url=http%3A%2F%2F127.0.0.1%3A9000")

    assert isinstance(destination, S3Destination)
    assert destination.endpoint_url == "http://127.0.0.1:9000"
