"""The folder store: the embedded default, with the same rules as S3."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tritonbuild.publish.destination import LocalDestination
from tritonbuild.publish.errors import (
    ArchiveChangedError,
    ConflictError,
    PromotionRefused,
    PublishError,
)
from tritonbuild.publish.localstore import LocalStore
from tritonbuild.publish.promote import promote_between
from tritonbuild.publish.publisher import Outcome, publish_to_store

ENGINE_ROOT = Path(__file__).resolve().parents[3]
STAGING_COMMIT = "1111111111111111111111111111111111111111"


def _store(folder: Path) -> LocalStore:
    return LocalStore(LocalDestination(folder))


def _leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".partial"))


def test_publish_writes_archive_and_sidecar(tmp_path, make_archive):
    archive = make_archive()
    store_folder = tmp_path / "store"

    outcome = publish_to_store(archive, _store(store_folder))

    assert outcome.status == "uploaded"
    assert outcome.url == f"file://{store_folder}/screen_3.tar.gz"
    published = store_folder / "screen_3.tar.gz"
    assert hashlib.sha256(published.read_bytes()).hexdigest() == archive.sha256
    sidecar = json.loads((store_folder / "screen_3.tar.gz.json").read_text())
    assert sidecar == {
        "build-time": archive.build_time,
        "git-commit": archive.git_commit,
        "model-name": "screen",
        "model-version": "3",
        "sha256": archive.sha256,
    }
    assert _leftovers(store_folder) == []


def test_identical_republish_is_a_noop_even_without_the_sidecar(tmp_path, make_archive):
    archive = make_archive()
    store_folder = tmp_path / "store"
    publish_to_store(archive, _store(store_folder))
    published = store_folder / "screen_3.tar.gz"
    inode = published.stat().st_ino

    assert publish_to_store(archive, _store(store_folder)).status == "unchanged"
    (store_folder / "screen_3.tar.gz.json").unlink()  # then the bytes are hashed instead
    assert publish_to_store(archive, _store(store_folder)).status == "unchanged"
    assert published.stat().st_ino == inode


def test_conflicting_republish_is_refused(tmp_path, make_archive):
    original = make_archive(seed="original")
    different = make_archive(seed="different")
    store_folder = tmp_path / "store"
    publish_to_store(original, _store(store_folder))

    with pytest.raises(ConflictError) as refused:
        publish_to_store(different, _store(store_folder))

    assert "bump models/screen/model_version.txt" in str(refused.value)
    published = (store_folder / "screen_3.tar.gz").read_bytes()
    assert hashlib.sha256(published).hexdigest() == original.sha256
    assert _leftovers(store_folder) == []


@pytest.mark.parametrize("same_bytes", [True, False], ids=["same-bytes", "different-bytes"])
def test_concurrent_publishers_exactly_one_writes(tmp_path, make_archive, same_bytes):
    first = make_archive(size=2 * 1024 * 1024, seed="first")
    second = first if same_bytes else make_archive(size=2 * 1024 * 1024, seed="second")
    store_folder = tmp_path / "store"
    barrier = threading.Barrier(2, timeout=30)
    results: list[Outcome | BaseException | None] = [None, None]

    def run(index: int, archive) -> None:
        arrived = threading.Event()

        def progress(done: int, total: int) -> None:
            # Both have found the key free before either links its file into place.
            if not arrived.is_set():
                arrived.set()
                barrier.wait()

        try:
            results[index] = publish_to_store(archive, _store(store_folder), progress=progress)
        except BaseException as exc:  # collected and asserted on below
            results[index] = exc

    threads = [threading.Thread(target=run, args=pair) for pair in ((0, first), (1, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    outcomes = [r for r in results if isinstance(r, Outcome)]
    uploaded = [r for r in outcomes if r.status == "uploaded"]
    assert len(uploaded) == 1
    if same_bytes:
        assert sorted(r.status for r in outcomes) == ["unchanged", "uploaded"]
    else:
        assert sum(isinstance(r, ConflictError) for r in results) == 1
    stored = hashlib.sha256((store_folder / "screen_3.tar.gz").read_bytes()).hexdigest()
    assert stored == uploaded[0].archive.sha256
    assert json.loads((store_folder / "screen_3.tar.gz.json").read_text())["sha256"] == stored
    assert _leftovers(store_folder) == []


_CRASHING_PUBLISHER = """
import sys, threading
from pathlib import Path
from tritonbuild.publish.archive import Archive
from tritonbuild.publish.destination import LocalDestination
from tritonbuild.publish.localstore import LocalStore
from tritonbuild.publish.publisher import publish_to_store

archive = Archive.load(Path(sys.argv[1]), "screen", "3", git_commit="0" * 40)
marker = Path(sys.argv[3])

def progress(done, total):
    if done * 2 >= total and not marker.exists():
        marker.write_text("half")
        threading.Event().wait()  # hold here until the test kills the process

publish_to_store(archive, LocalStore(LocalDestination(Path(sys.argv[2]))), progress=progress)
"""


def test_publisher_killed_mid_write_leaves_no_archive_and_rerun_succeeds(tmp_path, make_archive):
    archive = make_archive(size=4 * 1024 * 1024)
    store_folder = tmp_path / "store"
    marker = tmp_path / "halfway"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ENGINE_ROOT), *sys.path])}
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _CRASHING_PUBLISHER,
            str(archive.path),
            str(store_folder),
            str(marker),
        ],
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), "the publisher never got half-way"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)

    assert not (store_folder / "screen_3.tar.gz").exists()
    assert len(_leftovers(store_folder)) == 1  # the hidden partial file of the dead process
    outcome = publish_to_store(archive, _store(store_folder))
    assert outcome.status == "uploaded"
    published = (store_folder / "screen_3.tar.gz").read_bytes()
    assert hashlib.sha256(published).hexdigest() == archive.sha256


def test_local_promotion_keeps_staging_metadata(tmp_path, make_archive):
    archive = make_archive()
    staging, production = _store(tmp_path / "staging"), _store(tmp_path / "production")
    publish_to_store(replace(archive, git_commit=STAGING_COMMIT), staging)

    outcome = promote_between(archive, staging, production)

    assert outcome.status == "copied"
    published = (tmp_path / "production" / "screen_3.tar.gz").read_bytes()
    assert hashlib.sha256(published).hexdigest() == archive.sha256
    sidecar = json.loads((tmp_path / "production" / "screen_3.tar.gz.json").read_text())
    assert sidecar["git-commit"] == STAGING_COMMIT
    assert promote_between(archive, staging, production).status == "unchanged"


def test_local_promotion_refuses_other_staging_bytes(tmp_path, make_archive):
    staging, production = _store(tmp_path / "staging"), _store(tmp_path / "production")
    publish_to_store(make_archive(seed="staged"), staging)

    with pytest.raises(PromotionRefused):
        promote_between(make_archive(seed="tested"), staging, production)

    assert not (tmp_path / "production" / "screen_3.tar.gz").exists()


def test_local_promotion_refuses_when_staging_lacks_the_version(tmp_path, make_archive):
    archive = make_archive()
    staging, production = _store(tmp_path / "staging"), _store(tmp_path / "production")

    with pytest.raises(PromotionRefused) as refused:
        promote_between(archive, staging, production)

    assert "publish this archive to staging first" in str(refused.value)
    assert not (tmp_path / "production" / "screen_3.tar.gz").exists()
    assert not (tmp_path / "staging" / "screen_3.tar.gz").exists()


def test_local_promotion_copies_the_staging_file_not_the_local_archive(tmp_path, make_archive):
    """Production gets staging's bytes; a staging file changed behind its record is refused."""
    archive = make_archive()
    staging, production = _store(tmp_path / "staging"), _store(tmp_path / "production")
    publish_to_store(archive, staging)
    staged = tmp_path / "staging" / "screen_3.tar.gz"
    damaged = bytearray(staged.read_bytes())
    damaged[-10] ^= 0xFF
    staged.write_bytes(bytes(damaged))

    with pytest.raises(PublishError) as refused:
        promote_between(archive, staging, production)

    assert str(staged) in str(refused.value) and "nothing was written" in str(refused.value)
    assert not (tmp_path / "production" / "screen_3.tar.gz").exists()
    assert _leftovers(tmp_path / "production") == []


def test_changed_archive_is_refused_by_the_folder_store(tmp_path, make_archive):
    archive = make_archive()
    with archive.path.open("r+b") as edited:
        edited.seek(archive.size // 2)
        edited.write(b"\0")
    store_folder = tmp_path / "store"

    with pytest.raises(ArchiveChangedError) as refused:
        publish_to_store(archive, _store(store_folder))

    assert str(archive.path) in str(refused.value)
    assert not (store_folder / "screen_3.tar.gz").exists()
    assert _leftovers(store_folder) == []
