"""Archive facts (name, format, identity) and the bounded progress printer."""

from __future__ import annotations

import hashlib
import io

import pytest

from tritonbuild.publish.archive import Archive
from tritonbuild.publish.errors import PublishError
from tritonbuild.publish.progress import PercentPrinter, TransferProgress


def test_archive_facts(make_archive):
    archive = make_archive(size=10_000)

    assert archive.filename == "screen_3.tar.gz"
    assert archive.sha256 == hashlib.sha256(archive.path.read_bytes()).hexdigest()
    assert archive.size == archive.path.stat().st_size
    assert archive.build_time.endswith("Z")
    assert archive.metadata()["model-version"] == "3"


@pytest.mark.parametrize(
    ("model", "version", "complaint"),
    [
        ("screen", "0", "a version is a positive integer (models/screen/model_version.txt)"),
        ("screen", "3a", "a version is a positive integer"),
        ("../screen", "3", "model name '../screen'"),
        ("other", "3", "must be named other_3.tar.gz"),
        ("screen", "4", "must be named screen_4.tar.gz"),
    ],
)
def test_archive_that_does_not_match_its_name_is_refused(make_archive, model, version, complaint):
    archive = make_archive()

    with pytest.raises(PublishError) as refused:
        Archive.load(archive.path, model, version)

    assert complaint in str(refused.value)


def test_non_gzip_file_and_bad_commit_are_refused(tmp_path, make_archive):
    fake = tmp_path / "screen_3.tar.gz"
    fake.write_bytes(b"not gzip at all")
    with pytest.raises(PublishError) as refused:
        Archive.load(fake, "screen", "3")
    assert "not a gzip archive" in str(refused.value)

    with pytest.raises(PublishError) as refused:
        Archive.load(make_archive().path, "screen", "3", git_commit="main; rm -rf /")
    assert "hexadecimal SHA" in str(refused.value)


def test_progress_prints_at_most_one_line_per_ten_percent():
    stream = io.StringIO()
    progress = TransferProgress(1000, PercentPrinter("x_1.tar.gz", stream))

    for _ in range(300):
        progress(3)
    progress(-200)  # a retried part takes its bytes back
    progress(10_000)

    lines = stream.getvalue().splitlines()
    assert lines[0] == "x_1.tar.gz: 0%"
    assert lines[-1] == "x_1.tar.gz: 100%"
    assert len(lines) == 11
    assert lines == sorted(set(lines), key=lambda line: int(line.split()[-1].rstrip("%")))
