"""The DOCX package (a zip) written the same way every time, and assembled again from stored parts.

`stable_docx` fixes what a zip stores besides the content (each member's write time, its permissions), so
the same letter is the same bytes. `StoredPackage` keeps a stable package's members as they are stored
(local header, compressed bytes, central-directory record) so that a letter re-deflates only the parts it
changes and copies the others: the result is byte for byte what `stable_docx` writes for the same parts.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Mapping

FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the zip epoch: no build time in the file

# ZIP application note, section 4.3: the fixed-size parts of the three records we read and rewrite.
_LOCAL = struct.Struct("<4s5H3L2H")  # signature, version, flags, method, time, date, crc, sizes, name/extra lengths
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # ..., crc, sizes, name/extra/comment lengths, disk, attrs, offset
_END = struct.Struct("<4s4H2LH")  # signature, disks, counts, directory size and offset, comment length
_LOCAL_SIG, _CENTRAL_SIG, _END_SIG = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"


def stable_docx(data: bytes) -> bytes:
    """The same package with every member deflated and stamped with the zip epoch and mode 0644."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


def deflate(data: bytes) -> bytes:
    """Raw deflate exactly as `zipfile` writes a ZIP_DEFLATED member (default level, no zlib header)."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


@dataclass(frozen=True)
class _Member:
    name: str
    local_header: bytes  # with this member's stored CRC and sizes
    compressed: bytes
    central_record: bytes  # name, extra and comment included; its offset is patched on assembly


@dataclass(frozen=True)
class StoredPackage:
    """The members of a package written by `stable_docx`, in their order, as stored."""

    members: tuple[_Member, ...]
    end_comment: bytes

    @classmethod
    def read(cls, data: bytes) -> StoredPackage:
        end_at = data.rfind(_END_SIG)
        (_, _, _, count, total, directory_size, directory_at, comment_length) = _END.unpack_from(data, end_at)
        if count != total or directory_at + directory_size != end_at:
            raise ValueError("not a single-disk zip as stable_docx writes it")
        members = []
        at = directory_at
        for _ in range(count):
            fields = _CENTRAL.unpack_from(data, at)
            if fields[0] != _CENTRAL_SIG:
                raise ValueError("broken zip central directory")
            compressed_size, name_length, extra_length, comment_length_m = fields[8], fields[10], fields[11], fields[12]
            offset = fields[-1]
            record = data[at:at + _CENTRAL.size + name_length + extra_length + comment_length_m]
            local = _LOCAL.unpack_from(data, offset)
            if local[0] != _LOCAL_SIG or local[2] & 0x08:  # 0x08: sizes in a data descriptor (not ours)
                raise ValueError("unexpected zip local header")
            header_end = offset + _LOCAL.size + local[9] + local[10]
            name = data[at + _CENTRAL.size:at + _CENTRAL.size + name_length].decode(
                "utf-8" if fields[3] & 0x800 else "cp437")
            members.append(_Member(name, data[offset:header_end], data[header_end:header_end + compressed_size],
                                   record))
            at += len(record)
        return cls(tuple(members), data[end_at + _END.size:end_at + _END.size + comment_length])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members)

    def content(self, name: str) -> bytes:
        """A member's content, uncompressed."""
        member = next(m for m in self.members if m.name == name)
        return zlib.decompress(member.compressed, -15)

    def assemble(self, replaced: Mapping[str, bytes]) -> bytes:
        """The package with the members named in `replaced` holding new (uncompressed) content."""
        chunks: list[bytes] = []
        directory: list[bytes] = []
        offset = 0
        for member in self.members:
            header, compressed, record = member.local_header, member.compressed, member.central_record
            content = replaced.get(member.name)
            if content is not None:
                compressed = deflate(content)
                crc, sizes = zlib.crc32(content), (len(compressed), len(content))
                header = bytearray(header)
                struct.pack_into("<3L", header, 14, crc, *sizes)  # local header: crc at byte 14
                record = bytearray(record)
                struct.pack_into("<3L", record, 16, crc, *sizes)  # central record: crc at byte 16
            record = bytearray(record)
            struct.pack_into("<L", record, 42, offset)  # central record: local header offset at byte 42
            chunks += (header, compressed)
            directory.append(bytes(record))
            offset += len(header) + len(compressed)
        directory_bytes = b"".join(directory)
        end = _END.pack(_END_SIG, 0, 0, len(directory), len(directory), len(directory_bytes), offset,
                        len(self.end_comment))
        return b"".join((*chunks, directory_bytes, end, self.end_comment))
