"""Just enough binary-format knowledge to keep a packed environment portable.

An execution environment runs inside the Triton container (linux x86-64), so every native file
in it must be an x86-64 ELF: a Mach-O or Windows library, or an ELF for another machine, means
the env was built on the wrong platform (triton-inference-server/server#7121). The runpath of
the copied interpreter must not point back at the build machine, or the env would silently use
the host's libpython where that path happens to exist.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection
from elftools.elf.sections import SymbolTableSection

__all__ = [
    "ElfInfo",
    "ElfPatchError",
    "sniff",
    "read_elf",
    "rewrite_runpath",
    "X86_64",
]

X86_64 = 62  # e_machine of x86-64 (EM_X86_64)

_MACHO_MAGICS = {
    b"\xfe\xed\xfa\xce",
    b"\xce\xfa\xed\xfe",
    b"\xfe\xed\xfa\xcf",
    b"\xcf\xfa\xed\xfe",
}
_FAT_MAGIC = b"\xca\xfe\xba\xbe"  # Mach-O universal binary, or a Java class file
_GLIBC = re.compile(r"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$")
_STRING_TAGS = {
    "DT_NEEDED",
    "DT_SONAME",
    "DT_RPATH",
    "DT_RUNPATH",
    "DT_AUXILIARY",
    "DT_FILTER",
    "DT_CONFIG",
    "DT_DEPAUDIT",
    "DT_AUDIT",
}


class ElfPatchError(Exception):
    """An ELF file whose runpath cannot be rewritten in place."""


@dataclass(frozen=True)
class ElfInfo:
    """The facts about one ELF file that decide whether it runs in the target container."""

    path: Path
    machine: int
    is_64bit: bool
    little_endian: bool
    runpath: tuple[str, ...]
    needed: tuple[str, ...]
    glibc: tuple[int, int] | None

    @property
    def is_linux_x86_64(self) -> bool:
        return self.machine == X86_64 and self.is_64bit and self.little_endian


def sniff(path: Path) -> str:
    """'elf', 'macho', 'pe' or 'other', from the file's first bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError:
        return "other"
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head[:4] in _MACHO_MAGICS:
        return "macho"
    if head[:4] == _FAT_MAGIC and len(head) >= 8:
        # Java class files share the magic; their next word (version) is >= 45.
        (count,) = struct.unpack(">I", head[4:8])
        if 0 < count < 45:
            return "macho"
    if head.startswith(b"MZ") and len(head) >= 64:
        (pe_offset,) = struct.unpack("<I", head[60:64])
        try:
            with open(path, "rb") as handle:
                handle.seek(pe_offset)
                if handle.read(4) == b"PE\x00\x00":
                    return "pe"
        except OSError:
            return "other"
    return "other"


def read_elf(path: Path) -> ElfInfo:
    """Machine, runpath, needed libraries and the newest glibc symbol version an ELF needs."""
    with open(path, "rb") as handle:
        ident = handle.read(20)
        if len(ident) < 20 or not ident.startswith(b"\x7fELF"):
            raise ElfPatchError(f"{path}: not an ELF file")
        (machine,) = struct.unpack("<H" if ident[5] == 1 else ">H", ident[18:20])
        handle.seek(0)
        try:
            elf = ELFFile(handle)
            runpath: list[str] = []
            needed: list[str] = []
            glibc: tuple[int, int] | None = None
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags():
                        if tag.entry.d_tag in ("DT_RUNPATH", "DT_RPATH"):
                            attribute = "runpath" if tag.entry.d_tag == "DT_RUNPATH" else "rpath"
                            value = str(getattr(tag, attribute))
                            runpath.extend(part for part in value.split(":") if part)
                        elif tag.entry.d_tag == "DT_NEEDED":
                            needed.append(str(getattr(tag, "needed")))
                elif isinstance(section, GNUVerNeedSection):
                    for _version, auxiliaries in section.iter_versions():
                        for aux in auxiliaries:
                            match = _GLIBC.match(aux.name)
                            if match:
                                found = (int(match.group(1)), int(match.group(2)))
                                glibc = found if glibc is None or found > glibc else glibc
        except (ELFError, struct.error, ValueError) as error:
            raise ElfPatchError(f"{path}: unreadable ELF file: {error}") from None
    return ElfInfo(
        path=Path(path),
        machine=machine,
        is_64bit=ident[4] == 2,
        little_endian=ident[5] == 1,
        runpath=tuple(runpath),
        needed=tuple(needed),
        glibc=glibc,
    )


def rewrite_runpath(path: Path, new_runpath: str) -> None:
    """Overwrite DT_RUNPATH/DT_RPATH in place with a string no longer than the current one.

    The dynamic string table is not resized, so the new value is padded with NUL bytes. The
    linker may share string tails between entries; if any other reference points inside the
    old value, rewriting would corrupt it, so that case is refused.
    """
    encoded = new_runpath.encode("utf-8")
    with open(path, "r+b") as handle:
        try:
            elf = ELFFile(handle)
            dynamic = next((s for s in elf.iter_sections() if isinstance(s, DynamicSection)), None)
            dynstr = elf.get_section_by_name(".dynstr")
            if dynamic is None or dynstr is None:
                raise ElfPatchError(f"{path}: no dynamic section or .dynstr to rewrite")
            targets: set[int] = set()
            references: set[int] = set()
            for tag in dynamic.iter_tags():
                if tag.entry.d_tag in ("DT_RUNPATH", "DT_RPATH"):
                    targets.add(int(tag.entry.d_val))
                elif tag.entry.d_tag in _STRING_TAGS:
                    references.add(int(tag.entry.d_val))
            if not targets:
                return
            dynstr_index = elf.get_section_index(".dynstr")
            for section in elf.iter_sections():
                if section["sh_link"] != dynstr_index:
                    continue
                if isinstance(section, SymbolTableSection):
                    references.update(
                        int(symbol.entry.st_name) for symbol in section.iter_symbols()
                    )
                elif isinstance(section, GNUVerNeedSection):
                    for version, auxiliaries in section.iter_versions():
                        references.add(int(version.entry.vn_file))
                        references.update(int(aux.entry.vna_name) for aux in auxiliaries)
                elif isinstance(section, GNUVerDefSection):
                    for _version, auxiliaries in section.iter_versions():
                        references.update(int(aux.entry.vda_name) for aux in auxiliaries)
            table_offset = int(dynstr["sh_offset"])
            writes: list[tuple[int, bytes]] = []
            for start in sorted(targets):
                handle.seek(table_offset + start)
                old = _read_cstring(handle)
                if len(encoded) > len(old):
                    raise ElfPatchError(
                        f"{path}: new runpath {new_runpath!r} is longer than the current "
                        f"{old.decode(errors='replace')!r}; it cannot be rewritten in place"
                    )
                shared = [ref for ref in references if start < ref <= start + len(old)]
                if shared:
                    raise ElfPatchError(
                        f"{path}: the runpath string is shared with other entries; "
                        "it cannot be rewritten in place"
                    )
                writes.append((table_offset + start, encoded + b"\x00" * (len(old) - len(encoded))))
        except (ELFError, struct.error) as error:
            raise ElfPatchError(f"{path}: unreadable ELF file: {error}") from None
        for offset, data in writes:
            handle.seek(offset)
            handle.write(data)


def _read_cstring(handle: object) -> bytes:
    data = bytearray()
    read = getattr(handle, "read")
    while True:
        chunk: bytes = read(256)
        if not chunk:
            break
        end = chunk.find(b"\x00")
        if end >= 0:
            data += chunk[:end]
            break
        data += chunk
    return bytes(data)
