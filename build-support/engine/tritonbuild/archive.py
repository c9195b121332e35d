"""Deterministic, portable tar.gz archives.

The same inputs give the same bytes, whatever the file system order, the files' mtimes, owners
or umask, and the number of compression threads. That makes an archive's sha256 a content
address: CI can tell "nothing changed" from "rebuilt", and a published key never changes.

Rules, in the order a reader of the archive meets them:
- Entries are sorted by their path components; parent folders come first (added when missing).
- No wrapping folder: entry names are relative (`step/config.pbtxt`), never `./` or absolute.
- mtime is fixed: `SOURCE_DATE_EPOCH` when set, else 0. uid/gid 0, uname/gname empty.
- Modes are normalised: 0o755 for folders and for files with any execute bit, 0o644 otherwise.
- PAX format (POSIX.1-2001), UTF-8 names. Long names get PAX records, which are deterministic.
- Never hard links: every file is stored as a regular file, even if it is hard-linked on disk
  (Triton's environment extractor and SageMaker have both been seen failing on hard links).
- Symlinks are kept as symlinks only when they are relative and resolve to another entry of the
  archive: an environment's `bin/python3 -> python3.10` or `libpython3.10.so ->
  libpython3.10.so.1.0` then stays one copy. An absolute link into the tree is rewritten as a
  relative one; a link that leaves the tree or dangles is an error (it would point at whatever
  the extracting machine has there, and Triton's extractor refuses writes through such links).
- Device files, FIFOs and sockets are errors.
- gzip: ISA-L compression (`isal.igzip_threaded`), fed in fixed-size blocks so the compressed
  stream depends on the data only, not on how many threads compress it; the gzip header carries
  no file name and mtime 0. The level is part of the inputs: the same entries at another level
  give other bytes.
- Written to a temporary file in the destination folder, then renamed: a failure never leaves a
  half-written archive under the final name.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, Literal, cast

from isal import igzip, igzip_threaded, isal_zlib

from tritonbuild.digests import ArchiveDigests, Digester
from tritonbuild.errors import ArchiveError

__all__ = [
    "Entry",
    "ArchiveSummary",
    "tree_entries",
    "write_tar_gz",
    "read_tar_stream",
    "source_date_epoch",
    "default_threads",
    "sha256_file",
    "COMPRESS_LEVEL",
    "DENSE_COMPRESS_LEVEL",
    "BLOCK_SIZE",
]

# ISA-L level 1: a model archive's bulk is weights (near-random mantissas) and an env tarball that
# is already compressed, which level 3 shrinks no further while taking 1.6 times as long.
COMPRESS_LEVEL = 1
# ISA-L's highest level, for trees of code and shared libraries, where it is about 4% smaller
# than level 1 and still several times faster than zlib -6.
DENSE_COMPRESS_LEVEL = 3
# Each block is compressed independently (with the previous block as dictionary); a fixed size
# is what makes the output independent of the thread count.
BLOCK_SIZE = 1024 * 1024

EntryKind = Literal["dir", "file", "symlink"]


@dataclass(frozen=True)
class Entry:
    """One archive member: a folder, a file (from `source` or from `data`), or a symlink."""

    arcname: str
    kind: EntryKind
    source: Path | None = None
    data: bytes | None = None
    executable: bool = False
    link_target: str = ""
    origin: str = field(default="", compare=False)

    def describe(self) -> str:
        """Where the entry came from, for error messages."""
        return self.origin or (str(self.source) if self.source else self.arcname)


@dataclass(frozen=True)
class ArchiveSummary:
    """What was written: the final path, its size and sha256, and how much it holds; with
    `digests=True`, also what publishing needs (tritonbuild.digests), from the same pass."""

    path: Path
    size: int
    sha256: str
    entries: int
    uncompressed_bytes: int
    digests: ArchiveDigests | None = None


def source_date_epoch() -> int:
    """The fixed mtime for entries: SOURCE_DATE_EPOCH (reproducible-builds.org) or 0."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return 0
    if not raw.isdigit():
        raise ArchiveError(
            f"SOURCE_DATE_EPOCH={raw!r} is not a non-negative integer; "
            "unset it or set it to seconds since 1970-01-01"
        )
    return int(raw)


def default_threads() -> int:
    """Compression threads: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(BLOCK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def read_tar_stream(source: Path | IO[bytes]) -> Iterator[tarfile.TarFile]:
    """A tar archive, gzip-compressed or not, read forward once in BLOCK_SIZE pieces.

    `source` is a file or an open stream (an env tarball inside a model archive). Nothing is
    held whole: entries are yielded as the stream reaches them, gzip is inflated by ISA-L.
    """
    with ExitStack() as stack:
        raw = stack.enter_context(open(source, "rb")) if isinstance(source, Path) else source
        buffered = (
            raw
            if isinstance(raw, io.BufferedReader)
            else io.BufferedReader(cast(io.RawIOBase, raw))
        )
        stream: IO[bytes] = buffered
        if buffered.peek(2)[:2] == b"\x1f\x8b":
            stream = stack.enter_context(_open_gzip(buffered, "rb"))
        tar = stack.enter_context(tarfile.open(fileobj=stream, mode="r|", bufsize=BLOCK_SIZE))
        try:
            yield tar
        except _INFLATE_ERROR as error:  # what tarfile's own gzip reader calls a ReadError
            raise tarfile.ReadError(f"invalid compressed data: {error}") from None


def tree_entries(
    root: Path,
    *,
    prefix: str = "",
    exclude: Callable[[Path], bool] | None = None,
    dereference: bool = False,
) -> list[Entry]:
    """Entries for everything under `root`, named `prefix/<relative path>`.

    `exclude(path)` skips a file or a whole folder. `root` itself is not an entry unless a
    prefix names it. Symlinks are kept as symlinks, or with `dereference` stored as the file
    or folder they point to (DVC's symlink cache puts weights behind links that leave the tree).
    """
    root = Path(root)
    if not root.is_dir():
        raise ArchiveError(f"{root}: not a folder; nothing to archive")
    entries: list[Entry] = []
    if prefix:
        entries.append(
            Entry(arcname=_clean_arcname(prefix, str(root)), kind="dir", origin=str(root))
        )
    entries.extend(_walk(root, root, prefix, exclude, dereference))
    return entries


def _walk(
    root: Path,
    folder: Path,
    prefix: str,
    exclude: Callable[[Path], bool] | None,
    dereference: bool,
) -> Iterator[Entry]:
    with os.scandir(folder) as scan:
        children = sorted(scan, key=lambda child: child.name)
    for child in children:
        path = Path(child.path)
        if exclude is not None and exclude(path):
            continue
        relative = path.relative_to(root).as_posix()
        arcname = f"{prefix}/{relative}" if prefix else relative
        mode = child.stat(follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode) and dereference:
            try:
                mode = child.stat(follow_symlinks=True).st_mode
            except OSError:
                raise ArchiveError(
                    f"{path}: symlink to {os.readlink(path)!r}, which does not exist; "
                    "restore its target (for DVC-tracked files: `dvc pull`)"
                ) from None
        if stat.S_ISLNK(mode):
            yield Entry(
                arcname=arcname,
                kind="symlink",
                link_target=_relative_link(root, path),
                origin=str(path),
            )
        elif stat.S_ISDIR(mode):
            if path.is_symlink() and folder.resolve().is_relative_to(path.resolve()):
                raise ArchiveError(f"{path}: symlink loop (points at one of its parents)")
            yield Entry(arcname=arcname, kind="dir", origin=str(path))
            yield from _walk(root, path, prefix, exclude, dereference)
        elif stat.S_ISREG(mode):
            yield Entry(
                arcname=arcname,
                kind="file",
                source=path,
                executable=bool(mode & 0o111),
                origin=str(path),
            )
        else:
            raise ArchiveError(
                f"{path}: not a regular file, folder or symlink (device, FIFO or socket); "
                "remove it from the folder being archived"
            )


def _relative_link(root: Path, link: Path) -> str:
    """The link's target as a relative path; absolute targets inside `root` are rewritten."""
    target = os.readlink(link)
    if not posixpath.isabs(target):
        return target
    resolved_root = root.resolve()
    try:
        inside = Path(posixpath.normpath(target)).relative_to(resolved_root)
    except ValueError:
        try:
            inside = Path(posixpath.normpath(target)).relative_to(root.absolute())
        except ValueError:
            raise ArchiveError(
                f"{link}: symlink to {target}, outside the folder being archived; "
                "replace it by the file itself or by a relative link inside the folder"
            ) from None
    link_dir = link.parent.relative_to(root)
    return posixpath.relpath(inside.as_posix(), link_dir.as_posix() or ".")


def _clean_arcname(name: str, origin: str) -> str:
    if not name or name.startswith("/") or "\\" in name:
        raise ArchiveError(f"{origin}: archive name {name!r} must be a relative POSIX path")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ArchiveError(
            f"{origin}: archive name {name!r} must not contain empty, '.' or '..' components"
        )
    return name


def _sort_key(entry: Entry) -> tuple[str, ...]:
    return tuple(entry.arcname.split("/"))


def _complete(entries: Iterable[Entry]) -> list[Entry]:
    """Check names, reject duplicates and bad symlinks, add missing parents, sort."""
    by_name: dict[str, Entry] = {}
    for entry in entries:
        name = _clean_arcname(entry.arcname, entry.describe())
        if entry.kind == "file" and (entry.source is None) == (entry.data is None):
            raise ArchiveError(
                f"{entry.describe()}: a file entry needs exactly one of source, data"
            )
        previous = by_name.get(name)
        if previous is not None:
            if previous.kind == "dir" and entry.kind == "dir":
                continue
            raise ArchiveError(
                f"{name}: two archive entries with the same name "
                f"({previous.describe()} and {entry.describe()})"
            )
        by_name[name] = entry
    for name in list(by_name):
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            existing = by_name.get(parent)
            if existing is None:
                by_name[parent] = Entry(arcname=parent, kind="dir")
            elif existing.kind != "dir":
                raise ArchiveError(
                    f"{name}: its parent {parent} is a {existing.kind}, not a folder "
                    f"({existing.describe()})"
                )
    for entry in by_name.values():
        if entry.kind == "symlink":
            _check_symlink(entry, by_name)
    return sorted(by_name.values(), key=_sort_key)


def _check_symlink(entry: Entry, by_name: dict[str, Entry]) -> None:
    target = entry.link_target
    if not target or posixpath.isabs(target):
        raise ArchiveError(
            f"{entry.describe()}: symlink target {target!r} must be a relative path inside the "
            "archive"
        )
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(entry.arcname), target))
    if resolved == ".." or resolved.startswith("../") or resolved == ".":
        raise ArchiveError(
            f"{entry.describe()}: symlink to {target!r} leaves the archive; "
            "replace it by the file it points to"
        )
    if resolved not in by_name:
        raise ArchiveError(
            f"{entry.describe()}: symlink to {target!r} points at nothing in the archive "
            f"({resolved}); remove the dangling link or add its target"
        )


# isal ships no annotations for igzip_threaded; this is the one signature used here.
_open_threaded_gzip: Callable[..., BinaryIO] = igzip_threaded.open
# Nor for igzip's reader, nor for the error ISA-L raises on corrupt data.
_open_gzip: Callable[..., BinaryIO] = igzip.open
_INFLATE_ERROR = cast(type[Exception], isal_zlib.error)


class _HashingWriter(io.RawIOBase):
    """Pass-through writer that hashes and counts what reaches the file (with a Digester, also
    the parts' digests publishing needs)."""

    def __init__(self, sink: IO[bytes], digester: Digester | None = None) -> None:
        super().__init__()
        self._sink = sink
        self.digest = hashlib.sha256()
        self.digester = digester
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data)
        self._sink.write(view)
        if self.digester is not None:
            self.digester.update(view)  # its SHA-256 is the file's
        else:
            self.digest.update(view)
        self.size += view.nbytes
        return view.nbytes

    def summary_digests(self) -> tuple[str, ArchiveDigests | None]:
        if self.digester is None:
            return self.digest.hexdigest(), None
        digests = self.digester.finish()
        return digests.sha256, digests

    def flush(self) -> None:
        self._sink.flush()


class _FixedBlockFeeder(io.RawIOBase):
    """Regroups tarfile's writes into BLOCK_SIZE chunks for the block-parallel compressor."""

    def __init__(self, sink: BinaryIO, block_size: int) -> None:
        super().__init__()
        self._sink = sink
        self._block_size = block_size
        self._buffer = bytearray()
        self._position = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data)
        self._buffer += view
        self._position += view.nbytes
        while len(self._buffer) >= self._block_size:
            self._sink.write(bytes(self._buffer[: self._block_size]))
            del self._buffer[: self._block_size]
        return view.nbytes

    def finish(self) -> None:
        if self._buffer:
            self._sink.write(bytes(self._buffer))
            self._buffer.clear()


def _tarinfo(entry: Entry, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.arcname)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link_target
        info.mode = 0o777
    else:
        info.type = tarfile.REGTYPE
        info.mode = 0o755 if entry.executable else 0o644
    return info


def write_tar_gz(
    entries: Iterable[Entry],
    output: Path,
    *,
    mtime: int | None = None,
    threads: int | None = None,
    level: int = COMPRESS_LEVEL,
    digests: bool = False,
) -> ArchiveSummary:
    """Write `entries` as a deterministic tar.gz at `output` (atomically), at ISA-L `level`;
    with `digests`, hash it for publishing as it is written."""
    output = Path(output)
    if level not in range(4):
        raise ArchiveError(f"{output}: ISA-L compression level {level} is not one of 0, 1, 2, 3")
    members = _complete(entries)
    fixed_mtime = source_date_epoch() if mtime is None else mtime
    thread_count = default_threads() if threads is None else max(1, threads)
    output.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        dir=output.parent, prefix=f".{output.name}.", suffix=".partial", delete=False
    )
    temp_path = Path(handle.name)
    uncompressed = 0
    try:
        with handle:
            hashing = _HashingWriter(handle, Digester() if digests else None)
            gzip_stream = _open_threaded_gzip(
                hashing,
                "wb",
                compresslevel=level,
                threads=thread_count,
                block_size=BLOCK_SIZE,
            )
            with gzip_stream:
                feeder = _FixedBlockFeeder(gzip_stream, BLOCK_SIZE)
                with tarfile.TarFile(
                    fileobj=cast(BinaryIO, feeder),
                    mode="w",
                    format=tarfile.PAX_FORMAT,
                    encoding="utf-8",
                ) as tar:
                    for entry in members:
                        uncompressed += _add(tar, entry, fixed_mtime)
                feeder.finish()
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_path, 0o644)
        os.replace(temp_path, output)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    sha256, part_digests = hashing.summary_digests()
    return ArchiveSummary(
        path=output,
        size=hashing.size,
        sha256=sha256,
        entries=len(members),
        uncompressed_bytes=uncompressed,
        digests=part_digests,
    )


def _add(tar: tarfile.TarFile, entry: Entry, mtime: int) -> int:
    info = _tarinfo(entry, mtime)
    if entry.kind != "file":
        tar.addfile(info)
        return 0
    if entry.data is not None:
        info.size = len(entry.data)
        tar.addfile(info, io.BytesIO(entry.data))
        return info.size
    assert entry.source is not None
    try:
        with open(entry.source, "rb") as source:
            info.size = os.fstat(source.fileno()).st_size
            tar.addfile(info, source)
    except OSError as error:
        raise ArchiveError(f"{entry.source}: cannot read it for the archive: {error}") from None
    return info.size
