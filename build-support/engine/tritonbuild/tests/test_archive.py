from __future__ import annotations

import gzip
import hashlib
import os
import random
import tarfile
from pathlib import Path

import pytest

from tritonbuild.archive import BLOCK_SIZE, DENSE_COMPRESS_LEVEL, Entry, tree_entries, write_tar_gz
from tritonbuild.errors import ArchiveError


def _make_tree(root: Path, mtime: int, reverse: bool = False) -> None:
    """A tree with nested folders, an executable, a symlink, a hard link, a big file."""
    root.mkdir(parents=True)
    files = {
        "step_b/config.pbtxt": b'name: "step_b"\n',
        "step_a/1/model.py": b"print('hello')\n",
        "step_a/config.pbtxt": b'name: "step_a"\n',
        "env/bin/python3.10": b"\x7fELF not really\n",
        "env/lib/libpython3.10.so.1.0": b"library",
        # Several compression blocks, so threads really work in parallel.
        "step_a/1/weights.bin": random.Random(7).randbytes(BLOCK_SIZE)
        + bytes(3 * BLOCK_SIZE + 123),
        "step_a/1/" + "long_name_" * 12 + ".txt": b"long",
    }
    names = sorted(files, reverse=reverse)
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name])
    (root / "env/bin/python3.10").chmod(0o700)
    (root / "step_a/config.pbtxt").chmod(0o600)
    (root / "env/bin/python3").symlink_to("python3.10")
    os.link(root / "step_a/config.pbtxt", root / "step_b/same_inode.pbtxt")
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_bytes_whatever_mtimes_threads_and_creation_order(tmp_path: Path) -> None:
    _make_tree(tmp_path / "one", mtime=1_000_000, reverse=False)
    _make_tree(tmp_path / "two", mtime=1_700_000_000, reverse=True)
    first = write_tar_gz(tree_entries(tmp_path / "one"), tmp_path / "out1/a.tar.gz", threads=1)
    second = write_tar_gz(tree_entries(tmp_path / "two"), tmp_path / "out2/a.tar.gz", threads=4)
    assert first.sha256 == second.sha256 != ""
    assert first.sha256 == _sha256(first.path)
    assert first.size == first.path.stat().st_size
    (tmp_path / "two/step_b/config.pbtxt").write_bytes(b'name: "changed"\n')
    third = write_tar_gz(tree_entries(tmp_path / "two"), tmp_path / "out3/a.tar.gz", threads=2)
    assert third.sha256 != first.sha256


def test_entries_sorted_normalised_and_without_wrapping_folder(tmp_path: Path) -> None:
    _make_tree(tmp_path / "tree", mtime=123456)
    summary = write_tar_gz(tree_entries(tmp_path / "tree"), tmp_path / "a.tar.gz", mtime=0)
    with tarfile.open(summary.path) as tar:
        members = tar.getmembers()
    names = [member.name for member in members]
    assert names == sorted(names, key=lambda name: tuple(name.split("/")))
    assert {name.split("/")[0] for name in names} == {"env", "step_a", "step_b"}
    assert not any(name.startswith(("./", "/")) for name in names)
    by_name = {member.name: member for member in members}
    assert all(member.mtime == 0 and member.uid == 0 and member.gid == 0 for member in members)
    assert all(member.uname == "" and member.gname == "" for member in members)
    assert by_name["step_a"].isdir() and by_name["step_a"].mode == 0o755
    assert by_name["env/bin/python3.10"].mode == 0o755
    assert by_name["step_a/config.pbtxt"].mode == 0o644
    assert by_name["env/bin/python3"].issym()
    assert by_name["env/bin/python3"].linkname == "python3.10"
    assert not any(member.islnk() for member in members)
    assert by_name["step_b/same_inode.pbtxt"].isfile()
    assert summary.entries == len(members)


def test_gzip_header_has_no_name_and_no_timestamp(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree/file.txt").write_text("content")
    summary = write_tar_gz(tree_entries(tmp_path / "tree"), tmp_path / "named.tar.gz")
    header = summary.path.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] & 0x08 == 0  # FNAME flag
    assert header[4:8] == b"\x00\x00\x00\x00"  # MTIME
    with tarfile.open(fileobj=gzip.open(summary.path)) as tar:
        assert tar.extractfile("file.txt").read() == b"content"  # type: ignore[union-attr]


def test_source_date_epoch_sets_the_entry_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree/file.txt").write_text("content")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    summary = write_tar_gz(tree_entries(tmp_path / "tree"), tmp_path / "a.tar.gz")
    with tarfile.open(summary.path) as tar:
        assert tar.getmember("file.txt").mtime == 1700000000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ArchiveError, match="SOURCE_DATE_EPOCH"):
        write_tar_gz(tree_entries(tmp_path / "tree"), tmp_path / "b.tar.gz")


def test_symlink_leaving_the_tree_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "outside.txt").write_text("secret")
    (tmp_path / "tree/link").symlink_to("../outside.txt")
    output = tmp_path / "dist/a.tar.gz"
    with pytest.raises(ArchiveError, match="leaves the archive"):
        write_tar_gz(tree_entries(tmp_path / "tree"), output)
    assert not output.exists()
    assert not list((tmp_path / "dist").glob("*")) if (tmp_path / "dist").exists() else True


def test_absolute_symlink_into_the_tree_becomes_relative(tmp_path: Path) -> None:
    (tmp_path / "tree/lib").mkdir(parents=True)
    (tmp_path / "tree/lib/real.so").write_bytes(b"x")
    (tmp_path / "tree/bin").mkdir()
    (tmp_path / "tree/bin/alias.so").symlink_to(tmp_path / "tree/lib/real.so")
    (tmp_path / "tree/bin/dangling").symlink_to("nothing-here")
    with pytest.raises(ArchiveError, match="points at nothing"):
        write_tar_gz(tree_entries(tmp_path / "tree"), tmp_path / "a.tar.gz")
    (tmp_path / "tree/bin/dangling").unlink()
    summary = write_tar_gz(tree_entries(tmp_path / "tree"), tmp_path / "a.tar.gz")
    with tarfile.open(summary.path) as tar:
        assert tar.getmember("bin/alias.so").linkname == "../lib/real.so"


def test_a_failed_write_leaves_no_file_and_keeps_the_previous_one(tmp_path: Path) -> None:
    output = tmp_path / "a.tar.gz"
    output.write_bytes(b"previous")
    entries = [
        Entry(arcname="ok.txt", kind="file", data=b"fine"),
        Entry(arcname="missing.txt", kind="file", source=tmp_path / "does-not-exist"),
    ]
    with pytest.raises(ArchiveError, match="does-not-exist"):
        write_tar_gz(entries, output)
    assert output.read_bytes() == b"previous"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.tar.gz"]


def test_generated_entries_get_parent_folders_and_duplicates_fail(tmp_path: Path) -> None:
    summary = write_tar_gz(
        [Entry(arcname="a/b/c.txt", kind="file", data=b"c")], tmp_path / "a.tar.gz"
    )
    with tarfile.open(summary.path) as tar:
        assert tar.getnames() == ["a", "a/b", "a/b/c.txt"]
    with pytest.raises(ArchiveError, match="same name"):
        write_tar_gz(
            [
                Entry(arcname="x.txt", kind="file", data=b"1"),
                Entry(arcname="x.txt", kind="file", data=b"2"),
            ],
            tmp_path / "b.tar.gz",
        )
    with pytest.raises(ArchiveError, match=r"'\.\.'"):
        write_tar_gz([Entry(arcname="../x.txt", kind="file", data=b"1")], tmp_path / "c.tar.gz")


def test_each_level_is_deterministic_and_holds_the_same_tar(tmp_path: Path) -> None:
    _make_tree(tmp_path / "tree", mtime=0)
    written = {
        (level, threads): write_tar_gz(
            tree_entries(tmp_path / "tree"),
            tmp_path / f"l{level}t{threads}.tar.gz",
            threads=threads,
            level=level,
        )
        for level in (1, DENSE_COMPRESS_LEVEL)
        for threads in (1, 3)
    }
    for level in (1, DENSE_COMPRESS_LEVEL):
        assert written[(level, 1)].sha256 == written[(level, 3)].sha256
    assert written[(1, 1)].sha256 != written[(DENSE_COMPRESS_LEVEL, 1)].sha256
    tars = {gzip.decompress(summary.path.read_bytes()) for summary in written.values()}
    assert len(tars) == 1


def test_unknown_level_is_refused_before_writing(tmp_path: Path) -> None:
    _make_tree(tmp_path / "tree", mtime=0)
    with pytest.raises(ArchiveError, match="level 9 is not one of 0, 1, 2, 3"):
        write_tar_gz(tree_entries(tmp_path / "tree"), tmp_path / "out/a.tar.gz", level=9)
    assert not (tmp_path / "out").exists()
