"""Reading a `.eval` ZIP archive without trusting it: no zip bomb can take the memory or the time.

Before `zipfile` parses the central directory, the end-of-central-directory record (ZIP64 too) is
read by hand: too many members or too large a directory is refused. Then each member's declared
sizes are checked (per-member and total caps, compression ratio), and members are decompressed
here — stored, deflate or zstd, the only methods Inspect writes — as a stream with a byte cap,
because declared sizes can lie: a member that inflates past what it declared, past the cap, or
whose CRC-32 differs is refused. (`zipfile`'s own zstd path decompresses a whole read in one call,
so a few kB of zstd can allocate gigabytes before any size check: it is never used for members.)
Every refusal is a `ZipRefused` with one line naming the member and what is wrong.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

from zstandard import ZstdDecompressor, ZstdError

MAX_MEMBERS = 100_000
"""Members per archive (a sample is one member; the central directory costs ~600 B each)."""
MAX_DIRECTORY_BYTES = 16 << 20
"""Size of the central directory (~90 bytes a member in Inspect's logs)."""
MAX_MEMBER_BYTES = 64 << 20
"""Decompressed size of one member (one sample's JSON is parsed in memory)."""
MAX_TOTAL_BYTES = 4 << 30
"""Decompressed size of all members together (time to read the log stays bounded)."""
MAX_RATIO = 1000
"""Declared decompressed/compressed ratio of a member over `RATIO_FLOOR` (JSON: ~5-50)."""
RATIO_FLOOR = 1 << 20
MAX_ZSTD_WINDOW = 1 << 25
"""zstd window a frame may ask for (Inspect's frames use a few MB)."""
CHUNK = 1 << 16

ZIP_ZSTANDARD = 93
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"


class ZipRefused(ValueError):
    """An archive or member that is refused (one line: what is wrong)."""


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n >= 1 << 20 else f"{n} bytes"


def check_directory(f: BinaryIO) -> None:
    """Refuse an archive whose central directory is too large or holds too many members.

    The members are counted by walking the directory's records (the count in the end record
    can lie). Archives without an end record are left to `zipfile` ("not a zip file")."""
    size = f.seek(0, io.SEEK_END)
    tail_len = min(size, 22 + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        return
    eocd = size - tail_len + at
    entries, cd_size = struct.unpack("<HI", tail[at + 10 : at + 16])
    loc = at - 20
    if loc >= 0 and tail[loc : loc + 4] == _EOCD64_LOCATOR:
        (offset,) = struct.unpack("<Q", tail[loc + 8 : loc + 16])
        if offset + 56 <= size:
            f.seek(offset)
            rec = f.read(56)
            if rec[:4] == _EOCD64:
                entries, cd_size = struct.unpack("<QQ", rec[32:48])
                eocd = offset
    if entries > MAX_MEMBERS:
        raise ZipRefused(f"{entries} members (at most {MAX_MEMBERS}): refused as a zip bomb")
    if cd_size > MAX_DIRECTORY_BYTES:
        raise ZipRefused(
            f"central directory of {_mb(cd_size)} (at most {_mb(MAX_DIRECTORY_BYTES)})"
        )
    if eocd - cd_size >= 0:
        f.seek(eocd - cd_size)
        counted = _count_records(f.read(cd_size))
        if counted > MAX_MEMBERS:
            raise ZipRefused(
                f"more than {MAX_MEMBERS} members in its directory: refused as a zip bomb"
            )
    f.seek(0)


def _count_records(cd: bytes) -> int:
    """How many central-directory records `cd` holds (stops counting past `MAX_MEMBERS`)."""
    n = pos = 0
    while n <= MAX_MEMBERS and cd[pos : pos + 4] == _CENTRAL and pos + 46 <= len(cd):
        name_len, extra_len, comment_len = struct.unpack("<HHH", cd[pos + 28 : pos + 34])
        pos += 46 + name_len + extra_len + comment_len
        n += 1
    return n


def check_members(infos: list[zipfile.ZipInfo]) -> None:
    """Refuse members that are encrypted, use an unknown method, or declare too much."""
    total = 0
    for info in infos:
        name = info.filename[:200]
        if info.flag_bits & 0x1:
            raise ZipRefused(f"{name}: encrypted member")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, ZIP_ZSTANDARD):
            raise ZipRefused(f"{name}: unsupported compression method {info.compress_type}")
        if info.file_size > MAX_MEMBER_BYTES:
            raise ZipRefused(
                f"{name}: declares {_mb(info.file_size)} uncompressed "
                f"(at most {_mb(MAX_MEMBER_BYTES)} per member)"
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
            raise ZipRefused(
                f"{name}: compression ratio {ratio:.0f}:1 (at most {MAX_RATIO}:1): "
                "refused as a zip bomb"
            )
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise ZipRefused(
            f"members declare {_mb(total)} uncompressed in all (at most {_mb(MAX_TOTAL_BYTES)})"
        )


class SafeZip:
    """A `zipfile.ZipFile` over an open file, checked before it is parsed; members read capped."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        check_directory(f)
        self.zip = zipfile.ZipFile(f)
        if len(self.zip.infolist()) > MAX_MEMBERS:  # a directory that did not parse as counted
            raise ZipRefused(f"more than {MAX_MEMBERS} members: refused as a zip bomb")
        check_members(self.zip.infolist())
        self._read_total = 0

    def namelist(self) -> list[str]:
        return self.zip.namelist()

    def read(self, name: str) -> bytes:
        """The member's bytes, decompressed as a stream and refused past its declared size."""
        info = self.zip.getinfo(name)
        cap = min(info.file_size, MAX_MEMBER_BYTES)
        out = bytearray()
        crc = 0
        for chunk in self._chunks(info, cap):
            out += chunk
            crc = zlib.crc32(chunk, crc)
            if len(out) > cap:
                raise ZipRefused(
                    f"{name[:200]}: decompresses to more than the {_mb(info.file_size)} it "
                    "declares: refused as a zip bomb"
                )
        if len(out) != info.file_size:
            raise ZipRefused(f"{name[:200]}: truncated ({len(out)} of {info.file_size} bytes)")
        if crc != info.CRC:
            raise ZipRefused(f"{name[:200]}: CRC-32 mismatch (corrupt member)")
        self._read_total += len(out)
        if self._read_total > MAX_TOTAL_BYTES:
            raise ZipRefused(f"more than {_mb(MAX_TOTAL_BYTES)} decompressed in all")
        return bytes(out)

    def _raw(self, info: zipfile.ZipInfo) -> _Window:
        self._f.seek(info.header_offset)
        head = self._f.read(30)
        if len(head) < 30 or head[:4] != _LOCAL:
            raise ZipRefused(f"{info.filename[:200]}: bad local header (corrupt archive)")
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        return _Window(self._f, info.header_offset + 30 + name_len + extra_len, info.compress_size)

    def _chunks(self, info: zipfile.ZipInfo, cap: int) -> Iterator[bytes]:
        try:
            yield from _decompress(self._raw(info), info.compress_type, cap)
        except zlib.error as e:
            raise ZipRefused(f"{info.filename[:200]}: corrupt deflate data ({e})") from None
        except ZstdError as e:
            raise ZipRefused(f"{info.filename[:200]}: corrupt zstd data ({e})") from None

    def close(self) -> None:
        self.zip.close()


class _Window(io.RawIOBase):
    """`length` bytes of `f` from `start` (a member's compressed data)."""

    def __init__(self, f: BinaryIO, start: int, length: int) -> None:
        self._f, self._pos, self._left = f, start, length

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview | bytearray) -> int:  # type: ignore[override]
        n = min(len(b), self._left)
        if n <= 0:
            return 0
        self._f.seek(self._pos)
        data = self._f.read(n)
        b[: len(data)] = data
        self._pos += len(data)
        self._left -= len(data) if data else self._left
        return len(data)


def _decompress(raw: _Window, method: int, cap: int) -> Iterator[bytes]:
    """Decompressed chunks of one member, at most `CHUNK` bytes each, ending once past `cap`."""
    produced = 0
    if method == zipfile.ZIP_STORED:
        while produced <= cap and (chunk := raw.read(CHUNK)):
            produced += len(chunk)
            yield chunk
    elif method == zipfile.ZIP_DEFLATED:
        d = zlib.decompressobj(-15)
        while produced <= cap and not d.eof:
            data = d.unconsumed_tail or raw.read(CHUNK)
            if not data:
                break
            chunk = d.decompress(data, CHUNK)
            produced += len(chunk)
            yield chunk
    else:
        dctx = ZstdDecompressor(max_window_size=MAX_ZSTD_WINDOW)
        with dctx.stream_reader(
            cast(BinaryIO, raw), read_across_frames=True, closefd=False
        ) as reader:
            while produced <= cap and (chunk := reader.read(CHUNK)):
                produced += len(chunk)
                yield chunk


INSPECT_READS = ("header.json", "summaries.json", "reductions.json", "_journal/")
"""Members Inspect's header and summary readers decompress (a prefix ends with `/`)."""


def guard_for_inspect(path: str | Path) -> None:
    """Check an `.eval` before Inspect's own readers (`read_eval_log`, `..._sample_summaries`)
    decompress it: its directory and declared sizes, and the real size of each member those
    readers read (streamed with a cap here, since a declared size can lie). Raises
    `TierlockError` (one line naming the log) for anything refused or unreadable."""
    from tierlock.sandbox import TierlockError
    from tierlock.sandbox._userfile import open_regular, short

    try:
        with open_regular(path, "log") as f:
            archive = SafeZip(f)
            try:
                for name in archive.namelist():
                    if name in INSPECT_READS or name.startswith(INSPECT_READS[-1]):
                        archive.read(name)
            finally:
                archive.close()
    except (ZipRefused, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as e:
        raise TierlockError(f"{short(path)}: refused before Inspect reads it: {e}") from None
